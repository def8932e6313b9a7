package bench

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A cut of `go tool pprof -top -cum -unit=ms` over kube-apiserver profiles.
const pprofTop = `File: kube-apiserver
Type: cpu
Duration: 15s, Total samples = 2000ms (13.33%)
Showing nodes accounting for 2000ms, 100% of 2000ms total
      flat  flat%   sum%        cum   cum%
         0     0%     0%     1480ms 74.00%  net/http.HandlerFunc.ServeHTTP
         0     0%  1.00%      290ms 14.50%  k8s.io/apiserver/pkg/authentication/request/union.(*unionAuthRequestHandler).AuthenticateRequest
         0     0%  1.50%      260ms 13.00%  crypto/x509.(*Certificate).Verify
     10ms   0.5% 22.00%      100ms  5.00%  k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac.(*RBACAuthorizer).Authorize
         0     0% 30.00%      150ms  7.50%  k8s.io/apiserver/pkg/audit.(*AuditContext).ProcessEventStage
`

func TestParsePprofTop(t *testing.T) {
	total, cum := parsePprofTop(pprofTop)
	if total != 2000 {
		t.Errorf("total = %g ms, want 2000", total)
	}
	for fn, want := range map[string]float64{
		"net/http.HandlerFunc.ServeHTTP":                                                1480,
		"crypto/x509.(*Certificate).Verify":                                             260,
		"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac.(*RBACAuthorizer).Authorize": 100,
	} {
		if cum[fn] != want {
			t.Errorf("cum[%s] = %g, want %g", fn, cum[fn], want)
		}
	}
	if len(cum) != 5 {
		t.Errorf("parsed %d functions, want 5 (headers are not functions): %v", len(cum), cum)
	}
	got := stagesPerRequest(total, cum, 1000)
	for stage, want := range map[string]float64{"total": 2, "authentication": 0.29, "of which certificate verification": 0.26,
		"authorization (RBAC)": 0.1, "audit": 0.15, "GET handler": 0} {
		if math.Abs(got[stage]-want) > 1e-9 {
			t.Errorf("%s = %g ms per GET, want %g", stage, got[stage], want)
		}
	}
	if len(stagesPerRequest(total, cum, 0)) != 0 {
		t.Error("no requests: no figures, not a division by zero")
	}
}

// fetchProfile saves what the replica's /debug/pprof/profile answers, and
// an apiserver's refusal is an error, not a profile.
func TestFetchProfile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/profile" || r.URL.Query().Get("seconds") != "3" {
			http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("profile bytes"))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "p.pprof")
	if err := fetchProfile(context.Background(), srv.Client(), srv.URL, 3, file); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "profile bytes" {
		t.Errorf("saved %q, %v", b, err)
	}
	if err := fetchProfile(context.Background(), srv.Client(), srv.URL, 4, file); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("refusal: %v", err)
	}
}

func TestAPIProfileMarkdown(t *testing.T) {
	rep := &Report{APIProfiles: []APIServerProfile{
		{Path: PathEnvoyPlain, QPS: 150, Seconds: 15, MsPerGET: map[string]float64{"total": 2.7, "authentication": 0.383, "authorization (RBAC)": 0.117}},
		{Path: PathFrontdoorRH, NA: "n/a: profile: 403"},
	}}
	md := rep.Markdown()
	for _, want := range []string{
		"**Where the apiservers' CPU goes** (Go CPU profiles of every replica, 15s while each path's GETs arrive at 150 req/s",
		"| path | total | authentication | of which certificate verification | authorization (RBAC) | audit | GET handler | HTTP/2 writes | GC |",
		"| envoy-plain | 2.700 | 0.383 | 0.000 | 0.117 | 0.000 | 0.000 | 0.000 | 0.000 |",
		"| frontdoor-requestheader | n/a: profile: 403 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

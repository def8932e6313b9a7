package authz

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubefrontdoor/frontdoor/policy"
)

func TestPipelineDenials(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	tests := []struct {
		name     string
		table    *policy.Table
		req      Request
		want     Outcome
		wantCode int
	}{
		{"no policy yet", nil, Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: cert}, Unavailable, 503},
		{"unknown cluster", testTable(ca.CertPEM), Request{Cluster: "b", Method: "GET", Path: "/api", PeerCertificate: cert}, Unavailable, 503},
		{"no cluster named", testTable(ca.CertPEM), Request{Method: "GET", Path: "/api", PeerCertificate: cert}, Unavailable, 503},
		{"bearer token only", testTable(ca.CertPEM), Request{
			Cluster: "a", Method: "GET", Path: "/api/v1/pods",
			Headers: map[string]string{"authorization": "Bearer abc.def"},
		}, Unauthenticated, 401},
		{"client impersonation only", testTable(ca.CertPEM), Request{
			Cluster: "a", Method: "GET", Path: "/api/v1/pods",
			Headers: map[string]string{"impersonate-user": "system:admin"},
		}, Unauthenticated, 401},
		{"malformed target", testTable(ca.CertPEM), Request{Cluster: "a", Method: "GET", Path: "/api/%zz", PeerCertificate: cert}, Invalid, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := newTestPipeline(t, nil)
			if tt.table != nil {
				tp.SetPolicy(tt.table)
			}
			d := tp.Check(context.Background(), &tt.req)
			if d.Outcome != tt.want || d.Code != tt.wantCode || d.Allowed() {
				t.Fatalf("decision = %s %d, want %s %d", d.Outcome, d.Code, tt.want, tt.wantCode)
			}
			if !bytes.Contains(d.Body, []byte(`"kind":"Status"`)) || len(d.SetHeaders) != 0 {
				t.Errorf("denial body %q / set headers %v", d.Body, d.SetHeaders)
			}
			if diff := cmp.Diff(statusResponseHeaders, d.ResponseHeaders); diff != "" {
				t.Errorf("response headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPipelineStripsClientIdentity(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})
	d := tp.Check(context.Background(), &Request{
		Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert,
		Headers: map[string]string{
			"authorization":      "Bearer abc",
			"X-Remote-User":      "admin",
			"x-remote-group":     "system:masters",
			"x-remote-extra-foo": "all",
		},
	})
	if !d.Allowed() {
		t.Fatalf("decision = %s", d.Outcome)
	}
	// Every client identity header goes; ours are added after the removal.
	want := []string{"authorization", "x-remote-extra-foo", "x-remote-group", "x-remote-user"}
	if diff := cmp.Diff(want, d.RemoveHeaders); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
	if d.SetHeaders[0] != (Header{Name: "Impersonate-User", Value: "jane"}) ||
		d.SetHeaders[1] != (Header{Name: "Impersonate-Group", Value: "dev"}) {
		t.Errorf("set = %v", d.SetHeaders)
	}
}

// Client Impersonate-* headers are a request to impersonate, never
// forwarded as sent: without a way to authorize them (no upstream) the
// request is refused.
func TestPipelineImpersonationWithoutUpstreamIsRefused(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	for _, h := range []string{"impersonate-user", "Impersonate-Group", "IMPERSONATE-UID", "impersonate-extra-x"} {
		d := tp.Check(context.Background(), &Request{
			Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert,
			Headers: map[string]string{h: "admin"},
		})
		if d.Allowed() {
			t.Errorf("%s: allowed, want refused", h)
		}
	}
}

func TestPipelineMetrics(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	ctx := context.Background()
	tp.Check(ctx, &Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: cert})
	tp.Check(ctx, &Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: cert})
	tp.Check(ctx, &Request{Cluster: "a", Method: "GET", Path: "/api"})
	tp.Check(ctx, &Request{Cluster: "zz", Method: "GET", Path: "/api"})

	const want = `
# HELP frontdoor_authn_cache_total Authentication cache lookups, by result (hit, miss).
# TYPE frontdoor_authn_cache_total counter
frontdoor_authn_cache_total{result="hit"} 1
frontdoor_authn_cache_total{result="miss"} 1
# HELP frontdoor_authz_requests_total Requests decided by the request service, by cluster and decision (allowed, unauthenticated, forbidden, unavailable, invalid).
# TYPE frontdoor_authz_requests_total counter
frontdoor_authz_requests_total{cluster="a",decision="allowed"} 2
frontdoor_authz_requests_total{cluster="a",decision="unauthenticated"} 1
frontdoor_authz_requests_total{cluster="zz",decision="unavailable"} 1
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want),
		"frontdoor_authz_requests_total", "frontdoor_authn_cache_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(tp.metrics.duration); n != 1 {
		t.Errorf("duration histogram series = %d, want 1", n)
	}
	if got := histogramCount(t, tp.reg, "frontdoor_authz_check_duration_seconds"); got != 4 {
		t.Errorf("duration observations = %d, want 4", got)
	}
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}

func TestNewPipelineDuplicateRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewPipeline(Options{Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPipeline(Options{Registry: reg}); err == nil {
		t.Error("second pipeline on one registry: want an error")
	}
}

func TestPipelineLogging(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	for _, tt := range []struct {
		name        string
		logRequests bool
		level       slog.Level
		wantLines   int
	}{
		{"debug handler sees decisions", false, slog.LevelDebug, 2},
		{"info handler hides them by default", false, slog.LevelInfo, 0},
		{"LogRequests logs at info", true, slog.LevelInfo, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			p, err := NewPipeline(Options{Logger: log, LogRequests: tt.logRequests, Now: (&fakeClock{now: testNow}).Now})
			if err != nil {
				t.Fatal(err)
			}
			p.SetPolicy(testTable(ca.CertPEM))
			buf.Reset()
			headers := map[string]string{"authorization": "Bearer sekrit-token"}
			p.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/ns/pods/web-0/log", Headers: headers, PeerCertificate: cert})
			p.Check(context.Background(), &Request{Cluster: "a", Method: "DELETE", Path: "/apis/apps/v1/namespaces/ns/deployments", Headers: headers})

			out := buf.String()
			if got := strings.Count(out, `msg="request decision"`); got != tt.wantLines {
				t.Fatalf("decision lines = %d, want %d:\n%s", got, tt.wantLines, out)
			}
			if strings.Contains(out, "sekrit") || strings.Contains(out, "BEGIN") || strings.Contains(out, cert[:30]) {
				t.Errorf("log leaks a credential:\n%s", out)
			}
			if tt.wantLines > 0 {
				for _, want := range []string{
					"cluster=a verb=get apiGroup=\"\" resource=pods subresource=log namespace=ns name=web-0 rule=default user=jane requestor=jane decision=allowed code=200",
					"cluster=a verb=deletecollection apiGroup=apps resource=deployments subresource=\"\" namespace=ns name=\"\" user=\"\" requestor=\"\" decision=unauthenticated code=401",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("log lacks %q:\n%s", want, out)
					}
				}
			}
		})
	}
}

func TestSetPolicyKeepsUnchangedAuthenticator(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	before := tp.table.Load().clusters["a"].x509
	tab := testTable(ca.CertPEM)
	tab.Clusters["a"].DefaultRule = "other"
	tp.SetPolicy(tab)
	after := tp.table.Load().clusters["a"]
	if after.x509 != before || after.defaultRule != "other" {
		t.Errorf("unchanged CA: authenticator replaced (%p -> %p) or rule not updated (%q)", before, after.x509, after.defaultRule)
	}
	tab = testTable(newTestCA(t, "new").CertPEM)
	tp.SetPolicy(tab)
	if got := tp.table.Load().clusters["a"].x509; got == before || got.gen == before.gen {
		t.Error("changed CA: authenticator (and generation) kept")
	}
}

func TestPipelineConcurrentSetPolicy(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if d := checkCert(tp, cert); !d.Allowed() {
					t.Errorf("decision = %s", d.Outcome)
					return
				}
			}
		})
	}
	for i := range 50 {
		tab := testTable(ca.CertPEM)
		tab.Version = strconv.Itoa(i)
		tp.SetPolicy(tab)
	}
	wg.Wait()
}

// FuzzPipeline feeds arbitrary targets, headers and certificates through the
// whole pipeline: whatever arrives, it must answer without panicking, and
// every denial must carry a Status body.
func FuzzPipeline(f *testing.F) {
	ca := newTestCA(f, "client-ca")
	_, cert := ca.issue(f, clientCert{cn: "jane", orgs: []string{"dev"}})
	for _, s := range []struct{ method, path, hk, hv, cert string }{
		{"GET", "/api/v1/namespaces/default/pods/web-0", "authorization", "Bearer x", cert},
		{"GET", "/api/v1/pods?watch=true&fieldSelector=metadata.name%3Dx", "impersonate-user", "admin", cert},
		{"POST", "/api/v1/namespaces/default/pods/web-0/exec?command=sh", "Impersonate-Extra-Foo%2Fbar", "v", cert},
		{"DELETE", "/apis/apps/v1/namespaces/x/deployments", "x-remote-user", "root", ""},
		{"GET", "/api/v1/watch", "", "", cert[:len(cert)/2]},
		{"PATCH", "*", "impersonate-", "", "%zz"},
		{"GET", "/%", "IMPERSONATE-GROUP", "a\r\nb", envoyURLEncode("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")},
		{"", "", "", "", "-----BEGIN CERTIFICATE-----"},
	} {
		f.Add(s.method, s.path, s.hk, s.hv, s.cert)
	}
	p, err := NewPipeline(Options{Now: (&fakeClock{now: testNow}).Now})
	if err != nil {
		f.Fatal(err)
	}
	p.SetPolicy(testTable(ca.CertPEM))
	f.Fuzz(func(t *testing.T, method, path, hk, hv, cert string) {
		d := p.Check(context.Background(), &Request{
			Cluster: "a", Method: method, Path: path,
			Headers:         map[string]string{hk: hv},
			PeerCertificate: cert,
		})
		switch {
		case d.Allowed():
			if d.User == "" || len(d.SetHeaders) < 2 || !slices.Contains(d.RemoveHeaders, "authorization") {
				t.Fatalf("allow without identity or stripping: %+v", d)
			}
		case d.Code < 400 || !bytes.HasPrefix(d.Body, []byte(`{"kind":"Status"`)):
			t.Fatalf("denial without status: %+v", d)
		}
	})
}

// BenchmarkPipelineX509Cached measures the hot path: a repeated request
// whose certificate identity is cached.
func BenchmarkPipelineX509Cached(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"get", "/api/v1/namespaces/default/pods/web-0"},
		{"list", "/api/v1/namespaces/default/pods?limit=500&resourceVersion=0"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ca := newTestCA(b, "client-ca")
			_, cert := ca.issue(b, clientCert{cn: "system:kube-controller-manager", orgs: []string{"system:masters", "ops"}})
			p, err := NewPipeline(Options{Registry: prometheus.NewRegistry(), Now: (&fakeClock{now: testNow}).Now})
			if err != nil {
				b.Fatal(err)
			}
			p.SetPolicy(testTable(ca.CertPEM))
			req := &Request{
				Cluster: "a", Method: "GET", Path: bc.path, PeerCertificate: cert,
				Headers: map[string]string{
					":authority": "cluster-a.example.com", ":method": "GET", ":path": bc.path,
					"accept": "application/json", "user-agent": "kube-controller-manager/v1.37.2",
					"x-forwarded-proto": "https", "x-request-id": "0f1e2d3c",
				},
			}
			benchAllowed(b, p, req)
		})
	}
}

// benchAllowed measures p.Check on req, repeated: the pipeline benchmarks'
// loop. The first Check, untimed, must allow (it fills the caches the
// loop then hits) and so must every timed one.
func benchAllowed(b *testing.B, p *Pipeline, req *Request) {
	b.Helper()
	ctx := context.Background()
	if d := p.Check(ctx, req); !d.Allowed() {
		b.Fatalf("decision = %s", d.Outcome)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d := p.Check(ctx, req); !d.Allowed() {
			b.Fatal("denied")
		}
	}
}

// The pipeline decides on the headers ext_authz sends it
// (envoy.RequestServiceHeaders) exactly as on all of them: everything else
// a client sends is invisible to its decisions.
func TestPipelineReadsOnlyRequestServiceHeaders(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})
	noise := map[string]string{
		":authority": "cluster-a.example.com", ":method": "GET", ":path": "/api/v1/pods", ":scheme": "https",
		"accept": "application/json", "user-agent": "kubectl/v1.37.2", "content-type": "application/json",
		"x-forwarded-for": "10.0.0.1", "x-forwarded-proto": "https", "x-request-id": "0f1e2d3c", "audit-id": "a1",
		"cookie": "s=1", "x-forwarded-client-cert": "Cert=abc",
	}
	for name, h := range map[string]map[string]string{
		"x509":          {},
		"front-proxy":   {"X-Remote-User": "admin", "x-remote-group": "system:masters"},
		"impersonation": {"impersonate-user": "bob"},
		"bearer token":  {"authorization": "Bearer abc"},
		"websocket":     {"sec-websocket-protocol": bearerProtocolPrefix + "YWJj,v5.channel.k8s.io", "connection": "Upgrade", "upgrade": "websocket"},
	} {
		t.Run(name, func(t *testing.T) {
			all := map[string]string{}
			for k, v := range noise {
				all[k] = v
			}
			for k, v := range h {
				all[k] = v
			}
			req := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert, Headers: all}
			full := newTestPipeline(t, ca).Pipeline.Check(context.Background(), req)
			filtered := newTestPipeline(t, ca).Check(context.Background(), req)
			if diff := cmp.Diff(full, filtered); diff != "" {
				t.Errorf("decision with every header (-) and with only the request-service headers (+):\n%s", diff)
			}
		})
	}
}

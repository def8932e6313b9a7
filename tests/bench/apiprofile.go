package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// APIServerProfile is where the apiservers' CPU goes for one path: Go CPU
// profiles of every replica (kube-apiserver's /debug/pprof, on by default)
// while the path's GETs arrive at one rate, cut into stages of
// kube-apiserver's handler chain, in CPU-ms per GET. Every path is profiled
// at the same rate, so the stages compare what the requests cost, not how
// fast the gateway in front of them is.
type APIServerProfile struct {
	Path     string  `json:"path"`
	NA       string  `json:"na,omitempty"`
	QPS      float64 `json:"offered_qps"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	// MsPerGET is each stage's CPU (cumulative: the function and what it
	// calls) per GET served, with "total" the replicas' whole CPU.
	MsPerGET map[string]float64 `json:"ms_per_get"`
	Files    []string           `json:"files"`
}

// apiStages are the stages of the table, each one function of
// kube-apiserver's chain whose cumulative CPU is the stage's.
var apiStages = []struct{ Name, Func string }{
	{"authentication", "k8s.io/apiserver/pkg/authentication/request/union.(*unionAuthRequestHandler).AuthenticateRequest"},
	{"of which certificate verification", "crypto/x509.(*Certificate).Verify"},
	{"authorization (RBAC)", "k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac.(*RBACAuthorizer).Authorize"},
	{"audit", "k8s.io/apiserver/pkg/audit.(*AuditContext).ProcessEventStage"},
	{"GET handler", "k8s.io/apiserver/pkg/endpoints/handlers.GetResource.getResourceHandler.func2"},
	{"HTTP/2 writes", "golang.org/x/net/http2.(*serverConn).writeFrameAsync"},
	{"GC", "runtime.gcBgMarkWorker"},
}

// profileAPIServers offers GETs through p at qps for secs seconds and takes
// a CPU profile of every replica over the same window.
func profileAPIServers(ctx context.Context, sb *sandbox.Sandbox, p *path, qps float64, secs int, opts Options) APIServerProfile {
	out := APIServerProfile{Path: p.name, QPS: qps, Seconds: float64(secs), MsPerGET: map[string]float64{}}
	admin, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		out.NA = "n/a: " + err.Error()
		return out
	}
	admin.Timeout = time.Duration(secs+30) * time.Second
	errs := make([]error, len(sb.ReplicaURLs))
	out.Files = make([]string, len(sb.ReplicaURLs))
	var wg sync.WaitGroup
	for i, u := range sb.ReplicaURLs {
		out.Files[i] = filepath.Join(opts.OutDir, fmt.Sprintf("apiserver-%d-%s.pprof", i+1, p.name))
		wg.Go(func() { errs[i] = fetchProfile(ctx, admin, u, secs, out.Files[i]) })
	}
	// The load starts with the profiles and outlasts them by a second.
	res, err := Offer(ctx, p.c, LoadSpec{Workload: WorkloadGet, Mode: Open, QPS: qps,
		Connections: opts.Connections, Duration: time.Duration(secs+1) * time.Second, Seed: opts.Seed})
	wg.Wait()
	if err != nil {
		out.NA = "n/a: load: " + err.Error()
		return out
	}
	for _, err := range errs {
		if err != nil {
			out.NA = "n/a: profile: " + err.Error()
			return out
		}
	}
	// GETs served while the profiles ran: the rate over the profile window.
	out.Requests = int(res.QPS() * float64(secs))
	args := append([]string{"tool", "pprof", "-top", "-cum", "-unit=ms", "-nodecount=100000"}, out.Files...)
	top, err := exec.CommandContext(ctx, "go", args...).Output()
	if err != nil {
		out.NA = "n/a: go tool pprof: " + err.Error()
		return out
	}
	total, cum := parsePprofTop(string(top))
	out.MsPerGET = stagesPerRequest(total, cum, out.Requests)
	return out
}

func fetchProfile(ctx context.Context, c *http.Client, replica string, secs int, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", replica, secs), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %.200s", replica, resp.Status, b)
	}
	return os.WriteFile(file, b, 0o644)
}

// parsePprofTop reads `go tool pprof -top -cum -unit=ms`: the total sampled
// CPU and each function's cumulative CPU, in ms.
func parsePprofTop(top string) (total float64, cum map[string]float64) {
	cum = map[string]float64{}
	for _, line := range strings.Split(top, "\n") {
		if _, rest, ok := strings.Cut(line, "Total samples = "); ok {
			v, _, _ := strings.Cut(rest, " ")
			total, _ = msValue(v)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		if v, ok := msValue(f[3]); ok {
			cum[strings.Join(f[5:], " ")] = v
		}
	}
	return total, cum
}

// msValue parses a pprof value printed with -unit=ms ("1340ms", "0").
func msValue(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "ms"), 64)
	return v, err == nil
}

// stagesPerRequest divides the total and each stage's CPU by requests.
func stagesPerRequest(total float64, cum map[string]float64, requests int) map[string]float64 {
	out := map[string]float64{}
	if requests <= 0 {
		return out
	}
	out["total"] = total / float64(requests)
	for _, st := range apiStages {
		out[st.Name] = cum[st.Func] / float64(requests)
	}
	return out
}

// profileAllAPIServers profiles the apiservers under each live path's GETs,
// one path after the other, all at one rate: the matched cells' (the median
// rate they offered) when the run has them, else the open loop's.
func profileAllAPIServers(ctx context.Context, sb *sandbox.Sandbox, live []*path, opts Options, rep *Report, say func(string, ...any)) []APIServerProfile {
	qps := opts.QPS[WorkloadGet]
	for _, r := range rep.Results {
		if r.Workload == WorkloadGet && r.Mode == Matched && r.OfferedQPS > 0 {
			qps = r.OfferedQPS
			break
		}
	}
	secs := 15
	if opts.Quick {
		secs = 3
	}
	var out []APIServerProfile
	for _, p := range live {
		say("apiservers' CPU profile: get at %.0f req/s through %s", qps, p.name)
		out = append(out, profileAPIServers(ctx, sb, p, qps, secs, opts))
	}
	return out
}

// apiProfileMarkdown renders the stages per path.
func (rep *Report) apiProfileMarkdown(b *strings.Builder) {
	if len(rep.APIProfiles) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**Where the apiservers' CPU goes** (Go CPU profiles of every replica, %gs while each path's GETs arrive at %.0f req/s, one path after the other; CPU-ms per GET, each stage with what it calls; `total` includes the apiservers' background work; files apiserver-N-PATH.pprof)\n\n",
		rep.APIProfiles[0].Seconds, rep.APIProfiles[0].QPS)
	b.WriteString("| path | total |")
	for _, st := range apiStages {
		b.WriteString(" " + st.Name + " |")
	}
	b.WriteString("\n|---|---:|" + strings.Repeat("---:|", len(apiStages)) + "\n")
	for _, p := range rep.APIProfiles {
		if p.NA != "" {
			fmt.Fprintf(b, "| %s | %s |%s\n", p.Path, p.NA, strings.Repeat(" |", len(apiStages)))
			continue
		}
		fmt.Fprintf(b, "| %s | %.3f |", p.Path, p.MsPerGET["total"])
		for _, st := range apiStages {
			fmt.Fprintf(b, " %.3f |", p.MsPerGET[st.Name])
		}
		b.WriteString("\n")
	}
}

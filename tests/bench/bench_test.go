package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// TestQuickBench runs `make bench --quick` end to end as a smoke test: it
// asserts that every path that could run produced figures and that no path
// had more than 1% errors. It asserts no performance figure.
func TestQuickBench(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox and proxies", 6*time.Minute)
	var progress strings.Builder
	out := t.TempDir()
	start := time.Now()
	rep, err := Run(ctx, Options{Quick: true, OutDir: out, Profile: true, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("quick bench took %s\n%s", time.Since(start).Round(time.Second), rep.Markdown())

	measured := map[string]bool{}
	for _, p := range rep.Paths {
		switch {
		case p.NA == "":
			measured[p.Name] = true
		case p.Name == PathDirect || p.Name == PathFrontdoorX509 || p.Name == PathFrontdoorRH || p.Name == PathEnvoyPlain ||
			p.Name == PathEnvoyImpersonating || p.Name == PathEnvoyAsClient || p.Name == PathFrontdoorNoLog:
			t.Errorf("path %s was not measured: %s", p.Name, p.NA)
		default:
			t.Logf("path %s: %s", p.Name, p.NA)
		}
	}
	for _, r := range rep.Results {
		if !measured[r.Path] {
			continue
		}
		if len(r.CPUPer1k) == 0 && r.Path != PathDirect {
			t.Errorf("%s %s/%s: no gateway CPU figure", r.Path, r.Workload, r.Mode)
		}
		if r.QPS <= 0 || r.P50Ms <= 0 || r.Requests == 0 {
			t.Errorf("%s %s/%s: no figures: %+v", r.Path, r.Workload, r.Mode, r)
		}
		if r.ErrorRate > 0.01 {
			t.Errorf("%s %s/%s: %.2f%% errors (first: %s)", r.Path, r.Workload, r.Mode, 100*r.ErrorRate, r.FirstErr)
		}
	}
	for _, b := range rep.Balance {
		if measured[b.Path] && b.Path != PathDirect && b.NA != "" {
			t.Errorf("balance %s: %s", b.Path, b.NA)
		}
	}
	// Where the time goes: every logged path split its requests, and the
	// parts fit in Envoy's total.
	split := map[string]TimeSplit{}
	for _, r := range rep.Split {
		split[r.Path] = r
	}
	for _, name := range []string{PathFrontdoorX509, PathEnvoyPlain, PathEnvoyAsClient, PathEnvoyImpersonating} {
		r, ok := split[name]
		switch {
		case !ok || r.NA != "":
			t.Errorf("time split %s: missing or %s", name, r.NA)
		case r.Logged == 0 || r.EnvoyTotalMs <= 0 || r.APIServerMs <= 0 || r.APIServerMs+r.RequestServiceMs > r.EnvoyTotalMs*1.5:
			t.Errorf("time split %s: %+v", name, r)
		case name == PathFrontdoorX509 && r.RequestServiceMs <= 0:
			t.Errorf("time split %s: no request-service time: %+v", name, r)
		}
	}
	if r, ok := split[PathDirect]; !ok || r.ClientP50Ms <= 0 {
		t.Errorf("time split direct: %+v", r)
	}
	for _, f := range []string{"results.md", "results.json", "latency.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// A quick run leaves out the paths that only combine what others smoke-test,
// unless asked for by name; a full run and an explicit list measure them.
func TestQuickRunSkipsCombinedPaths(t *testing.T) {
	for _, c := range []struct {
		opts Options
		name string
		want bool
	}{
		{Options{}, PathFrontdoorInProcRH, true},
		{Options{Quick: true}, PathFrontdoorInProcRH, false},
		{Options{Quick: true}, PathFrontdoorInProcTok, false},
		{Options{Quick: true}, PathFrontdoorInProc, true},
		{Options{Quick: true, Paths: []string{PathFrontdoorInProcRH}}, PathFrontdoorInProcRH, true},
		{Options{Paths: []string{PathEnvoyPlain}}, PathFrontdoorInProcRH, false},
	} {
		if got := c.opts.selects(c.name); got != c.want {
			t.Errorf("quick=%v paths=%v: selects(%s) = %v, want %v", c.opts.Quick, c.opts.Paths, c.name, got, c.want)
		}
	}
}

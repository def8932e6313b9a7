package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBalanceOf(t *testing.T) {
	even := balanceOf("x", []float64{100, 100, 100})
	if even.CV != 0 || even.MaxOverMin != 1 || even.MaxDevPct != 0 {
		t.Errorf("even: %+v", even)
	}
	// 8 connections round robin over 3 replicas: 3/3/2.
	skew := balanceOf("x", []float64{300, 300, 200})
	if math.Abs(skew.MaxOverMin-1.5) > 1e-9 || math.Abs(skew.Shares[2]-0.25) > 1e-9 || math.Abs(skew.MaxDevPct-25) > 1e-9 {
		t.Errorf("skew: %+v", skew)
	}
	if none := balanceOf("x", []float64{0, 0, 0}); none.NA == "" {
		t.Errorf("no requests must be n/a: %+v", none)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	r := &LoadResult{}
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	if got := r.Percentile(.5); got != 50*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := r.Percentile(1); got != 100*time.Millisecond {
		t.Errorf("max = %v", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func TestProcStatSelf(t *testing.T) {
	pid := os.Getpid()
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn a little CPU
	}
	cpu, err := cpuTime(pid)
	if err != nil || cpu <= 0 {
		t.Errorf("cpuTime = %v, %v", cpu, err)
	}
	if h, err := peakRSS(pid); err != nil || h <= 0 {
		t.Errorf("peakRSS = %v, %v", h, err)
	}
}

// TestReportRendering renders a small report to Markdown, JSON and PNG
// without a sandbox.
func TestReportRendering(t *testing.T) {
	rep := &Report{Paths: []PathInfo{{Name: PathDirect}, {Name: PathFrontdoorX509}, {Name: PathFrontdoorTok, NA: "n/a: not supported by this build"}}}
	for _, p := range []string{PathDirect, PathFrontdoorX509} {
		rep.Results = append(rep.Results, Result{Workload: WorkloadGet, Mode: Closed, Path: p, QPS: 100, P50Ms: 1, P90Ms: 2, P99Ms: 3, MaxMs: 4,
			CPUPer1k: map[string]float64{"envoy": 0.3, "frontdoor": 0.1}, PeakRSSMiB: map[string]float64{"envoy": 70}})
	}
	rep.Results = append(rep.Results, Result{Workload: WorkloadGet, Mode: Closed, Path: PathFrontdoorTok, NA: "n/a: not supported by this build"})
	addRatios(rep)
	rep.SplitQPS = 150
	rep.Split = []TimeSplit{
		{Path: PathDirect, ClientP50Ms: 1.7},
		{Path: PathEnvoyPlain, ClientP50Ms: 2.4, Logged: 10, EnvoyTotalMs: 1.9, EnvoyOwnMs: 0.4, APIServerMs: 1.5},
		{Path: PathFrontdoorX509, Mode: "ExtAuthz", ClientP50Ms: 3.8, Logged: 10, EnvoyTotalMs: 3.2, EnvoyOwnMs: 0.6, RequestServiceMs: 0.9, APIServerMs: 1.7},
		{Path: PathFrontdoorExtP, Mode: "ExtProc", NA: "n/a: not measured"},
	}
	dir := t.TempDir()
	if err := rep.write(dir); err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	for _, want := range []string{"| frontdoor-x509 | 100 (×1.00)", "envoy 0.300 + frontdoor 0.100 = 0.400", "n/a: not supported by this build",
		"**Where the time goes** (get, open loop 150 req/s", "| direct | – | 1.70 | – | – | – | – | – |",
		"| envoy-plain | – | 2.40 | 1.90 | 0.40 | – | 1.50 | 10 |", "| frontdoor-x509 | ExtAuthz | 3.80 | 3.20 | 0.60 | 0.90 | 1.70 | 10 |",
		"| frontdoor-extproc | ExtProc | n/a: not measured |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"results.md", "results.json", "latency.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The paired comparison divides round by round and reports the median and
// the range of those ratios.
func TestAddPaired(t *testing.T) {
	rep := &Report{Baseline: "before", Results: []Result{
		{Workload: WorkloadGet, Mode: Closed, Path: "before", PerRound: []RoundFigures{
			{QPS: 100, P50Ms: 10, P99Ms: 20, GatewayCPU1k: 0.4}, {QPS: 50, P50Ms: 20, P99Ms: 40, GatewayCPU1k: 0.5}, {QPS: 80, P50Ms: 12, P99Ms: 30, GatewayCPU1k: 0.4}}},
		{Workload: WorkloadGet, Mode: Closed, Path: "after", PerRound: []RoundFigures{
			{QPS: 110, P50Ms: 9, P99Ms: 20, GatewayCPU1k: 0.36}, {QPS: 60, P50Ms: 18, P99Ms: 40, GatewayCPU1k: 0.45}, {QPS: 80, P50Ms: 12, P99Ms: 30, GatewayCPU1k: 0.4}}},
	}}
	addPaired(rep)
	if len(rep.Paired) != 1 {
		t.Fatalf("paired = %+v", rep.Paired)
	}
	p := rep.Paired[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if p.Path != "after" || !near(p.CPU[0], 0.9) || !near(p.CPU[1], 0.9) || !near(p.CPU[2], 1) || !near(p.QPS[0], 1.1) || !near(p.QPS[2], 1.2) || !near(p.P50[0], 0.9) {
		t.Errorf("paired = %+v", p)
	}
	if md := rep.Markdown(); !strings.Contains(md, "| get / closed | after | ×0.900 [0.90–1.00] | ×1.100 [1.00–1.20] |") {
		t.Errorf("markdown:\n%s", md)
	}
}

// The fast-path bars are judged on each round's comparison with the
// reference path of the same round: a difference in ms for latency, a
// ratio for CPU and rate, the median against the limit.
func TestAddBars(t *testing.T) {
	rounds := func(fs ...RoundFigures) []RoundFigures { return fs }
	rep := &Report{Results: []Result{
		{Workload: WorkloadGet, Mode: Open, Path: PathEnvoyPlain, PerRound: rounds(
			RoundFigures{P50Ms: 2.0, P99Ms: 5}, RoundFigures{P50Ms: 3.0, P99Ms: 6}, RoundFigures{P50Ms: 2.5, P99Ms: 5})},
		{Workload: WorkloadGet, Mode: Open, Path: PathFrontdoorInProc, PerRound: rounds(
			RoundFigures{P50Ms: 2.1, P99Ms: 7}, RoundFigures{P50Ms: 3.5, P99Ms: 6.5}, RoundFigures{P50Ms: 2.7, P99Ms: 5.5})},
		{Workload: WorkloadGet, Mode: Closed, Path: PathEnvoyPlain, PerRound: rounds(
			RoundFigures{QPS: 2000, GatewayCPU1k: 0.10}, RoundFigures{QPS: 2000, GatewayCPU1k: 0.20}, RoundFigures{QPS: 2000, GatewayCPU1k: 0.10})},
		{Workload: WorkloadGet, Mode: Closed, Path: PathEnvoyImpersonating, PerRound: rounds(
			RoundFigures{QPS: 1000}, RoundFigures{QPS: 1000}, RoundFigures{QPS: 2000})},
		{Workload: WorkloadGet, Mode: Closed, Path: PathFrontdoorInProc, PerRound: rounds(
			RoundFigures{QPS: 900, GatewayCPU1k: 0.13}, RoundFigures{QPS: 800, GatewayCPU1k: 0.30}, RoundFigures{QPS: 1000, GatewayCPU1k: 0.16})},
		// A path the run did not measure in the reference's rounds is not judged.
		{Workload: WorkloadGet, Mode: Closed, Path: PathFrontdoorInProcTok, PerRound: rounds(RoundFigures{QPS: 900, GatewayCPU1k: 0.13})},
	}}
	addBars(rep)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	want := []struct {
		bar   string
		value [3]float64
		met   bool
	}{
		{"p50 at the fixed rate, over envoy-plain", [3]float64{0.2, 0.1, 0.5}, true},
		{"p99 at the fixed rate, over envoy-plain", [3]float64{0.5, 0.5, 2}, true},
		{"gateway CPU per GET closed loop, to envoy-plain", [3]float64{1.5, 1.3, 1.6}, false},
		{"closed-loop GETs/s, to envoy-impersonating", [3]float64{0.8, 0.5, 0.9}, false},
	}
	if len(rep.Bars) != len(want) {
		t.Fatalf("bars = %+v, want %d for %s only", rep.Bars, len(want), PathFrontdoorInProc)
	}
	for i, w := range want {
		g := rep.Bars[i]
		if g.Path != PathFrontdoorInProc || g.Bar != w.bar || g.Met != w.met || g.Rounds != 3 ||
			!near(g.Value[0], w.value[0]) || !near(g.Value[1], w.value[1]) || !near(g.Value[2], w.value[2]) {
			t.Errorf("bar %d = %+v, want %s %v met=%v", i, g, w.bar, w.value, w.met)
		}
	}
	md := rep.Markdown()
	for _, line := range []string{
		"| frontdoor-inprocess | p50 at the fixed rate, over envoy-plain | +0.20 ms [+0.10…+0.50] | ≤ +0.25 ms | yes |",
		"| frontdoor-inprocess | closed-loop GETs/s, to envoy-impersonating | ×0.80 [0.50–0.90] | ≥ ×0.85 | no |",
	} {
		if !strings.Contains(md, line) {
			t.Errorf("markdown lacks %q:\n%s", line, md)
		}
	}
}

package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// served is a closed-loop sample that served n requests in one second.
func served(n int) sample {
	return sample{res: &LoadResult{Requests: n, Elapsed: time.Second, Latencies: make([]time.Duration, n)}}
}

func TestOrderModes(t *testing.T) {
	for _, tc := range []struct {
		in   []Mode
		ref  string
		want []Mode
		err  string
	}{
		{in: []Mode{Closed, Open}, want: []Mode{Closed, Open}},
		{in: []Mode{Matched, Closed}, ref: PathFrontdoorRH, want: []Mode{Closed, Matched}},
		{in: []Mode{Open, Matched, Closed}, ref: PathFrontdoorRH, want: []Mode{Closed, Open, Matched}},
		{in: []Mode{Matched}, ref: PathFrontdoorRH, err: "needs mode closed"},
		{in: []Mode{Closed, Matched}, err: "needs a reference path"},
	} {
		got, err := orderModes(tc.in, tc.ref)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("orderModes(%v, %q) = %v, %v; want error %q", tc.in, tc.ref, got, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("orderModes(%v, %q) = %v, %v; want %v", tc.in, tc.ref, got, err, tc.want)
		}
	}
}

// A matched cell of round r offers every path 75% of the rate the
// reference served closed-loop in round r (not another round's, not a
// median): rounds drift on a shared machine, and the cell must follow.
func TestMatchedCellSpec(t *testing.T) {
	o := Options{Concurrency: 16, Connections: 8, Duration: 8 * time.Second, Warmup: 2 * time.Second, Seed: 7,
		QPS: map[Workload]float64{WorkloadGet: 150}}
	ref := []sample{served(500), served(400), served(600)}
	for r, want := range []float64{375, 300, 450} {
		spec, err := o.cellSpec(WorkloadGet, Matched, r, ref)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Mode != Open || math.Abs(spec.QPS-want) > 1e-9 {
			t.Errorf("round %d: mode %s at %g req/s, want open at %g", r, spec.Mode, spec.QPS, want)
		}
		if spec.Seed != 7+uint64(r) || spec.Connections != 8 || spec.Duration != 8*time.Second || spec.Warmup != 2*time.Second {
			t.Errorf("round %d: settings not the run's: %+v", r, spec)
		}
	}
	// Other modes keep their own settings.
	if spec, err := o.cellSpec(WorkloadGet, Open, 1, ref); err != nil || spec.Mode != Open || spec.QPS != 150 {
		t.Errorf("open cell: %+v, %v", spec, err)
	}
	if spec, err := o.cellSpec(WorkloadGet, Closed, 1, nil); err != nil || spec.Mode != Closed || spec.Concurrency != 16 {
		t.Errorf("closed cell: %+v, %v", spec, err)
	}
	// No rate to match: an error, never a made-up rate.
	if _, err := o.cellSpec(WorkloadGet, Matched, 3, ref); err == nil {
		t.Error("a round without the reference's closed-loop figure must fail")
	}
	if _, err := o.cellSpec(WorkloadGet, Matched, 0, []sample{served(0)}); err == nil {
		t.Error("a reference that served nothing must fail")
	}
}

// The report names the offered rate of a matched cell (median over rounds)
// and which path it matched.
func TestMatchedReport(t *testing.T) {
	ss := []sample{served(300), served(310), served(320)}
	for i, q := range []float64{310, 300, 330} {
		ss[i].offered = q
	}
	r := summarize(WorkloadGet, Matched, Options{}, &path{name: PathEnvoyPlain}, ss)
	if r.OfferedQPS != 310 || r.PerRound[1].OfferedQPS != 300 {
		t.Errorf("offered: %g, per round %+v", r.OfferedQPS, r.PerRound)
	}
	// A round in which the path served under 95% of the rate offered in
	// that round is a round it fell behind: counted per round, since the
	// offered rate changes from round to round.
	slow := summarize(WorkloadGet, Matched, Options{}, &path{name: PathFrontdoorX509}, []sample{
		{res: served(200).res, offered: 310}, {res: served(290).res, offered: 300}, {res: served(290).res, offered: 330}})
	if slow.BehindRounds != 2 || r.BehindRounds != 0 {
		t.Errorf("behind rounds: %d (want 2), %d (want 0)", slow.BehindRounds, r.BehindRounds)
	}
	rep := &Report{MatchPath: PathFrontdoorRH, Paths: []PathInfo{{Name: PathEnvoyPlain}, {Name: PathFrontdoorX509}}, Results: []Result{r, slow}}
	md := rep.Markdown()
	if !strings.Contains(md, "**get / matched**\n\nOpen loop at 75% of the rate `frontdoor-requestheader` served closed-loop in the same round (median 310 req/s offered)") {
		t.Errorf("no matched note:\n%s", md)
	}
	if !strings.Contains(md, "| envoy-plain | 310 |") || !strings.Contains(md, "| frontdoor-x509 | 290 (behind in 2/3 rounds) |") {
		t.Errorf("behind marks:\n%s", md)
	}
	closed := summarize(WorkloadGet, Closed, Options{}, &path{name: PathEnvoyPlain}, []sample{served(300)})
	if closed.OfferedQPS != 0 {
		t.Errorf("a closed cell has an offered rate: %+v", closed)
	}
}

// The paired table has the apiservers' CPU per request, round by round
// against the baseline: the figure an apiserver-cost bar is judged on.
func TestAddPairedAPIServers(t *testing.T) {
	rep := &Report{Baseline: PathEnvoyPlain, Results: []Result{
		{Workload: WorkloadGet, Mode: Matched, Path: PathEnvoyPlain, PerRound: []RoundFigures{
			{QPS: 100, P50Ms: 10, P99Ms: 20, GatewayCPU1k: 0.4, APIServerCPU: 2}, {QPS: 100, P50Ms: 10, P99Ms: 20, GatewayCPU1k: 0.4, APIServerCPU: 3}}},
		{Workload: WorkloadGet, Mode: Matched, Path: PathFrontdoorRH, PerRound: []RoundFigures{
			{QPS: 100, P50Ms: 20, P99Ms: 40, GatewayCPU1k: 1.2, APIServerCPU: 2.2}, {QPS: 100, P50Ms: 20, P99Ms: 40, GatewayCPU1k: 1.2, APIServerCPU: 2.7}}},
	}}
	addPaired(rep)
	if len(rep.Paired) != 1 {
		t.Fatalf("paired = %+v", rep.Paired)
	}
	p := rep.Paired[0]
	if math.Abs(p.APIServers[0]-1)/1 > 1e-9 || math.Abs(p.APIServers[1]-0.9) > 1e-9 || math.Abs(p.APIServers[2]-1.1) > 1e-9 {
		t.Errorf("apiservers ratio = %v, want median 1 [0.9–1.1]", p.APIServers)
	}
	if md := rep.Markdown(); !strings.Contains(md, "| gateway CPU | req/s | p50 | p99 | apiservers CPU |") ||
		!strings.Contains(md, "| get / matched | frontdoor-requestheader | ×3.000 [3.00–3.00] | ×1.000 [1.00–1.00] | ×2.000 [2.00–2.00] | ×2.000 [2.00–2.00] | ×1.000 [0.90–1.10] |") {
		t.Errorf("markdown:\n%s", md)
	}
}

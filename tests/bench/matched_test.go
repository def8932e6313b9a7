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

// A matched cell of round r offers every path 90% of the rate the
// reference served closed-loop in round r (not another round's, not a
// median): rounds drift on a shared machine, and the cell must follow.
func TestMatchedCellSpec(t *testing.T) {
	o := Options{Concurrency: 16, Connections: 8, Duration: 8 * time.Second, Warmup: 2 * time.Second, Seed: 7,
		QPS: map[Workload]float64{WorkloadGet: 150}}
	ref := []sample{served(500), served(400), served(600)}
	for r, want := range []float64{450, 360, 540} {
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
	for i, q := range []float64{450, 360, 540} {
		ss[i].offered = q
	}
	r := summarize(WorkloadGet, Matched, Options{}, &path{name: PathEnvoyPlain}, ss)
	if r.OfferedQPS != 450 || r.PerRound[1].OfferedQPS != 360 {
		t.Errorf("offered: %g, per round %+v", r.OfferedQPS, r.PerRound)
	}
	rep := &Report{MatchPath: PathFrontdoorRH, Paths: []PathInfo{{Name: PathEnvoyPlain}}, Results: []Result{r}}
	md := rep.Markdown()
	if !strings.Contains(md, "**get / matched**\n\nOpen loop at 90% of the rate `frontdoor-requestheader` served closed-loop in the same round (median 450 req/s offered)") {
		t.Errorf("no matched note:\n%s", md)
	}
	closed := summarize(WorkloadGet, Closed, Options{}, &path{name: PathEnvoyPlain}, []sample{served(300)})
	if closed.OfferedQPS != 0 {
		t.Errorf("a closed cell has an offered rate: %+v", closed)
	}
}

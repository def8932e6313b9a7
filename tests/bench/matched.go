package bench

import (
	"fmt"
	"slices"
)

// Matched is an open loop at the rate another path reached closed-loop: in
// each round and workload, every path is offered matchedShare of the
// requests per second Options.MatchPath served in that round's closed-loop
// cell. The apiservers' CPU per request falls as the rate they serve
// rises (their fixed background work, health checks and leases, is spread
// over more requests, and busy servers batch writes and wake-ups), so a
// closed loop charges a slower gateway's path more apiserver CPU per
// request for the same requests. At one rate for every path the
// apiservers' CPU per request is what the forwarded requests cost them.
const Matched Mode = "matched"

// matchedShare is the fraction of the reference's closed-loop rate a
// matched cell offers: below it, so the reference and the paths about as
// fast keep up on a shared machine whose capacity drifts between cells (at
// the full closed-loop rate an open loop queues without bound; at 90% it
// still fell behind on a host at load average 25). A path that falls
// behind anyway is marked in the table.
const matchedShare = 0.75

// orderModes checks the modes of a run with Matched cells and moves Closed
// before Matched (a matched cell needs its round's closed-loop rate):
// Matched without Closed, or without a reference path, is an error.
func orderModes(modes []Mode, matchPath string) ([]Mode, error) {
	if !slices.Contains(modes, Matched) {
		return modes, nil
	}
	if matchPath == "" {
		return nil, fmt.Errorf("mode %s needs a reference path (--match-path)", Matched)
	}
	if !slices.Contains(modes, Closed) {
		return nil, fmt.Errorf("mode %s needs mode %s in the same run (it offers the rate %s reached closed-loop)", Matched, Closed, matchPath)
	}
	out := []Mode{Closed}
	for _, m := range modes {
		if m != Closed {
			out = append(out, m)
		}
	}
	return out, nil
}

// matchedQPS is the arrival rate of round round's matched cell: matchedShare
// of the closed-loop rate the reference served in that round (closed holds
// the reference's closed-loop samples of the same workload, in round order).
func matchedQPS(closed []sample, round int) (float64, error) {
	if round >= len(closed) || closed[round].res == nil {
		return 0, fmt.Errorf("no closed-loop figure of the reference path in round %d", round+1)
	}
	q := closed[round].res.QPS()
	if q <= 0 {
		return 0, fmt.Errorf("the reference path served nothing closed-loop in round %d", round+1)
	}
	return matchedShare * q, nil
}

// cellSpec is the load of one cell in round round (0-based): workload w in
// mode m with the run's settings; a Matched cell is an open loop at
// matchedQPS of refClosed, the reference path's closed-loop samples of w.
func (o Options) cellSpec(w Workload, m Mode, round int, refClosed []sample) (LoadSpec, error) {
	spec := LoadSpec{Workload: w, Mode: m, Concurrency: o.Concurrency, QPS: o.QPS[w],
		Connections: o.Connections, Duration: o.Duration, Warmup: o.Warmup, Seed: o.Seed + uint64(round)}
	if m == Matched {
		q, err := matchedQPS(refClosed, round)
		if err != nil {
			return spec, err
		}
		spec.Mode, spec.QPS = Open, q
	}
	return spec, nil
}

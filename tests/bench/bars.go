package bench

import (
	"fmt"
	"strings"
)

// The fast-path bars (issue 12), judged in every run that measured what
// they compare, so a run says itself whether the in-process gateway meets
// them instead of someone working the ratios out of the tables. Each bar
// compares an in-process path with a static Envoy round by round (the
// same round, the same apiservers, the same host load) and judges the
// median over rounds; the lowest and highest round show how far to trust
// it.

// barSpec is one bar: a figure of an in-process path against a reference
// path in one cell, and the limit the median must keep.
type barSpec struct {
	name      string
	workload  Workload
	mode      Mode
	reference string
	// figure is the round's comparison of the path (x) with the
	// reference (y); ok=false skips a round without the figures.
	figure func(x, y RoundFigures) (float64, bool)
	limit  float64
	// atLeast: the median must be ≥ limit (a rate); else ≤ limit.
	atLeast bool
	unit    string // "ms" (a difference) or "×" (a ratio)
}

var fastPathBars = []barSpec{
	{"p50 at the fixed rate, over envoy-plain", WorkloadGet, Open, PathEnvoyPlain,
		func(x, y RoundFigures) (float64, bool) { return x.P50Ms - y.P50Ms, x.P50Ms > 0 && y.P50Ms > 0 }, 0.25, false, "ms"},
	{"p99 at the fixed rate, over envoy-plain", WorkloadGet, Open, PathEnvoyPlain,
		func(x, y RoundFigures) (float64, bool) { return x.P99Ms - y.P99Ms, x.P99Ms > 0 && y.P99Ms > 0 }, 1, false, "ms"},
	{"gateway CPU per GET closed loop, to envoy-plain", WorkloadGet, Closed, PathEnvoyPlain,
		func(x, y RoundFigures) (float64, bool) { return x.GatewayCPU1k / y.GatewayCPU1k, y.GatewayCPU1k > 0 }, 1.4, false, "×"},
	{"closed-loop GETs/s, to envoy-impersonating", WorkloadGet, Closed, PathEnvoyImpersonating,
		func(x, y RoundFigures) (float64, bool) { return x.QPS / y.QPS, y.QPS > 0 }, 0.85, true, "×"},
}

// barPaths are the paths the bars judge: the in-process gateway with each
// credential and forwarding mode the bench measures.
var barPaths = []string{PathFrontdoorInProc, PathFrontdoorInProcTok, PathFrontdoorInProcRH}

// BarResult is one bar judged for one path in this run.
type BarResult struct {
	Bar       string     `json:"bar"`
	Path      string     `json:"path"`
	Reference string     `json:"reference"`
	Value     [3]float64 `json:"value"` // median, lowest and highest round
	Unit      string     `json:"unit"`
	Limit     float64    `json:"limit"`
	AtLeast   bool       `json:"at_least,omitempty"`
	Met       bool       `json:"met"`
	Rounds    int        `json:"rounds"`
}

// addBars judges every bar for every in-process path whose cell and
// reference the run measured in the same rounds.
func addBars(rep *Report) {
	cell := map[string]*Result{}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.NA == "" {
			cell[string(r.Workload)+"/"+string(r.Mode)+"/"+r.Path] = r
		}
	}
	for _, p := range barPaths {
		for _, s := range fastPathBars {
			k := string(s.workload) + "/" + string(s.mode) + "/"
			x, y := cell[k+p], cell[k+s.reference]
			if x == nil || y == nil || len(x.PerRound) != len(y.PerRound) {
				continue
			}
			var vs []float64
			for i := range x.PerRound {
				if v, ok := s.figure(x.PerRound[i], y.PerRound[i]); ok {
					vs = append(vs, v)
				}
			}
			if len(vs) == 0 {
				continue
			}
			v := spread(vs)
			met := v[0] <= s.limit
			if s.atLeast {
				met = v[0] >= s.limit
			}
			rep.Bars = append(rep.Bars, BarResult{Bar: s.name, Path: p, Reference: s.reference,
				Value: v, Unit: s.unit, Limit: s.limit, AtLeast: s.atLeast, Met: met, Rounds: len(vs)})
		}
	}
}

// barsMarkdown renders the bars.
func (rep *Report) barsMarkdown(b *strings.Builder) {
	if len(rep.Bars) == 0 {
		return
	}
	b.WriteString("\n**Fast-path bars** (issue 12: each in-process path against a static Envoy, round by round in the same run; median over rounds [lowest–highest round])\n\n")
	b.WriteString("| path | bar | this run | limit | met |\n|---|---|---|---|---|\n")
	for _, r := range rep.Bars {
		op := "≤"
		if r.AtLeast {
			op = "≥"
		}
		var value, limit string
		if r.Unit == "ms" {
			value = fmt.Sprintf("%+.2f ms [%+.2f…%+.2f]", r.Value[0], r.Value[1], r.Value[2])
			limit = fmt.Sprintf("%s +%g ms", op, r.Limit)
		} else {
			value = fmt.Sprintf("×%.2f [%.2f–%.2f]", r.Value[0], r.Value[1], r.Value[2])
			limit = fmt.Sprintf("%s ×%g", op, r.Limit)
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", r.Path, r.Bar, value, limit, met)
	}
}

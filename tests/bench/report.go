package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is everything one benchmark run measured; it is written as
// _bench/results.json and rendered as _bench/results.md.
type Report struct {
	Started     string  `json:"started"`
	Quick       bool    `json:"quick"`
	CPUs        int     `json:"cpus"`
	LoadAvg     string  `json:"loadavg_at_start"`
	Rounds      int     `json:"rounds"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`
	Concurrency int     `json:"concurrency"`
	QPS         string  `json:"open_loop_qps"`
	// MatchPath is the path whose closed-loop rate the matched cells
	// offer every path (matched.go).
	MatchPath   string  `json:"match_path,omitempty"`
	Connections int     `json:"connections"`
	Seed        uint64  `json:"seed"`
	RuntimeS    float64 `json:"runtime_s"`

	Paths        []PathInfo      `json:"paths"`
	Results      []Result        `json:"results"`
	Balance      []BalanceResult `json:"balance"`
	ControlPlane ControlPlane    `json:"control_plane"`
	// Paired compares each path with Baseline round by round (before/after
	// figures of one run), when a baseline was named.
	Baseline string         `json:"baseline,omitempty"`
	Paired   []PairedResult `json:"paired,omitempty"`
	// Bars are the fast-path bars judged on this run (bars.go).
	Bars []BarResult `json:"fast_path_bars,omitempty"`
	// Split is the where-the-time-goes table (get, open loop at SplitQPS).
	Split    []TimeSplit `json:"time_split,omitempty"`
	SplitQPS float64     `json:"time_split_qps,omitempty"`
	Profile  *Profile    `json:"profile,omitempty"`
	// APIProfiles are the apiservers' CPU profiles per path.
	APIProfiles []APIServerProfile `json:"apiserver_profiles,omitempty"`
}

// PathInfo says what a path is, or why it was not measured.
type PathInfo struct {
	Name string `json:"name"`
	Note string `json:"note,omitempty"`
	NA   string `json:"na,omitempty"`
}

// Result is the medians over rounds of one workload, mode and path.
type Result struct {
	Workload Workload `json:"workload"`
	Mode     Mode     `json:"mode"`
	Path     string   `json:"path"`
	NA       string   `json:"na,omitempty"`
	Rounds   int      `json:"rounds"`

	QPS       float64 `json:"qps"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	FirstErr  string  `json:"first_error,omitempty"`
	// CPU seconds per 1,000 requests by gateway process, and of the three
	// apiservers together (what the path costs behind the gateway).
	CPUPer1k       map[string]float64 `json:"cpu_s_per_1k"`
	APIServerCPU1k float64            `json:"apiservers_cpu_s_per_1k"`
	// OfferedQPS is a matched cell's arrival rate, median over rounds.
	OfferedQPS float64 `json:"offered_qps,omitempty"`
	// BehindRounds counts a matched cell's rounds in which the path served
	// under 95% of the rate offered: it fell behind, and that round's
	// figures are not at the common rate.
	BehindRounds int `json:"behind_rounds,omitempty"`
	// Peak RSS (VmHWM) by gateway process, at the end of this cell.
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"`

	// Ratios against direct for the same cell (1 = same as direct).
	Ratio map[string]float64 `json:"ratio_vs_direct,omitempty"`

	// PerRound are the figures of each round, in round order, for paired
	// comparisons (a path against another in the same round).
	PerRound []RoundFigures `json:"per_round,omitempty"`
}

// RoundFigures are one round's figures of one cell and path.
type RoundFigures struct {
	QPS          float64 `json:"qps"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	GatewayCPU1k float64 `json:"gateway_cpu_s_per_1k"`
	APIServerCPU float64 `json:"apiservers_cpu_s_per_1k"`
	OfferedQPS   float64 `json:"offered_qps,omitempty"` // matched cells
}

// PairedResult is one path against the baseline path in one cell: the
// median over rounds of the ratio path/baseline within each round, with the
// lowest and highest round.
type PairedResult struct {
	Workload Workload   `json:"workload"`
	Mode     Mode       `json:"mode"`
	Path     string     `json:"path"`
	QPS      [3]float64 `json:"qps_ratio"`         // median, min, max
	P50      [3]float64 `json:"p50_ratio"`         // median, min, max
	P99      [3]float64 `json:"p99_ratio"`         // median, min, max
	CPU      [3]float64 `json:"gateway_cpu_ratio"` // median, min, max
	// APIServers is the apiservers' CPU per request (median, min, max):
	// what the path's requests cost the apiservers against the baseline's.
	APIServers [3]float64 `json:"apiservers_cpu_ratio"`
}

// addPaired compares every result with the baseline's in the same cell,
// round by round.
func addPaired(rep *Report) {
	if rep.Baseline == "" {
		return
	}
	base := map[string]*Result{}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Path == rep.Baseline && r.NA == "" {
			base[string(r.Workload)+"/"+string(r.Mode)] = r
		}
	}
	for _, r := range rep.Results {
		b := base[string(r.Workload)+"/"+string(r.Mode)]
		if b == nil || r.NA != "" || r.Path == rep.Baseline || r.Path == PathDirect || len(r.PerRound) != len(b.PerRound) {
			continue
		}
		var qps, p50, p99, cpu, api []float64
		for i, x := range r.PerRound {
			y := b.PerRound[i]
			if y.QPS > 0 && y.P50Ms > 0 && y.P99Ms > 0 {
				qps, p50, p99 = append(qps, x.QPS/y.QPS), append(p50, x.P50Ms/y.P50Ms), append(p99, x.P99Ms/y.P99Ms)
			}
			if y.GatewayCPU1k > 0 {
				cpu = append(cpu, x.GatewayCPU1k/y.GatewayCPU1k)
			}
			if y.APIServerCPU > 0 {
				api = append(api, x.APIServerCPU/y.APIServerCPU)
			}
		}
		rep.Paired = append(rep.Paired, PairedResult{Workload: r.Workload, Mode: r.Mode, Path: r.Path,
			QPS: spread(qps), P50: spread(p50), P99: spread(p99), CPU: spread(cpu), APIServers: spread(api)})
	}
}

// spread is the median, lowest and highest of per-round figures; zeros
// when there are none.
func spread(xs []float64) [3]float64 {
	if len(xs) == 0 {
		return [3]float64{}
	}
	return [3]float64{median(xs), slices.Min(xs), slices.Max(xs)}
}

// pairedMarkdown renders the paired comparison.
func (rep *Report) pairedMarkdown(b *strings.Builder) {
	if len(rep.Paired) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**Paired against `%s`** (each round's ratio path/%s in the same cell, median over rounds [lowest–highest round]; below 1 is less CPU, fewer req/s or lower latency)\n\n", rep.Baseline, rep.Baseline)
	b.WriteString("| cell | path | gateway CPU | req/s | p50 | p99 | apiservers CPU |\n|---|---|---|---|---|---|---|\n")
	f := func(x [3]float64) string { return fmt.Sprintf("×%.3f [%.2f–%.2f]", x[0], x[1], x[2]) }
	for _, p := range rep.Paired {
		fmt.Fprintf(b, "| %s / %s | %s | %s | %s | %s | %s | %s |\n", p.Workload, p.Mode, p.Path, f(p.CPU), f(p.QPS), f(p.P50), f(p.P99), f(p.APIServers))
	}
}

// BalanceResult is how one path spread requests over the replicas.
type BalanceResult struct {
	Path       string    `json:"path"`
	NA         string    `json:"na,omitempty"`
	Counts     []float64 `json:"counts"`
	Shares     []float64 `json:"shares"`
	MaxOverMin float64   `json:"max_over_min"`
	CV         float64   `json:"cv"`
	MaxDevPct  float64   `json:"max_deviation_from_even_pct"`
}

// ControlPlane holds the control-plane figures.
type ControlPlane struct {
	Apply               ApplyResult         `json:"apply"`
	Translation         []TranslationResult `json:"translation"`
	TranslationError    string              `json:"translation_error,omitempty"`
	Rules               []RulesResult       `json:"dispatch_rules"`
	RulesError          string              `json:"dispatch_rules_error,omitempty"`
	RulesLoad           *RulesLoadResult    `json:"dispatch_rules_load,omitempty"`
	FrontdoorRSSMiB     float64             `json:"frontdoor_rss_mib"`
	FrontdoorPeakRSSMiB float64             `json:"frontdoor_peak_rss_mib"`
}

func summarize(w Workload, m Mode, opts Options, p *path, ss []sample) Result {
	r := Result{Workload: w, Mode: m, Path: p.name, NA: p.na, Rounds: len(ss), CPUPer1k: map[string]float64{}, PeakRSSMiB: map[string]float64{}}
	if p.na != "" || len(ss) == 0 {
		return r
	}
	var qps, p50, p90, p99, mx, api, offered []float64
	cpu := map[string][]float64{}
	for _, s := range ss {
		qps = append(qps, s.res.QPS())
		p50 = append(p50, ms(s.res.Percentile(.5)))
		p90 = append(p90, ms(s.res.Percentile(.9)))
		p99 = append(p99, ms(s.res.Percentile(.99)))
		mx = append(mx, ms(s.res.Percentile(1)))
		r.Requests += s.res.Requests
		r.Errors += s.res.Errors
		if r.FirstErr == "" {
			r.FirstErr = s.res.FirstErr
		}
		rf := RoundFigures{QPS: s.res.QPS(), P50Ms: ms(s.res.Percentile(.5)), P99Ms: ms(s.res.Percentile(.99)), OfferedQPS: s.offered}
		if s.offered > 0 {
			offered = append(offered, s.offered)
			if s.res.QPS() < 0.95*s.offered {
				r.BehindRounds++
			}
		}
		if s.res.Requests > 0 {
			for k, d := range s.cpu {
				v := d.Seconds() * 1000 / float64(s.res.Requests)
				cpu[k] = append(cpu[k], v)
				rf.GatewayCPU1k += v
			}
			rf.APIServerCPU = s.apiCPU.Seconds() * 1000 / float64(s.res.Requests)
			api = append(api, rf.APIServerCPU)
		}
		r.PerRound = append(r.PerRound, rf)
	}
	r.QPS, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = median(qps), median(p50), median(p90), median(p99), median(mx)
	r.APIServerCPU1k = median(api)
	r.OfferedQPS = median(offered)
	for k, v := range cpu {
		r.CPUPer1k[k] = median(v)
	}
	if r.Requests > 0 {
		r.ErrorRate = float64(r.Errors) / float64(r.Requests)
	}
	for k, pid := range p.procs {
		if h, err := peakRSS(pid); err == nil {
			r.PeakRSSMiB[k] = float64(h) / (1 << 20)
		}
	}
	return r
}

func addRatios(rep *Report) {
	direct := map[string]*Result{}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Path == PathDirect && r.NA == "" {
			direct[string(r.Workload)+"/"+string(r.Mode)] = r
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		d := direct[string(r.Workload)+"/"+string(r.Mode)]
		if d == nil || r.NA != "" || r.Path == PathDirect {
			continue
		}
		div := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		r.Ratio = map[string]float64{
			"qps": div(r.QPS, d.QPS), "p50": div(r.P50Ms, d.P50Ms), "p90": div(r.P90Ms, d.P90Ms),
			"p99": div(r.P99Ms, d.P99Ms), "max": div(r.MaxMs, d.MaxMs),
			"apiservers_cpu": div(r.APIServerCPU1k, d.APIServerCPU1k),
		}
	}
}

func balanceOf(path string, counts []float64) BalanceResult {
	b := BalanceResult{Path: path, Counts: counts}
	var sum float64
	for _, c := range counts {
		sum += c
	}
	if sum == 0 || len(counts) == 0 {
		b.NA = "n/a: no requests reached the sandbox's replicas"
		return b
	}
	mean := sum / float64(len(counts))
	var varsum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range counts {
		b.Shares = append(b.Shares, c/sum)
		varsum += (c - mean) * (c - mean)
		lo, hi = min(lo, c), max(hi, c)
		b.MaxDevPct = max(b.MaxDevPct, math.Abs(c-mean)/mean*100)
	}
	b.CV = math.Sqrt(varsum/float64(len(counts))) / mean
	if lo > 0 {
		b.MaxOverMin = hi / lo
	} else {
		b.MaxOverMin = math.Inf(1)
	}
	return b
}

// write saves results.json, results.md and latency.png in dir.
func (rep *Report) write(dir string) error {
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), j, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return err
	}
	return rep.chart(filepath.Join(dir, "latency.png"))
}

// Markdown renders the report: one table per workload and mode, then
// balance, control plane and profile.
func (rep *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s · %d CPUs (load %s at start) · %d round(s) × %gs (+%gs warm-up) per cell and path, interleaved · closed loop %d workers, open loop req/s: %s · %d HTTP/2 connections per path · seed %d · quick=%v · %.0fs total\n\n",
		rep.Started, rep.CPUs, rep.LoadAvg, rep.Rounds, rep.DurationS, rep.WarmupS, rep.Concurrency, rep.QPS, rep.Connections, rep.Seed, rep.Quick, rep.RuntimeS)
	b.WriteString("Paths:\n\n")
	for _, p := range rep.Paths {
		if p.NA != "" {
			fmt.Fprintf(&b, "- `%s`: %s\n", p.Name, p.NA)
		} else {
			fmt.Fprintf(&b, "- `%s`: %s\n", p.Name, p.Note)
		}
	}
	b.WriteString("\nMedians over rounds; (×n) is the ratio to `direct` in the same cell. CPU is seconds per 1,000 requests of each gateway process (from /proc/PID/stat); `apiservers` is the three replicas together; RSS is peak (VmHWM).\n")
	var cells []string
	seen := map[string]bool{}
	for _, r := range rep.Results {
		k := string(r.Workload) + " / " + string(r.Mode)
		if !seen[k] {
			seen[k] = true
			cells = append(cells, k)
		}
	}
	for _, cell := range cells {
		fmt.Fprintf(&b, "\n**%s**\n\n", cell)
		rep.matchedNote(&b, cell)
		b.WriteString("| path | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | gateway CPU s/1k | apiservers CPU s/1k | peak RSS MiB |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---:|---|\n")
		for _, r := range rep.Results {
			if string(r.Workload)+" / "+string(r.Mode) != cell {
				continue
			}
			if r.NA != "" {
				fmt.Fprintf(&b, "| %s | %s | | | | | | | | |\n", r.Path, r.NA)
				continue
			}
			rt := func(key string, v float64, prec int) string {
				s := fmt.Sprintf("%.*f", prec, v)
				if x, ok := r.Ratio[key]; ok && x > 0 {
					s += fmt.Sprintf(" (×%.2f)", x)
				}
				return s
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d (%.2f%%) | %s | %s | %s |\n", r.Path,
				rt("qps", r.QPS, 0)+behind(r), rt("p50", r.P50Ms, 1), rt("p90", r.P90Ms, 1), rt("p99", r.P99Ms, 1), rt("max", r.MaxMs, 0),
				r.Errors, 100*r.ErrorRate, cpuCell(r.CPUPer1k), rt("apiservers_cpu", r.APIServerCPU1k, 3), rssCell(r.PeakRSSMiB))
		}
	}
	rep.pairedMarkdown(&b)
	rep.barsMarkdown(&b)
	rep.apiProfileMarkdown(&b)
	rep.splitMarkdown(&b)
	b.WriteString("\n**Balance** (get, open loop 200 req/s dealt evenly over 8 long-lived HTTP/2 clients, each on its own connection; counted from each replica's apiserver_request_total)\n\n")
	b.WriteString("| path | replica 1 / 2 / 3 | max/min | CV | max deviation from even |\n|---|---|---:|---:|---:|\n")
	for _, x := range rep.Balance {
		if x.NA != "" {
			fmt.Fprintf(&b, "| %s | %s | | | |\n", x.Path, x.NA)
			continue
		}
		var sh []string
		for _, s := range x.Shares {
			sh = append(sh, fmt.Sprintf("%.1f%%", 100*s))
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.3f | %.1f%% |\n", x.Path, strings.Join(sh, " / "), x.MaxOverMin, x.CV, x.MaxDevPct)
	}
	cp := rep.ControlPlane
	b.WriteString("\n**Control plane**\n\n")
	if cp.Apply.Edits == 0 {
		b.WriteString("- not measured in this run (--no-control-plane)\n")
	} else {
		fmt.Fprintf(&b, "- config edit → Envoy applied: p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d edits (%d not applied within 20 s); %s\n",
			cp.Apply.P50Ms, cp.Apply.P99Ms, cp.Apply.MaxMs, cp.Apply.Edits, cp.Apply.Failed, cp.Apply.Comment)
	}
	for _, t := range cp.Translation {
		fmt.Fprintf(&b, "- translate %d UpstreamClusters (%d servers, %d xDS resources): %.2f ms median, %.1f MiB allocated per translation\n",
			t.Clusters, t.Servers, t.Resources, t.MedianMs, t.AllocMiB)
	}
	if cp.TranslationError != "" {
		fmt.Fprintf(&b, "- translation: %s\n", cp.TranslationError)
	}
	for _, r := range cp.Rules {
		fmt.Fprintf(&b, "- translate %d dispatch rules (%d policies on %d UpstreamClusters): %.2f ms median, %.1f MiB allocated per translation\n",
			r.Rules, r.Policies, r.Clusters, r.MedianMs, r.AllocMiB)
	}
	if cp.RulesError != "" {
		fmt.Fprintf(&b, "- dispatch rules: %s\n", cp.RulesError)
	}
	if l := cp.RulesLoad; l != nil {
		if l.Error != "" {
			fmt.Fprintf(&b, "- %d dispatch rules in the running gateway: %s\n", l.Rules, l.Error)
		} else {
			fmt.Fprintf(&b, "- %d dispatch rules in the running gateway: in Envoy %.0f ms after the file was written; RSS frontdoor %.0f → %.0f MiB, Envoy %.0f → %.0f MiB\n",
				l.Rules, l.AppliedMs, l.FrontdoorRSSBeforeMB, l.FrontdoorRSSMB, l.EnvoyRSSBeforeMB, l.EnvoyRSSMB)
		}
	}
	fmt.Fprintf(&b, "- frontdoor memory after the run: RSS %.0f MiB, peak %.0f MiB\n", cp.FrontdoorRSSMiB, cp.FrontdoorPeakRSSMiB)
	if p := rep.Profile; p != nil {
		b.WriteString("\n**Request service CPU profile** (frontdoor-x509, get / closed)\n\n")
		if p.Error != "" {
			fmt.Fprintf(&b, "%s\n", p.Error)
		} else {
			fmt.Fprintf(&b, "%d requests in %.0fs: Envoy %.3f, frontdoor %.3f CPU s per 1k requests (profile: `%s`)\n\n```\n%s```\n",
				p.Requests, p.Seconds, p.EnvoyCPU1k, p.FrontdoorCPU1k, p.File, p.Top)
		}
	}
	return b.String()
}

// splitMarkdown renders the where-the-time-goes table.
func (rep *Report) splitMarkdown(b *strings.Builder) {
	if len(rep.Split) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**Where the time goes** (get, open loop %g req/s; medians per request, ms, from Envoy's access log: "+
		"`durationUs` in Envoy, `upstreamUs` the apiserver (first byte sent to first byte back), `requestServiceUs` the wait on the request service "+
		"(gRPC round trip included; ExtProc adds its response-headers exchange), Envoy's own = the rest; the static Envoys are timed on a second, logging listener)\n\n", rep.SplitQPS)
	b.WriteString("| path | request service | client p50 | in Envoy | Envoy's own | request service | apiserver | requests logged |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Split {
		mode := r.Mode
		if mode == "" {
			mode = "–"
		}
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | %s | %s | | | | | |\n", r.Path, mode, r.NA)
			continue
		}
		if r.Logged == 0 {
			fmt.Fprintf(b, "| %s | %s | %.2f | – | – | – | – | – |\n", r.Path, mode, r.ClientP50Ms)
			continue
		}
		svc := "–"
		if r.Mode != "" {
			svc = fmt.Sprintf("%.2f", r.RequestServiceMs)
		}
		fmt.Fprintf(b, "| %s | %s | %.2f | %.2f | %.2f | %s | %.2f | %d |\n", r.Path, mode, r.ClientP50Ms,
			r.EnvoyTotalMs, r.EnvoyOwnMs, svc, r.APIServerMs, r.Logged)
	}
}

func cpuCell(m map[string]float64) string {
	if len(m) == 0 {
		return "–"
	}
	keys := sortedKeys(m)
	var parts []string
	var sum float64
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, m[k]))
		sum += m[k]
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts, " + ") + fmt.Sprintf(" = %.3f", sum)
}

func rssCell(m map[string]float64) string {
	if len(m) == 0 {
		return "–"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var _ = time.Second

// matchedNote says, under a matched cell's heading, which rate every path
// was offered there.
func (rep *Report) matchedNote(b *strings.Builder, cell string) {
	for _, r := range rep.Results {
		if r.Mode == Matched && string(r.Workload)+" / "+string(r.Mode) == cell && r.OfferedQPS > 0 {
			fmt.Fprintf(b, "Open loop at %.0f%% of the rate `%s` served closed-loop in the same round (median %.0f req/s offered): every path at the same rate.\n\n",
				100*matchedShare, rep.MatchPath, r.OfferedQPS)
			return
		}
	}
}

// behind marks a matched cell's path that fell behind the offered rate in
// some rounds (served under 95% of it; see Result.BehindRounds).
func behind(r Result) string {
	if r.BehindRounds > 0 {
		return fmt.Sprintf(" (behind in %d/%d rounds)", r.BehindRounds, r.Rounds)
	}
	return ""
}

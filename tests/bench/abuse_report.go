package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The goal for every attack: valid users keep at least this
// success rate, and their p99 stays within this factor of the quiet run's.
const (
	GoalSuccessPct = 99.9
	GoalP99Ratio   = 2.0
)

// AbuseReport is one abuse benchmark run: _bench/abuse.json, rendered as
// _bench/abuse.md.
type AbuseReport struct {
	Started  string        `json:"started"`
	CPUs     int           `json:"cpus"`
	LoadAvg  string        `json:"loadavg_at_start"`
	Settings AbuseSettings `json:"settings"`
	Rows     []AbuseRow    `json:"rows"`
	RuntimeS float64       `json:"runtime_s"`
}

// AbuseSettings are the sizes a run used (AbuseOptions after defaults).
type AbuseSettings struct {
	Modes            []string `json:"modes"`
	WindowS          float64  `json:"window_s"`
	WarmupS          float64  `json:"warmup_s"`
	RampS            float64  `json:"attack_ramp_s"`
	RatePerKind      float64  `json:"valid_rate_per_kind"`
	TimeoutS         float64  `json:"valid_timeout_s"`
	SlowLorisConns   int      `json:"slowloris_conns"`
	SlowLorisEveryS  float64  `json:"slowloris_trickle_s"`
	HalfOpenConns    int      `json:"halfopen_conns"`
	FloodWorkers     int      `json:"flood_workers"`
	HungRequests     int      `json:"hung_requests"`
	ValidConnections int      `json:"valid_connections_per_kind"`
}

// AbuseRow is one phase (quiet or one attack) in one request-service mode.
type AbuseRow struct {
	Mode   string `json:"mode"`
	Attack string `json:"attack"` // "quiet" or an attack name
	// The valid users' figures: x509 and token clients together.
	Requests   int     `json:"requests"`
	Failures   int     `json:"failures"`
	Timeouts   int     `json:"timeouts"`
	SuccessPct float64 `json:"success_pct"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	// P99Ratio is P99Ms over the same mode's quiet P99Ms (1 for quiet).
	P99Ratio float64 `json:"p99_ratio_to_quiet"`
	// Per client kind, for an attack that hurts one kind only.
	X509SuccessPct  float64 `json:"x509_success_pct"`
	TokenSuccessPct float64 `json:"token_success_pct"`
	X509P99Ms       float64 `json:"x509_p99_ms"`
	TokenP99Ms      float64 `json:"token_p99_ms"`
	FirstErr        string  `json:"first_error,omitempty"`

	Volume AttackVolume `json:"attack_volume"`
	// Peak RSS and open fds of the gateway processes over the phase.
	RSSMiB map[string]float64 `json:"peak_rss_mib,omitempty"`
	FDs    map[string]int     `json:"peak_fds,omitempty"`
	// CPUCores is CPU time over the valid load's run (warm-up and window)
	// in cores, by process: envoy, frontdoor, apiservers (all replicas) and
	// bench (this process: the attack and the valid clients).
	CPUCores map[string]float64 `json:"cpu_cores,omitempty"`
	// Down is set when a gateway process was gone after the phase.
	Down string `json:"down,omitempty"`
}

// MeetsGoal says whether the row meets the goal.
func (r AbuseRow) MeetsGoal() bool {
	return r.Down == "" && r.SuccessPct >= GoalSuccessPct && r.P99Ratio > 0 && r.P99Ratio <= GoalP99Ratio
}

// verdict is the table's goal column: "yes", or what missed.
func (r AbuseRow) verdict() string {
	switch r.Attack {
	case attackQuiet:
		return "(baseline)"
	case quietAfter:
		// Quiet again after every attack: over 2x here is residue the
		// attacks left, or the shared machine's drift; read the fds and
		// the CPU columns to tell which.
		if r.MeetsGoal() {
			return "(recovered)"
		}
		return "(drift or residue)"
	}
	if r.MeetsGoal() {
		return "yes"
	}
	var miss []string
	if r.Down != "" {
		miss = append(miss, "gateway down")
	}
	if r.SuccessPct < GoalSuccessPct {
		miss = append(miss, "success")
	}
	if r.P99Ratio <= 0 || r.P99Ratio > GoalP99Ratio {
		miss = append(miss, "p99")
	}
	return "**no** (" + strings.Join(miss, ", ") + ")"
}

// Markdown renders the report: settings, one table per mode, then each
// attack's volume and the first failure of each phase.
func (r *AbuseReport) Markdown() string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "# Abuse benchmark\n\n")
	fmt.Fprintf(&b, "Started %s on %d CPUs (load average %s), %.0f s in all.\n\n", r.Started, r.CPUs, r.LoadAvg, r.RuntimeS)
	fmt.Fprintf(&b, "Valid users: x509 and bearer-token clients, each %g GETs/s (open loop, Poisson arrivals) over %d HTTP/2 connections; "+
		"a request counts as failed if it is not answered 2xx within %gs. Each phase: the attack ramps up for %gs, then %gs of warm-up and a %gs measured window.\n",
		s.RatePerKind, s.ValidConnections, s.TimeoutS, s.RampS, s.WarmupS, s.WindowS)
	fmt.Fprintf(&b, "Attacks: slow-loris %d TLS connections trickling a header byte every %gs; half-open %d TCP connections that never finish a handshake (a third silent, a third half a ClientHello, a third a whole ClientHello and no Finished); "+
		"random-token flood %d workers; hung proxied requests %d in flight to a server that never answers.\n",
		s.SlowLorisConns, s.SlowLorisEveryS, s.HalfOpenConns, s.FloodWorkers, s.HungRequests)
	fmt.Fprintf(&b, "Goal: success >= %g%% and p99 <= %gx the quiet run's, for every attack.\n", GoalSuccessPct, GoalP99Ratio)
	modes := []string{}
	for _, row := range r.Rows {
		if !contains(modes, row.Mode) {
			modes = append(modes, row.Mode)
		}
	}
	for _, m := range modes {
		fmt.Fprintf(&b, "\n## %s\n\n", m)
		b.WriteString("| phase | valid ok % | p50 ms | p99 ms | p99 / quiet | x509 ok % / p99 | token ok % / p99 | goal | envoy RSS MiB / fds | frontdoor RSS MiB / fds | CPU cores envoy / frontdoor / apiservers / bench |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
		for _, row := range r.Rows {
			if row.Mode != m {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.2fx | %s / %.1f | %s / %.1f | %s | %s | %s | %s |\n",
				row.Attack, pct(row.SuccessPct), row.P50Ms, row.P99Ms, row.P99Ratio,
				pct(row.X509SuccessPct), row.X509P99Ms, pct(row.TokenSuccessPct), row.TokenP99Ms, row.verdict(),
				procText(row, "envoy"), procText(row, "frontdoor"), cpuText(row.CPUCores))
		}
		b.WriteString("\n")
		for _, row := range r.Rows {
			if row.Mode != m || (row.Attack == attackQuiet || row.Attack == quietAfter) && row.FirstErr == "" {
				continue
			}
			fmt.Fprintf(&b, "- **%s**: %s", row.Attack, cmpOr(row.Volume.Summary, "no attack"))
			if row.Failures > 0 {
				fmt.Fprintf(&b, "; %d of %d valid requests failed (%d timed out), first: `%s`", row.Failures, row.Requests, row.Timeouts, row.FirstErr)
			}
			if row.Down != "" {
				fmt.Fprintf(&b, "; **%s**", row.Down)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// pct shows a success rate with enough digits to tell 99.9 from 100.
func pct(p float64) string {
	if p == 100 {
		return "100"
	}
	return fmt.Sprintf("%.2f", p)
}

func procText(row AbuseRow, name string) string {
	r, ok := row.RSSMiB[name]
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.0f / %d", r, row.FDs[name])
}

// cpuText is "0.41 / 0.12 / 0.80 / 0.35", or n/a when not measured.
func cpuText(c map[string]float64) string {
	if len(c) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", c["envoy"], c["frontdoor"], c["apiservers"], c["bench"])
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// LoadAbuseReport reads an abuse.json, to render it again (bench-abuse
// --render) after the Markdown's format changed.
func LoadAbuseReport(path string) (*AbuseReport, error) {
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r AbuseReport
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// write saves abuse.json and abuse.md in dir.
func (r *AbuseReport) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "abuse.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "abuse.md"), []byte(r.Markdown()), 0o644)
}

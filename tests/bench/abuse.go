package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Attack names, in the order a run measures them after the quiet phase.
const (
	attackQuiet = "quiet"
	// quietAfter is the quiet phase again after every attack: whether the
	// gateway recovered (nothing the attacks left behind still costs the
	// valid users), and how much the quiet figures drift on a shared machine.
	quietAfter      = "quiet-after"
	AttackSlowLoris = "slowloris"
	AttackHalfOpen  = "halfopen"
	AttackFlood     = "token-flood"
	AttackHung      = "hung-requests"
)

// AllAttacks are the attacks of `make bench-abuse`, in run order.
var AllAttacks = []string{AttackSlowLoris, AttackHalfOpen, AttackFlood, AttackHung}

// AllAbuseModes are the request-service modes an abuse run measures.
var AllAbuseModes = []string{"ExtAuthz", "InProcess", "ExtProc"}

// AbuseOptions configure RunAbuse; zero values take the defaults, sized so
// a whole run (three modes, a quiet phase and four attacks each) takes
// about seven minutes on 2 cores.
type AbuseOptions struct {
	OutDir  string   // _bench/ by default
	Modes   []string // request-service modes (AllAbuseModes)
	Attacks []string // AllAttacks
	// Window is each phase's measured time; Warmup is unmeasured valid load
	// before it; Ramp is how long an attack runs before the warm-up starts
	// (connections opened, requests parked); Cooldown lets the gateway
	// shed what the attack left before the next phase.
	Window, Warmup, Ramp, Cooldown time.Duration
	// Rate is each valid client kind's GETs per second (x509 and token).
	Rate float64
	// Timeout is how long a valid request may take before it counts as failed.
	Timeout    time.Duration
	ValidConns int // HTTP/2 connections per valid client kind

	SlowLorisConns int
	SlowLorisEvery time.Duration // one header byte per connection this often
	HalfOpenConns  int
	FloodWorkers   int
	HungRequests   int
	Seed           uint64
	Progress       io.Writer
}

func (o *AbuseOptions) defaults() {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Modes) == 0 {
		o.Modes = AllAbuseModes
	}
	if len(o.Attacks) == 0 {
		o.Attacks = AllAttacks
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Window, 15*time.Second)
	def(&o.Warmup, time.Second)
	def(&o.Ramp, 3*time.Second)
	def(&o.Cooldown, 2*time.Second)
	def(&o.Timeout, 10*time.Second)
	def(&o.SlowLorisEvery, 5*time.Second)
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&o.ValidConns, 4)
	defInt(&o.SlowLorisConns, 512)
	defInt(&o.HalfOpenConns, 512)
	defInt(&o.FloodWorkers, 32)
	defInt(&o.HungRequests, 1200)
	if o.Rate <= 0 {
		o.Rate = 40
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
}

// abuseTarget is one request-service mode's pair of UpstreamClusters: the
// valid users' (over the sandbox's apiservers) and the hung-request
// attacker's (over the black hole), each chosen by SNI.
type abuseTarget struct {
	mode         string
	valid, black modeCluster
}

func newAbuseTarget(mode string) abuseTarget {
	m := strings.ToLower(mode)
	return abuseTarget{mode: mode,
		valid: modeCluster{"abuse-" + m, "abuse-" + m + "." + sandbox.TestDomain, mode},
		black: modeCluster{"blackhole-" + m, "blackhole-" + m + "." + sandbox.TestDomain, mode}}
}

// RunAbuse starts a sandbox and, for each mode, measures the valid users
// quiet and then under each attack alone, and writes _bench/abuse.{md,json}.
func RunAbuse(ctx context.Context, opts AbuseOptions) (*AbuseReport, error) {
	opts.defaults()
	root, err := sandbox.RepoRoot()
	if err != nil {
		return nil, err
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(root, "_bench")
	}
	if opts.OutDir, err = filepath.Abs(opts.OutDir); err != nil {
		return nil, err
	}
	say := func(format string, args ...any) { fmt.Fprintf(opts.Progress, "== "+format+"\n", args...) }
	began := time.Now()
	sbDir := filepath.Join(opts.OutDir, "abuse-sandbox")
	if err := os.RemoveAll(sbDir); err != nil {
		return nil, err
	}
	say("starting the sandbox in %s", sbDir)
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: sbDir, Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	defer sb.Stop()
	token, err := seed(ctx, sb)
	if err != nil {
		return nil, err
	}
	ca := sb.CA.CertPEM
	certPEM, keyPEM := sb.ClientCert(BenchUser, "bench-group")
	tokClient := Client{URL: sb.GatewayURL, CAPEM: ca, Token: token}
	// Token clients are valid users only if this build reviews tokens; it
	// enables tokenReview on the sandbox's cluster, which the abuse
	// clusters below copy.
	if ok, why := tokenSupport(ctx, sb, root, tokClient); !ok {
		return nil, fmt.Errorf("bearer tokens: %s", why)
	}
	attCert, attKey := sb.ClientCert("abuse-attacker", "abuse")
	holeCert, holeKey, err := sb.CA.ServingCert("blackhole", nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	hole, err := startBlackHole(holeCert, holeKey)
	if err != nil {
		return nil, err
	}
	defer hole.Close()
	say("black hole (answers only health checks) at %s", hole.URL)

	pids := sb.PIDs()
	procs := map[string]int{"envoy": pids["envoy"], "frontdoor": pids["frontdoor"]}
	// CPU is also read for the apiservers (a flood of unknown tokens is a
	// flood of TokenReviews) and for this process (the attackers and the
	// valid clients share the machine's cores with the gateway).
	cpuProcs := map[string]int{"envoy": pids["envoy"], "frontdoor": pids["frontdoor"], "bench": os.Getpid()}
	for name, pid := range pids {
		if strings.HasPrefix(name, "apiserver-") {
			cpuProcs[name] = pid
		}
	}
	rep := &AbuseReport{Started: began.UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), LoadAvg: loadAvg(),
		Settings: AbuseSettings{Modes: opts.Modes, WindowS: opts.Window.Seconds(), WarmupS: opts.Warmup.Seconds(), RampS: opts.Ramp.Seconds(),
			RatePerKind: opts.Rate, TimeoutS: opts.Timeout.Seconds(), SlowLorisConns: opts.SlowLorisConns, SlowLorisEveryS: opts.SlowLorisEvery.Seconds(),
			HalfOpenConns: opts.HalfOpenConns, FloodWorkers: opts.FloodWorkers, HungRequests: opts.HungRequests, ValidConnections: opts.ValidConns}}
	for _, mode := range opts.Modes {
		t := newAbuseTarget(mode)
		x509 := Client{URL: sb.GatewayURL, ServerName: t.valid.sni, CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}
		say("%s: UpstreamClusters %s and %s", mode, t.valid.name, t.black.name)
		if err := t.valid.start(ctx, sb, x509); err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		attacker := Client{URL: sb.GatewayURL, ServerName: t.black.sni, CAPEM: ca, CertPEM: attCert, KeyPEM: attKey}
		if err := startBlackHoleCluster(ctx, sb, t.black, hole.URL, attacker); err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		tok := tokClient
		tok.ServerName = t.valid.sni
		loads := []validLoad{
			{name: "x509", client: x509, rate: opts.Rate, conns: opts.ValidConns, timeout: opts.Timeout, seed: opts.Seed},
			{name: "token", client: tok, rate: opts.Rate, conns: opts.ValidConns, timeout: opts.Timeout, seed: opts.Seed + 1},
		}
		var quietP99 float64
		phases := append(append([]string{attackQuiet}, opts.Attacks...), quietAfter)
		for _, name := range phases {
			a, err := newAttack(name, opts, x509, attacker)
			if err != nil {
				return nil, err
			}
			hole.resetPeak()
			row, err := runPhase(ctx, opts, mode, name, a, loads, procs, cpuProcs)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", mode, name, err)
			}
			if name == AttackHung {
				row.Volume.Figures["held_at_upstream_peak"] = float64(hole.Peak())
				row.Volume.Summary += fmt.Sprintf(", %d held at the black hole (peak)", hole.Peak())
			}
			if name == attackQuiet {
				quietP99 = row.P99Ms
			}
			if quietP99 > 0 {
				row.P99Ratio = row.P99Ms / quietP99
			}
			say("%-9s %-13s valid ok %s%% p50 %.1fms p99 %.1fms (%.2fx quiet) | %s", mode, name, pct(row.SuccessPct), row.P50Ms, row.P99Ms, row.P99Ratio, row.Volume.Summary)
			rep.Rows = append(rep.Rows, row)
			if row.Down != "" {
				return rep, finish(rep, opts, began, fmt.Errorf("%s %s: %s", mode, name, row.Down))
			}
		}
	}
	return rep, finish(rep, opts, began, nil)
}

func finish(rep *AbuseReport, opts AbuseOptions, began time.Time, runErr error) error {
	rep.RuntimeS = time.Since(began).Seconds()
	if err := rep.write(opts.OutDir); err != nil {
		return err
	}
	return runErr
}

// newAttack builds the named attack; nil for the quiet phase. Connection
// attacks go to the valid users' own server name (the listener is shared,
// the filter chain is theirs); hung requests to the black hole's cluster.
func newAttack(name string, o AbuseOptions, valid, attacker Client) (attack, error) {
	switch name {
	case attackQuiet, quietAfter:
		return nil, nil
	case AttackSlowLoris:
		return newSlowLoris(valid, o.SlowLorisConns, o.SlowLorisEvery, o.Ramp/2)
	case AttackHalfOpen:
		return newHalfOpen(valid, o.HalfOpenConns, o.Ramp/2)
	case AttackFlood:
		return newTokenFlood(valid, o.FloodWorkers), nil
	case AttackHung:
		return newHungRequests(attacker, o.HungRequests), nil
	}
	return nil, fmt.Errorf("unknown attack %q (want %s)", name, strings.Join(AllAttacks, ","))
}

// runPhase runs attack a (nil: quiet) for Ramp, then the valid loads for
// Warmup+Window beside it, then stops it and waits Cooldown.
func runPhase(ctx context.Context, o AbuseOptions, mode, name string, a attack, loads []validLoad, procs, cpuProcs map[string]int) (AbuseRow, error) {
	row := AbuseRow{Mode: mode, Attack: name}
	actx, stop := context.WithCancel(ctx)
	defer stop()
	started := time.Now()
	var attackDone sync.WaitGroup
	if a != nil {
		attackDone.Go(func() { a.run(actx) })
		sleepCtx(ctx, o.Ramp)
	}
	peaks := sampleProcs(actx, procs, 500*time.Millisecond)
	cpuBefore, measuredFrom := snapshotCPU(cpuProcs), time.Now()
	results, err := runValid(ctx, loads, o.Warmup, o.Window)
	row.CPUCores = coresBy(snapshotCPU(cpuProcs).since(cpuBefore), time.Since(measuredFrom))
	if a != nil {
		row.Volume = a.volume(time.Since(started))
	}
	stop()
	attackDone.Wait()
	row.RSSMiB, row.FDs = peaks()
	if err != nil {
		return row, err
	}
	all := results[0]
	for _, r := range results[1:] {
		all = all.merge(r)
	}
	row.Requests, row.Failures, row.Timeouts, row.FirstErr = all.Requests, all.Failures, all.Timeouts, all.FirstErr
	row.SuccessPct = all.successPct()
	row.P50Ms, row.P99Ms = ms(all.percentile(.5)), ms(all.percentile(.99))
	row.P99Ratio = 1
	for _, r := range results {
		switch r.Name {
		case "x509":
			row.X509SuccessPct, row.X509P99Ms = r.successPct(), ms(r.percentile(.99))
		case "token":
			row.TokenSuccessPct, row.TokenP99Ms = r.successPct(), ms(r.percentile(.99))
		}
	}
	for pname, pid := range procs {
		if pid > 0 && syscall.Kill(pid, 0) != nil {
			row.Down += fmt.Sprintf("%s (pid %d) exited during the attack; ", pname, pid)
		}
	}
	row.Down = strings.TrimSuffix(row.Down, "; ")
	sleepCtx(ctx, o.Cooldown)
	return row, ctx.Err()
}

// coresBy is CPU time per process over elapsed, in cores, with the
// apiservers summed as "apiservers".
func coresBy(used map[string]time.Duration, elapsed time.Duration) map[string]float64 {
	out := map[string]float64{}
	if elapsed <= 0 {
		return out
	}
	for name, d := range used {
		if strings.HasPrefix(name, "apiserver-") {
			name = "apiservers"
		}
		out[name] += d.Seconds() / elapsed.Seconds()
	}
	return out
}

// sampleProcs samples the RSS and open fds of procs every interval until
// ctx ends; the returned func stops sampling and gives the peaks.
func sampleProcs(ctx context.Context, procs map[string]int, interval time.Duration) func() (map[string]float64, map[string]int) {
	var mu sync.Mutex
	rssPeak, fdPeak := map[string]float64{}, map[string]int{}
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		for name, pid := range procs {
			if r, err := rss(pid); err == nil {
				rssPeak[name] = max(rssPeak[name], float64(r)/(1<<20))
			}
			if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
				fdPeak[name] = max(fdPeak[name], len(fds))
			}
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			sample()
			if !sleepCtx(sctx, interval) {
				return
			}
		}
	}()
	return func() (map[string]float64, map[string]int) {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return rssPeak, fdPeak
	}
}

// startBlackHoleCluster writes the UpstreamCluster m whose only server is
// the black hole at holeURL and waits until a request through it, as
// client c, reaches the black hole's /version.
func startBlackHoleCluster(ctx context.Context, sb *sandbox.Sandbox, m modeCluster, holeURL string, c Client) error {
	uc := sb.UpstreamClusterYAML(m.name, sandbox.ServersYAML([]string{holeURL}), []string{m.sni},
		"  healthCheck: {interval: 1s, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1}\n")
	var kept []string
	for _, line := range strings.SplitAfter(uc, "\n") {
		if !strings.HasPrefix(line, "  requestService: ") {
			kept = append(kept, line)
		}
	}
	uc = strings.Join(kept, "") + "  requestService: " + m.mode + "\n"
	if err := os.WriteFile(filepath.Join(sb.Dir, "config", "upstreamcluster-"+m.name+".yaml"), []byte(uc), 0o644); err != nil {
		return err
	}
	if err := waitListenerHas(ctx, sb.EnvoyAdmin, m.sni, 30*time.Second); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, err := probeStatus(ctx, c, "/version")
		if err == nil && code == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("the black-hole UpstreamCluster %s did not serve /version: %w", m.name, err)
			}
			return fmt.Errorf("the black-hole UpstreamCluster %s did not serve /version: last answer %d", m.name, code)
		}
		if !sleepCtx(ctx, 300*time.Millisecond) {
			return ctx.Err()
		}
	}
}

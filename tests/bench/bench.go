// Package bench measures what the gateway costs: the same workloads against
// the same kube-apiservers, directly and through each front door (Frontdoor
// with x509 clients, bearer tokens and ext_proc, with the access log off, a
// static Envoy without ext_authz (as the gateway, as the client, impersonating), HAProxy in
// TCP mode, variant gateways, any --target), in interleaved rounds,
// reporting medians, and where each request's time goes. `make bench` runs it (tests/bench/cmd/bench); TestQuickBench
// runs its quick mode as a smoke test.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Path names, in table order.
const (
	PathDirect        = "direct"
	PathFrontdoorX509 = "frontdoor-x509"
	// PathFrontdoorRH is frontdoor-x509 forwarding the identity as
	// front-proxy headers (identityForwarding: RequestHeader) instead of
	// impersonating: the apiservers skip the impersonation checks.
	PathFrontdoorRH   = "frontdoor-requestheader"
	PathFrontdoorTok  = "frontdoor-token"
	PathFrontdoorExtP = "frontdoor-extproc"
	// PathFrontdoorInProc is the pipeline inside Envoy (the dynamic
	// module): no gRPC hop, no Lua.
	PathFrontdoorInProc = "frontdoor-inprocess"
	// PathFrontdoorInProcRH is frontdoor-inprocess forwarding the identity
	// as front-proxy headers: the fastest Frontdoor configuration, and the
	// module's own cost apart from the apiservers' cost of impersonation.
	PathFrontdoorInProcRH = "frontdoor-inprocess-requestheader"
	// PathFrontdoorInProcTok is frontdoor-inprocess with the ServiceAccount
	// token of frontdoor-token: cached reviews, replayed by the workers.
	PathFrontdoorInProcTok = "frontdoor-inprocess-token"
	PathEnvoyPlain         = "envoy-plain"
	// PathEnvoyImpersonating is envoy-plain that also impersonates the
	// bench user as Frontdoor does: the apiservers' own cost of impersonated
	// requests, apart from the gateway's.
	PathEnvoyImpersonating = "envoy-impersonating"
	// PathEnvoyAsClient is envoy-plain presenting the bench user's own
	// client certificate upstream instead of the gateway's: its requests
	// run as the identity Frontdoor forwards (bench-user, bench-group,
	// the credential-id extra), so the apiservers do that user's
	// authorization and audit, without any forwarding headers.
	PathEnvoyAsClient = "envoy-as-client"
	PathHAProxy       = "haproxy-tcp"
	PathTarget        = "target"
)

// AllPaths are the built-in paths, in table order (variants follow
// PathFrontdoorExtP, --target comes last).
var AllPaths = []string{PathDirect, PathFrontdoorX509, PathFrontdoorRH, PathFrontdoorTok, PathFrontdoorExtP, PathFrontdoorInProc, PathFrontdoorInProcRH, PathFrontdoorInProcTok, PathFrontdoorNoLog,
	PathEnvoyPlain, PathEnvoyAsClient, PathEnvoyImpersonating, PathHAProxy}

// quickSkips are left out of a --quick run unless --paths names them: they
// combine what other paths already smoke-test (the in-process module, the
// RequestHeader forwarding, tokens), and the quick run shares CI's two cores with
// the other test packages.
var quickSkips = []string{PathFrontdoorInProcRH, PathFrontdoorInProcTok}

// selects reports whether the run measures the built-in path name.
func (o Options) selects(name string) bool {
	if len(o.Paths) == 0 {
		return !o.Quick || !slices.Contains(quickSkips, name)
	}
	return slices.Contains(o.Paths, name)
}

// Options configure a benchmark run.
type Options struct {
	// OutDir receives the sandbox, logs, results and the chart; _bench/ by default.
	OutDir string
	// Quick is the CI smoke mode: one round of two cells, short runs.
	Quick bool
	// Rounds of interleaved measurements; medians are reported.
	Rounds      int
	Duration    time.Duration // measured time per cell, path and round
	Warmup      time.Duration
	Concurrency int                  // closed loop workers
	QPS         map[Workload]float64 // open loop arrival rate per workload
	Connections int                  // long-lived HTTP/2 clients per path (8)
	Seed        uint64
	// Workloads and Modes to run; all if empty.
	Workloads []Workload
	Modes     []Mode
	// Paths to measure, by name (AllPaths); all if empty. Variants and the
	// target are always measured.
	Paths []string
	// Variants are more Frontdoor gateways to measure beside the sandbox's
	// (a build before a change, other flags or environment).
	Variants []Variant
	// MatchPath is the reference path of Matched cells: every path is
	// offered (an open loop) the rate this one reached closed-loop in the
	// same round (matched.go).
	MatchPath string
	// Baseline, a path name, adds a paired comparison of every path with it
	// (round by round ratios): before/after figures of one run.
	Baseline string
	// Ablation adds one path per static copy of the InProcess filter chain
	// with one feature removed (ablation.go): where Envoy's time goes.
	Ablation bool
	// NoSplit skips the where-the-time-goes measurement.
	NoSplit bool
	// NoControlPlane skips the control-plane figures (config edits,
	// translation, the 10,000-rule load), for runs that compare paths.
	NoControlPlane bool
	// Profile takes a Go CPU profile of the request service under load.
	Profile bool
	// ProfileAPIServers profiles every replica while each path's GETs
	// arrive at one rate (apiprofile.go): where the apiservers' CPU goes.
	ProfileAPIServers bool
	// Target, if its URL is set, is measured as one more path.
	Target    Client
	TargetPID int // its process, for CPU and RSS (optional)

	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Connections <= 0 {
		o.Connections = 8
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	if o.Quick {
		set := func(d *time.Duration, v time.Duration) {
			if *d == 0 {
				*d = v
			}
		}
		if o.Rounds == 0 {
			o.Rounds = 1
		}
		set(&o.Duration, 2*time.Second)
		set(&o.Warmup, 500*time.Millisecond)
		if len(o.Workloads) == 0 {
			o.Workloads = []Workload{WorkloadGet, WorkloadMixed}
		}
		if len(o.Modes) == 0 {
			o.Modes = []Mode{Closed}
		}
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Duration == 0 {
		o.Duration = 8 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	// Open-loop rates well inside what one apiserver on a small machine
	// serves: the open loop measures latency at a given load, not capacity
	// (a LIST of 500 ConfigMaps is ~600 KB of JSON).
	if o.QPS == nil {
		o.QPS = map[Workload]float64{}
	}
	for w, q := range DefaultQPS {
		if o.QPS[w] <= 0 {
			o.QPS[w] = q
		}
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []Workload{WorkloadGet, WorkloadList, WorkloadCreate, WorkloadMixed}
	}
	if len(o.Modes) == 0 {
		o.Modes = []Mode{Closed, Open}
	}
}

// DefaultQPS are the open-loop arrival rates per workload.
var DefaultQPS = map[Workload]float64{WorkloadGet: 150, WorkloadList: 8, WorkloadCreate: 40, WorkloadMixed: 80}

// path is one way to reach the apiservers.
type path struct {
	name  string
	note  string
	na    string // why it was not measured; "" if measured
	c     Client
	procs map[string]int // gateway processes whose CPU and RSS are reported
	mode  string         // Frontdoor's request-service mode, "" for others
	timed *timedSource   // where its per-request timing is logged, if anywhere
}

// Run starts a sandbox, measures every path and writes the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	root, err := sandbox.RepoRoot()
	if err != nil {
		return nil, err
	}
	if opts.Modes, err = orderModes(opts.Modes, opts.MatchPath); err != nil {
		return nil, err
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(root, "_bench")
	}
	// Absolute: variant gateways get Unix socket paths under it.
	if opts.OutDir, err = filepath.Abs(opts.OutDir); err != nil {
		return nil, err
	}
	sbDir := filepath.Join(opts.OutDir, "sandbox")
	if err := os.RemoveAll(sbDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(sbDir, 0o755); err != nil {
		return nil, err
	}
	say := func(format string, args ...any) { fmt.Fprintf(opts.Progress, "== "+format+"\n", args...) }
	began := time.Now()

	say("starting the sandbox in %s", sbDir)
	sb, err := sandbox.Start(ctx, sandbox.Options{
		Dir: sbDir, Progress: opts.Progress, FrontdoorArgs: []string{"--pprof"},
		// FRONTDOOR_E2E_REQUEST_SERVICE=ExtProc measures the ext_proc path.
		RequestService: sandbox.RequestServiceFromEnv(),
	})
	if err != nil {
		return nil, err
	}
	defer sb.Stop()
	say("seeding %d ConfigMaps, RBAC and a ServiceAccount token", ListSize)
	token, err := seed(ctx, sb)
	if err != nil {
		return nil, err
	}

	certPEM, keyPEM := sb.ClientCert(BenchUser, "bench-group")
	ca := sb.CA.CertPEM
	pids := sb.PIDs()
	var apiservers = map[string]int{}
	for name, pid := range pids {
		if strings.HasPrefix(name, "apiserver-") {
			apiservers[name] = pid
		}
	}
	selected := opts.selects
	x509 := Client{URL: sb.GatewayURL, CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}
	gateway := map[string]int{"envoy": pids["envoy"], "frontdoor": pids["frontdoor"]}
	sandboxLog := func(c Client) *timedSource { return &timedSource{client: c, log: sb.AccessLogPath} }
	var paths []*path
	byName := map[string]*path{}
	add := func(p *path) *path {
		if p.procs == nil {
			p.procs = map[string]int{}
		}
		paths = append(paths, p)
		byName[p.name] = p
		return p
	}
	// sniPathAs adds a path to another UpstreamCluster of the sandbox's
	// gateway, chosen by SNI, with c's credentials; start writes the
	// cluster and waits until it serves. sniPath is sniPathAs with the
	// bench user's certificate.
	sniPathAs := func(name string, cl sniCluster, note string, c Client) {
		c.URL, c.ServerName = sb.GatewayURL, cl.serverName()
		p := add(&path{name: name, note: note, c: c, procs: gateway, mode: cl.requestService(), timed: sandboxLog(c)})
		if err := cl.start(ctx, sb, p.c); err != nil {
			p.na = "n/a: " + err.Error()
		}
	}
	sniPath := func(name string, cl sniCluster, note string) {
		sniPathAs(name, cl, note, Client{CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM})
	}
	if selected(PathDirect) {
		add(&path{name: PathDirect, note: "client cert straight to replica 1 (the limit)",
			c: Client{URL: sb.ReplicaURLs[0], CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}})
	}
	if selected(PathFrontdoorX509) {
		add(&path{name: PathFrontdoorX509, note: "Envoy + ext_authz + Lua identity filter, client cert",
			c: x509, procs: gateway, mode: "ExtAuthz", timed: sandboxLog(x509)})
	}
	if selected(PathFrontdoorRH) {
		sniPath(PathFrontdoorRH, requestHeaderCluster, "frontdoor-x509 forwarding the identity as X-Remote-* front-proxy headers (an UpstreamCluster with clientConfig.identityForwarding: RequestHeader chosen by SNI): no impersonation checks in the apiservers")
	}
	if selected(PathFrontdoorTok) {
		tok := Client{URL: sb.GatewayURL, CAPEM: ca, Token: token}
		p := add(&path{name: PathFrontdoorTok, note: "Envoy + ext_authz, ServiceAccount bearer token (TokenReview, cached)",
			c: tok, procs: gateway, mode: "ExtAuthz", timed: sandboxLog(tok)})
		if ok, why := tokenSupport(ctx, sb, root, p.c); !ok {
			p.na = why
		}
	}
	if selected(PathFrontdoorExtP) {
		sniPath(PathFrontdoorExtP, extProcCluster, "Envoy + ext_proc (the same pipeline; an UpstreamCluster with requestService: ExtProc chosen by SNI), client cert")
	}
	if selected(PathFrontdoorInProc) {
		sniPath(PathFrontdoorInProc, inProcessCluster, "Envoy + the pipeline in Envoy (the dynamic module; an UpstreamCluster with requestService: InProcess chosen by SNI), client cert")
	}
	if selected(PathFrontdoorInProcTok) {
		sniPathAs(PathFrontdoorInProcTok, inProcessCluster, "frontdoor-inprocess with frontdoor-token's ServiceAccount bearer token (TokenReview cached, decisions replayed by the workers)",
			Client{CAPEM: ca, Token: token})
	}
	if selected(PathFrontdoorInProcRH) {
		sniPath(PathFrontdoorInProcRH, inProcessRHCluster, "frontdoor-inprocess forwarding the identity as X-Remote-* front-proxy headers (an UpstreamCluster with requestService: InProcess and identityForwarding: RequestHeader chosen by SNI): no impersonation checks in the apiservers")
	}
	variants := opts.Variants
	if selected(PathFrontdoorNoLog) {
		variants = append([]Variant{noLogVariant}, variants...)
	}
	for _, v := range variants {
		p := add(&path{name: v.Name, note: v.describe(), c: x509, mode: v.mode()})
		if p.name == PathFrontdoorNoLog {
			p.note = "frontdoor-x509 with Envoy's access log off (frontdoor serve --access-log off): " + p.note
		}
		g, err := startVariant(ctx, sb, v, opts.OutDir, x509)
		if err != nil {
			p.na = "n/a: " + err.Error()
			continue
		}
		defer g.stop()
		p.c.URL, p.c.ServerName = g.url, g.serverName
		p.procs = map[string]int{"envoy": g.envoy.pid(), "frontdoor": g.frontdoor.pid()}
		if g.accessLog != "" {
			p.timed = &timedSource{client: p.c, log: g.accessLog}
		}
	}
	statics := []struct {
		name, note            string
		impersonate, asClient bool
	}{
		{PathEnvoyPlain, "static Envoy, no ext_authz: requests run as the gateway identity (" + sandbox.GatewayUser + ")", false, false},
		{PathEnvoyAsClient, "envoy-plain presenting the bench user's own client certificate upstream instead of the gateway's: requests run as " + BenchUser + " (the identity Frontdoor forwards), authenticated by the apiservers' x509 authenticator", false, true},
		{PathEnvoyImpersonating, "envoy-plain that also sets the Impersonate-* headers Frontdoor forwards for the bench user (route request_headers_to_add): the apiservers' cost of impersonation without the gateway's", true, false},
	}
	for _, st := range statics {
		if !selected(st.name) {
			continue
		}
		p := add(&path{name: st.name, note: st.note})
		var hs []header
		if st.impersonate {
			if hs, err = impersonationHeaders(certPEM); err != nil {
				p.na = "n/a: " + err.Error()
				continue
			}
		}
		up := gatewayUpstream(sb.Dir)
		if st.asClient {
			if up, err = clientUpstream(opts.OutDir, st.name, certPEM, keyPEM); err != nil {
				p.na = "n/a: " + err.Error()
				continue
			}
		}
		e, err := startStaticEnvoy(ctx, st.name, filepath.Join(sb.BinDir, "envoy"), sb.Dir, opts.OutDir, sb.ReplicaURLs, hs, up)
		if err != nil {
			p.na = "n/a: static Envoy did not start: " + err.Error()
			continue
		}
		defer e.stop()
		p.c = Client{URL: e.url, CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}
		p.procs = map[string]int{"envoy": e.pid()}
		timed := p.c
		timed.URL = e.timedURL
		p.timed = &timedSource{client: timed, log: e.accessLog}
		if err := p.c.waitServed(ctx, 15*time.Second); err != nil {
			p.na = "n/a: " + err.Error()
		}
	}
	if opts.Ablation {
		in := Client{URL: sb.GatewayURL, ServerName: inProcessCluster.sni, CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}
		if byName[PathFrontdoorInProc] == nil {
			if err := inProcessCluster.start(ctx, sb, in); err != nil {
				return nil, fmt.Errorf("ablation: %w", err)
			}
		}
		say("ablation: static copies of the InProcess chain, one feature removed each")
		abl, stop, err := startAblations(ctx, sb, opts.OutDir, in)
		if err != nil {
			return nil, fmt.Errorf("ablation: %w", err)
		}
		defer stop()
		for _, p := range abl {
			add(p)
		}
	}
	if selected(PathHAProxy) {
		p := add(&path{name: PathHAProxy, note: "Debian haproxy, mode tcp, roundrobin per connection; TLS ends at the apiservers"})
		if bin := findHAProxy(); bin == "" {
			p.na = "n/a: haproxy is not installed (make bench installs Debian's package with apt-get when it can)"
		} else if hap, url, err := startHAProxy(ctx, bin, opts.OutDir, sb.ReplicaURLs); err != nil {
			p.na = "n/a: haproxy did not start: " + err.Error()
		} else {
			defer hap.stop()
			p.c = Client{URL: url, CAPEM: ca, CertPEM: certPEM, KeyPEM: keyPEM}
			p.procs = map[string]int{"haproxy": hap.pid()}
		}
	}
	if opts.Target.URL != "" {
		if opts.Target.CertPEM == nil && opts.Target.Token == "" {
			opts.Target.CertPEM, opts.Target.KeyPEM = certPEM, keyPEM
		}
		t := add(&path{name: PathTarget, note: "--target " + opts.Target.URL, c: opts.Target})
		if opts.TargetPID > 0 {
			t.procs["target"] = opts.TargetPID
		}
	}

	rep := &Report{
		Started: began.UTC().Format(time.RFC3339), Quick: opts.Quick, CPUs: runtime.NumCPU(),
		LoadAvg: loadAvg(), Rounds: opts.Rounds, DurationS: opts.Duration.Seconds(), WarmupS: opts.Warmup.Seconds(),
		Concurrency: opts.Concurrency, QPS: qpsString(opts.QPS), Connections: opts.Connections, Seed: opts.Seed,
	}
	var live []*path
	for _, p := range paths {
		rep.Paths = append(rep.Paths, PathInfo{Name: p.name, Note: p.note, NA: p.na})
		if p.na == "" {
			live = append(live, p)
		} else {
			say("%s: %s", p.name, p.na)
		}
	}
	if slices.Contains(opts.Modes, Matched) && !slices.ContainsFunc(live, func(p *path) bool { return p.name == opts.MatchPath }) {
		return nil, fmt.Errorf("mode %s: the reference path %q is not measured in this run", Matched, opts.MatchPath)
	}
	rep.MatchPath = opts.MatchPath

	// Interleaved rounds: every round runs every cell on every path, with
	// the path order rotated, so drift on a shared machine hits all paths.
	type key struct {
		cell int
		path string
	}
	samples := map[key][]sample{}
	type cell struct {
		w Workload
		m Mode
	}
	var cells []cell
	closedCell := map[Workload]int{} // the closed-loop cell of each workload
	for _, m := range opts.Modes {
		for _, w := range opts.Workloads {
			if m == Closed {
				closedCell[w] = len(cells)
			}
			cells = append(cells, cell{w, m})
		}
	}
	for r := range opts.Rounds {
		for ci, cl := range cells {
			spec, err := opts.cellSpec(cl.w, cl.m, r, samples[key{closedCell[cl.w], opts.MatchPath}])
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", cl.w, cl.m, err)
			}
			for k := range live {
				p := live[(k+r)%len(live)]
				s, err := measure(ctx, p, apiservers, spec)
				if err != nil {
					return nil, fmt.Errorf("%s %s/%s: %w", p.name, cl.w, cl.m, err)
				}
				say("round %d/%d %-6s %-6s %-18s %7.0f req/s p50 %6.1fms p99 %7.1fms errors %d%s",
					r+1, opts.Rounds, cl.w, cl.m, p.name, s.res.QPS(), ms(s.res.Percentile(.5)), ms(s.res.Percentile(.99)), s.res.Errors, firstErr(s.res))
				if cl.m == Matched {
					s.offered = spec.QPS
				}
				samples[key{ci, p.name}] = append(samples[key{ci, p.name}], s)
			}
		}
	}
	for ci, cl := range cells {
		for _, p := range paths {
			rep.Results = append(rep.Results, summarize(cl.w, cl.m, opts, p, samples[key{ci, p.name}]))
		}
	}
	addRatios(rep)
	rep.Baseline = opts.Baseline
	addPaired(rep)
	addBars(rep)

	if opts.ProfileAPIServers {
		rep.APIProfiles = profileAllAPIServers(ctx, sb, live, opts, rep, say)
	}

	if !opts.NoSplit {
		say("where the time goes: get, open loop %g req/s, per-request timing from Envoy's access logs", opts.QPS[WorkloadGet])
		rep.Split = measureSplit(ctx, paths, opts, say)
		rep.SplitQPS = opts.QPS[WorkloadGet]
	}

	say("balance: %d long-lived HTTP/2 clients per path", opts.Connections)
	for _, p := range live {
		rep.Balance = append(rep.Balance, measureBalance(ctx, sb, p, opts))
	}
	for _, p := range paths {
		if p.na != "" {
			rep.Balance = append(rep.Balance, BalanceResult{Path: p.name, NA: p.na})
		}
	}

	if p := byName[PathFrontdoorX509]; opts.Profile && p != nil && p.na == "" {
		say("CPU profile of the request service under the get/closed load")
		rep.Profile = profileFrontdoor(ctx, sb, p, opts)
	}

	if !opts.NoControlPlane {
		measureControlPlane(ctx, sb, opts, rep, pids, say)
	}
	if pid := pids["frontdoor"]; pid > 0 {
		r, _ := rss(pid)
		h, _ := peakRSS(pid)
		rep.ControlPlane.FrontdoorRSSMiB = float64(r) / (1 << 20)
		rep.ControlPlane.FrontdoorPeakRSSMiB = float64(h) / (1 << 20)
	}
	rep.RuntimeS = time.Since(began).Seconds()
	if err := rep.write(opts.OutDir); err != nil {
		return rep, err
	}
	return rep, nil
}

// sample is one measured run of one cell on one path.
type sample struct {
	res    *LoadResult
	cpu    map[string]time.Duration // gateway processes
	apiCPU time.Duration            // all apiservers together
	// offered is the arrival rate of a Matched cell (0 otherwise).
	offered float64
}

func measure(ctx context.Context, p *path, apiservers map[string]int, spec LoadSpec) (sample, error) {
	before, apiBefore := snapshotCPU(p.procs), snapshotCPU(apiservers)
	// Warm-up runs inside Run; CPU is counted over warm-up too, and divided
	// by the requests of the whole run (warm-up included) below.
	res, total, err := runCounting(ctx, p.c, spec)
	if err != nil {
		return sample{}, err
	}
	cpu := snapshotCPU(p.procs).since(before)
	var api time.Duration
	for _, d := range snapshotCPU(apiservers).since(apiBefore) {
		api += d
	}
	// Scale CPU to the measured window's share of all requests sent.
	if total > 0 {
		f := float64(res.Requests) / float64(total)
		for k, d := range cpu {
			cpu[k] = time.Duration(float64(d) * f)
		}
		api = time.Duration(float64(api) * f)
	}
	return sample{res: res, cpu: cpu, apiCPU: api}, nil
}

// runCounting is Run that also reports how many requests were sent in total
// (warm-up included), to apportion process CPU time.
func runCounting(ctx context.Context, c Client, spec LoadSpec) (*LoadResult, int, error) {
	res, err := Offer(ctx, c, spec)
	if err != nil {
		return nil, 0, err
	}
	// The warm-up ran at the same rate as the measured window.
	total := res.Requests
	if res.Elapsed > 0 {
		total = int(float64(res.Requests) * (spec.Warmup + spec.Duration).Seconds() / res.Elapsed.Seconds())
	}
	return res, total, nil
}

func firstErr(r *LoadResult) string {
	if r.FirstErr == "" {
		return ""
	}
	return " (first: " + r.FirstErr + ")"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func qpsString(m map[Workload]float64) string {
	var parts []string
	for _, w := range []Workload{WorkloadGet, WorkloadList, WorkloadCreate, WorkloadMixed} {
		if q, ok := m[w]; ok {
			parts = append(parts, fmt.Sprintf("%s %g", w, q))
		}
	}
	return strings.Join(parts, ", ")
}

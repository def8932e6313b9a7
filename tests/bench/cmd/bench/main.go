// Command bench is `make bench`: it starts a sandbox, measures every path
// (direct, Frontdoor, static Envoys, HAProxy, variants, --target) on the same
// apiservers, prints one table and writes _bench/results.{md,json} and
// _bench/latency.png.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o                              bench.Options
		workloads, modes               string
		certFile, keyFile, caFile, tok string
		qps, paths                     string
		seed                           uint
		variants                       multiFlag
	)
	flag.BoolVar(&o.Quick, "quick", false, "smoke mode: one short round of get and mixed, closed loop (under 2 minutes); leaves out frontdoor-inprocess-requestheader unless --paths names it")
	flag.StringVar(&o.OutDir, "out", "", "output directory (default <repo>/_bench)")
	flag.IntVar(&o.Rounds, "rounds", 0, "interleaved rounds, medians reported (default 3; 1 with --quick)")
	flag.DurationVar(&o.Duration, "duration", 0, "measured time per cell, path and round (default 8s; 2s with --quick)")
	flag.DurationVar(&o.Warmup, "warmup", 0, "unmeasured warm-up before each measurement (default 2s; 500ms with --quick)")
	flag.IntVar(&o.Concurrency, "concurrency", 16, "closed loop: concurrent workers")
	flag.StringVar(&qps, "qps", "", "open loop arrivals per second by workload, e.g. get=150,list=8 (default get=150,list=8,create=40,mixed=80)")
	flag.IntVar(&o.Connections, "connections", 8, "long-lived HTTP/2 clients (connections) per path")
	flag.UintVar(&seed, "seed", 7, "random seed (request mix, names, arrivals)")
	flag.StringVar(&workloads, "workloads", "", "comma-separated: get,list,create,mixed (default all; get,mixed with --quick)")
	flag.StringVar(&modes, "modes", "", "comma-separated: closed,open,matched (default closed,open; closed with --quick); matched is an open loop at 75% of the rate --match-path served closed-loop in the same round, every path at one rate")
	flag.StringVar(&o.MatchPath, "match-path", "", "the reference path of --modes matched, e.g. frontdoor-requestheader")
	flag.StringVar(&paths, "paths", "", "comma-separated paths to measure (default all): "+strings.Join(bench.AllPaths, ","))
	flag.Var(&variants, "variant", "also measure a second Frontdoor gateway, NAME[=BINARY][:ARG ...] (repeatable); ARGs are KEY=VALUE environment, "+
		"\"unix\" (gRPC on a Unix socket) or frontdoor serve flags, e.g. before=/tmp/frontdoor-before, gogc400:GOGC=400, uds:unix")
	flag.StringVar(&o.Baseline, "baseline", "", "compare every path with this one round by round (before/after ratios), e.g. a --variant name")
	flag.BoolVar(&o.Ablation, "ablation", false, "also measure static copies of the InProcess filter chain (from Envoy's config dump), one feature removed each, as paths ablate-*; e.g. --paths direct,envoy-plain --ablation --baseline ablate-full")
	flag.BoolVar(&o.NoSplit, "no-split", false, "skip the where-the-time-goes measurement")
	flag.BoolVar(&o.NoControlPlane, "no-control-plane", false, "skip the control-plane figures (config edits, translation, the 10,000-rule load)")
	flag.BoolVar(&o.Profile, "profile", true, "take a Go CPU profile of the request service under load")
	flag.BoolVar(&o.ProfileAPIServers, "profile-apiservers", false, "also profile every kube-apiserver replica while each path's GETs arrive at one rate (the matched rate, else --qps get): the apiservers' CPU per GET by stage (authentication, RBAC, audit, ...)")
	flag.StringVar(&o.Target.URL, "target", "", "also measure this gateway URL (https://host:port) fronting any apiserver")
	flag.StringVar(&certFile, "client-cert", "", "--target: client certificate file (default: a bench-user cert from the sandbox CA)")
	flag.StringVar(&keyFile, "client-key", "", "--target: client key file")
	flag.StringVar(&caFile, "ca", "", "--target: CA bundle for the target's serving certificate")
	flag.StringVar(&tok, "token", "", "--target: bearer token")
	flag.IntVar(&o.TargetPID, "target-pid", 0, "--target: PID of the gateway process, for CPU and RSS")
	flag.Parse()
	o.Seed = uint64(seed)
	for _, w := range split(workloads) {
		o.Workloads = append(o.Workloads, bench.Workload(w))
	}
	for _, m := range split(modes) {
		o.Modes = append(o.Modes, bench.Mode(m))
	}
	o.Paths = split(paths)
	for _, p := range o.Paths {
		if !slices.Contains(bench.AllPaths, p) {
			return fmt.Errorf("--paths: unknown path %q (want %s)", p, strings.Join(bench.AllPaths, ","))
		}
	}
	for _, v := range variants {
		pv, err := bench.ParseVariant(v)
		if err != nil {
			return err
		}
		o.Variants = append(o.Variants, pv)
	}
	o.QPS = map[bench.Workload]float64{}
	for _, kv := range split(qps) {
		k, v, ok := strings.Cut(kv, "=")
		q, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return fmt.Errorf("--qps %q: want workload=rate", kv)
		}
		o.QPS[bench.Workload(k)] = q
	}
	read := func(name string) ([]byte, error) {
		if name == "" {
			return nil, nil
		}
		return os.ReadFile(name)
	}
	var err error
	if o.Target.CertPEM, err = read(certFile); err != nil {
		return err
	}
	if o.Target.KeyPEM, err = read(keyFile); err != nil {
		return err
	}
	if o.Target.CAPEM, err = read(caFile); err != nil {
		return err
	}
	o.Target.Token = tok
	o.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Print(rep.Markdown())
	fmt.Fprintf(os.Stderr, "== wrote %s/results.md, results.json, latency.png in %s\n", outDir(o), time.Since(start).Round(time.Second))
	return nil
}

func outDir(o bench.Options) string {
	if o.OutDir != "" {
		return o.OutDir
	}
	return "_bench"
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Command abuse is `make bench-abuse`: it starts a sandbox and, in each
// request-service mode, measures valid users quiet and then under each
// attack alone (slow-loris, half-open TLS, a random-token flood, hung
// proxied requests); it prints the table and writes _bench/abuse.{md,json}.
// It is not part of `make test` or CI.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/kubefrontdoor/frontdoor/tests/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-abuse:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o              bench.AbuseOptions
		modes, attacks string
		seed           uint
		render         string
	)
	flag.StringVar(&render, "render", "", "run nothing: render this abuse.json as Markdown again, to stdout and abuse.md beside it")
	flag.StringVar(&o.OutDir, "out", "", "output directory (default <repo>/_bench)")
	flag.StringVar(&modes, "modes", strings.Join(bench.AllAbuseModes, ","), "request-service modes to measure")
	flag.StringVar(&attacks, "attacks", strings.Join(bench.AllAttacks, ","), "attacks to run after each mode's quiet phase")
	flag.DurationVar(&o.Window, "window", 0, "measured time per phase (default 15s)")
	flag.DurationVar(&o.Warmup, "warmup", 0, "unmeasured valid load before each window (default 1s)")
	flag.DurationVar(&o.Ramp, "ramp", 0, "how long each attack runs before the valid load starts (default 3s)")
	flag.DurationVar(&o.Cooldown, "cooldown", 0, "pause after each phase (default 2s)")
	flag.Float64Var(&o.Rate, "rate", 0, "GETs per second of each valid client kind, x509 and token (default 40)")
	flag.DurationVar(&o.Timeout, "timeout", 0, "a valid request not answered within this fails (default 10s)")
	flag.IntVar(&o.ValidConns, "valid-conns", 0, "HTTP/2 connections per valid client kind (default 4)")
	flag.IntVar(&o.SlowLorisConns, "slowloris-conns", 0, "slow-loris TLS connections held (default 512)")
	flag.DurationVar(&o.SlowLorisEvery, "slowloris-every", 0, "one header byte per slow-loris connection this often (default 5s)")
	flag.IntVar(&o.HalfOpenConns, "halfopen-conns", 0, "half-open TLS handshakes held (default 512)")
	flag.IntVar(&o.FloodWorkers, "flood-workers", 0, "random-token flood workers, each sending as fast as answers come (default 32)")
	flag.IntVar(&o.HungRequests, "hung-requests", 0, "requests held to the never-answering upstream (default 1200: above Envoy's default circuit breaker of 1024)")
	flag.UintVar(&seed, "seed", 7, "random seed (arrivals, request mix)")
	flag.Parse()
	if render != "" {
		rep, err := bench.LoadAbuseReport(render)
		if err != nil {
			return err
		}
		md := rep.Markdown()
		fmt.Print(md)
		return os.WriteFile(filepath.Join(filepath.Dir(render), "abuse.md"), []byte(md), 0o644)
	}
	o.Seed = uint64(seed)
	for _, m := range split(modes) {
		if !slices.Contains(bench.AllAbuseModes, m) {
			return fmt.Errorf("--modes: unknown mode %q (want %s)", m, strings.Join(bench.AllAbuseModes, ","))
		}
		o.Modes = append(o.Modes, m)
	}
	for _, a := range split(attacks) {
		if !slices.Contains(bench.AllAttacks, a) {
			return fmt.Errorf("--attacks: unknown attack %q (want %s)", a, strings.Join(bench.AllAttacks, ","))
		}
		o.Attacks = append(o.Attacks, a)
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.RunAbuse(ctx, o)
	if rep != nil {
		fmt.Print(rep.Markdown())
	}
	return err
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

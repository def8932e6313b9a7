// Command soak is `make soak`: it starts the sandbox with the request
// service in the given mode, runs package soak's load for -duration, writes
// the report to _bench/soak-<mode>.md and exits 1 if any check failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
	"github.com/kubefrontdoor/frontdoor/tests/soak"
)

func main() {
	mode := flag.String("mode", "InProcess", "spec.requestService of the soaked cluster: ExtAuthz, ExtProc or InProcess")
	duration := flag.Duration("duration", 30*time.Minute, "how long the load runs after the warm-up")
	warmup := flag.Duration("warmup", 2*time.Minute, "load before the first sample that counts")
	interval := flag.Duration("interval", 30*time.Second, "time between samples")
	flag.Parse()
	if err := run(*mode, soak.Options{Duration: *duration, Warmup: *warmup, Interval: *interval, Progress: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(mode string, o soak.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := sandbox.RepoRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(root, "_bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(out, "soak-sandbox-")
	if err != nil {
		return err
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: dir, RequestService: mode, Mode: sandbox.ModeFiles, Progress: os.Stdout})
	if err != nil {
		return err
	}
	defer sb.Stop()
	r, err := soak.Run(ctx, sb, mode, o)
	if err != nil {
		return err
	}
	path := filepath.Join(out, "soak-"+strings.ToLower(mode)+".md")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r.Markdown(f)
	r.Markdown(os.Stdout)
	fmt.Println("wrote", path)
	if !r.Passed() {
		return fmt.Errorf("%s failed: %s", mode, strings.Join(r.Verdict, "; "))
	}
	return nil
}

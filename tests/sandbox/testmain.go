package sandbox

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// startTimeout bounds bringing a test suite's sandbox up (apiservers on two
// busy cores can take a while).
const startTimeout = 5 * time.Minute

// RunTests is the TestMain of a suite that shares one sandbox: it starts
// the sandbox in a fresh temporary directory (opts.Dir is ignored), hands
// it to started, runs the tests and always stops the sandbox: by defer on
// return or panic in this goroutine, by a signal handler on Ctrl-C, and by
// Pdeathsig (set on every child) if the test binary dies any other way,
// e.g. a panic in a test goroutine or `go test -timeout`. The directory is
// removed when the tests pass and kept (its logs named) when they fail.
// With -short no sandbox starts and started is not called. suite prefixes
// every message.
func RunTests(m *testing.M, suite string, opts Options, started func(*Sandbox)) (code int) {
	flag.Parse()
	if testing.Short() {
		fmt.Fprintf(os.Stderr, "%s: -short: not starting the sandbox; every test skips\n", suite)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "frontdoor-"+suite+"-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	opts.Dir = dir
	sb, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: starting the sandbox: %v\n(work dir kept: %s)\n", suite, err, dir)
		return 1
	}
	defer func() {
		sb.Stop()
		if code == 0 {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "%s: failed; sandbox logs kept in %s\n", suite, filepath.Join(dir, "logs"))
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "%s: %v: stopping the sandbox (logs in %s)\n", suite, sig, dir)
		sb.Stop()
		os.Exit(2)
	}()
	started(sb)
	return m.Run()
}

// TestContext is how a test of a suite that shares s (RunTests) starts: it
// skips t when there is no sandbox (-short), returns a context bounding
// the test to timeout, and, if t fails, logs the tail of every component
// log, in name order, that tailLines gives a positive number of lines.
func TestContext(t *testing.T, s *Sandbox, timeout time.Duration, tailLines func(name string) int) context.Context {
	t.Helper()
	if s == nil {
		t.Skip("no sandbox (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		files := s.LogFiles()
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if n := tailLines(name); n > 0 {
				t.Logf("--- tail of %s (%s):\n%s", name, files[name], s.LogTail(name, n))
			}
		}
	})
	return ctx
}

// SlowTest is how a test that starts processes of its own (a sandbox,
// proxies) starts: it skips t under -short, saying what the test would
// start, and returns a context bounding the test to timeout.
func SlowTest(t *testing.T, starts string, timeout time.Duration) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("starts " + starts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Clientset is kubernetes.NewForConfig for a test: an error fails t.
func Clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

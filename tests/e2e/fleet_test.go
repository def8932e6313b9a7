package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The fleet: two Envoys on one frontdoor serve (sandbox Options.Gateways),
// each on its own listener port with its own admin port, access log and
// node ID; the control plane gives each node its own listener (per-node
// snapshots). These tests start a sandbox of their own.

// fleetLoad sends kubectl-equivalent GETs (`kubectl get ns default`) as
// admin through each gateway, workers per gateway, each worker on its own
// client connection, and counts per gateway what succeeded and what did
// not (any status but 200, any transport error).
type fleetLoad struct {
	ok, failed []atomic.Int64
	mu         sync.Mutex
	errs       []string // the first few failures, per gateway
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startFleetLoad(t *testing.T, ctx context.Context, fs *sandbox.Sandbox, workers int) *fleetLoad {
	t.Helper()
	lctx, cancel := context.WithCancel(ctx)
	n := len(fs.Gateways)
	l := &fleetLoad{ok: make([]atomic.Int64, n), failed: make([]atomic.Int64, n), stop: cancel}
	for gi, g := range fs.Gateways {
		for range workers {
			c, err := fs.HTTPClient(fs.AdminCertPEM, fs.AdminKeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			c.Timeout = 10 * time.Second
			l.wg.Go(func() {
				defer c.CloseIdleConnections()
				for lctx.Err() == nil {
					req, _ := http.NewRequestWithContext(lctx, http.MethodGet, g.URL+"/api/v1/namespaces/default", nil)
					resp, err := c.Do(req)
					if lctx.Err() != nil {
						return // the load was stopped mid-request: not the gateway's doing
					}
					what := ""
					if err != nil {
						what = err.Error()
					} else {
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							what = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
						}
					}
					if what == "" {
						l.ok[gi].Add(1)
					} else {
						l.failed[gi].Add(1)
						l.mu.Lock()
						if len(l.errs) < 10 {
							l.errs = append(l.errs, fmt.Sprintf("gateway %d at %s: %s", gi, time.Now().Format("15:04:05.000"), what))
						}
						l.mu.Unlock()
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	return l
}

// finish stops the load and returns the counts.
func (l *fleetLoad) finish() (ok, failed []int64, errs []string) {
	l.stop()
	l.wg.Wait()
	for i := range l.ok {
		ok = append(ok, l.ok[i].Load())
		failed = append(failed, l.failed[i].Load())
	}
	return ok, failed, l.errs
}

// startClientGoLoad is `kubectl get ns default` in a loop through each
// gateway with client-go itself (its retries of a 5xx with Retry-After
// included): what a controller sees. The returned func stops it and
// returns each gateway's successes and the errors client-go returned.
func startClientGoLoad(t *testing.T, ctx context.Context, fs *sandbox.Sandbox) func() (ok []int64, errs []error) {
	t.Helper()
	lctx, cancel := context.WithCancel(ctx)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = make([]int64, len(fs.Gateways))
		failed []error
	)
	for gi, g := range fs.Gateways {
		client, err := kubernetesClient(fs.RESTConfig(g.URL, fs.AdminCertPEM, fs.AdminKeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for lctx.Err() == nil {
				_, err := client.CoreV1().Namespaces().Get(lctx, "default", metav1.GetOptions{})
				if lctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Errorf("gateway %d at %s: %w", gi, time.Now().Format("15:04:05.000"), err))
				} else {
					counts[gi]++
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return func() ([]int64, []error) {
		cancel()
		wg.Wait()
		return counts, failed
	}
}

// startFleet starts a sandbox with two gateways on one serve (two
// apiserver replicas: the fleet is about Envoys) in the request-service
// mode under test, and stops it when t ends.
func startFleet(t *testing.T, ctx context.Context) *sandbox.Sandbox {
	t.Helper()
	return startFleetSandbox(t, ctx, "fleet", sandbox.Options{
		// The ratelimit service and Redis, for the global limit.
		GlobalRateLimit: true,
		// A restart's drain need not wait long: the Envoys stay connected.
		FrontdoorArgs: []string{"--drain-timeout", "1s"},
	})
}

// startFleetSandbox starts a sandbox of its own (directory
// /tmp/frontdoor-<name>-*) with opts plus two apiserver replicas, two
// gateways and the request-service mode under test, and stops it when t
// ends (kept, with its logs' tails, if t failed).
func startFleetSandbox(t *testing.T, ctx context.Context, name string, opts sandbox.Options) *sandbox.Sandbox {
	t.Helper()
	dir, err := os.MkdirTemp("", "frontdoor-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.Replicas, opts.Gateways, opts.Progress = dir, 2, 2, os.Stderr
	opts.RequestService = sandbox.RequestServiceFromEnv()
	fs, err := sandbox.Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the %s sandbox: %v (kept: %s)", name, err, dir)
	}
	t.Cleanup(func() {
		fs.Stop()
		if t.Failed() {
			for _, log := range []string{"frontdoor", "envoy", "envoy-2"} {
				t.Logf("--- tail of %s:\n%s", log, fs.LogTail(log, 30))
			}
			t.Logf("%s sandbox kept in %s", name, dir)
			return
		}
		os.RemoveAll(dir)
	})
	return fs
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}

// TestFleet: two Envoys on one frontdoor serve.
//   - each serves kubectl on its own port, logs to its own access log, and
//     binds its own listener (per-node xDS);
//   - load split over both gets no failure;
//   - an Envoy killed with SIGKILL leaves the other serving every request
//     of its clients, and comes back with the same bootstrap;
//   - frontdoor serve restarted under load (stopped by PID, started again
//     with the same arguments) fails no request through either Envoy, in
//     every request-service mode.
func TestFleet(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox with two Envoys", 12*time.Minute)
	fs := startFleet(t, ctx)
	if len(fs.Gateways) != 2 || fs.Gateways[0].URL != fs.GatewayURL || fs.Gateways[0].AdminURL != fs.EnvoyAdminURL || fs.Gateways[0].AccessLogPath != fs.AccessLogPath {
		t.Fatalf("gateways %+v: want two, the first the sandbox's GatewayURL/EnvoyAdminURL/AccessLogPath", fs.Gateways)
	}

	t.Run("each Envoy serves kubectl on its own listener", func(t *testing.T) {
		for i, g := range fs.Gateways {
			kc := filepath.Join(t.TempDir(), "gateway.kubeconfig")
			if err := fs.WriteKubeconfig(kc, g.URL, fs.AdminCertPEM, fs.AdminKeyPEM); err != nil {
				t.Fatal(err)
			}
			before := countLines(t, g.AccessLogPath)
			out, err := fs.KubectlWith(ctx, kc, 20*time.Second, "get", "namespace", "default", "-o", "name")
			if err != nil || strings.TrimSpace(out) != "namespace/default" {
				t.Fatalf("gateway %d (%s): kubectl get namespace default = %q, %v", i, g.URL, out, err)
			}
			// The request is in this Envoy's own access log, within a few
			// flushes (Envoy's and the in-process module's).
			lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = poll(lctx, 100*time.Millisecond, func() (bool, error) { return countLines(t, g.AccessLogPath) > before, nil })
			cancel()
			if err != nil {
				t.Fatalf("gateway %d: no line in its access log %s", i, g.AccessLogPath)
			}
			listeners, err := sandbox.Get(ctx, &http.Client{Timeout: 5 * time.Second}, g.AdminURL+"/listeners")
			if err != nil {
				t.Fatal(err)
			}
			port := strings.TrimPrefix(g.URL, "https://")
			if !strings.Contains(listeners, port) || !strings.Contains(listeners, g.ProxyProtocolAddress) {
				t.Fatalf("gateway %d admin /listeners = %q, want %s and %s", i, listeners, port, g.ProxyProtocolAddress)
			}
		}
	})

	t.Run("load split over both Envoys fails nothing", func(t *testing.T) {
		l := startFleetLoad(t, ctx, fs, 2)
		time.Sleep(5 * time.Second)
		ok, failed, errs := l.finish()
		t.Logf("ok %v, failed %v", ok, failed)
		for i := range ok {
			if ok[i] < 20 || failed[i] != 0 {
				t.Errorf("gateway %d: %d ok, %d failed; want many ok and none failed: %v", i, ok[i], failed[i], errs)
			}
		}
	})

	// Issue 16's bar: one global schema of 20 QPS, 60 QPS offered split
	// over both Envoys, 18–22 QPS of 2xx; the limit holds with one Envoy
	// killed (the survivor then gets the whole 60 QPS).
	t.Run("a global limit holds over both Envoys and with one killed", func(t *testing.T) {
		writeGlobalClusterOn(t, ctx, fs, glDefaultQPS)
		cert, key := fs.ClientCert("gl-shared", "system:masters")
		client := sandboxClient(t, fs, glSNI, cert, key)
		defer client.CloseIdleConnections()
		both := gatewayURLs(fs)
		checkGlobalRate(t, "60 QPS over both Envoys", offerLoad(t, ctx, both, client, 60, 10*time.Second), glDefaultQPS)
		if err := fs.StopGateway(1, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		checkGlobalRate(t, "60 QPS to the survivor", offerLoad(t, ctx, both[:1], client, 60, 6*time.Second), glDefaultQPS)
		if err := fs.StartGateway(ctx, 1); err != nil {
			t.Fatalf("restarting gateway 1: %v", err)
		}
	})

	t.Run("an Envoy killed leaves the other serving", func(t *testing.T) {
		l := startFleetLoad(t, ctx, fs, 2)
		time.Sleep(time.Second)
		okBefore := l.ok[1].Load()
		if err := fs.StopGateway(1, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		ok0 := l.ok[0].Load()
		time.Sleep(2 * time.Second)
		if l.ok[0].Load() <= ok0 {
			t.Errorf("gateway 0 stopped serving after gateway 1 was killed")
		}
		ok, failed, errs := l.finish()
		t.Logf("ok %v, failed %v (gateway 1 killed)", ok, failed)
		if failed[0] != 0 {
			t.Errorf("gateway 0 (the survivor): %d failed requests, want 0: %v", failed[0], errs)
		}
		if ok[1] < okBefore || failed[1] == 0 {
			t.Errorf("gateway 1 (killed): %d ok, %d failed; want its clients to fail once it is gone", ok[1], failed[1])
		}
		if err := fs.StartGateway(ctx, 1); err != nil {
			t.Fatalf("restarting gateway 1: %v", err)
		}
	})

	t.Run("frontdoor serve restarted under load fails nothing", func(t *testing.T) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			l := startFleetLoad(t, ctx, fs, 2)
			stopClientGo := startClientGoLoad(t, ctx, fs)
			time.Sleep(2 * time.Second)
			start := time.Now()
			if err := fs.RestartFrontdoor(ctx, sig, 30*time.Second); err != nil {
				l.finish()
				stopClientGo()
				t.Fatalf("restarting frontdoor serve (%v): %v", sig, err)
			}
			restart := time.Since(start)
			// The Envoys reconnect to the new serve and keep serving.
			time.Sleep(3 * time.Second)
			ok, failed, errs := l.finish()
			goOK, goErrs := stopClientGo()
			t.Logf("%v: serve back after %v; ok %v, failed %v; client-go ok %v, errors %d", sig, restart, ok, failed, goOK, len(goErrs))
			// Calls to the request service are retried in Envoy across the
			// restart (ExtAuthz, ExtProc); in process it never leaves Envoy.
			for i := range ok {
				if ok[i] < 20 || goOK[i] < 20 {
					t.Errorf("%v: gateway %d: %d ok (client-go %d) across the restart; want it serving", sig, i, ok[i], goOK[i])
				}
				if failed[i] != 0 {
					t.Errorf("%v: gateway %d: %d failed across the restart; want none failed: %v", sig, i, failed[i], errs)
				}
			}
			// What a controller sees: nothing either.
			if len(goErrs) != 0 {
				t.Errorf("%v: client-go saw %d errors across the restart, want none: %v", sig, len(goErrs), goErrs[:min(len(goErrs), 5)])
			}
			// Both Envoys are connected to the new serve again.
			if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
				text, err := sandbox.Get(ctx, &http.Client{Timeout: 5 * time.Second}, fs.FrontdoorMetricsURL)
				return err == nil && strings.Contains(text, "frontdoor_xds_connected_proxies 2"), nil
			}); err != nil {
				t.Fatalf("%v: the Envoys did not reconnect to the restarted serve", sig)
			}
		}
	})
}

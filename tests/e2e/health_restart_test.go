package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// A restart of frontdoor serve does not flip any verdict in Envoy: while it
// is down Envoy keeps the last endpoints and their health, and its first
// config after the restart waits for the first probes, so a hung replica
// (SIGSTOP: its first probe only times out) never becomes healthy
// (published without a verdict, Envoy would treat it as healthy until the
// probe timed out) and a live one never becomes unhealthy.
func TestControlPlaneRestartKeepsVerdicts(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const victim, live = 3, 1
	deadHost := strings.TrimPrefix(sb.ReplicaURLs[victim-1], "https://")
	liveHost := strings.TrimPrefix(sb.ReplicaURLs[live-1], "https://")
	ensureHealthCluster(t, ctx)
	healthy := func(flags []string) bool { return len(flags) > 0 && allEqual(flags, "healthy") }
	if err := waitAllClustersHostHealth(ctx, 30*time.Second, deadHost, healthy); err != nil {
		t.Fatalf("before the test: %v", err)
	}
	if err := sb.PauseReplica(victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		restartReplica(t, cctx, victim, deadHost)
	})
	failed := func(flags []string) bool { return len(flags) > 0 && strings.Contains(flags[0], "failed_eds_health") }
	if err := waitAllClustersHostHealth(ctx, 10*time.Second, deadHost, failed); err != nil {
		t.Fatal(err)
	}

	// Watch Envoy's view of both replicas in the default cluster through
	// the restart and for a while after.
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var deadHealthy, liveFailed []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			clusters, err := sb.EnvoyAdmin(wctx, "/clusters")
			if err == nil {
				d := hostHealthFlags(clusters, healthCluster+"/default", deadHost)
				l := hostHealthFlags(clusters, healthCluster+"/default", liveHost)
				mu.Lock()
				if healthy(d) {
					deadHealthy = append(deadHealthy, time.Now().Format(time.StampMilli))
				}
				if len(l) > 0 && !healthy(l) {
					liveFailed = append(liveFailed, time.Now().Format(time.StampMilli)+" "+strings.Join(l, ","))
				}
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	sb.StopFrontdoor()
	time.Sleep(2 * time.Second) // down: Envoy keeps its last config
	restartedAt := time.Now()
	if err := sb.StartFrontdoor(ctx); err != nil {
		stopWatch()
		wg.Wait()
		t.Fatal(err)
	}
	// Envoy reconnects and takes the new process's config; watch past it.
	time.Sleep(5 * time.Second)
	stopWatch()
	wg.Wait()
	t.Logf("frontdoor restarted in %v", time.Since(restartedAt).Round(time.Millisecond))
	if len(deadHealthy) > 0 {
		t.Errorf("the hung replica was healthy in Envoy %d times around the restart (first at %s)", len(deadHealthy), deadHealthy[0])
	}
	if len(liveFailed) > 0 {
		t.Errorf("a live replica was unhealthy in Envoy %d times around the restart (first: %s)", len(liveFailed), liveFailed[0])
	}
	if err := waitAllClustersHostHealth(ctx, 5*time.Second, deadHost, failed); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// healthCluster is an UpstreamCluster over the three replicas with a fast
// active health check (two failed 500 ms checks eject a server), so a hung
// replica leaves within about 2 s. Its checks are frontdoor's (one prober
// for every Envoy cluster), published as EDS health status; it has one
// dispatch policy, so the verdict is seen in a policy cluster too.
const healthCluster = "health"

// healthPolicy is the health cluster's dispatch policy.
const healthPolicy = "pinned"

// healthEnvoyClusters are the health cluster's Envoy clusters: each must
// follow the one verdict.
var healthEnvoyClusters = []string{
	healthCluster + "/default", healthCluster + "/upgrade",
	healthCluster + "/" + healthPolicy, healthCluster + "/" + healthPolicy + ".upgrade",
}

var (
	healthSNI  = healthCluster + "." + sandbox.TestDomain
	healthOnce struct {
		sync.Once
		err error
	}
)

func ensureHealthCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	ensureTunedCluster(t, ctx, &healthOnce.Once, &healthOnce.err, healthCluster,
		"  healthCheck: {interval: 500ms, timeout: 500ms, unhealthyThreshold: 2, healthyThreshold: 1}\n"+
			"  dispatchPolicies:\n"+
			"  - name: "+healthPolicy+"\n"+
			"    rules: [{verbs: [\"*\"], apiGroups: [\"*\"], resources: [\"*\"], users: [health-policy-user]}]\n")
}

// outlierCluster checks its servers actively only every 5 minutes, so a
// dead server there can only be ejected by outlier detection (two connect
// failures in a row).
const outlierCluster = "outlier"

var outlierOnce struct {
	sync.Once
	err error
}

func ensureOutlierCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	ensureTunedCluster(t, ctx, &outlierOnce.Once, &outlierOnce.err, outlierCluster,
		"  healthCheck: {interval: 5m, timeout: 1s}\n"+
			"  outlierDetection: {consecutiveConnectFailures: 2, baseEjectionTime: 60s}\n")
}

// ensureTunedCluster writes an UpstreamCluster over the three replicas with
// extra spec fields (two-space indented lines) and waits until it serves.
func ensureTunedCluster(t *testing.T, ctx context.Context, once *sync.Once, errp *error, name, extra string) {
	t.Helper()
	// Spec fields after the servers list, at the same indentation.
	admin := adminUser()
	ensureCluster(t, ctx, once, errp, name, sandbox.ServersYAML(sb.ReplicaURLs)+extra, &admin, http.StatusOK)
}

// A hung replica (SIGSTOP: the kernel still accepts its connections, the
// process never answers) is ejected by the active health check, and the
// requests stuck on it are cut rather than left waiting. Requests sent after
// the ejection all succeed, also once the replica is killed (SIGKILL).
// frontdoor's frontdoor_upstream_server_healthy follows the replica out and
// back. The test reports the time to eject and the errors in that window.
func TestHungReplicaIsEjected(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const victim = 3
	hostPort := strings.TrimPrefix(sb.ReplicaURLs[victim-1], "https://")
	envoyCluster := healthCluster + "/default"
	ensureHealthCluster(t, ctx)
	cs := sandbox.Clientset(t, adminUser().gateway())
	name := createConfigMap(t, ctx, cs, "e2e-hung")

	healthy := func(flags []string) bool { return len(flags) > 0 && allEqual(flags, "healthy") }
	if err := waitClusterHostHealth(ctx, envoyCluster, 100*time.Millisecond, hostPort, healthy); err != nil {
		t.Fatalf("replica %d not healthy in %s before the test: %v", victim, envoyCluster, err)
	}
	if err := waitServerHealthMetric(ctx, hostPort, 1); err != nil {
		t.Fatal(err)
	}

	admin := adminUser()
	client := httpClient(t, healthSNI, admin.certPEM, admin.keyPEM)
	defer client.CloseIdleConnections()
	load := startGETLoad(ctx, client, sb.GatewayURL+"/api/v1/namespaces/default/configmaps/"+name, 4)
	time.Sleep(time.Second)

	paused := time.Now()
	if err := sb.PauseReplica(victim); err != nil {
		load.stop()
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if restarted {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		restartReplica(t, cctx, victim, hostPort)
	})
	failed := func(flags []string) bool {
		return len(flags) > 0 && strings.Contains(flags[0], "failed_eds_health")
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := waitClusterHostHealth(ectx, envoyCluster, 20*time.Millisecond, hostPort, failed)
	cancel()
	ejected := time.Now()
	if err != nil {
		load.stop()
		t.Fatalf("Envoy did not eject the hung replica within 10 s: %v", err)
	}
	// One verdict, one EDS push: every cluster of the UpstreamCluster
	// follows it.
	if err := waitAllClustersHostHealth(ctx, time.Second, hostPort, failed); err != nil {
		t.Error(err)
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	if err := sb.StopReplica(victim); err != nil {
		load.stop()
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	results := load.stop()

	var before, window, afterEject, afterKill tally
	for _, r := range results {
		switch {
		case r.end.Before(paused):
			before.add(r)
		case r.start.Before(ejected):
			window.add(r)
		case r.start.Before(killed):
			afterEject.add(r)
		default:
			afterKill.add(r)
		}
	}
	t.Logf("time to eject the hung replica: %v", ejected.Sub(paused).Round(time.Millisecond))
	t.Logf("requests: before the hang %s; during the ejection window %s (first error: %v); hung but ejected %s; after SIGKILL %s",
		before, window, window.firstErr, afterEject, afterKill)
	if before.n == 0 || afterEject.n == 0 || afterKill.n == 0 {
		t.Fatalf("the load did not run in every phase: before %s, after ejection %s, after kill %s", before, afterEject, afterKill)
	}
	for phase, c := range map[string]tally{"before the hang": before, "after ejection": afterEject, "after SIGKILL": afterKill} {
		if c.failed > 0 {
			t.Errorf("%s: %d of %d requests failed, first: %s", phase, c.failed, c.n, c.firstErr)
		}
	}
	if err := waitServerHealthMetric(ctx, hostPort, 0); err != nil {
		t.Error(err)
	}

	restarted = true
	restartReplica(t, ctx, victim, hostPort)
	if err := waitClusterHostHealth(ctx, envoyCluster, 100*time.Millisecond, hostPort, healthy); err != nil {
		t.Errorf("replica %d did not come back in %s: %v", victim, envoyCluster, err)
	}
	if err := waitAllClustersHostHealth(ctx, 5*time.Second, hostPort, healthy); err != nil {
		t.Error(err)
	}
	if err := waitServerHealthMetric(ctx, hostPort, 1); err != nil {
		t.Error(err)
	}
}

// A stopped replica (SIGKILL: connections refused) is ejected from every
// Envoy cluster of the UpstreamCluster, its dispatch policy's and the
// upgrade twins included, as fast as Envoy's own checks did: two failed
// checks 500 ms apart. It comes back in all of them once restarted.
func TestStoppedReplicaIsEjectedFromEveryCluster(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const victim = 2
	hostPort := strings.TrimPrefix(sb.ReplicaURLs[victim-1], "https://")
	ensureHealthCluster(t, ctx)
	healthy := func(flags []string) bool { return len(flags) > 0 && allEqual(flags, "healthy") }
	if err := waitAllClustersHostHealth(ctx, 30*time.Second, hostPort, healthy); err != nil {
		t.Fatalf("before the test: %v", err)
	}
	stopped := time.Now()
	if err := sb.StopReplica(victim); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if restarted {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		restartReplica(t, cctx, victim, hostPort)
	})
	failed := func(flags []string) bool { return len(flags) > 0 && strings.Contains(flags[0], "failed_eds_health") }
	// Envoy's own checks needed two failures 500 ms apart (about 1 s);
	// allow for a loaded machine.
	if err := waitAllClustersHostHealth(ctx, 3*time.Second, hostPort, failed); err != nil {
		t.Fatalf("stopped replica not ejected from every cluster within 3 s: %v", err)
	}
	t.Logf("time to eject the stopped replica from every cluster: %v", time.Since(stopped).Round(time.Millisecond))
	if err := waitServerHealthMetric(ctx, hostPort, 0); err != nil {
		t.Error(err)
	}
	restarted = true
	restartReplica(t, ctx, victim, hostPort)
	if err := waitAllClustersHostHealth(ctx, 30*time.Second, hostPort, healthy); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

// waitAllClustersHostHealth waits up to timeout until hostPort's health
// flags satisfy ok in every Envoy cluster of the health cluster.
func waitAllClustersHostHealth(ctx context.Context, timeout time.Duration, hostPort string, ok func(flags []string) bool) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for _, c := range healthEnvoyClusters {
		if err := waitClusterHostHealth(wctx, c, 20*time.Millisecond, hostPort, ok); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// A killed replica in a cluster whose active health check is too slow to
// notice is ejected by outlier detection after consecutive connect failures;
// the requests that hit it are retried on another replica (connect failures
// never reached a server), and every request after the ejection succeeds.
func TestDeadReplicaIsEjectedByOutlierDetection(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const victim = 3
	hostPort := strings.TrimPrefix(sb.ReplicaURLs[victim-1], "https://")
	envoyCluster := outlierCluster + "/default"
	ensureOutlierCluster(t, ctx)
	cs := sandbox.Clientset(t, adminUser().gateway())
	name := createConfigMap(t, ctx, cs, "e2e-outlier")
	healthy := func(flags []string) bool { return len(flags) > 0 && allEqual(flags, "healthy") }
	if err := waitClusterHostHealth(ctx, envoyCluster, 100*time.Millisecond, hostPort, healthy); err != nil {
		t.Fatalf("replica %d not healthy in %s before the test: %v", victim, envoyCluster, err)
	}

	admin := adminUser()
	client := httpClient(t, outlierCluster+"."+sandbox.TestDomain, admin.certPEM, admin.keyPEM)
	defer client.CloseIdleConnections()
	load := startGETLoad(ctx, client, sb.GatewayURL+"/api/v1/namespaces/default/configmaps/"+name, 4)
	time.Sleep(time.Second)
	killed := time.Now()
	if err := sb.StopReplica(victim); err != nil {
		load.stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		restartReplica(t, cctx, victim, hostPort)
	})
	ejectedBy := func(flags []string) bool {
		return len(flags) > 0 && strings.Contains(flags[0], "failed_outlier_check") && !strings.Contains(flags[0], "failed_active_hc") && !strings.Contains(flags[0], "failed_eds_health")
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := waitClusterHostHealth(ectx, envoyCluster, 20*time.Millisecond, hostPort, ejectedBy)
	cancel()
	ejected := time.Now()
	if err != nil {
		load.stop()
		t.Fatalf("outlier detection did not eject the dead replica within 10 s: %v", err)
	}
	time.Sleep(2 * time.Second)
	results := load.stop()

	var before, window, after tally
	for _, r := range results {
		switch {
		case r.end.Before(killed):
			before.add(r)
		case r.start.Before(ejected):
			window.add(r)
		default:
			after.add(r)
		}
	}
	t.Logf("time to eject the dead replica by outlier detection: %v", ejected.Sub(killed).Round(time.Millisecond))
	t.Logf("requests: before the kill %s; until ejection %s (first error: %v); after ejection %s", before, window, window.firstErr, after)
	if before.n == 0 || after.n == 0 {
		t.Fatalf("the load did not run in every phase: before %s, after ejection %s", before, after)
	}
	if before.failed > 0 || after.failed > 0 {
		t.Errorf("failed requests outside the ejection window: before %s (%v), after %s (%v)", before, before.firstErr, after, after.firstErr)
	}
	if ov, err := sb.EnvoyAdmin(ctx, "/stats?filter=^cluster\\.outlier/default\\.outlier_detection\\.ejections_enforced_consecutive_local_origin_failure$"); err == nil {
		t.Logf("Envoy: %s", strings.TrimSpace(ov))
	}
}

// restartReplica starts a killed replica again and waits until the sandbox
// cluster sends it traffic, so later tests find three healthy replicas.
func restartReplica(t *testing.T, ctx context.Context, i int, hostPort string) {
	t.Helper()
	_ = sb.StopReplica(i) // no-op when it is already gone
	if err := sb.StartReplica(ctx, i); err != nil {
		t.Errorf("restarting replica %d: %v", i, err)
		return
	}
	if err := waitHostHealth(ctx, hostPort, func(flags []string) bool {
		return len(flags) > 0 && allEqual(flags, "healthy")
	}); err != nil {
		t.Errorf("replica %d did not become healthy in Envoy again: %v", i, err)
	}
}

// waitServerHealthMetric waits until frontdoor reports
// frontdoor_upstream_server_healthy{cluster="health",server=hostPort} = want
// (frontdoor polls Envoy every 2 s).
func waitServerHealthMetric(ctx context.Context, hostPort string, want float64) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got float64
	var gerr error
	err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
		text, err := sb.FrontdoorMetrics(wctx)
		if err != nil {
			return false, nil
		}
		filter := map[string]string{"cluster": healthCluster, "server": hostPort}
		if ok, err := sandbox.HasSeries(text, "frontdoor_upstream_server_healthy", filter); !ok {
			got, gerr = 0, cmp.Or(err, errors.New("no such series"))
			return false, nil
		}
		got, gerr = sandbox.SumMetric(text, "frontdoor_upstream_server_healthy", filter)
		return gerr == nil && got == want, nil
	})
	if err != nil {
		return fmt.Errorf("frontdoor_upstream_server_healthy{cluster=%q,server=%q} = %v (%w), want %v: %w", healthCluster, hostPort, got, gerr, want, err)
	}
	return nil
}

// getResult is one request of a getLoad.
type getResult struct {
	start, end time.Time
	err        error
}

type tally struct {
	n, failed int
	firstErr  error
}

func (c *tally) add(r getResult) {
	c.n++
	if r.err != nil {
		c.failed++
		if c.firstErr == nil {
			c.firstErr = r.err
		}
	}
}

func (c tally) String() string { return fmt.Sprintf("%d sent, %d failed", c.n, c.failed) }

// getLoad is a closed loop of GETs by a few workers sharing one client (one
// long-lived HTTP/2 connection to Envoy, like a controller's), each request
// bounded by 3 s.
type getLoad struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []getResult
}

func startGETLoad(ctx context.Context, client *http.Client, url string, workers int) *getLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &getLoad{cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				r := getResult{start: time.Now()}
				r.err = getOnce(ctx, client, url)
				r.end = time.Now()
				if ctx.Err() != nil {
					return // cut by stop, not by the gateway
				}
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// getOnce is one GET of the load, bounded to 3 s, that must answer 200.
func getOnce(ctx context.Context, client *http.Client, url string) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return sandbox.ExpectStatus(rctx, client, url, http.StatusOK)
}

func (l *getLoad) stop() []getResult {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.results
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Global token buckets (README "Global limits"): one budget for every
// gateway replica, kept by the real ratelimit service over a real Redis,
// which the sandbox starts (Options.GlobalRateLimit) and these tests kill
// and restart by PID. The load helpers take a list of gateway URLs, so the
// same assertions hold with the load split over several Envoys.

const glCluster = "global"

var glSNI = glCluster + "." + sandbox.TestDomain

// glPolicies is the flowControl/dispatchPolicies block of the global
// cluster; %[1]d is the qps of the shared (fail-open) schema.
const glPolicies = `  flowControl:
    flowControlSchemas:
    - {name: shared, tokenBucket: {qps: %[1]d, scope: Global}}
    - {name: strict, tokenBucket: {qps: 20, scope: Global, failureMode: Closed}}
    - {name: each-user, tokenBucket: {qps: 5, scope: Global}, perUser: true}
  dispatchPolicies:
  - name: shared
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gl-shared]}]
    flowControlSchemaName: shared
  - name: strict
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gl-strict]}]
    flowControlSchemaName: strict
  - name: tenants
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], userGroups: [gl-tenants]}]
    flowControlSchemaName: each-user
`

// glDefaultQPS is the shared schema's qps between tests.
const glDefaultQPS = 20

// writeGlobalCluster writes the global cluster with the shared schema at
// qps and waits until the gateway serves it and the ratelimit service has
// loaded that limit (over xDS from frontdoor).
func writeGlobalCluster(t *testing.T, ctx context.Context, qps int) {
	t.Helper()
	writeGlobalClusterOn(t, ctx, sb, qps)
}

// writeGlobalClusterOn is writeGlobalCluster on sandbox s, waiting until
// every gateway of s serves the cluster.
func writeGlobalClusterOn(t *testing.T, ctx context.Context, s *sandbox.Sandbox, qps int) {
	t.Helper()
	uc := s.UpstreamClusterYAML(glCluster, sandbox.ServersYAML(s.ReplicaURLs), []string{glSNI}, altClusterSpec) + fmt.Sprintf(glPolicies, qps)
	path := filepath.Join(s.Dir, "config", "upstreamcluster-"+glCluster+".yaml")
	if err := os.WriteFile(path+".tmp", []byte(uc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	want := fmt.Sprintf("%s.frontdoor_policy_shared: unit=SECOND requests_per_unit=%d,", glCluster, qps)
	var last, waiting string
	err := poll(wctx, 100*time.Millisecond, func() (bool, error) {
		cfg, err := s.RateLimitConfig(wctx)
		if err != nil || !strings.Contains(cfg, want) {
			waiting = fmt.Sprintf("the ratelimit service's config (%v)", err)
			last = cfg
			return false, nil
		}
		last = cfg
		// Anonymous /version answers 200 only once the cluster serves (the
		// template enables anonymous); before that its SNI falls to the
		// sandbox's default chain, which answers 401. A new connection
		// each time: one made before the cluster existed stays on the
		// default chain.
		client := sandboxClient(t, s, glSNI, nil, nil)
		defer client.CloseIdleConnections()
		for _, url := range gatewayURLs(s) {
			if code, _, body := do(t, wctx, client, http.MethodGet, url+"/version", nil, nil); code != http.StatusOK {
				waiting = fmt.Sprintf("%s/version: %d %s", url, code, body)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("global cluster at %d qps not serving: %v; waiting for %s; ratelimit service config:\n%s", qps, err, waiting, last)
	}
}

// gatewayURLs are the client URLs of every Envoy of s.
func gatewayURLs(s *sandbox.Sandbox) []string {
	var urls []string
	for _, g := range s.Gateways {
		urls = append(urls, g.URL)
	}
	return urls
}

func glClient(t *testing.T, name string, groups ...string) *http.Client {
	t.Helper()
	u := newUser(name, append(groups, "system:masters")...)
	c := httpClient(t, glSNI, u.certPEM, u.keyPEM)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// loadResult counts the answers to offered load.
type loadResult struct {
	ok, throttled, unavailable, other int
	// dur is the time from the first request sent to the last.
	dur time.Duration
}

func (r loadResult) okQPS() float64 { return float64(r.ok) / r.dur.Seconds() }

// offerLoad sends GETs at rate per second for dur, round-robin over
// gateways (one Envoy each; all serve the same clusters), and checks every
// refusal: a 429 carries Retry-After and a TooManyRequests Status, a 503 a
// ServiceUnavailable Status. It starts 50 ms after a second boundary and
// stops 50 ms before the last one, so the ratelimit service's one-second
// windows fall wholly inside the run: dur should be a whole number of
// seconds.
func offerLoad(t *testing.T, ctx context.Context, gateways []string, client *http.Client, rate int, dur time.Duration) loadResult {
	t.Helper()
	start := time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)
	time.Sleep(time.Until(start))
	end := start.Add(dur - 100*time.Millisecond)
	var ok, throttled, unavailable, other atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var last time.Time
	for i := 0; ; i++ {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		last = now
		url := gateways[i%len(gateways)] + "/api/v1/namespaces/default/configmaps?limit=1"
		wg.Go(func() {
			code, h, body := get(ctx, client, url)
			switch code {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				throttled.Add(1)
				if h.Get("Retry-After") == "" || !strings.Contains(body, `"reason":"TooManyRequests"`) || !strings.Contains(body, `"kind":"Status"`) {
					t.Errorf("429 without Retry-After or TooManyRequests Status: %v %s", h, body)
				}
			case http.StatusServiceUnavailable:
				unavailable.Add(1)
				if !strings.Contains(body, `"reason":"ServiceUnavailable"`) || !strings.Contains(body, `"kind":"Status"`) {
					t.Errorf("503 without a ServiceUnavailable Status: %v %s", h, body)
				}
			default:
				other.Add(1)
				t.Errorf("unexpected answer %d: %s", code, body)
			}
		})
		<-tick.C
	}
	wg.Wait()
	return loadResult{int(ok.Load()), int(throttled.Load()), int(unavailable.Load()), int(other.Load()), last.Sub(start)}
}

// get sends one GET; code 0 means the request failed.
func get(ctx context.Context, client *http.Client, url string) (int, http.Header, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// checkGlobalRate: the 2xx rate is qps ±10%, and something was refused.
func checkGlobalRate(t *testing.T, who string, r loadResult, qps int) {
	t.Helper()
	t.Logf("%s: %d ok (%.1f/s), %d throttled, %d unavailable over %v", who, r.ok, r.okQPS(), r.throttled, r.unavailable, r.dur.Round(time.Millisecond))
	if got := r.okQPS(); got < 0.9*float64(qps) || got > 1.1*float64(qps) {
		t.Errorf("%s: %.1f requests/s answered 2xx, want %d ±10%%", who, got, qps)
	}
	if r.throttled == 0 || r.unavailable != 0 || r.other != 0 {
		t.Errorf("%s: %d throttled, %d unavailable, %d other; want only 2xx and 429", who, r.throttled, r.unavailable, r.other)
	}
}

// gateways are the Envoys the load is split over.
func gateways() []string { return []string{sb.GatewayURL} }

// policyStat reads one of Envoy's rate limit filter counters of a policy
// cluster (envoy_cluster_ratelimit_<name>{envoy_cluster_name="<uc>/<policy>"}),
// summed over the gateways' Envoys.
func policyStat(t *testing.T, ctx context.Context, name, policy string) float64 {
	t.Helper()
	stats, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	v, err := sandbox.SumMetric(stats, "envoy_cluster_ratelimit_"+name, map[string]string{"envoy_cluster_name": glCluster + "/" + policy})
	if err != nil {
		t.Fatalf("envoy_cluster_ratelimit_%s of %s: %v", name, policy, err)
	}
	return v
}

// A global 20 QPS schema offered 60 QPS answers 18–22 QPS 2xx and the rest
// 429 with Retry-After and a Status; Envoy counts the 429s per policy.
func TestGlobalLimitHolds(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	writeGlobalCluster(t, ctx, glDefaultQPS)
	client := glClient(t, "gl-shared")
	stats := []string{"ok", "over_limit", "error", "failure_mode_allowed"}
	before := map[string]float64{}
	for _, s := range stats {
		before[s] = policyStat(t, ctx, s, "shared")
	}
	r := offerLoad(t, ctx, gateways(), client, 60, 10*time.Second)
	rose := map[string]int{}
	for _, s := range stats {
		rose[s] = int(policyStat(t, ctx, s, "shared") - before[s])
	}
	t.Logf("envoy_cluster_ratelimit_* of %s/shared rose by %v", glCluster, rose)
	if rose["error"] > 0 {
		logRateLimitClusterStats(t, ctx)
	}
	checkGlobalRate(t, "gl-shared (global 20 qps)", r, glDefaultQPS)
	// Every decision is counted under the policy (README "Global limits"):
	// with the service healthy, each 2xx is an ok and each 429 an over_limit.
	if rose["ok"] != r.ok || rose["over_limit"] != r.throttled || rose["error"] != 0 || rose["failure_mode_allowed"] != 0 {
		t.Errorf("envoy_cluster_ratelimit_*{envoy_cluster_name=%q} rose by %v, want ok %d, over_limit %d, no error", glCluster+"/shared", rose, r.ok, r.throttled)
	}
}

// perUser: each user of the policy has its own global budget.
func TestGlobalLimitPerUser(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	writeGlobalCluster(t, ctx, glDefaultQPS)
	a, b := glClient(t, "gl-tenant-a", "gl-tenants"), glClient(t, "gl-tenant-b", "gl-tenants")
	var ra, rb loadResult
	var wg sync.WaitGroup
	wg.Go(func() { ra = offerLoad(t, ctx, gateways(), a, 15, 6*time.Second) })
	wg.Go(func() { rb = offerLoad(t, ctx, gateways(), b, 15, 6*time.Second) })
	wg.Wait()
	checkGlobalRate(t, "gl-tenant-a (5 qps per user)", ra, 5)
	checkGlobalRate(t, "gl-tenant-b (5 qps per user)", rb, 5)
}

// Editing the schema's qps reaches the ratelimit service over xDS and
// takes effect without restarting anything.
func TestGlobalLimitLiveEdit(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	writeGlobalCluster(t, ctx, glDefaultQPS)
	uptime := envoyUptime(t, ctx)
	client := glClient(t, "gl-shared")
	t.Cleanup(func() { writeGlobalCluster(t, context.Background(), glDefaultQPS) })

	writeGlobalCluster(t, ctx, 10)
	checkGlobalRate(t, "gl-shared at 10 qps", offerLoad(t, ctx, gateways(), client, 30, 6*time.Second), 10)
	writeGlobalCluster(t, ctx, 40)
	checkGlobalRate(t, "gl-shared at 40 qps", offerLoad(t, ctx, gateways(), client, 80, 6*time.Second), 40)
	checkEnvoyNotRestarted(t, ctx, uptime)
}

// envoyUptime is Envoy's server.uptime in seconds.
func envoyUptime(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	stats, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	v, err := sandbox.SumMetric(stats, "envoy_server_uptime", nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkEnvoyNotRestarted: Envoy's uptime kept counting from before.
func checkEnvoyNotRestarted(t *testing.T, ctx context.Context, before float64) {
	t.Helper()
	if now := envoyUptime(t, ctx); now < before {
		t.Errorf("Envoy restarted: uptime %vs, was %vs", now, before)
	}
}

// Redis, then the ratelimit service, killed: within 1 s the fail-open
// policy admits everything (counted in failure_mode_allowed) and the
// fail-closed policy refuses with 503 and a Status; both restarted, limits
// apply again within 5 s, with no Envoy restart.
func TestGlobalLimitFailureModes(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	writeGlobalCluster(t, ctx, glDefaultQPS)
	uptime := envoyUptime(t, ctx)
	open, closed := glClient(t, "gl-shared"), glClient(t, "gl-strict")
	url := sb.GatewayURL + "/api/v1/namespaces/default/configmaps?limit=1"
	for _, c := range []*http.Client{open, closed} {
		if code, _, body := get(ctx, c, url); code != http.StatusOK {
			t.Fatalf("before any failure: %d %s", code, body)
		}
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted { // leave the sandbox whole for the next test
			_ = sb.StartRedis(context.Background())
			_ = sb.StartRateLimit(context.Background())
		}
	})

	for _, step := range []struct {
		what string
		kill func()
	}{{"Redis killed", sb.StopRedis}, {"ratelimit service killed too", sb.StopRateLimit}} {
		allowedBefore := policyStat(t, ctx, "failure_mode_allowed", "shared")
		step.kill()
		killed := time.Now()
		// Fail closed: 503 with a Status within 1 s.
		var code int
		var h http.Header
		var body string
		for time.Since(killed) < 5*time.Second {
			if code, h, body = get(ctx, closed, url); code == http.StatusServiceUnavailable {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(killed)
		t.Logf("%s: fail-closed policy answered %d after %v", step.what, code, took.Round(time.Millisecond))
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"reason":"ServiceUnavailable"`) || h.Get("Retry-After") == "" {
			t.Errorf("%s: fail-closed policy answered %d %v %s, want 503 with Retry-After and a ServiceUnavailable Status", step.what, code, h, body)
		} else if took > time.Second {
			t.Errorf("%s: fail-closed policy refused only after %v, want within 1s", step.what, took)
		}
		// Fail open: more than the whole budget passes, all 2xx.
		r := offerLoad(t, ctx, gateways(), open, 40, 2*time.Second)
		t.Logf("%s: fail-open policy %d ok, %d throttled, %d unavailable", step.what, r.ok, r.throttled, r.unavailable)
		if r.throttled != 0 || r.unavailable != 0 || r.other != 0 || r.ok < 2*glDefaultQPS+glDefaultQPS/2 {
			t.Errorf("%s: fail-open policy: %+v, want every request 2xx", step.what, r)
		}
		if allowed := policyStat(t, ctx, "failure_mode_allowed", "shared") - allowedBefore; int(allowed) < r.ok {
			t.Errorf("%s: envoy_cluster_ratelimit_failure_mode_allowed{envoy_cluster_name=%q} rose by %v, want ≥ %d", step.what, glCluster+"/shared", allowed, r.ok)
		}
	}

	// frontdoor serve logs each policy's failures (it polls Envoy's
	// counters every 2 s).
	for _, want := range []string{
		`"msg":"global rate limit failing open: the ratelimit service did not answer, requests admitted unchecked","policy":"` + glCluster + `/shared"`,
		`"msg":"global rate limit failing closed: the ratelimit service did not answer, requests refused with 503","policy":"` + glCluster + `/strict"`,
	} {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
			b, err := os.ReadFile(sb.LogFiles()["frontdoor"])
			return strings.Contains(string(b), want), err
		})
		cancel()
		if err != nil {
			t.Errorf("frontdoor logged no %s: %v", want, err)
		}
	}

	// Back up: Redis, then the service (which reads its config from
	// frontdoor again); Envoy reconnects on its own.
	if err := sb.StartRedis(ctx); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := sb.StartRateLimit(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	var resumed time.Duration
	for time.Since(started) < 10*time.Second {
		codeClosed, _, _ := get(ctx, closed, url)
		throttled := 0
		for range 2 * glDefaultQPS { // more than a second's budget, back to back
			if c, _, _ := get(ctx, open, url); c == http.StatusTooManyRequests {
				throttled++
			}
		}
		if codeClosed == http.StatusOK && throttled > 0 {
			resumed = time.Since(started)
			break
		}
	}
	t.Logf("limits resumed %v after the restart began", resumed.Round(time.Millisecond))
	if resumed == 0 || resumed > 5*time.Second {
		t.Errorf("limits resumed after %v (0: not within 10s), want within 5s", resumed)
	}
	checkGlobalRate(t, "gl-shared after the restart", offerLoad(t, ctx, gateways(), open, 60, 4*time.Second), glDefaultQPS)
	checkEnvoyNotRestarted(t, ctx, uptime)
}

// logRateLimitClusterStats logs Envoy's non-zero counters of its ratelimit
// service cluster (timeouts, resets, connection failures), to tell why
// checks failed.
func logRateLimitClusterStats(t *testing.T, ctx context.Context) {
	t.Helper()
	st, err := sb.EnvoyAdmin(ctx, "/stats?filter=^cluster\\.frontdoor_ratelimit\\.&type=Counters")
	if err != nil {
		t.Log(err)
		return
	}
	for _, l := range strings.Split(st, "\n") {
		if l != "" && !strings.HasSuffix(l, ": 0") {
			t.Log(l)
		}
	}
}

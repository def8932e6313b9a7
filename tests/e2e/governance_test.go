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

// Issue 5: dispatch policies, flow control and shedding, each on its own
// UpstreamCluster "gov" chosen by SNI gov.sandbox.test (same replicas and
// Secrets as the sandbox's), so the default cluster is untouched. Every user
// is in system:masters so the apiserver authorizes whatever it forwards.

const govCluster = "gov"

var govSNI = govCluster + "." + sandbox.TestDomain

// govPolicies is the dispatchPolicies/flowControl block of the gov cluster.
// %[1]s is the subset endpoint (replica 2); %[2]s is the reject block of
// the "shed" policy ("" when not shedding).
const govPolicies = `  flowControl:
    flowControlSchemas:
    - {name: ten-qps, tokenBucket: {qps: 10, burst: 10}}
    - {name: per-user, tokenBucket: {qps: 5, burst: 5}, perUser: true}
    - {name: two-inflight, maxRequestsInflight: {max: 2}}
    - {name: three-burst, tokenBucket: {qps: 1, burst: 3}}
  dispatchPolicies:
  - name: pinned
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gov-pinned]}]
    upstreamSubset: [%[1]q]
    strategy: LeastRequest
  - name: limited
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gov-limited]}]
    flowControlSchemaName: ten-qps
  - name: tenants
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], userGroups: [gov-tenants]}]
    flowControlSchemaName: per-user
  - name: capped
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gov-capped]}]
    flowControlSchemaName: two-inflight
  - name: exec-limited
    rules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [gov-exec-limited]}]
    flowControlSchemaName: three-burst
  - name: no-exec
    rules: [{verbs: ["*"], apiGroups: [""], resources: [pods/exec, pods/portforward], users: [gov-no-exec]}]
    reject: {code: 429, retryAfterSeconds: 3, message: "no exec or port-forward for gov-no-exec"}
  - name: equivalents
    rules:
    - {verbs: [list], apiGroups: [""], resources: [configmaps], users: [gov-equiv]}
    - {verbs: [create], apiGroups: [""], resources: [configmaps], users: [gov-equiv]}
    - {verbs: ["*"], apiGroups: [""], resources: [secrets], namespaces: [kube-system], users: [gov-equiv]}
    reject: {code: 429, retryAfterSeconds: 3, message: "shedding configmap lists and creates and kube-system secrets of gov-equiv"}
  - name: shed
    rules: [{verbs: [list], apiGroups: [""], resources: [secrets], users: [gov-shed]}]
%[2]s`

const govReject = `    reject: {code: 429, retryAfterSeconds: 7, message: "shedding secrets lists"}
`

var govOnce struct {
	sync.Once
	err error
}

// writeGovCluster writes the gov UpstreamCluster with or without shedding.
func writeGovCluster(shed bool) error {
	uc := altClusterYAML(govCluster, govSNI, sandbox.ServersYAML(sb.ReplicaURLs))
	reject := ""
	if shed {
		reject = govReject
	}
	uc += fmt.Sprintf(govPolicies, sb.ReplicaURLs[1], reject)
	path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+govCluster+".yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(uc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func ensureGovCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	govOnce.Do(func() {
		if govOnce.err = writeGovCluster(false); govOnce.err != nil {
			return
		}
		// Anonymous /version answers 200 only on gov (the template enables
		// anonymous); before gov serves, its SNI falls to the sandbox's
		// default chain, which answers 401.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		govOnce.err = poll(wctx, 200*time.Millisecond, func() (bool, error) {
			client := httpClient(t, govSNI, nil, nil)
			defer client.CloseIdleConnections()
			code, _, _ := do(t, wctx, client, http.MethodGet, sb.GatewayURL+"/version", nil, nil)
			return code == http.StatusOK, nil
		})
	})
	if govOnce.err != nil {
		t.Fatalf("UpstreamCluster %q not serving: %v", govCluster, govOnce.err)
	}
}

func govClient(t *testing.T, name string, groups ...string) *http.Client {
	u := newUser(name, append(groups, "system:masters")...)
	c := httpClient(t, govSNI, u.certPEM, u.keyPEM)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// A policy for one user sends all of that user's requests to its subset
// (replica 2), as the replicas' own apiserver_request_total shows.
func TestDispatchPolicyRoutesToSubset(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureGovCluster(t, ctx)
	client := govClient(t, "gov-pinned")
	const n = 60
	filter := map[string]string{"resource": "configmaps", "verb": "LIST"}
	before, err := sb.ReplicaRequestCounts(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil); code != http.StatusOK {
			t.Fatalf("list %d: %d %s", i, code, body)
		}
	}
	deltas, err := replicaDeltas(ctx, filter, before, func(deltas []float64) bool { return deltas[1] >= n })
	t.Logf("LIST configmaps per replica during the test: %v", deltas)
	if err != nil {
		t.Fatalf("replica 2 did not count %d lists: %v", n, err)
	}
	for i, d := range deltas {
		if i != 1 && d != 0 {
			t.Errorf("replica %d served %v lists of the pinned user, want 0", i+1, d)
		}
	}
}

// push sends GETs at rate for dur and counts answers by status; every 429
// must carry Retry-After and a TooManyRequests Status.
func push(t *testing.T, ctx context.Context, client *http.Client, rate int, dur time.Duration) (ok, throttled int) {
	t.Helper()
	var okN, tooMany, other atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?limit=1", nil)
			resp, err := client.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				okN.Add(1)
			case http.StatusTooManyRequests:
				tooMany.Add(1)
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"reason":"TooManyRequests"`) {
					t.Errorf("429 without Retry-After or Status: %v %s", resp.Header, body)
				}
			default:
				other.Add(1)
				t.Errorf("unexpected %d: %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if other.Load() > 0 {
		t.Errorf("%d requests failed otherwise", other.Load())
	}
	return int(okN.Load()), int(tooMany.Load())
}

// checkRate: over dur at 3x qps, the 2xx are the burst plus qps per second
// (±10%), the rest 429.
func checkRate(t *testing.T, who string, ok, throttled, qps, burst int, dur time.Duration) {
	t.Helper()
	want := float64(burst) + float64(qps)*dur.Seconds()
	t.Logf("%s: %d ok, %d throttled (want ≈ %.0f ok)", who, ok, throttled, want)
	if f := float64(ok); f < 0.9*want || f > 1.1*want {
		t.Errorf("%s: %d ok, want %.0f ±10%%", who, ok, want)
	}
	if throttled == 0 {
		t.Errorf("%s: nothing throttled", who)
	}
}

// A token bucket lets a client pushing 3x its QPS through at about that
// QPS, answers the rest 429 with Retry-After, and leaves other users alone;
// per-user buckets isolate two users of one policy.
func TestDispatchPolicyTokenBucket(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureGovCluster(t, ctx)
	const dur = 6 * time.Second
	limited := govClient(t, "gov-limited")
	free := govClient(t, "gov-free")
	tenantA := govClient(t, "gov-tenant-a", "gov-tenants")
	tenantB := govClient(t, "gov-tenant-b", "gov-tenants")

	var wg sync.WaitGroup
	var res [4][2]int
	for i, c := range []struct {
		client *http.Client
		rate   int
	}{{limited, 30}, {free, 30}, {tenantA, 15}, {tenantB, 15}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i][0], res[i][1] = push(t, ctx, c.client, c.rate, dur)
		}()
	}
	wg.Wait()
	checkRate(t, "gov-limited (10 qps)", res[0][0], res[0][1], 10, 10, dur)
	if res[1][1] != 0 {
		t.Errorf("gov-free (no policy): %d throttled, want 0", res[1][1])
	}
	t.Logf("gov-free: %d ok", res[1][0])
	checkRate(t, "gov-tenant-a (5 qps per user)", res[2][0], res[2][1], 5, 5, dur)
	checkRate(t, "gov-tenant-b (5 qps per user)", res[3][0], res[3][1], 5, 5, dur)

	// Per-policy metrics (README "Dispatch policies"): Envoy counts the
	// throttled requests under the policy's label, the request service the
	// requests it matched to the policy.
	stats, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	throttled, err := sandbox.SumMetric(stats, "envoy_policy_http_local_rate_limit_rate_limited", map[string]string{"frontdoor_policy": "gov/limited"})
	if err != nil || int(throttled) != res[0][1] {
		t.Errorf("envoy_policy_http_local_rate_limit_rate_limited{frontdoor_policy=\"gov/limited\"} = %v (%v), want %d", throttled, err, res[0][1])
	}
	fd, err := sb.FrontdoorMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	matched, err := sandbox.SumMetric(fd, "frontdoor_requests_total", map[string]string{"cluster": govCluster, "rule": "limited", "decision": "allowed"})
	// Exact: the request service allows every request of gov-limited
	// (Envoy throttles after it), and only this test sends them.
	if err != nil || int(matched) != res[0][0]+res[0][1] {
		t.Errorf("frontdoor_requests_total{rule=limited,decision=allowed} = %v (%v), want %d", matched, err, res[0][0]+res[0][1])
	}
}

// maxRequestsInflight 2: with two slow requests in flight (creates whose
// bodies the client has not finished sending) the third request gets 429
// at once; watches, long-running as kube-apiserver counts them, take none of
// the budget.
func TestDispatchPolicyMaxInflight(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureGovCluster(t, ctx)
	client := govClient(t, "gov-capped")
	base := sb.GatewayURL + "/api/v1/namespaces/default/configmaps"

	// Three watches first: they must not count.
	for range 3 {
		wctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, base+"?watch=true", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch: %d", resp.StatusCode)
		}
		t.Cleanup(func() { resp.Body.Close() })
	}
	if code, _, body := do(t, ctx, client, http.MethodGet, base, nil, nil); code != http.StatusOK {
		t.Fatalf("list with 3 watches open: %d %s", code, body)
	}

	// Two slow creates hold the budget.
	var pipes []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base, pr)
		req.Header.Set("Content-Type", "application/json")
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	defer func() {
		for _, pw := range pipes {
			pw.Close()
		}
	}()
	// Wait until Envoy counts both as active on the policy's cluster.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := poll(pctx, 100*time.Millisecond, func() (bool, error) {
		stats, err := sb.EnvoyAdmin(ctx, "/stats?filter=cluster%5C.gov/capped%5C.upstream_rq_active$")
		return err == nil && strings.Contains(stats, "upstream_rq_active: 2"), nil
	}); err != nil {
		stats, _ := sb.EnvoyAdmin(ctx, "/stats?filter=gov/capped")
		t.Fatalf("the two slow requests never became active: %v\n%s", err, stats)
	}
	start := time.Now()
	code, h, body := do(t, ctx, client, http.MethodGet, base, nil, nil)
	took := time.Since(start)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(string(body), `"reason":"TooManyRequests"`) {
		t.Fatalf("third request: %d %v %s, want 429 with Retry-After and a TooManyRequests Status", code, h, body)
	}
	if took > time.Second {
		t.Errorf("third request took %v, want an immediate 429", took)
	}
	stats, err := sb.EnvoyAdmin(ctx, "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sandbox.SumMetric(stats, "envoy_cluster_upstream_rq_active_overflow", map[string]string{"envoy_cluster_name": "gov/capped"}); err != nil || n < 1 {
		t.Errorf("envoy_cluster_upstream_rq_active_overflow{envoy_cluster_name=\"gov/capped\"} = %v (%v), want ≥ 1", n, err)
	}
	// A watch still gets through while the budget is spent.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	req, _ := http.NewRequestWithContext(wctx, http.MethodGet, base+"?watch=true&timeoutSeconds=1", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("watch with the budget spent: %d, want 200", resp.StatusCode)
	}
	t.Logf("third request: 429 in %v", took)
}

// Flipping a policy to reject sheds its requests within 2 s (429, the
// configured Retry-After and message), and flipping it back restores them.
func TestDispatchPolicyRejectFlip(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureGovCluster(t, ctx)
	client := govClient(t, "gov-shed")
	url := sb.GatewayURL + "/api/v1/namespaces/default/secrets"
	t.Cleanup(func() { _ = writeGovCluster(false) })

	waitFor := func(want int) time.Duration {
		t.Helper()
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var code int
		var h http.Header
		var body []byte
		err := poll(pctx, 50*time.Millisecond, func() (bool, error) {
			code, h, body = do(t, ctx, client, http.MethodGet, url, nil, nil)
			return code == want, nil
		})
		if err != nil {
			t.Fatalf("no %d within 2s (last %d %s)", want, code, body)
		}
		if want == http.StatusTooManyRequests && (h.Get("Retry-After") != "7" || !strings.Contains(string(body), "shedding secrets lists")) {
			t.Errorf("reject answer: %v %s", h, body)
		}
		return time.Since(start)
	}
	waitFor(http.StatusOK)
	if err := writeGovCluster(true); err != nil {
		t.Fatal(err)
	}
	t.Logf("reject on after %v", waitFor(http.StatusTooManyRequests))
	// Other requests of the same user are not shed.
	if code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil); code != http.StatusOK {
		t.Errorf("configmaps while shedding secrets: %d %s", code, body)
	}
	if err := writeGovCluster(false); err != nil {
		t.Fatal(err)
	}
	t.Logf("reject off after %v", waitFor(http.StatusOK))
}

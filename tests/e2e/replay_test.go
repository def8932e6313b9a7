package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// In process, an Envoy worker answers a request byte-identical to one the
// module already decided for a client certificate by replaying that
// decision in C (README "In-process mode"). Replayed or not, each request
// is forwarded as its user, counted once in frontdoor_requests_total and
// logged with the same fields; frontdoor_replayed_decisions_total counts
// the replays. In ExtAuthz and ExtProc modes nothing is replayed. (That a
// new policy retires replays at once is TestDispatchPolicyRejectFlip's and
// the revocation tests' business: they repeat one request across an edit.)
func TestRepeatedRequestsReplayedAndCountedOnce(t *testing.T) {
	ctx := setup(t, time.Minute)
	const n = 12
	u := newUser("replay-user", "system:masters", "replayers")
	c, err := sb.HTTPClient(u.certPEM, u.keyPEM) // one HTTP/2 connection: one Envoy worker
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/namespaces/default/configmaps/replay-probe-" + randomHex(t, 6)
	// The first request on each worker is decided in Go.
	repeatAndCountReplays(t, ctx, c, path, "", http.StatusNotFound, n, 1)

	// Every request's access-log line names the user and the rule, and
	// the request service's time, replayed or not.
	var lines []map[string]any
	_ = poll(ctx, 200*time.Millisecond, func() (bool, error) {
		raw, err := os.ReadFile(sb.AccessLogPath)
		if err != nil {
			return false, err
		}
		lines = logLines(t, raw, path)
		return len(lines) >= n, nil
	})
	if len(lines) != n {
		t.Fatalf("%d access-log lines for %s, want %d", len(lines), path, n)
	}
	for i, l := range lines {
		if l["user"] != "replay-user" || l["rule"] != "default" || l["decision"] != "allowed" || l["groups"] != 3.0 || l["code"] != 404.0 {
			t.Errorf("access-log line %d: user %v rule %v decision %v groups %v code %v; want replay-user default allowed 3 404", i, l["user"], l["rule"], l["decision"], l["groups"], l["code"])
		}
		if _, ok := l["requestServiceUs"]; !ok {
			t.Errorf("access-log line %d has no requestServiceUs: %v", i, l)
		}
	}
}

// A ServiceAccount's bearer token is replayed too, once the TokenReview
// cache holds it: the first request waits for the review (decided in Go,
// not replayable), the next is decided in Go from the cache and kept, the
// rest are replayed (keyed by a hash of the token, never the token). Each
// is forwarded as the ServiceAccount (403 from the apiserver: it has no
// RBAC) and counted once. That a revoked token stops within the cache TTL
// under replay is TestRevokedTokensStopAfterCacheTTL's business: its polls
// repeat one request.
func TestRepeatedTokenRequestsReplayed(t *testing.T) {
	ctx := setup(t, time.Minute)
	name := "replay-token-" + uniq()
	serviceAccount(t, ctx, name)
	token := tokenFor(t, ctx, name, nil)
	c, err := sb.HTTPClient(nil, nil) // one HTTP/2 connection: one Envoy worker
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/namespaces/default/configmaps/replay-token-" + randomHex(t, 6)
	// Two decisions in Go on each worker: the review, then the cached one.
	repAfter := repeatAndCountReplays(t, ctx, c, path, token, http.StatusForbidden, 12, 2)

	// Another token of the same ServiceAccount is a key of its own: its
	// first request waits for its review (the metric grows by nothing more
	// than the second token's own replays).
	other := tokenFor(t, ctx, name, nil)
	if code := doGet(t, ctx, c, path, other); code != http.StatusForbidden {
		t.Fatalf("GET with a second token: %d, want 403", code)
	}
	if rep, _ := replayedSeries(sandbox.ClusterName).read(t, ctx); rep != repAfter {
		t.Errorf("the first request of another token was replayed (%v → %v): a replay keyed by anything but the token", repAfter, rep)
	}
}

// repeatAndCountReplays sends n identical GETs of path (with token, if
// any) on c to the sandbox's cluster: countReplays.
func repeatAndCountReplays(t *testing.T, ctx context.Context, c *http.Client, path, token string, code, n, inGo int) float64 {
	t.Helper()
	return countReplays(t, ctx, sandbox.ClusterName, func() int { return doGet(t, ctx, c, path, token) }, code, n, inGo)
}

// countReplays sends n identical requests of cluster (send, a GET answered
// code by the apiserver) and checks that each is counted once in
// frontdoor_requests_total and that, in InProcess mode, all but inGo
// decisions per Envoy worker reached (one or both of its 2) were replayed;
// none in the other modes. It returns cluster's
// frontdoor_replayed_decisions_total after the requests.
func countReplays(t *testing.T, ctx context.Context, cluster string, send func() int, code, n, inGo int) float64 {
	t.Helper()
	requests := series{"frontdoor allowed", sb.FrontdoorMetrics, "frontdoor_requests_total",
		map[string]string{"cluster": cluster, "rule": "default", "verb": "get", "resource": "configmaps", "decision": "allowed"}}
	replayed := replayedSeries(cluster)
	reqBefore, _ := requests.read(t, ctx)
	repBefore, _ := replayed.read(t, ctx)
	for i := range n {
		if got := send(); got != code {
			t.Fatalf("request %d: %d, want %d from the apiserver (forwarded as the client)", i, got, code)
		}
	}
	if delta, _ := requests.growth(t, ctx, reqBefore, float64(n)); delta != float64(n) {
		t.Errorf("frontdoor_requests_total grew by %v after %d requests, want exactly %d", delta, n, n)
	}
	repAfter, _ := replayed.read(t, ctx)
	got := repAfter - repBefore
	if sandbox.RequestServiceFromEnv() == "InProcess" {
		if lo, hi := float64(n-2*inGo), float64(n-inGo); got < lo || got > hi {
			t.Errorf("replayed %v of %d identical requests, want %v to %v (all but %d decided in Go on each of Envoy's 2 workers)", got, n, lo, hi, inGo)
		}
	} else if got != 0 {
		t.Errorf("replayed %v decisions outside InProcess mode, want 0", got)
	}
	return repAfter
}

// A front proxy's requests are replayed too, once its certificate has been
// verified: the key holds the certificate and every X-Remote-* field, so
// each asserted user is a key of its own (README "Identity").
func TestRepeatedFrontProxyRequestsReplayed(t *testing.T) {
	ctx := setup(t, time.Minute)
	ensureForwardingClusters(t, ctx)
	fc := forwardingClusters[0]
	proxyCert, proxyKey := sb.ClientCert(sandbox.FrontProxyUser)
	c := httpClient(t, fc.sni(), proxyCert, proxyKey) // one HTTP/2 connection: one Envoy worker
	path := "/api/v1/namespaces/default/configmaps/replay-proxy-" + randomHex(t, 6)
	as := func(user string) func() int {
		return func() int {
			code, _, _ := do(t, ctx, c, http.MethodGet, sb.GatewayURL+path, http.Header{"X-Remote-User": {user}, "X-Remote-Group": {"proxied"}}, nil)
			return code
		}
	}
	// Forwarded as the asserted user, who may not read ConfigMaps: 403.
	repAfter := countReplays(t, ctx, fc.name, as("proxied-"+uniq()), http.StatusForbidden, 12, 1)
	if code := as("proxied-other-" + uniq())(); code != http.StatusForbidden {
		t.Fatalf("GET as another asserted user: %d, want 403", code)
	}
	if rep, _ := replayedSeries(fc.name).read(t, ctx); rep != repAfter {
		t.Errorf("the first request of another asserted user was replayed (%v → %v): a replay keyed by less than every X-Remote-* field", repAfter, rep)
	}
}

// Anonymous requests are replayed too, on a cluster that allows them (a
// load balancer's probes are the steady case): the key holds no credential,
// so the same path with a client certificate is a key of its own, decided
// in Go and forwarded as the certificate's user.
func TestRepeatedAnonymousRequestsReplayed(t *testing.T) {
	ctx := setup(t, time.Minute)
	ensureAltCluster(t, ctx)
	path := "/api/v1/namespaces/default/configmaps/replay-anonymous-" + randomHex(t, 6)
	anonymous := httpClient(t, altSNI, nil, nil) // one HTTP/2 connection: one Envoy worker
	// Forwarded as system:anonymous, who may not read ConfigMaps: 403.
	repAfter := countReplays(t, ctx, altCluster, func() int { return doGet(t, ctx, anonymous, path, "") }, http.StatusForbidden, 12, 1)
	admin := adminUser()
	withCert := httpClient(t, altSNI, admin.certPEM, admin.keyPEM)
	if code := doGet(t, ctx, withCert, path, ""); code != http.StatusNotFound {
		t.Fatalf("GET with the admin's certificate: %d, want 404 (forwarded as the admin, not replayed as anonymous)", code)
	}
	if rep, _ := replayedSeries(altCluster).read(t, ctx); rep != repAfter {
		t.Errorf("the first request with a certificate was replayed (%v → %v): an anonymous replay keyed without the credential fields", repAfter, rep)
	}
}

// replayedSeries is cluster's frontdoor_replayed_decisions_total.
func replayedSeries(cluster string) series {
	return series{"frontdoor replayed", sb.FrontdoorMetrics, "frontdoor_replayed_decisions_total",
		map[string]string{"cluster": cluster}}
}

// logLines returns every decoded access-log line whose path is path.
func logLines(t *testing.T, log []byte, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte(path)) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access-log line is not JSON: %v\n%s", err, sc.Bytes())
		}
		if m["path"] == path {
			out = append(out, m)
		}
	}
	return out
}

// A JWT's requests are replayed while its identity is cached (10 s from
// its verification, as kube-apiserver caches token authentications): the
// first request verifies it (in Go, not kept), the next is decided in Go
// from the cache and kept, the rest are replayed.
func TestRepeatedJWTRequestsReplayed(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	name, sni, sa := saJWTCluster(t, ctx, "jwt-replay-")
	user := "sa-oidc:system:serviceaccount:default:" + name
	key := sandboxSAKey(t)
	hour := time.Now().Add(time.Hour)
	waitWhoami(t, ctx, sni, signES256(t, key, saClaims(name, string(sa.UID), jwtAudience, hour)), user)

	// A token of its own, never seen: its first request is verified.
	token := signES256(t, key, saClaims(name, string(sa.UID), jwtAudience, hour))
	c := httpClient(t, sni, nil, nil) // one HTTP/2 connection: one Envoy worker
	path := "/api/v1/namespaces/default/configmaps/replay-jwt-" + randomHex(t, 6)
	// Forwarded as the mapped user, who may not read ConfigMaps: 403.
	countReplays(t, ctx, name, func() int {
		code, _, _ := do(t, ctx, c, http.MethodGet, sb.GatewayURL+path, http.Header{"Authorization": {"Bearer " + token}}, nil)
		return code
	}, http.StatusForbidden, 12, 2)
}

package authz

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// sameDecision compares decisions field by field (Info by value), except
// ReplayUntil, which only TryCheck sets.
func sameDecision(t *testing.T, what string, got, want Decision) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Decision{}, "ReplayUntil")); diff != "" {
		t.Errorf("%s (-Check +TryCheck):\n%s", what, diff)
	}
}

// A certificate, or no credential at all, never needs the network:
// TryCheck decides exactly what Check decides, and counts it once.
func TestTryCheckDecidesCertificatesInline(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})
	tp := newTestPipeline(t, ca)
	req := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods/x", PeerCertificate: cert}

	want := tp.Check(context.Background(), req)
	got, ok := tp.TryCheck(req)
	if !ok || !got.Allowed() {
		t.Fatalf("TryCheck = %s, %v; want allowed, decided inline", got.Outcome, ok)
	}
	sameDecision(t, "certificate", got, want)

	for name, r := range map[string]*Request{
		"no credential":   {Cluster: "a", Method: "GET", Path: "/api"},
		"unknown cluster": {Cluster: "b", Method: "GET", Path: "/api", PeerCertificate: cert},
		"bad target":      {Cluster: "a", Method: "GET", Path: "/api/%zz", PeerCertificate: cert},
	} {
		want := tp.Check(context.Background(), r)
		got, ok := tp.TryCheck(r)
		if !ok {
			t.Errorf("%s: TryCheck blocked", name)
		}
		sameDecision(t, name, got, want)
	}
	// 4 Checks and 4 TryChecks: each decision counted once.
	if n := sumCounter(t, tp, "frontdoor_requests_total"); n != 8 {
		t.Errorf("frontdoor_requests_total = %v, want 8", n)
	}
}

// A bearer token blocks TryCheck until a TokenReview authenticated it;
// then TryCheck answers from the cache without a review, and blocks again
// once the token cache has forgotten the token. TryCheck itself never sends
// a review and never counts a decision it could not make.
func TestTryCheckTokens(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	tp := newTestPipeline(t, nil)
	const ttl = 300 * time.Millisecond
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.TokenReview.CacheTTL = policy.Duration(ttl) }))
	req := func(auth string) *Request {
		return &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", Headers: map[string]string{"authorization": auth}}
	}

	if _, ok := tp.TryCheck(req("Bearer good")); ok {
		t.Fatal("TryCheck decided a token no review has seen")
	}
	if n := f.tokenReviews.Load(); n != 0 {
		t.Fatalf("TryCheck sent %d TokenReviews", n)
	}
	if n := sumCounter(t, tp, "frontdoor_requests_total"); n != 0 {
		t.Fatalf("a blocked TryCheck counted %v decisions", n)
	}
	want := tp.Check(context.Background(), req("Bearer good"))
	got, ok := tp.TryCheck(req("Bearer good"))
	if !ok {
		t.Fatal("TryCheck blocked on a token the cache holds")
	}
	sameDecision(t, "cached token", got, want)
	if n := f.tokenReviews.Load(); n != 1 {
		t.Errorf("TokenReviews = %d, want 1", n)
	}

	// A refused token is not remembered for TryCheck: it blocks, and Check
	// answers it (from the negative cache after the first review).
	for range 2 {
		if _, ok := tp.TryCheck(req("Bearer bad")); ok {
			t.Error("TryCheck decided an unknown token")
		}
		if d := tp.Check(context.Background(), req("Bearer bad")); d.Outcome != Unauthenticated {
			t.Errorf("bad token: %s", d.Outcome)
		}
	}
	if n := f.tokenReviews.Load(); n != 2 {
		t.Errorf("TokenReviews = %d, want 2", n)
	}

	time.Sleep(ttl + 50*time.Millisecond)
	if _, ok := tp.TryCheck(req("Bearer good")); ok {
		t.Error("TryCheck decided a token after the token cache TTL: a revoked token would keep working")
	}
}

// Impersonation and WebSocket-subprotocol tokens take the slow path.
func TestTryCheckBlocksImpersonationAndWebSocketTokens(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "ops"})
	f := newFakeUpstream(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.X509, c.ClientCAPEM = true, ca.CertPEM }))

	for name, r := range map[string]*Request{
		"impersonation": {Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert,
			Headers: map[string]string{"impersonate-user": "bob"}},
		"websocket token": {Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/d/pods/p/exec", Headers: map[string]string{
			"connection": "Upgrade", "upgrade": "websocket",
			"sec-websocket-protocol": "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.Z29vZA",
		}},
	} {
		if _, ok := tp.TryCheck(r); ok {
			t.Errorf("%s: TryCheck decided inline", name)
		}
	}
	if f.sars.Load() != 0 || f.tokenReviews.Load() != 0 {
		t.Errorf("TryCheck called out: %d SARs, %d TokenReviews", f.sars.Load(), f.tokenReviews.Load())
	}
}

// sumCounter sums every series of a counter in the pipeline's registry.
func sumCounter(t *testing.T, tp *testPipeline, name string) float64 {
	t.Helper()
	mfs, err := tp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

package authz

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// TestReplayUntil: a certificate-authenticated decision made inline, with
// no WebSocket token or impersonation among the headers, may be replayed,
// and never past the certificate's validity or MaxReplay.
func TestReplayUntil(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane", orgs: []string{"dev"}})
	_, expiring := ca.issue(t, clientCert{cn: "jane", notAfter: testNow.Add(3 * time.Second)})
	tp := newTestPipeline(t, ca)
	req := func(cert string, headers map[string]string) *Request {
		return &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods/x", PeerCertificate: cert, Headers: headers}
	}

	d, ok := tp.TryCheck(req(cert, nil))
	if !ok || !d.Allowed() || !d.ReplayUntil.Equal(testNow.Add(MaxReplay)) {
		t.Errorf("certificate: %s (inline %v), replay until %v; want allowed until now+MaxReplay", d.Outcome, ok, d.ReplayUntil)
	}
	if d, _ := tp.TryCheck(req(expiring, nil)); !d.ReplayUntil.Equal(testNow.Add(3 * time.Second)) {
		t.Errorf("certificate expiring in 3s: replay until %v; want its NotAfter", d.ReplayUntil)
	}
	// The second time the identity comes from the authn cache: same bound.
	if d, _ := tp.TryCheck(req(expiring, nil)); !d.ReplayUntil.Equal(testNow.Add(3 * time.Second)) {
		t.Errorf("cached identity: replay until %v; want its NotAfter", d.ReplayUntil)
	}
	// A bearer token the certificate's cluster does not review changes
	// nothing: the adapter keys the request by the token's hash.
	if d := tryCheck(t, tp, req(cert, map[string]string{"authorization": "Bearer x"})); !d.ReplayUntil.Equal(testNow.Add(MaxReplay)) {
		t.Errorf("bearer token beside the certificate: %s, replay until %v; want now+MaxReplay", d.Outcome, d.ReplayUntil)
	}
	for name, d := range map[string]Decision{
		"Check (may wait on the apiserver)": tp.Check(context.Background(), req(cert, nil)),
		"WebSocket subprotocol beside it":   tryCheck(t, tp, req(cert, map[string]string{"sec-websocket-protocol": "base64url.bearer.authorization.k8s.io.eA,v5.channel.k8s.io"})),
		"no credential":                     tryCheck(t, tp, req("", nil)),
	} {
		if !d.ReplayUntil.IsZero() {
			t.Errorf("%s: %s, replay until %v; want never", name, d.Outcome, d.ReplayUntil)
		}
	}

	// A pipeline that logs every decision at its level never replays: the
	// replays would have no log line.
	p, err := NewPipeline(Options{LogRequests: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: (&fakeClock{now: testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(testTable(ca.CertPEM))
	if d, ok := p.TryCheck(req(cert, nil)); !ok || !d.Allowed() || !d.ReplayUntil.IsZero() {
		t.Errorf("logging every decision: %s, replay until %v; want allowed, never replayed", d.Outcome, d.ReplayUntil)
	}
}

// TestReplayUntilAnonymous: on a cluster that allows anonymous requests, a
// request with no credential at all is replayed like a certificate's (the
// key carries no credential field, and nothing expires); one that asks to
// impersonate someone is not, and a cluster that refuses anonymous
// requests replays no refusal.
func TestReplayUntilAnonymous(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	table := testTable(ca.CertPEM)
	table.Clusters["a"].Anonymous = true
	tp.SetPolicy(table)
	req := &Request{Cluster: "a", Method: "GET", Path: "/version"}
	d, ok := tp.TryCheck(req)
	if !ok || !d.Allowed() || d.User != "system:anonymous" || !d.ReplayUntil.Equal(testNow.Add(MaxReplay)) {
		t.Errorf("anonymous: %s as %q (inline %v), replay until %v; want allowed as system:anonymous until now+MaxReplay",
			d.Outcome, d.User, ok, d.ReplayUntil)
	}
	asSomeone := &Request{Cluster: "a", Method: "GET", Path: "/version", Headers: map[string]string{"impersonate-user": "jane"}}
	if d := tryCheck(t, tp, asSomeone); !d.ReplayUntil.IsZero() {
		t.Errorf("anonymous impersonating: %s, replay until %v; want never", d.Outcome, d.ReplayUntil)
	}
	tp.SetPolicy(testTable(ca.CertPEM))
	if d := tryCheck(t, tp, req); d.Allowed() || !d.ReplayUntil.IsZero() {
		t.Errorf("anonymous refused: %s, replay until %v; want denied, never replayed", d.Outcome, d.ReplayUntil)
	}
}

// TestReplayUntilTokens: a bearer token's decision made inline (from the
// TokenReview cache) may be replayed until the review stops being fresh,
// when the pipeline would review the token again; never a decision that
// waited for the review, and never with a cache TTL of zero.
func TestReplayUntilTokens(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	const ttl = 2 * time.Second
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.TokenReview.CacheTTL = policy.Duration(ttl) }))
	req := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", Headers: map[string]string{"authorization": "Bearer good"}}

	before := time.Now()
	if d := tp.Check(context.Background(), req); !d.Allowed() || !d.ReplayUntil.IsZero() {
		t.Fatalf("reviewed token: %s, replay until %v; want allowed, never replayed", d.Outcome, d.ReplayUntil)
	}
	after := time.Now()
	for i := range 2 {
		d, ok := tp.TryCheck(req)
		if !ok || !d.Allowed() || d.ReplayUntil.Before(before.Add(ttl)) || d.ReplayUntil.After(after.Add(ttl)) {
			t.Errorf("cached token, try %d: %s (inline %v), replay until %v; want allowed until the review's end, in [%v, %v]",
				i, d.Outcome, ok, d.ReplayUntil, before.Add(ttl), after.Add(ttl))
		}
	}

	// A WebSocket client's token (its identity has no bound) and a
	// cluster that does not cache reviews: never.
	ws := &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/d/pods/p/exec", Headers: map[string]string{
		"connection": "Upgrade", "upgrade": "websocket",
		"sec-websocket-protocol": "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.Z29vZA",
	}}
	if d := tp.Check(context.Background(), ws); !d.Allowed() || !d.ReplayUntil.IsZero() {
		t.Errorf("WebSocket token: %s, replay until %v; want allowed, never replayed", d.Outcome, d.ReplayUntil)
	}
	tp.SetPolicy(tokenTable(f.upstream(t), func(c *policy.Cluster) { c.TokenReview.CacheTTL = 0 }))
	tp.Check(context.Background(), req)
	if d, ok := tp.TryCheck(req); ok && !d.ReplayUntil.IsZero() {
		t.Errorf("uncached reviews: replay until %v; want never", d.ReplayUntil)
	}
}

func tryCheck(t *testing.T, tp *testPipeline, req *Request) Decision {
	t.Helper()
	d, _ := tp.TryCheck(req)
	return d
}

// TestCountReplays: replays count in the request counters like decisions,
// and in their own counter, but not in the check-duration histogram.
func TestCountReplays(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	tp := newTestPipeline(t, ca)
	d, _ := tp.TryCheck(&Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", PeerCertificate: cert})
	tp.CountReplays("a", &d, 5)
	tp.CountReplays("a", &d, 0)
	for name, want := range map[string]float64{
		"frontdoor_requests_total":           6,
		"frontdoor_authz_requests_total":     6,
		"frontdoor_replayed_decisions_total": 5,
	} {
		if got := sumCounter(t, tp, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := histogramCount(t, tp.reg, "frontdoor_authz_check_duration_seconds"); got != 1 {
		t.Errorf("check-duration samples = %d, want 1 (replays are not checks)", got)
	}
	if a, b := tp.ReplaySeries("a", &d), tp.ReplaySeries("b", &d); a == b {
		t.Errorf("ReplaySeries ignores the cluster: %q", a)
	}
}

// TestReplayUntilFollowsAuthnCacheTTL: a pipeline that re-verifies
// certificates sooner (AuthnCacheTTL) replays no longer than that.
func TestReplayUntilFollowsAuthnCacheTTL(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, cert := ca.issue(t, clientCert{cn: "jane"})
	p, err := NewPipeline(Options{AuthnCacheTTL: 30 * time.Second, Now: (&fakeClock{now: testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(testTable(ca.CertPEM))
	d, ok := p.TryCheck(&Request{Cluster: "a", Method: "GET", Path: "/api", PeerCertificate: cert})
	if !ok || !d.ReplayUntil.Equal(testNow.Add(30*time.Second)) {
		t.Errorf("replay until %v, want now+30s (AuthnCacheTTL)", d.ReplayUntil)
	}
}

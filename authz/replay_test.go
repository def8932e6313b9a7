package authz

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestReplayUntil: only a certificate-authenticated decision made inline,
// with no secret among the headers, may be replayed, and never past the
// certificate's validity or MaxReplay.
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
	for name, d := range map[string]Decision{
		"Check (may wait on the apiserver)": tp.Check(context.Background(), req(cert, nil)),
		"bearer token beside the cert":      tryCheck(t, tp, req(cert, map[string]string{"authorization": "Bearer x"})),
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

package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// TestTrustedHopForwardsItsClient: a gateway started with
// --trusted-forwarding-hops 1 (an L7 load balancer in front of Envoy that
// appends the address it saw) takes the client address from the hop's
// X-Forwarded-For entry, and the apiserver records exactly that address:
// neither the entries the client wrote before it nor the hop's own peer
// address (the shared sandbox trusts no hop: TestUpstreamSeesOnlyGatewayHeaders).
func TestTrustedHopForwardsItsClient(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox with --trusted-forwarding-hops 1", 3*time.Minute)
	s, admin := startGatewaySandbox(t, ctx, "--trusted-forwarding-hops", "1")
	const spoofed, client = "198.51.100.9", "203.0.113.44" // RFC 5737 documentation addresses
	marker := randomHex(t, 6)
	path := "/api/v1/namespaces/default/configmaps?labelSelector=hop-" + marker
	code, resp, body := do(t, ctx, admin, http.MethodGet, s.GatewayURL+path,
		http.Header{"X-Forwarded-For": {spoofed + ", " + client}}, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var events []auditEvent
	if err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		events = auditEventsOf(s, marker)
		return len(events) > 0, nil
	}); err != nil {
		t.Fatalf("no audit event for %s: %v", path, err)
	}
	for _, e := range events {
		if len(e.SourceIPs) == 0 || e.SourceIPs[0] != client || slices.Contains(e.SourceIPs, spoofed) {
			t.Errorf("audit sourceIPs %v, want the hop's client %s first and never the client-written %s", e.SourceIPs, client, spoofed)
		}
		if id := resp.Get("X-Request-Id"); e.AuditID != id || id == "" {
			t.Errorf("audit ID %q, want the gateway request ID %q", e.AuditID, id)
		}
	}
}

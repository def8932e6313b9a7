package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// The edge's adversarial cases: forwarding headers and audit IDs a client
// writes, header names with underscores, and a request smuggled behind a
// refused upgrade.

func init() { registerAdversarial(edgeAdversarialCases) }

// spoofedIP is a documentation address (RFC 5737) no sandbox component uses.
const spoofedIP = "203.0.113.7"

func edgeAdversarialCases(t *testing.T, ctx context.Context, env *advEnv) []advCase {
	mallory, h1, h2 := env.mallory, env.h1, env.h2

	// withRequestID sends GET of secretsTarget with c and h and keeps the
	// gateway's request ID (x-request-id of the response) in *id.
	withRequestID := func(c *http.Client, h http.Header, id *string) func(*testing.T, context.Context, string) []int {
		return func(t *testing.T, ctx context.Context, marker string) []int {
			code, resp, _ := do(t, ctx, c, "GET", sb.GatewayURL+secretsTarget(marker), h, nil)
			*id = resp.Get("X-Request-Id")
			if *id == "" {
				t.Errorf("no x-request-id in the response: the client cannot name its request in the audit log")
			}
			return []int{code}
		}
	}
	// auditIDIs checks that every event carries the gateway request ID.
	auditIDIs := func(id *string) func(*testing.T, []auditEvent) {
		return func(t *testing.T, events []auditEvent) {
			for _, e := range events {
				if e.AuditID == "" || e.AuditID != *id {
					t.Errorf("audit ID %q, want the gateway request ID %q", e.AuditID, *id)
				}
			}
		}
	}
	// sourceIPsReal checks that no event's sourceIPs holds a spoofed value
	// and that the first is the client's real address (loopback here).
	sourceIPsReal := func(t *testing.T, events []auditEvent) {
		for _, e := range events {
			if slices.Contains(e.SourceIPs, spoofedIP) {
				t.Errorf("audit sourceIPs %v contain the client's spoofed %s", e.SourceIPs, spoofedIP)
			}
			if len(e.SourceIPs) == 0 || e.SourceIPs[0] != "127.0.0.1" {
				t.Errorf("audit sourceIPs %v, want the client's real address 127.0.0.1 first", e.SourceIPs)
			}
		}
	}
	both := func(fs ...func(*testing.T, []auditEvent)) func(*testing.T, []auditEvent) {
		return func(t *testing.T, events []auditEvent) {
			if len(events) == 0 {
				t.Error("no audit event to check")
			}
			for _, f := range fs {
				f(t, events)
			}
		}
	}

	var plainID, h2ID, chosenID, xffID, xffH2ID, realIPID, fwdID string
	const forbidden, badRequest = http.StatusForbidden, http.StatusBadRequest
	return []advCase{
		// The gateway's request ID is every replica's audit ID, so the
		// access log line and the audit events of a request join.
		{name: "a plain request's audit ID is the gateway request ID", send: withRequestID(h1, nil, &plainID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(auditIDIs(&plainID), sourceIPsReal)},
		{name: "a plain HTTP/2 request's audit ID is the gateway request ID", send: withRequestID(h2, nil, &h2ID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(auditIDIs(&h2ID), sourceIPsReal)},
		{name: "Audit-ID chosen by the client is replaced by the gateway request ID",
			send: withRequestID(h1, http.Header{"Audit-Id": {"mallory-chosen-audit-id"}}, &chosenID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(auditIDIs(&chosenID))},

		// kube-apiserver records X-Forwarded-For (then X-Real-Ip) as the
		// audit sourceIPs: a client must not be able to write them.
		{name: "X-Forwarded-For spoofed never reaches the audit sourceIPs",
			send: withRequestID(h1, http.Header{"X-Forwarded-For": {spoofedIP}}, &xffID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(sourceIPsReal, auditIDIs(&xffID))},
		{name: "X-Forwarded-For spoofed with several entries over HTTP/2 never reaches the audit sourceIPs",
			send: withRequestID(h2, http.Header{"X-Forwarded-For": {spoofedIP + ", 10.0.0.1", "198.51.100.1"}}, &xffH2ID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(sourceIPsReal, auditIDIs(&xffH2ID))},
		{name: "X-Real-Ip spoofed never reaches the audit sourceIPs",
			send: withRequestID(h1, http.Header{"X-Real-Ip": {spoofedIP}}, &realIPID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(sourceIPsReal, auditIDIs(&realIPID))},
		{name: "Forwarded spoofed never reaches the audit sourceIPs",
			send: withRequestID(h1, http.Header{"Forwarded": {"for=" + spoofedIP}}, &fwdID), want: []int{forbidden},
			reachedAs: "mallory", audit: both(sourceIPsReal, auditIDIs(&fwdID))},

		// A header name with an underscore is refused before anything reads
		// it: impersonate_user is no Impersonate-* header to the request
		// service, but a server or proxy folding _ into - would take it as one.
		{name: "impersonate_user (underscore) is 400 at the gateway", send: env.raw(mallory.certPEM, mallory.keyPEM,
			"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nimpersonate_user: sandbox-admin\r\n\r\n"), want: []int{badRequest}},
		{name: "Impersonate_Group system:masters (underscore) is 400 at the gateway", send: env.raw(mallory.certPEM, mallory.keyPEM,
			"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nImpersonate-User: mallory\r\nImpersonate_Group: system:masters\r\n\r\n"), want: []int{badRequest}},
		{name: "x_frontdoor_rule (underscore) is 400 at the gateway", send: env.raw(mallory.certPEM, mallory.keyPEM,
			"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nx_frontdoor_rule: default\r\n\r\n"), want: []int{badRequest}},

		// Upgrade smuggling: an authenticated SPDY exec to a pod that does
		// not exist (kube-apiserver answers without 101), with a request
		// pipelined behind it as "upgrade payload". Envoy must hold that
		// payload until a 101 (the runtime guard the bootstrap pins): had
		// it gone out, it would run on the gateway's own connection with
		// its impersonation rights, unseen by the request service.
		{name: "a request smuggled behind a refused SPDY exec upgrade never reaches an apiserver", send: env.raw(mallory.certPEM, mallory.keyPEM,
			"POST /api/v1/namespaces/default/pods/no-such-pod-MARKER/exec?command=date&stdout=true HTTP/1.1\r\nHost: gw\r\n"+
				"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"+
				"GET /api/v1/namespaces/kube-system/secrets?m=MARKER-smuggled HTTP/1.1\r\nHost: gw\r\nImpersonate-User: sandbox-admin\r\n\r\n"),
			want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true,
			audit: func(t *testing.T, events []auditEvent) {
				for _, e := range events {
					if strings.Contains(e.RequestURI, "-smuggled") {
						t.Errorf("the smuggled request reached an apiserver as %q (user %q): %s", e.effectiveUser().Username, e.User.Username, e.RequestURI)
					}
				}
			}},
	}
}

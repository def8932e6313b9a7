package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// FuzzPipelineCredentials feeds arbitrary header pairs (bearer tokens,
// WebSocket subprotocols, Impersonate-* in any spelling) through the whole
// pipeline against a fake upstream that knows one token ("good", user
// alice) and lets alice impersonate only user bob. Whatever arrives: no
// panic, every denial carries a Status, and an allowed request is forwarded
// as alice, bob or system:anonymous, with Authorization removed and no
// bearer token left in the subprotocols.
func FuzzPipelineCredentials(f *testing.F) {
	up := newFakeUpstream(f)
	up.tokens["good"] = authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	up.allow = func(s authorizationv1.SubjectAccessReviewSpec) bool {
		ra := s.ResourceAttributes
		return s.User == "alice" && ra != nil && ra.Verb == "impersonate" && ra.Resource == "users" && ra.Name == "bob"
	}
	p, err := NewPipeline(Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	p.SetPolicy(tokenTable(up.upstream(f), func(c *policy.Cluster) { c.Anonymous = true }))
	ws := bearerProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte("good"))
	for _, s := range [][4]string{
		{"authorization", "Bearer good", "impersonate-user", "bob"},
		{"Authorization", "bearer good", "IMPERSONATE-GROUP", "system:masters"},
		{"authorization", "Bearer good,Bearer bad", "impersonate-uid", "1"},
		{headerWSProtocol, ws + ",v5.channel.k8s.io", "upgrade", "websocket"},
		{headerWSProtocol, ws, "connection", "Upgrade"},
		{"impersonate-extra-a%2fb", "x", "impersonate-user", "bob"},
		{"authorization", "Basic Zm9v", "x-remote-user", "root"},
		{"", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := map[string]string{k1: v1, k2: v2}
		if strings.EqualFold(k1, headerWSProtocol) || strings.EqualFold(k2, headerWSProtocol) {
			h["connection"], h["upgrade"] = "Upgrade", "websocket"
		}
		d := p.Check(context.Background(), viaExtAuthz(&Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods", Headers: h}))
		if !d.Allowed() {
			if d.Code < 400 || !bytes.HasPrefix(d.Body, []byte(`{"kind":"Status"`)) {
				t.Fatalf("denial without status: %+v", d)
			}
			return
		}
		if !slices.Contains([]string{"alice", "bob", "system:anonymous"}, impersonatedUser(d)) {
			t.Fatalf("forwarded as %q: %+v", impersonatedUser(d), d)
		}
		if !slices.Contains(d.RemoveHeaders, "authorization") {
			t.Fatalf("authorization not removed: %v", d.RemoveHeaders)
		}
		for _, s := range d.SetHeaders {
			if strings.Contains(s.Value, bearerProtocolPrefix) {
				t.Fatalf("bearer subprotocol forwarded: %+v", s)
			}
		}
	})
}

func impersonatedUser(d Decision) string {
	for _, h := range d.SetHeaders {
		if h.Name == forwardingNames[forwardImpersonation].user {
			return h.Value
		}
	}
	return ""
}

// FuzzCredentialParsing checks the credential parsers on their own: they
// never panic, and what they extract is consistent with their input.
func FuzzCredentialParsing(f *testing.F) {
	f.Add("Bearer abc", bearerProtocolPrefix+"YWJj, v5.channel.k8s.io", "Impersonate-Extra-A%2Fb")
	f.Add("bearer  x", ",,", "impersonate-group")
	f.Fuzz(func(t *testing.T, auth, protocols, name string) {
		if tok, ok := bearerToken(map[string]string{"authorization": auth}); ok && (tok == "" || !strings.Contains(auth, tok) || strings.Contains(tok, " ")) {
			t.Fatalf("bearerToken(%q) = %q", auth, tok)
		}
		// A token subprotocol is one that starts with the prefix, as
		// kube-apiserver's websocket authenticator reads them ("x" +
		// prefix is someone else's subprotocol, and no credential).
		filtered, _ := stripBearerProtocol(protocols)
		for p := range strings.SplitSeq(filtered, ",") {
			if strings.HasPrefix(strings.TrimSpace(p), bearerProtocolPrefix) {
				t.Fatalf("stripBearerProtocol(%q) kept a token: %q", protocols, filtered)
			}
		}
		ih, _ := impersonationHeaders(map[string]string{name: protocols})
		for k := range ih {
			if !strings.HasPrefix(k, "Impersonate-") {
				t.Fatalf("impersonationHeaders(%q) produced %q", name, k)
			}
		}
	})
}

// BenchmarkPipelineTokenCached measures the hot path for token clients: a
// repeated request whose bearer token's TokenReview is cached.
func BenchmarkPipelineTokenCached(b *testing.B) {
	up := newFakeUpstream(b)
	up.tokens["tok"] = saUser
	p, err := NewPipeline(Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	p.SetPolicy(tokenTable(up.upstream(b), nil))
	path := "/api/v1/namespaces/default/pods/web-0"
	req := &Request{
		Cluster: "a", Method: "GET", Path: path,
		Headers: map[string]string{
			":authority": "cluster-a.example.com", ":method": "GET", ":path": path,
			"accept": "application/json", "user-agent": "controller/v1.37.2", "authorization": "Bearer tok",
			"x-forwarded-proto": "https", "x-request-id": "0f1e2d3c",
		},
	}
	benchAllowed(b, p, req)
	if n := up.tokenReviews.Load(); n != 1 {
		b.Fatalf("TokenReviews = %d, want 1", n)
	}
}

package authz

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubefrontdoor/frontdoor/internal/testoidc"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// testIssuer is the shared test OIDC issuer with this file's claims and
// authenticator configuration.
type testIssuer struct{ *testoidc.Issuer }

func newTestIssuer(t *testing.T) *testIssuer { return &testIssuer{testoidc.New(t, "k1")} }

// claims are a valid token's claims for is, for audience aud.
func (is *testIssuer) claims(aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL(), "aud": aud, "sub": "jane", "groups": []string{"dev", "ops"}, "tenant": "blue",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// jwtConfig is an AuthenticationConfiguration jwt entry for is with CEL
// mappings of every user field.
func (is *testIssuer) jwtConfig(t *testing.T, usernamePrefix string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"issuer":               map[string]any{"url": is.URL(), "audiences": []string{"frontdoor"}, "certificateAuthority": is.CAPEM()},
		"claimValidationRules": []map[string]string{{"expression": "claims.tenant != 'red'", "message": "red tenant refused"}},
		"claimMappings": map[string]any{
			"username": map[string]string{"expression": "'" + usernamePrefix + "' + claims.sub"},
			"groups":   map[string]string{"expression": "claims.groups"},
			"uid":      map[string]string{"expression": "'uid-' + claims.sub"},
			"extra":    []map[string]string{{"key": "example.com/tenant", "valueExpression": "claims.tenant"}},
		},
		"userValidationRules": []map[string]string{{"expression": "!user.username.startsWith('system:')", "message": "no system users"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwtTable(jwt ...json.RawMessage) *policy.Table {
	return &policy.Table{Version: "1", Clusters: map[string]*policy.Cluster{"a": {Name: "a", DefaultRule: "default", JWT: jwt}}}
}

func jwtRequest(token string) *Request {
	return &Request{Cluster: "a", Method: "GET", Path: "/api/v1/pods", Headers: map[string]string{"authorization": "Bearer " + token}}
}

// waitJWT checks token until the issuer's discovery is done (its
// authenticator initializes in the background) and returns the decision.
func waitJWT(t *testing.T, tp *testPipeline, token string) Decision {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d := tp.Check(context.Background(), jwtRequest(token))
		if d.Allowed() || time.Now().After(deadline) {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A JWT of a configured issuer is forwarded as the user its CEL claim
// mappings make (user, groups, uid, extras), with method "jwt" metrics.
func TestJWTMapsClaims(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	d := waitJWT(t, tp, is.Sign(t, is.claims("frontdoor")))
	if !d.Allowed() {
		t.Fatalf("decision = %s %d %s", d.Outcome, d.Code, d.Body)
	}
	got := map[string][]string{}
	for _, h := range identityHeaders(d) {
		got[h.Name] = append(got[h.Name], h.Value)
	}
	want := map[string][]string{
		"Impersonate-User":                       {"oidc:jane"},
		"Impersonate-Uid":                        {"uid-jane"},
		"Impersonate-Group":                      {"dev", "ops"}, // system:authenticated: the apiserver adds it
		"Impersonate-Extra-example.com%2ftenant": {"blue"},
	}
	if len(got) != len(want) {
		t.Errorf("identity headers = %v, want %v", got, want)
	}
	for k, v := range want {
		if g := got[k]; !slices.Equal(g, v) {
			t.Errorf("%s = %v, want %v (all: %v)", k, g, v, got)
		}
	}
	if n := testutil.ToFloat64(tp.reqMetrics.authnResults.WithLabelValues("jwt", "success")); n < 1 {
		t.Errorf("authn results {method=jwt,result=success} = %v", n)
	}
}

// Each bad token is refused 401 with the Status body.
func TestJWTBadTokens(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	if d := waitJWT(t, tp, is.Sign(t, is.claims("frontdoor"))); !d.Allowed() {
		t.Fatalf("good token: %s %s", d.Outcome, d.Body)
	}
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) map[string]any { c := is.claims("frontdoor"); c[k] = v; return c }
	_, kid := is.Key()
	for name, token := range map[string]string{
		"expired":          is.Sign(t, with("exp", time.Now().Add(-time.Hour).Unix())),
		"wrong audience":   is.Sign(t, is.claims("other")),
		"wrong issuer":     is.Sign(t, with("iss", "https://elsewhere.example")),
		"unsigned":         testoidc.Sign(t, nil, "", is.claims("frontdoor")),
		"foreign key":      testoidc.Sign(t, foreign, kid, is.claims("frontdoor")),
		"claim rule":       is.Sign(t, with("tenant", "red")),
		"user rule":        is.Sign(t, with("sub", "system:admin")),
		"not a JWT at all": "abc",
	} {
		t.Run(name, func(t *testing.T) {
			tok := token
			if name == "user rule" {
				// The prefix keeps "system:" out; map the bare sub instead.
				tp2 := newTestPipeline(t, nil)
				tp2.SetPolicy(jwtTable(is.jwtConfig(t, "")))
				_ = waitJWT(t, tp2, is.Sign(t, is.claims("frontdoor")))
				d := tp2.Check(context.Background(), jwtRequest(tok))
				if d.Outcome != Unauthenticated || d.Code != http.StatusUnauthorized || string(d.Body) != string(unauthorizedBody) {
					t.Fatalf("decision = %s %d %s", d.Outcome, d.Code, d.Body)
				}
				return
			}
			d := tp.Check(context.Background(), jwtRequest(tok))
			if d.Outcome != Unauthenticated || d.Code != http.StatusUnauthorized || string(d.Body) != string(unauthorizedBody) {
				t.Fatalf("decision = %s %d %s", d.Outcome, d.Code, d.Body)
			}
		})
	}
}

// The issuer's key is rotated while the pipeline runs: a token of the new
// key authenticates (the unknown kid makes kube-apiserver's authenticator
// fetch the JWKS again), and an unused token of the old key no longer does.
func TestJWTKeyRotation(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	oldKey, oldKid := is.Key()
	if d := waitJWT(t, tp, testoidc.Sign(t, oldKey, oldKid, is.claims("frontdoor"))); !d.Allowed() {
		t.Fatalf("old key before rotation: %s %s", d.Outcome, d.Body)
	}
	newKey := is.Rotate(t, "k2")
	if d := tp.Check(context.Background(), jwtRequest(testoidc.Sign(t, newKey, "k2", is.claims("frontdoor")))); !d.Allowed() {
		t.Fatalf("new key after rotation: %s %d %s", d.Outcome, d.Code, d.Body)
	}
	// An unused old-key token (its own subject each time, so no identity
	// cache answers it) is refused once the authenticator holds the new
	// key set. Not necessarily the first try: a key-set fetch the
	// authenticator started before the rotation may land after the one the
	// new kid caused (seen on a loaded host), and the next unknown-kid
	// refresh replaces it. kube-apiserver's own JWT authenticator behaves
	// the same.
	var d Decision
	for i := 0; i < 50; i++ {
		fresh := is.claims("frontdoor")
		fresh["sub"] = fmt.Sprintf("other-%d", i)
		if d = tp.Check(context.Background(), jwtRequest(testoidc.Sign(t, oldKey, oldKid, fresh))); d.Outcome == Unauthenticated {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("old key 5 s after rotation: %s %d, want unauthenticated", d.Outcome, d.Code)
}

// A new policy keeps an unchanged issuer (its fetched keys), rebuilds an
// edited one and stops the issuers it drops.
func TestJWTReloadKeepsUnchangedIssuers(t *testing.T) {
	a, b := newTestIssuer(t), newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(a.jwtConfig(t, "a:"), b.jwtConfig(t, "b:")))
	first := tp.cluster("a").jwt.issuers
	if d := waitJWT(t, tp, b.Sign(t, b.claims("frontdoor"))); !d.Allowed() || d.User != "b:jane" {
		t.Fatalf("b before reload: %s %s", d.Outcome, d.User)
	}
	kept := tp.cluster("a").jwt
	tp.SetPolicy(jwtTable(a.jwtConfig(t, "a:"), b.jwtConfig(t, "b:")))
	if tp.cluster("a").jwt != kept {
		t.Error("an unchanged JWT configuration lost its authenticator (and its identity cache)")
	}
	tp.SetPolicy(jwtTable(a.jwtConfig(t, "a:"), b.jwtConfig(t, "b2:")))
	second := tp.cluster("a").jwt.issuers
	if second[0] != first[0] {
		t.Error("unchanged issuer a was rebuilt")
	}
	if second[1] == first[1] {
		t.Error("edited issuer b was kept")
	}
	d := waitJWT(t, tp, b.Sign(t, with(b.claims("frontdoor"), "sub", "joe")))
	if !d.Allowed() || d.User != "b2:joe" {
		t.Fatalf("b after reload: %s %s", d.Outcome, d.User)
	}
	tp.SetPolicy(jwtTable())
	if tp.cluster("a").jwt != nil {
		t.Error("JWT authenticator left without issuers")
	}
	if d := tp.Check(context.Background(), jwtRequest(a.Sign(t, a.claims("frontdoor")))); d.Outcome != Unauthenticated {
		t.Errorf("token of a removed issuer: %s", d.Outcome)
	}
}

func with(c map[string]any, k string, v any) map[string]any { c[k] = v; return c }

// A JWT in the WebSocket bearer subprotocol authenticates as in the
// Authorization header (kube-apiserver's protocol authenticator in front of
// the issuers), and the subprotocol is not forwarded.
func TestJWTWebSocketProtocol(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	token := is.Sign(t, is.claims("frontdoor"))
	waitJWT(t, tp, token)
	check := func(protocols string) Decision {
		return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/d/pods/p/exec",
			Headers: map[string]string{"connection": "Upgrade", "upgrade": "websocket", headerWSProtocol: protocols}})
	}
	d := check(bearerProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte(token)) + ",v5.channel.k8s.io")
	if !d.Allowed() || d.User != "oidc:jane" {
		t.Fatalf("decision = %s %q", d.Outcome, d.User)
	}
	for _, h := range d.SetHeaders {
		if h.Name == headerWSProtocol && h.Value != "v5.channel.k8s.io" {
			t.Errorf("forwarded subprotocols = %q", h.Value)
		}
	}
	if n := testutil.ToFloat64(tp.reqMetrics.authnResults.WithLabelValues("websocket_jwt", "success")); n != 1 {
		t.Errorf("authn results {method=websocket_jwt,result=success} = %v", n)
	}
	bad := is.Sign(t, with(is.claims("frontdoor"), "aud", "other"))
	if d := check(bearerProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte(bad)) + ",v5.channel.k8s.io"); d.Outcome != Unauthenticated {
		t.Errorf("wrong-audience token in the subprotocol: %s", d.Outcome)
	}
}

// TryCheck (Envoy's worker thread, in process) never verifies a JWT
// itself, since a key fetch may be needed: a new token goes to Check, and
// once authenticated it is answered inline from the identity cache.
func TestJWTTryCheckOnlyFromCache(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	token := is.Sign(t, is.claims("frontdoor"))
	if _, ok := tp.TryCheck(jwtRequest(token)); ok {
		t.Fatal("TryCheck decided a JWT it never verified")
	}
	waitJWT(t, tp, token)
	d, ok := tp.TryCheck(jwtRequest(token))
	if !ok || !d.Allowed() || d.User != "oidc:jane" {
		t.Fatalf("TryCheck of a verified JWT = %v %s %q", ok, d.Outcome, d.User)
	}
}

// A JWT's decision made inline may be replayed while its identity is
// cached (jwtCacheTTL from its verification, on the wall clock as the
// cache), when the pipeline would verify the token again; never the
// decision that verified it.
func TestJWTReplayUntilCacheEnd(t *testing.T) {
	is := newTestIssuer(t)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(jwtTable(is.jwtConfig(t, "oidc:")))
	token := is.Sign(t, is.claims("frontdoor"))
	before := time.Now()
	if d := waitJWT(t, tp, token); !d.Allowed() || !d.ReplayUntil.IsZero() {
		t.Fatalf("verifying decision: %s, replay until %v; want allowed, never replayed", d.Outcome, d.ReplayUntil)
	}
	after := time.Now()
	d, ok := tp.TryCheck(jwtRequest(token))
	if !ok || !d.Allowed() || d.ReplayUntil.Before(before.Add(jwtCacheTTL)) || d.ReplayUntil.After(after.Add(jwtCacheTTL)) {
		t.Errorf("cached JWT: %s (inline %v), replay until %v; want allowed until its cache entry ends, in [%v, %v]",
			d.Outcome, ok, d.ReplayUntil, before.Add(jwtCacheTTL), after.Add(jwtCacheTTL))
	}
}

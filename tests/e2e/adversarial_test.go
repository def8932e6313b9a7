package e2e

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

// The adversarial suite: what a hostile or broken client can send, and
// what must happen. Every case states its expected behaviour in its name
// and asserts the apiserver-side effect from the replicas' audit logs:
// either the request never reached an apiserver, or it reached it as the
// identity the client actually holds (never as anyone else). Each request
// carries a unique marker in its target so its audit events can be found.

// advCase is one hostile request.
type advCase struct {
	name string
	// send issues the request with marker in its target and returns the
	// HTTP status codes the client saw (several for pipelined raw bytes).
	send func(t *testing.T, ctx context.Context, marker string) []int
	// want are the acceptable status codes of the first response.
	want []int
	// reachedAs: "" means the request must not reach any apiserver;
	// otherwise every audit event of it must name this user. anyOrNone
	// accepts not reaching an apiserver as well.
	reachedAs string
	anyOrNone bool
	// audit, if set, checks more of the audit events of the request
	// (every replica's): what the apiserver recorded about it.
	audit func(t *testing.T, events []auditEvent)
}

// advEnv is what every case set shares: hostile clients and identities.
type advEnv struct {
	mallory     user
	h1, h2      *http.Client // mallory over HTTP/1.1 and HTTP/2
	anon        *http.Client // no client certificate, HTTP/1.1
	saName      string
	saUser      string
	saToken     string
	carolClient *http.Client // carol may impersonate bob only
}

// advCaseSet contributes cases to the suite; each file of the suite
// registers its sets with registerAdversarial in an init function.
type advCaseSet func(t *testing.T, ctx context.Context, env *advEnv) []advCase

var advCaseSets []advCaseSet

func registerAdversarial(s advCaseSet) { advCaseSets = append(advCaseSets, s) }

// minAdversarialCases is the size the suite must keep.
const minAdversarialCases = 80

func init() { registerAdversarial(coreAdversarialCases) }

// get sends GET of secretsTarget with c and h.
func (env *advEnv) get(c *http.Client, h http.Header) func(*testing.T, context.Context, string) []int {
	return func(t *testing.T, ctx context.Context, marker string) []int {
		code, _, _ := do(t, ctx, c, "GET", sb.GatewayURL+secretsTarget(marker), h, nil)
		return []int{code}
	}
}

// getPath sends GET of path (which ends in ? or &) with the marker appended.
func (env *advEnv) getPath(c *http.Client, path string) func(*testing.T, context.Context, string) []int {
	return func(t *testing.T, ctx context.Context, marker string) []int {
		code, _, _ := do(t, ctx, c, "GET", sb.GatewayURL+path+"m="+marker, nil, nil)
		return []int{code}
	}
}

// raw writes format (MARKER replaced) over TLS with the given certificate.
func (env *advEnv) raw(certPEM, keyPEM []byte, format string) func(*testing.T, context.Context, string) []int {
	return func(t *testing.T, ctx context.Context, marker string) []int {
		return rawExchange(t, ctx, certPEM, keyPEM, strings.ReplaceAll(format, "MARKER", marker))
	}
}

// withCert sends GET of secretsTarget over HTTP/1.1 with another certificate.
func (env *advEnv) withCert(t *testing.T, certPEM, keyPEM []byte, h http.Header) func(*testing.T, context.Context, string) []int {
	return env.get(http1Client(t, certPEM, keyPEM), h)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// secretsTarget is what attackers want: kube-system's secrets, which only
// admins may list.
func secretsTarget(marker string) string {
	return "/api/v1/namespaces/kube-system/secrets?limit=1&m=" + marker
}

func TestAdversarial(t *testing.T) {
	ctx := setup(t, 5*time.Minute)
	ensureAltCluster(t, ctx)

	mallory := newUser("mallory", "dev")
	env := &advEnv{
		mallory: mallory,
		h1:      http1Client(t, mallory.certPEM, mallory.keyPEM),
		h2:      httpClient(t, "", mallory.certPEM, mallory.keyPEM),
		anon:    http1Client(t, nil, nil),
		saName:  "adv-" + uniq(),
	}
	serviceAccount(t, ctx, env.saName)
	env.saUser = "system:serviceaccount:default:" + env.saName
	env.saToken = tokenFor(t, ctx, env.saName, nil)

	// carol may impersonate user bob and nothing else.
	bindRules(t, ctx, "adv-imp-"+uniq(), "carol",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"bob"}})
	carol := newUser("carol")
	env.carolClient = http1Client(t, carol.certPEM, carol.keyPEM)

	var cases []advCase
	for _, set := range advCaseSets {
		cases = append(cases, set(t, ctx, env)...)
	}

	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			marker := "adv" + uniq()
			codes := tc.send(t, ctx, marker)
			if len(codes) == 0 {
				t.Fatalf("no HTTP response; want one of %v", tc.want)
			}
			if !slices.Contains(tc.want, codes[0]) {
				t.Errorf("status %d, want one of %v", codes[0], tc.want)
			}
			for _, c := range codes[1:] {
				if c >= 200 && c < 300 {
					t.Errorf("a second (smuggled) response succeeded: %v", codes)
				}
			}
			switch {
			case tc.reachedAs == "":
				reachedAs(t, marker, nil)
			case tc.anyOrNone:
				for _, e := range auditEvents(t, marker) {
					if u := e.effectiveUser().Username; u != tc.reachedAs {
						t.Errorf("reached an apiserver as %q, want %q or not at all", u, tc.reachedAs)
					}
				}
			default:
				reachedAs(t, marker, &tc.reachedAs)
			}
			if tc.audit != nil {
				tc.audit(t, auditEvents(t, marker))
			}
		})
	}
	if len(cases) < minAdversarialCases {
		t.Errorf("the adversarial suite has %d cases, want at least %d", len(cases), minAdversarialCases)
	}
}

// coreAdversarialCases: impersonation headers, upgrades, internal and
// front-proxy headers, bearer tokens, certificates, paths, sizes and
// request smuggling.
func coreAdversarialCases(t *testing.T, ctx context.Context, env *advEnv) []advCase {
	mallory, h1, h2, anon := env.mallory, env.h1, env.h2, env.anon
	saName, saUser, saToken, carolClient := env.saName, env.saUser, env.saToken, env.carolClient
	get, getPath, raw := env.get, env.getPath, env.raw
	withCert := func(certPEM, keyPEM []byte, h http.Header) func(*testing.T, context.Context, string) []int {
		return env.withCert(t, certPEM, keyPEM, h)
	}
	garbage := func(n int) string { return strings.Repeat("x", n) }
	wsProtocol := func(tok string) string {
		return "base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte(tok))
	}

	foreignCert, foreignKey := mintCert(t, true, &x509.Certificate{Subject: pkix.Name{CommonName: "sandbox-admin", Organization: []string{"system:masters"}}})
	expiredCert, expiredKey := mintCert(t, false, &x509.Certificate{Subject: pkix.Name{CommonName: "sandbox-admin", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	futureCert, futureKey := mintCert(t, false, &x509.Certificate{Subject: pkix.Name{CommonName: "sandbox-admin", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)})
	noCNCert, noCNKey := mintCert(t, false, &x509.Certificate{Subject: pkix.Name{Organization: []string{"system:masters"}}})
	serverCert, serverKey := mintCert(t, false, &x509.Certificate{Subject: pkix.Name{CommonName: "sandbox-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})

	const (
		forbidden    = http.StatusForbidden
		unauthorized = http.StatusUnauthorized
		badRequest   = http.StatusBadRequest
	)
	return []advCase{
		// Impersonate-* from a client is a request to impersonate,
		// authorized like kube-apiserver does; mallory may not.
		{name: "Impersonate-User canonical without permission is 403 at the gateway", send: get(h1, http.Header{"Impersonate-User": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "impersonate-user lowercase is 403 at the gateway", send: get(h1, http.Header{"impersonate-user": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "IMPERSONATE-USER uppercase is 403 at the gateway", send: get(h1, http.Header{"IMPERSONATE-USER": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "iMpErSoNaTe-UsEr mixed case is 403 at the gateway", send: get(h1, http.Header{"iMpErSoNaTe-UsEr": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "Impersonate-User duplicated is 403 at the gateway", send: get(h1, http.Header{"Impersonate-User": {"sandbox-admin", "bob"}}), want: []int{forbidden}},
		{name: "Impersonate-User over HTTP/2 is 403 at the gateway", send: get(h2, http.Header{"Impersonate-User": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "Impersonate-Group system:masters without a user is 400 at the gateway", send: get(h1, http.Header{"Impersonate-Group": {"system:masters"}}), want: []int{badRequest}},
		{name: "impersonate-group in two spellings without a user is 400 at the gateway", send: get(h1, http.Header{"impersonate-group": {"system:masters"}, "Impersonate-Group": {"system:masters"}}), want: []int{badRequest}},
		{name: "Impersonate-User with duplicated Impersonate-Group system:masters is 403 at the gateway", send: get(h1, http.Header{"Impersonate-User": {"mallory"}, "Impersonate-Group": {"system:masters", "system:masters"}}), want: []int{forbidden}},
		{name: "Impersonate-Uid without a user is 400 at the gateway", send: get(h1, http.Header{"Impersonate-Uid": {"0"}}), want: []int{badRequest}},
		{name: "Impersonate-Extra-Scopes without a user is 400 at the gateway", send: get(h1, http.Header{"Impersonate-Extra-Scopes": {"*"}}), want: []int{badRequest}},
		{name: "Impersonate-Extra with a percent-encoded key is 403 at the gateway", send: get(h1, http.Header{"Impersonate-User": {"mallory"}, "Impersonate-Extra-Example.com%2Fscopes": {"*"}}), want: []int{forbidden}},
		{name: "Impersonate-Extra with a malformed percent key is 403 at the gateway", send: get(h1, http.Header{"Impersonate-User": {"mallory"}, "Impersonate-Extra-%zz": {"*"}}), want: []int{forbidden}},
		{name: "a token user without permission asking Impersonate-User is 403 at the gateway", send: get(anon, http.Header{"Authorization": {"Bearer " + saToken}, "Impersonate-User": {"sandbox-admin"}}), want: []int{forbidden}},
		{name: "--as-group system:masters by a client allowed only --as bob is 403 at the gateway", send: get(carolClient, http.Header{"Impersonate-User": {"bob"}, "Impersonate-Group": {"system:masters"}}), want: []int{forbidden}},
		{name: "--as-uid by a client allowed only --as bob is 403 at the gateway", send: get(carolClient, http.Header{"Impersonate-User": {"bob"}, "Impersonate-Uid": {"0"}}), want: []int{forbidden}},
		{name: "--as bob by a client allowed to is forwarded as bob", send: get(carolClient, http.Header{"Impersonate-User": {"bob"}}), want: []int{forbidden}, reachedAs: "bob"},

		// An Upgrade takes Envoy's upgrade route, which no dispatch policy
		// limits: the gateway refuses it where kube-apiserver would not
		// upgrade (it would serve the list past every bucket and cap).
		{name: "a LIST with Upgrade: SPDY/3.1 is 400 at the gateway", send: get(h1, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}), want: []int{badRequest}},
		{name: "a LIST with Upgrade: websocket is 400 at the gateway", send: get(h1, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}), want: []int{badRequest}},
		{name: "a watch with sendInitialEvents and Upgrade: SPDY/3.1 is 400 at the gateway", send: raw(mallory.certPEM, mallory.keyPEM,
			"GET /api/v1/namespaces/kube-system/secrets?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&m=MARKER HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"), want: []int{badRequest}},

		// Frontdoor's internal headers and the front-proxy headers gain nothing.
		{name: "X-Frontdoor-Rule spoofed is forwarded as mallory", send: get(h1, http.Header{"X-Frontdoor-Rule": {"anything"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "x-frontdoor-user lowercase spoofed is forwarded as mallory", send: get(h1, http.Header{"x-frontdoor-user": {"sandbox-admin"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "X-FRONTDOOR-IDENTITY duplicated is forwarded as mallory", send: get(h1, http.Header{"X-FRONTDOOR-IDENTITY": {"sandbox-admin", "x"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "X-Remote-User spoofed is forwarded as mallory", send: get(h1, http.Header{"X-Remote-User": {"sandbox-admin"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "x-remote-group system:masters lowercase is forwarded as mallory", send: get(h1, http.Header{"x-remote-user": {"sandbox-admin"}, "x-remote-group": {"system:masters"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "X-REMOTE-USER duplicated is forwarded as mallory", send: get(h1, http.Header{"X-REMOTE-USER": {"sandbox-admin", "root"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "X-Remote-Extra-Scopes spoofed is forwarded as mallory", send: get(h1, http.Header{"X-Remote-Extra-Scopes": {"*"}}), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "X-Remote-User over HTTP/2 is forwarded as mallory", send: get(h2, http.Header{"X-Remote-User": {"sandbox-admin"}, "X-Remote-Group": {"system:masters"}}), want: []int{forbidden}, reachedAs: "mallory"},

		// Bearer tokens.
		{name: "two Authorization headers are refused 401 at the gateway", send: get(anon, http.Header{"Authorization": {"Bearer " + saToken, "Bearer " + garbage(20)}}), want: []int{unauthorized}},
		{name: "Authorization Basic is 401 at the gateway", send: get(anon, http.Header{"Authorization": {"Basic c2FuZGJveC1hZG1pbjpwYXNz"}}), want: []int{unauthorized}},
		{name: "Authorization Bearer with an empty token is 401 at the gateway", send: get(anon, http.Header{"Authorization": {"Bearer "}}), want: []int{unauthorized}},
		{name: "garbage token of 4 KB is 401 at the gateway", send: get(anon, bearer(garbage(4<<10))), want: []int{unauthorized}},
		{name: "garbage token of 40 KB is 401 at the gateway", send: get(anon, bearer(garbage(40<<10))), want: []int{unauthorized}},
		{name: "garbage token of 100 KB is 431 at Envoy", send: get(anon, bearer(garbage(100<<10))), want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		{name: "expired service-account JWT signed by the cluster key is 401", send: get(anon, bearer(mintSAToken(t, false, saName, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))), want: []int{unauthorized}},
		{name: "not-yet-valid service-account JWT is 401", send: get(anon, bearer(mintSAToken(t, false, saName, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)))), want: []int{unauthorized}},
		{name: "service-account JWT signed by a foreign key is 401", send: get(anon, bearer(mintSAToken(t, true, saName, time.Now().Add(-time.Minute), time.Now().Add(time.Hour)))), want: []int{unauthorized}},
		{name: "lowercase authorization bearer scheme is the token's user", send: get(anon, http.Header{"authorization": {"bearer " + saToken}}), want: []int{forbidden}, reachedAs: saUser},
		{name: "valid token and valid certificate: the certificate wins as in kube-apiserver", send: get(h1, bearer(saToken)), want: []int{forbidden}, reachedAs: "mallory"},
		{name: "valid token and a foreign-CA certificate: the token decides as in kube-apiserver", send: withCert(foreignCert, foreignKey, bearer(saToken)), want: []int{forbidden}, reachedAs: saUser},

		// Certificates.
		{name: "certificate from a foreign CA is 401 at the gateway", send: withCert(foreignCert, foreignKey, nil), want: []int{unauthorized}},
		{name: "expired certificate is 401 at the gateway", send: withCert(expiredCert, expiredKey, nil), want: []int{unauthorized}},
		{name: "not-yet-valid certificate is 401 at the gateway", send: withCert(futureCert, futureKey, nil), want: []int{unauthorized}},
		{name: "certificate without CN is 401 at the gateway", send: withCert(noCNCert, noCNKey, nil), want: []int{unauthorized}},
		{name: "certificate without client-auth usage is 401 at the gateway", send: withCert(serverCert, serverKey, nil), want: []int{unauthorized}},

		// Upgrades are checked before any upgrade happens: never a 101,
		// never forwarded; the request service answers 401.
		{name: "WebSocket exec upgrade without credentials is refused before any upgrade", send: raw(nil, nil,
			"GET /api/v1/namespaces/default/pods/p/exec?command=sh&stdout=1&m=MARKER HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"), want: []int{unauthorized}},
		{name: "SPDY exec upgrade without credentials is refused before any upgrade", send: raw(nil, nil,
			"POST /api/v1/namespaces/default/pods/p/exec?command=sh&stdout=1&m=MARKER HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"+
				"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"), want: []int{unauthorized}},
		{name: "WebSocket with the bearer token as its only subprotocol is refused before any upgrade", send: raw(nil, nil,
			"GET /api/v1/namespaces/default/pods/p/exec?command=sh&stdout=1&m=MARKER HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: "+wsProtocol(saToken)+"\r\n\r\n"), want: []int{unauthorized, forbidden}},

		// Path tricks: never more than mallory may do, and if forwarded, as mallory.
		{name: "double slash //api is never more than mallory", send: getPath(h1, "//api/v1/namespaces/kube-system/secrets?"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "dot-dot segments are never more than mallory", send: getPath(h1, "/api/v1/namespaces/default/../kube-system/secrets?"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "encoded slash %2F is never more than mallory", send: getPath(h1, "/api/v1/namespaces/kube-system%2Fsecrets?"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "encoded dot-dot %2e%2e is never more than mallory", send: getPath(h1, "/api/v1/namespaces/default/%2e%2e/kube-system/secrets?"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "invalid UTF-8 %ff%fe in the path is never more than mallory", send: getPath(h1, "/api/v1/namespaces/%ff%fe/secrets?"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "raw invalid UTF-8 bytes in the path are refused or never more than mallory", send: raw(mallory.certPEM, mallory.keyPEM,
			"GET /api/v1/namespaces/\xff\xfe/secrets?m=MARKER HTTP/1.1\r\nHost: gw\r\n\r\n"), want: []int{forbidden, http.StatusNotFound, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "a 16 KB path is never more than mallory", send: getPath(h1, "/api/v1/namespaces/kube-system/secrets/"+garbage(16<<10)+"?"), want: []int{forbidden, http.StatusNotFound, badRequest, http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge}, reachedAs: "mallory", anyOrNone: true},

		// Oversize headers: Envoy's limits, a clean 431.
		{name: "one 100 KB header is 431 at Envoy", send: get(h1, http.Header{"X-Big": {garbage(100 << 10)}}), want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		{name: "150 headers are 431 at Envoy", send: get(h1, manyHeaders(150)), want: []int{http.StatusRequestHeaderFieldsTooLarge}},

		// HTTP/1.1 request smuggling: the smuggled request (marked) never
		// reaches an apiserver; the front request is refused.
		{name: "Content-Length with Transfer-Encoding chunked is 400 and smuggles nothing", send: raw(mallory.certPEM, mallory.keyPEM,
			"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
				"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nImpersonate-User: sandbox-admin\r\n\r\n"), want: []int{badRequest}},
		{name: "two different Content-Length headers are 400 and smuggle nothing", send: raw(mallory.certPEM, mallory.keyPEM,
			"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 90\r\n\r\n"+
				"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\n\r\n"), want: []int{badRequest}},
		{name: "obfuscated Transfer-Encoding is refused and smuggles nothing", send: raw(mallory.certPEM, mallory.keyPEM,
			"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"+
				"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\n\r\n"), want: []int{badRequest, http.StatusNotImplemented}},
		{name: "obs-fold continuation of Impersonate-User folds into the previous header: forwarded as mallory", send: raw(mallory.certPEM, mallory.keyPEM,
			"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nX-Innocent: a\r\n Impersonate-User: sandbox-admin\r\n\r\n"), want: []int{forbidden, badRequest}, reachedAs: "mallory", anyOrNone: true},
		{name: "whitespace before the colon of Impersonate-User is 400", send: raw(mallory.certPEM, mallory.keyPEM,
			"GET "+secretsTarget("MARKER")+" HTTP/1.1\r\nHost: gw\r\nImpersonate-User : sandbox-admin\r\n\r\n"), want: []int{badRequest}},
	}
}

func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h[fmt.Sprintf("X-Filler-%03d", i)] = []string{"v"}
	}
	return h
}

package authz

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apiserver/pkg/apis/apiserver"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/websocket"
	"k8s.io/apiserver/pkg/authentication/token/union"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// JWT / OIDC clients (spec.authentication.jwt). Each configured issuer is
// kube-apiserver's own JWT authenticator (k8s.io/apiserver's
// plugin/pkg/authenticator/token/oidc), built from the same
// apiserver.config.k8s.io/v1 JWTAuthenticator kube-apiserver reads from its
// AuthenticationConfiguration: discovery, JWKS fetching and refresh on an
// unknown key id (key rotation), signature, issuer, audience and expiry
// checks, claim validation rules, CEL claim mappings and user validation
// rules are all its code, none of it ours.
//
// The issuers form one token union in spec order, as in kube-apiserver,
// and the union runs after x509 and before the TokenReview: kube-apiserver
// orders its bearer-token authenticators "local first, then remote"
// (service accounts, bootstrap tokens, then JWT, then the webhook), and
// the TokenReview is the remote one here. A token whose iss claim names
// none of the issuers is left to the TokenReview.

const (
	// jwtCacheTTL is how long an authenticated JWT's identity is reused
	// without verifying it again: kube-apiserver caches every token
	// authenticator's successes for 10s (its TokenSuccessCacheTTL), and
	// failures not at all.
	jwtCacheTTL = 10 * time.Second
	// jwtCacheSize bounds the identities remembered per cluster.
	jwtCacheSize = 4096
)

// jwtCompiler is one CEL compiler for every issuer: its environment is
// expensive to build and holds no per-issuer state.
var jwtCompiler = sync.OnceValue(authenticationcel.NewDefaultCompiler)

// jwtIssuer is one running kube-apiserver JWT authenticator.
type jwtIssuer struct {
	// raw is the policy's JSON it was built from: an identical entry in a
	// new policy keeps it, with its fetched keys.
	raw string
	// auth is nil when it could not be built (logged): its tokens then
	// authenticate nowhere here (fail closed).
	auth k8sauthn.Token
	// cancel stops its discovery and key fetching when no policy uses it.
	cancel context.CancelFunc
}

// jwtAuthenticator authenticates bearer tokens with a cluster's issuers.
type jwtAuthenticator struct {
	issuers []*jwtIssuer
	union   k8sauthn.Token
	// ids maps sha256(token) to its identity for jwtCacheTTL, so a hot
	// token costs neither a signature check nor header building, and the
	// in-process module answers it on Envoy's worker thread.
	ids *cache.LRUExpireCache
}

// jwtCached is one remembered authenticated token.
type jwtCached struct {
	resp *k8sauthn.Response
	id   *identity
}

// staticCA is an issuer's certificateAuthority, as the authenticator reads it.
type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

// newJWTIssuer builds one issuer from its policy JSON. Its discovery and
// keys are fetched in the background, bounded by the returned issuer's
// cancel; until they are, its tokens are refused (401), as kube-apiserver
// refuses them while its authenticator initializes.
func newJWTIssuer(raw json.RawMessage) (*jwtIssuer, error) {
	var ext apiserverv1.JWTAuthenticator
	if err := json.Unmarshal(raw, &ext); err != nil {
		return nil, fmt.Errorf("decoding JWT authenticator: %w", err)
	}
	var in apiserver.JWTAuthenticator
	if err := apiserverv1.Convert_v1_JWTAuthenticator_To_apiserver_JWTAuthenticator(&ext, &in, nil); err != nil {
		return nil, fmt.Errorf("converting JWT authenticator: %w", err)
	}
	opts := oidc.Options{
		JWTAuthenticator: in,
		Compiler:         jwtCompiler(),
		// The AuthenticationConfiguration has no signing-algorithm field;
		// kube-apiserver accepts every asymmetric algorithm go-oidc
		// verifies for it (never "none", never HMAC).
		SupportedSigningAlgs: oidc.AllValidSigningAlgorithms(),
	}
	if ca := in.Issuer.CertificateAuthority; ca != "" {
		opts.CAContentProvider = staticCA(ca)
	}
	ctx, cancel := context.WithCancel(context.Background())
	auth, err := oidc.New(ctx, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	return &jwtIssuer{raw: string(raw), auth: auth, cancel: cancel}, nil
}

// compileJWT gives cc its JWT authenticator, keeping every issuer of old
// whose configuration is unchanged (a live edit rebuilds only the edited
// issuers). Issuers old has and cc does not are stopped by retireJWT once
// the new table is in place.
func (p *Pipeline) compileJWT(name string, c *policy.Cluster, old *compiledCluster, cc *compiledCluster) {
	if len(c.JWT) == 0 {
		return
	}
	if old != nil && old.jwt != nil && old.jwt.sameConfig(c.JWT) {
		// Unchanged: keep it whole, warm identity cache included.
		cc.jwt = old.jwt
		cc.authenticators = append(cc.authenticators, jwtBearer{old.jwt}, jwtWebsocket{a: old.jwt, auth: websocket.NewProtocolAuthenticator(old.jwt)})
		return
	}
	reuse := map[string]*jwtIssuer{}
	if old != nil && old.jwt != nil {
		for _, is := range old.jwt.issuers {
			reuse[is.raw] = is
		}
	}
	a := &jwtAuthenticator{ids: cache.NewLRUExpireCache(jwtCacheSize)}
	var tokens []k8sauthn.Token
	for i, raw := range c.JWT {
		is, ok := reuse[string(raw)]
		if !ok {
			var err error
			if is, err = newJWTIssuer(raw); err != nil {
				p.log.Error("JWT authenticator unusable, its tokens do not authenticate",
					"cluster", name, "index", i, "error", err)
				is = &jwtIssuer{raw: string(raw), cancel: func() {}}
			}
		}
		delete(reuse, string(raw)) // one issuer serves one entry
		a.issuers = append(a.issuers, is)
		if is.auth != nil {
			tokens = append(tokens, is.auth)
		}
	}
	a.union = union.New(tokens...)
	cc.jwt = a
	cc.authenticators = append(cc.authenticators, jwtBearer{a}, jwtWebsocket{a: a, auth: websocket.NewProtocolAuthenticator(a)})
}

// sameConfig reports whether a was built from exactly raws, in order.
func (a *jwtAuthenticator) sameConfig(raws []json.RawMessage) bool {
	if len(a.issuers) != len(raws) {
		return false
	}
	for i, is := range a.issuers {
		if is.raw != string(raws[i]) {
			return false
		}
	}
	return true
}

// retireJWT stops the issuers of prev that next no longer uses.
func retireJWT(prev, next *compiledTable) {
	if prev == nil {
		return
	}
	kept := map[*jwtIssuer]bool{}
	for _, cc := range next.clusters {
		if cc.jwt != nil {
			for _, is := range cc.jwt.issuers {
				kept[is] = true
			}
		}
	}
	for _, cc := range prev.clusters {
		if cc.jwt != nil {
			for _, is := range cc.jwt.issuers {
				if !kept[is] {
					is.cancel()
				}
			}
		}
	}
}

// AuthenticateToken runs the issuers' union behind the identity cache.
func (a *jwtAuthenticator) AuthenticateToken(ctx context.Context, token string) (*k8sauthn.Response, bool, error) {
	c, ok, err := a.authenticate(ctx, token)
	if !ok {
		return nil, false, err
	}
	return c.resp, true, nil
}

func (a *jwtAuthenticator) authenticate(ctx context.Context, token string) (*jwtCached, bool, error) {
	key := jwtKey(token)
	if v, ok := a.ids.Get(key); ok {
		return v.(*jwtCached), true, nil
	}
	// kube-apiserver's authenticated-group adder wraps its whole union:
	// a JWT user gets system:authenticated as it would there.
	resp, ok, err := group.NewAuthenticatedGroupAdder(k8sauthn.RequestFunc(func(r *http.Request) (*k8sauthn.Response, bool, error) {
		return a.union.AuthenticateToken(r.Context(), token)
	})).AuthenticateRequest((&http.Request{}).WithContext(ctx))
	if !ok {
		if err == nil {
			err = errInvalidToken
		}
		return nil, false, err
	}
	id, err := newIdentity(resp.User)
	if err != nil {
		return nil, false, err
	}
	// Decisions for it may be replayed (in process) as long as it is
	// cached: until then the pipeline would not verify the token again
	// either. The cache runs on the wall clock, and so does this.
	id.until = time.Now().Add(jwtCacheTTL) // id is new: not shared yet
	c := &jwtCached{resp: resp, id: id}
	a.ids.Add(key, c, jwtCacheTTL)
	return c, true, nil
}

// cachedToken reports whether token's identity is remembered.
func (a *jwtAuthenticator) cachedToken(token string) bool {
	_, ok := a.ids.Get(jwtKey(token))
	return ok
}

// jwtKey is the cache key of a token: its hash, never the token.
func jwtKey(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// looksLikeJWT: three dot-separated parts. Anything else is no JWT, so no
// issuer needs to parse it.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// jwtBearer authenticates the Authorization header's bearer token (read
// as kube-apiserver reads it, bearerToken) with the issuers.
type jwtBearer struct{ a *jwtAuthenticator }

func (b jwtBearer) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	token, ok := bearerToken(req.Headers)
	if !ok {
		return nil, false, nil
	}
	if !looksLikeJWT(token) {
		return nil, false, errInvalidToken
	}
	c, ok, err := b.a.authenticate(ctx, token)
	if !ok {
		return nil, false, err
	}
	return c.id, true, nil
}

// cached: no bearer token, no JWT, or one whose identity is remembered. A
// first use takes the slow path: an unknown key id makes the issuer fetch
// its keys, which must not block Envoy's worker thread.
func (b jwtBearer) cached(req *Request) bool {
	token, ok := bearerToken(req.Headers)
	return !ok || !looksLikeJWT(token) || b.a.cachedToken(token)
}

// jwtWebsocket authenticates the WebSocket bearer-token subprotocol with
// the issuers, through kube-apiserver's protocol authenticator.
type jwtWebsocket struct {
	a    *jwtAuthenticator
	auth k8sauthn.Request
}

func (w jwtWebsocket) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	hr := websocketTokenRequest(ctx, req)
	if hr == nil {
		return nil, false, nil
	}
	resp, ok, err := w.auth.AuthenticateRequest(hr)
	if !ok {
		return nil, false, err
	}
	// An upgrade is long-running: building its headers again is nothing.
	id, err := newIdentity(resp.User)
	return id, err == nil, err
}

// cached: no bearer-token subprotocol; a WebSocket token always takes the
// slow path, as for the TokenReview (websocketAuthenticator).
func (w jwtWebsocket) cached(req *Request) bool {
	return !strings.Contains(header(req.Headers, headerWSProtocol), bearerProtocolPrefix)
}

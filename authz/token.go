package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/websocket"
	"k8s.io/apiserver/pkg/authentication/user"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

const (
	// bearerProtocolPrefix marks the WebSocket subprotocol that carries a
	// bearer token (base64url, unpadded), as kube-apiserver reads it.
	bearerProtocolPrefix = "base64url.bearer.authorization.k8s.io." //nolint:gosec // a protocol name, not a credential
	headerWSProtocol     = "sec-websocket-protocol"

	// tokenReviewTimeout bounds one TokenReview (all its failover attempts).
	tokenReviewTimeout = 1800 * time.Millisecond
	// tokenIdentityCacheSize bounds the precomputed headers of token users.
	tokenIdentityCacheSize = 4096
)

// errInvalidToken is what kube-apiserver's bearer authenticator reports
// for a token no authenticator accepted.
var errInvalidToken = errors.New("invalid bearer token")

// errReviewUnavailable marks a TokenReview nobody answered (the cluster's
// servers unreachable, timing out or failing): the token is neither valid
// nor invalid, so its request is answered 503 with Retry-After, which
// client-go retries, rather than 401, which tells a client its good token
// is bad.
var errReviewUnavailable = errors.New("TokenReview unavailable")

// tokenAuthenticator checks bearer tokens with TokenReviews against the
// upstream cluster, through a client of the TokenReview API (tokenReviewer)
// behind a bounded token cache (tokenCache): the cache keys are HMACs of
// the token (never the token), concurrent first uses of one token share one
// TokenReview, successes and failures have their own TTLs and count
// bounds, and at most a fixed number of reviews per cluster are in flight.
// Audiences, when configured, are sent in every review and checked in its
// answer, exactly as kube-apiserver does for its own webhook token
// authenticator.
type tokenAuthenticator struct {
	tokens    *tokenCache
	audiences k8sauthn.Audiences
	// ids maps a cached *k8sauthn.Response (the token cache returns
	// the same pointer on every hit) to its precomputed identity, so a
	// cached token costs no header building.
	ids     *cache.LRUExpireCache
	ttl     time.Duration
	metrics *requestMetrics
}

// tokenLimits bound one cluster's token authentication: concurrent
// TokenReviews, the authenticated and refused tokens remembered, and the
// refused reviews one client address may cause (refusalGate).
type tokenLimits struct {
	concurrency, cacheSize, negativeCacheSize int
	refusals                                  refusalLimits
}

// defaultTokenReviewConcurrency is how many TokenReviews of one cluster
// may be in flight. A healthy apiserver answers one in milliseconds, so
// this is far above what legitimate first uses of tokens need, and small
// enough that a flood of random tokens costs the apiserver (and its APF
// flow for the gateway's identity) a bounded load.
const defaultTokenReviewConcurrency = 64

// withDefaults fills unset (non-positive) limits with the defaults.
func (l tokenLimits) withDefaults() tokenLimits {
	if l.concurrency <= 0 {
		l.concurrency = defaultTokenReviewConcurrency
	}
	if l.cacheSize <= 0 {
		l.cacheSize = defaultTokenCacheSize
	}
	if l.negativeCacheSize <= 0 {
		l.negativeCacheSize = defaultTokenNegativeCacheSize
	}
	l.refusals = l.refusals.withDefaults()
	return l
}

func newTokenAuthenticator(cluster string, client authenticationv1client.AuthenticationV1Interface, audiences []string, ttl, negTTL time.Duration, limits tokenLimits, m *requestMetrics) *tokenAuthenticator {
	limits = limits.withDefaults()
	reviewer := &tokenReviewer{
		client: client.TokenReviews(), implicitAuds: audiences, metrics: m,
		slots:     make(chan struct{}, limits.concurrency),
		throttled: m.reviewsThrottled.WithLabelValues(cluster),
	}
	return &tokenAuthenticator{
		tokens: newTokenCache(reviewer, ttl, negTTL, limits.cacheSize, limits.negativeCacheSize,
			newRefusalGate(limits.refusals, m.clientsThrottled.WithLabelValues(cluster))),
		audiences: audiences,
		ids:       cache.NewLRUExpireCache(tokenIdentityCacheSize),
		ttl:       ttl,
		metrics:   m,
	}
}

// cachedToken reports whether token authenticated in a TokenReview the
// token cache still remembers.
func (a *tokenAuthenticator) cachedToken(token string) bool {
	return a.tokens.authenticated(a.audiences, token)
}

// tokenReviewer is k8s.io/apiserver's webhook token authenticator
// (plugin/pkg/authenticator/token/webhook) reduced to what a client of
// the TokenReview API needs: the same request, the same audience checks
// and the same user. One difference, on purpose: a review the apiserver
// answered with "not authenticated" is a plain failure (nil error), not an
// error, so the token cache remembers it for negativeCacheTTL, even when
// the answer carries status.error. The webhook authenticator turns
// status.error into an error, which the cache never remembers, so a flood
// of one bad token would reach the apiserver every time. status.error
// cannot tell "the apiserver's own webhook backend is down" from "this
// token is garbage": kube-apiserver fills it with its authenticators'
// errors for any refused token (e.g. "invalid bearer token"). Treating it
// as an outage would answer every bad token 503 and never remember it.
type tokenReviewer struct {
	client       authenticationv1client.TokenReviewInterface
	implicitAuds k8sauthn.Audiences
	metrics      *requestMetrics
	// slots holds one token per review in flight; when it is full a new
	// review is not sent (errReviewBusy), and counted in throttled.
	slots     chan struct{}
	throttled prometheus.Counter
}

// errReviewBusy: every review slot of the cluster is taken. The token was
// not reviewed, so it is answered like an unanswered review (503 with
// Retry-After), never 401, and not remembered.
var errReviewBusy = fmt.Errorf("%w: too many TokenReviews in flight", errReviewUnavailable)

func (r *tokenReviewer) AuthenticateToken(ctx context.Context, token string) (*k8sauthn.Response, bool, error) {
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		r.throttled.Inc()
		return nil, false, errReviewBusy
	}
	resp, ok, err := r.review(ctx, token)
	result := "unauthenticated"
	switch {
	case err != nil:
		result = "error"
	case ok:
		result = "authenticated"
	}
	r.metrics.reviewsSent.WithLabelValues(reviewToken, result).Inc()
	return resp, ok, err
}

func (r *tokenReviewer) review(ctx context.Context, token string) (*k8sauthn.Response, bool, error) {
	wantAuds, checkAuds := k8sauthn.AudiencesFrom(ctx)
	ctx, cancel := context.WithTimeout(ctx, tokenReviewTimeout)
	defer cancel()
	result, err := r.client.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: wantAuds},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errReviewUnavailable, err)
	}
	var auds k8sauthn.Audiences
	if checkAuds {
		gotAuds := r.implicitAuds
		if len(result.Status.Audiences) > 0 {
			gotAuds = result.Status.Audiences
		}
		if auds = wantAuds.Intersect(gotAuds); len(auds) == 0 {
			return nil, false, nil
		}
	}
	if !result.Status.Authenticated {
		return nil, false, nil
	}
	u := result.Status.User
	var extra map[string][]string
	if u.Extra != nil {
		extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = v
		}
	}
	return &k8sauthn.Response{
		User:      &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra},
		Audiences: auds,
	}, true, nil
}

// AuthenticateToken implements authenticator.Token with the configured
// audiences, so k8s.io/apiserver's request authenticators can wrap it. The
// client address, for the refusal gate, comes from ctx (clientContextKey).
func (a *tokenAuthenticator) AuthenticateToken(ctx context.Context, token string) (*k8sauthn.Response, bool, error) {
	addr, _ := ctx.Value(clientContextKey{}).(string)
	return a.authenticate(ctx, addr, token)
}

// authenticate is AuthenticateToken for a client address the caller has.
func (a *tokenAuthenticator) authenticate(ctx context.Context, addr, token string) (*k8sauthn.Response, bool, error) {
	return tokenResult(a.answer(ctx, addr, token))
}

// answer is authenticate's token cache record (tokenCache.answer).
func (a *tokenAuthenticator) answer(ctx context.Context, addr, token string) (*tokenRecord, error) {
	if len(a.audiences) > 0 {
		ctx = k8sauthn.WithAudiences(ctx, a.audiences)
	}
	a.metrics.tokenLookups.Inc()
	return a.tokens.answer(ctx, addr, token)
}

// clientContextKey carries a request's client address (for the refusal
// gate) through
// authenticators that only pass a context (the WebSocket protocol one).
type clientContextKey struct{}

// identityFor returns the identity of an authenticated token response,
// replayable (identity.until) until until: the end of the response's
// freshness in the token cache, or zero.
func (a *tokenAuthenticator) identityFor(resp *k8sauthn.Response, until time.Time) (*identity, error) {
	key := tokenIdentityKey{resp, until}
	if v, ok := a.ids.Get(key); ok {
		return v.(*identity), nil
	}
	id, err := newIdentity(resp.User)
	if err != nil {
		return nil, err
	}
	id.until = until // id is new: not shared yet
	if a.ttl > 0 {
		a.ids.Add(key, id, a.ttl)
	}
	return id, nil
}

// tokenIdentityKey keys identities by response and replay bound: the
// WebSocket path, which cannot see the bound, gets an identity of its own.
type tokenIdentityKey struct {
	resp  *k8sauthn.Response
	until time.Time
}

// bearerAuthenticator reads the Authorization header exactly as
// kube-apiserver's bearertoken authenticator does (a "Bearer" scheme in any
// case, the token up to the next space; an empty token is no credential).
// It is inlined rather than wrapping an *http.Request so a cached token
// costs no request allocation.
type bearerAuthenticator struct{ t *tokenAuthenticator }

func (b bearerAuthenticator) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	token, ok := bearerToken(req.Headers)
	if !ok {
		return nil, false, nil
	}
	r, err := b.t.answer(ctx, req.ClientAddress, token)
	if r == nil || !r.ok {
		if err == nil && r != nil {
			err = r.err
		}
		if err == nil {
			err = errInvalidToken
		}
		return nil, false, err
	}
	id, err := b.t.identityFor(r.resp, r.fresh)
	if err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// cached: no bearer token, or one the token cache answers.
func (b bearerAuthenticator) cached(req *Request) bool {
	token, ok := bearerToken(req.Headers)
	return !ok || b.t.cachedToken(token)
}

// bearerToken mirrors k8s.io/apiserver/pkg/authentication/request/bearertoken.
func bearerToken(h map[string]string) (string, bool) {
	auth := strings.TrimSpace(header(h, headerAuthz))
	if auth == "" {
		return "", false
	}
	scheme, rest, found := strings.Cut(auth, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token, _, _ := strings.Cut(rest, " ")
	if token == "" {
		return "", false
	}
	return token, true
}

// websocketAuthenticator authenticates the bearer token of the WebSocket
// subprotocol base64url.bearer.authorization.k8s.io.<token> with
// kube-apiserver's own protocol authenticator (same upgrade detection, same
// refusals of two tokens or a token as the only subprotocol).
type websocketAuthenticator struct {
	t    *tokenAuthenticator
	auth k8sauthn.Request
}

func newWebsocketAuthenticator(t *tokenAuthenticator) websocketAuthenticator {
	return websocketAuthenticator{t: t, auth: websocket.NewProtocolAuthenticator(t)}
}

func (w websocketAuthenticator) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	hr := websocketTokenRequest(ctx, req)
	if hr == nil {
		return nil, false, nil
	}
	if req.ClientAddress != "" {
		hr = hr.WithContext(context.WithValue(ctx, clientContextKey{}, req.ClientAddress))
	}
	resp, ok, err := w.auth.AuthenticateRequest(hr)
	if !ok {
		return nil, false, err
	}
	id, err := w.t.identityFor(resp, time.Time{}) // never replayed (ReplayBypassHeaders)
	return id, err == nil, err
}

// websocketTokenRequest is req as kube-apiserver's WebSocket protocol
// authenticator reads it (method, Connection, Upgrade, the subprotocols),
// or nil when no subprotocol carries a bearer token.
func websocketTokenRequest(ctx context.Context, req *Request) *http.Request {
	protocols := header(req.Headers, headerWSProtocol)
	if !strings.Contains(protocols, bearerProtocolPrefix) {
		return nil
	}
	return (&http.Request{Method: req.Method, Header: http.Header{
		"Connection":             {header(req.Headers, "connection")},
		"Upgrade":                {header(req.Headers, "upgrade")},
		"Sec-Websocket-Protocol": {protocols},
	}}).WithContext(ctx)
}

// cached: no bearer-token subprotocol. A WebSocket upgrade carrying a
// token always takes the slow path (Check): upgrades are long-running, a
// goroutine hop is nothing to them, and the protocol parsing stays
// kube-apiserver's own.
func (w websocketAuthenticator) cached(req *Request) bool {
	return !strings.Contains(header(req.Headers, headerWSProtocol), bearerProtocolPrefix)
}

// header returns the value of a lowercase header name, tolerating other
// cases in the map (the pipeline's contract).
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// stripBearerProtocol removes every bearer-token subprotocol from a
// Sec-WebSocket-Protocol value, keeping the others in order. found reports
// whether there was one.
func stripBearerProtocol(v string) (filtered string, found bool) {
	if !strings.Contains(v, bearerProtocolPrefix) {
		return v, false
	}
	var kept []string
	for p := range strings.SplitSeq(v, ",") {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, bearerProtocolPrefix) {
			found = true
			continue
		}
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ","), found
}

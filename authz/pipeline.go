// Package authz is the request service's transport-independent pipeline:
// for each request Envoy asks about, it finds the cluster's policy, parses
// Kubernetes request info, authenticates the client and answers either the
// headers Envoy must set and strip before forwarding (impersonation), or a
// Kubernetes Status to send back instead.
//
// The pipeline knows nothing about ext_authz or ext_proc: adapters (see
// NewExtAuthzServer) convert their protos to a Request and a Decision back,
// so every transport shares one set of semantics, caches and metrics.
//
// It must not import the translator or xds (it reads policy.Table only),
// nor Envoy's dynamic-module binding; lint (depguard) enforces the first.
package authz

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Request is what the pipeline needs to know about one HTTP request. Adapters
// fill it from their transport; nothing in it is trusted beyond what Envoy
// guarantees (it stripped client x-frontdoor-* and x-remote-* headers).
type Request struct {
	// Cluster names the UpstreamCluster the request arrived for; Envoy sets
	// it per virtual host, the client cannot choose it.
	Cluster string
	// Method is the HTTP method (GET, POST, ...).
	Method string
	// Path is the request target as received: path plus optional "?query",
	// still percent-encoded.
	Path string
	// Headers are the request headers keyed by lowercase name (Envoy
	// lowercases them; the pipeline tolerates other cases). Multiple values
	// of one header arrive comma-joined.
	Headers map[string]string
	// PeerCertificate is the client's TLS certificate as Envoy reports it:
	// URL-encoded PEM, leaf first. Empty when the client sent none.
	PeerCertificate string
	// ClientAddress is the client's address as Envoy derived it ("ip" or
	// "ip:port"; after PROXY protocol and trusted forwarding hops). It only
	// feeds the refusal gate of bearer tokens, so an adapter may leave it
	// empty on requests it decides without a review.
	ClientAddress string
}

// Outcome classifies a Decision; its string is the "decision" metric label.
type Outcome string

// The outcomes of a Check.
const (
	// Allowed forwards the request with the Decision's header plan.
	Allowed Outcome = "allowed"
	// Unauthenticated denies with 401: no credential authenticated.
	Unauthenticated Outcome = "unauthenticated"
	// Forbidden denies with 403: the client may not impersonate whom it
	// asked to (kube-apiserver's impersonation filter said no).
	Forbidden Outcome = "forbidden"
	// Unavailable denies with 503: no policy for the cluster (yet).
	Unavailable Outcome = "unavailable"
	// Invalid denies with 400: the request target cannot be parsed, as
	// kube-apiserver's HTTP server would also refuse it.
	Invalid Outcome = "invalid"
	// Rejected denies with the code of a dispatch policy that sheds its
	// traffic (spec.dispatchPolicies[].reject).
	Rejected Outcome = "rejected"
	// Throttled denies with 429: the bearer token was not reviewed because
	// the client's address caused too many refused TokenReviews recently.
	Throttled Outcome = "throttled"
)

// Header is one header field.
type Header struct {
	Name  string
	Value string
}

// Decision is the pipeline's answer for one Request. Its slices may be
// shared with the pipeline's caches: treat them as read-only.
type Decision struct {
	Outcome Outcome

	// RemoveHeaders are lowercase request header names to strip before
	// forwarding (allow): every client credential and identity header.
	RemoveHeaders []string
	// SetHeaders are the header fields to add after the removals (allow),
	// each as its own field: a user with two groups gets two
	// Impersonate-Group fields, as kube-apiserver requires.
	SetHeaders []Header
	// Rule is the dispatch rule the request was matched to (allow), or the
	// shedding policy that rejected it (Rejected).
	Rule string
	// User is the name of the user the request runs as (allow): the
	// impersonated user if the client asked for one, else the
	// authenticated one. For access logs and per-user limits.
	User string
	// Requestor is the name of the user who authenticated (allow, a
	// refused impersonation, a rejection): who asked, which User hides
	// when the client impersonated someone. The apiserver's audit names
	// the gateway instead; only the access log and decision log have it.
	Requestor string
	// Groups is how many groups the authenticated user has (allow), for
	// access logs (the names stay out of logs: they are unbounded).
	Groups int

	// Code is the HTTP status to answer with (deny).
	Code int
	// Body is the JSON-encoded Kubernetes Status to answer with (deny).
	Body []byte
	// ResponseHeaders are the headers of the denial response (deny).
	ResponseHeaders []Header

	// Info is the Kubernetes request info, when the target could be parsed.
	Info *request.RequestInfo

	// ReplayUntil is until when an adapter may answer this same decision,
	// without asking the pipeline, to a request identical in everything
	// the pipeline reads: cluster, method, path and every ReadsHeader
	// field, in order. Zero: never. Only TryCheck sets it (replay.go says
	// which decisions qualify); the adapter must forget every replayed
	// decision when the policy changes (SetPolicy).
	ReplayUntil time.Time
}

// Allowed reports whether the request may be forwarded.
func (d *Decision) Allowed() bool { return d.Outcome == Allowed }

// Options configure a Pipeline. The zero value is usable.
type Options struct {
	// Registry receives the pipeline's metrics; nil registers nowhere.
	Registry prometheus.Registerer
	// Logger receives one line per decision (Debug, or Info with
	// LogRequests) and configuration problems; nil discards.
	Logger *slog.Logger
	// LogRequests logs every decision at Info instead of Debug.
	LogRequests bool
	// Now replaces the clock for certificate validity and cache expiry
	// (tests); nil uses time.Now.
	Now func() time.Time

	// AuthnCacheSize bounds the verified-identity cache (default 4096).
	AuthnCacheSize int
	// AuthnCacheTTL caps how long a verified identity is reused without
	// re-verification (default 5m); certificate expiry shortens it.
	AuthnCacheTTL time.Duration
	// AuthnNegativeCacheTTL is how long a failed authentication is
	// remembered (default 10s); 0 uses the default, negative disables.
	AuthnNegativeCacheTTL time.Duration

	// TokenReviewConcurrency bounds the TokenReviews of one cluster in
	// flight (default 64); a bearer token that would need one more is
	// answered 503 with Retry-After.
	TokenReviewConcurrency int
	// TokenCacheSize and TokenNegativeCacheSize bound the tokens one
	// cluster remembers as authenticated (default 8192) and as refused
	// (default 4096), beside their TTLs.
	TokenCacheSize, TokenNegativeCacheSize int
	// TokenRefusalBurst is how many refused TokenReviews one client address
	// may cause before its unknown tokens are answered 429 instead of
	// reviewed (default 32; negative: no such limit); TokenRefusalRate is
	// how many per second it earns back (default 2); TokenRefusalTarpit
	// holds each such 429 (default 1s; negative: answer at once).
	TokenRefusalBurst  int
	TokenRefusalRate   float64
	TokenRefusalTarpit time.Duration
}

const (
	defaultAuthnCacheSize        = 4096
	defaultAuthnCacheTTL         = 5 * time.Minute
	defaultAuthnNegativeCacheTTL = 10 * time.Second
)

// Pipeline decides requests against the current policy. It is safe for
// concurrent use; SetPolicy swaps the policy atomically, so a request sees
// either the old or the new configuration, never a mix.
type Pipeline struct {
	log         *slog.Logger
	logLevel    slog.Level
	now         func() time.Time
	injectedNow bool
	metrics     *metrics
	reqMetrics  *requestMetrics
	cache       *authnCache
	tokenLimits tokenLimits

	table atomic.Pointer[compiledTable]
	// mu serializes SetPolicy, which reads the previous table to keep
	// unchanged authenticators (and their warm cache entries).
	mu  sync.Mutex
	gen atomic.Uint64
}

// compiledTable is a policy.Table with everything derivable computed once.
type compiledTable struct {
	version  string
	clusters map[string]*compiledCluster
}

// compiledCluster is one cluster's policy, ready for the hot path.
type compiledCluster struct {
	name        string
	defaultRule string
	// dispatch are the cluster's dispatch policies, in spec order.
	dispatch []dispatchPolicy
	// namedUsers are the users its dispatch rules name (users and service
	// accounts, not wildcards): the bounded set counted per user.
	namedUsers map[string]struct{}
	// authenticators run in order; the first to authenticate wins, as in
	// kube-apiserver's union authenticator. Token and anonymous
	// authenticators slot in here.
	authenticators []authenticator

	// Kept to decide whether a new policy may reuse the front-proxy
	// authenticator (and its cache): the policy it was built from.
	frontProxyPolicy *policy.FrontProxy
	frontProxy       *frontProxyAuthenticator

	// Kept to decide whether a new policy may reuse x509 (and its cache).
	x509Enabled bool
	clientCA    []byte
	revocation  *policy.Revocation
	x509        *x509Authenticator

	// anonymous forwards requests without any credential as
	// system:anonymous.
	anonymous bool
	// forwarding names the header set the identity is forwarded in.
	forwarding forwarding
	// upstream is the policy the token authenticator and impersonator were
	// built from; an unchanged one keeps them (and their caches).
	upstream    *policy.Cluster
	tokens      *tokenAuthenticator
	impersonate *impersonator
	// jwt are the cluster's JWT issuers (jwt.go); nil without any.
	jwt *jwtAuthenticator
}

// authenticator turns a request's credentials into an identity. ok=false
// with a nil error means "no credential of my kind": the next one tries.
type authenticator interface {
	authenticate(ctx context.Context, req *Request) (id *identity, ok bool, err error)
}

// peeker is an authenticator that may call the apiserver. cached reports
// whether authenticate would answer req without doing so: the request has
// no credential of its kind, or the credential's answer is cached.
type peeker interface {
	cached(req *Request) bool
}

// errWouldBlock stops a TryCheck that would have to call the apiserver.
var errWouldBlock = errors.New("authz: the decision needs a call to the apiserver")

// NewPipeline builds a pipeline with no policy: every request is answered
// 503 until the first SetPolicy. It fails only if metrics cannot be
// registered (e.g. twice in one registry).
func NewPipeline(opts Options) (*Pipeline, error) {
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	rm, err := newRequestMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		reqMetrics: rm,
		log:        opts.Logger,
		logLevel:   slog.LevelDebug,
		now:        opts.Now,
		metrics:    m,
		tokenLimits: tokenLimits{
			concurrency:       opts.TokenReviewConcurrency,
			cacheSize:         opts.TokenCacheSize,
			negativeCacheSize: opts.TokenNegativeCacheSize,
			refusals: refusalLimits{
				burst: opts.TokenRefusalBurst, rate: opts.TokenRefusalRate, tarpit: opts.TokenRefusalTarpit,
			},
		}.withDefaults(),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if opts.LogRequests {
		p.logLevel = slog.LevelInfo
	}
	if p.now == nil {
		p.now = time.Now
	} else {
		p.injectedNow = true
	}
	size, ttl, negTTL := opts.AuthnCacheSize, opts.AuthnCacheTTL, opts.AuthnNegativeCacheTTL
	if size <= 0 {
		size = defaultAuthnCacheSize
	}
	if ttl <= 0 {
		ttl = defaultAuthnCacheTTL
	}
	if negTTL == 0 {
		negTTL = defaultAuthnNegativeCacheTTL
	}
	p.cache = newAuthnCache(size, ttl, negTTL, p.now, m)
	return p, nil
}

// SetPolicy replaces the policy. Derived state (CA pools, authenticators)
// is compiled here, once per config version, never per request. A cluster
// whose x509 settings did not change keeps its authenticator, so its cached
// identities stay valid; a changed CA or revocation list gets a new
// generation, which makes every identity verified against the old one
// unreachable in the cache.
func (p *Pipeline) SetPolicy(t *policy.Table) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.table.Load()
	next := &compiledTable{clusters: map[string]*compiledCluster{}}
	if t != nil {
		next.version = t.Version
		for name, c := range t.Clusters {
			if c == nil {
				continue
			}
			var old *compiledCluster
			if prev != nil {
				old = prev.clusters[name]
			}
			next.clusters[name] = p.compileCluster(name, c, old)
		}
	}
	p.table.Store(next)
	p.reqMetrics.setCRLs(next)
	retireJWT(prev, next)
	p.log.Info("request policy applied", "version", next.version, "clusters", len(next.clusters))
}

func (p *Pipeline) compileCluster(name string, c *policy.Cluster, old *compiledCluster) *compiledCluster {
	cc := &compiledCluster{
		name:        name,
		defaultRule: c.DefaultRule,
		dispatch:    compileDispatch(c.Dispatch),
		namedUsers:  namedUsers(c.Dispatch),
		x509Enabled: c.X509,
		clientCA:    bytes.Clone(c.ClientCAPEM),
		forwarding:  forwardingOf(c),
		revocation:  c.Revocation,
	}
	// Deferred calls run last first: x509 (below), then the JWT issuers,
	// then the TokenReview, kube-apiserver's order (jwt.go).
	defer p.compileUpstream(name, c, old, cc)
	defer p.compileJWT(name, c, old, cc)
	// First, as kube-apiserver runs its requestheader authenticator first.
	// Like x509 below, an unchanged front-proxy CA and name list keeps its
	// authenticator, and so its verified requests: an edit elsewhere in the
	// cluster (a dispatch rule, say) must not make every front proxy's
	// users verify their chain again.
	if fp := c.FrontProxy; fp != nil {
		cc.frontProxyPolicy = fp
		if old != nil && old.frontProxy != nil && sameFrontProxy(old.frontProxyPolicy, fp) {
			cc.frontProxy = old.frontProxy
		} else if a, err := p.newFrontProxyAuthenticator(fp); err != nil {
			// Fail closed: nobody may assert X-Remote-* (they are still stripped).
			p.log.Error("cluster front-proxy CA unusable, front-proxy clients disabled", "cluster", name, "error", err)
		} else {
			cc.frontProxy = a
		}
		if cc.frontProxy != nil {
			cc.authenticators = append(cc.authenticators, cc.frontProxy)
		}
	}
	if !c.X509 {
		return cc
	}
	if old != nil && old.x509Enabled && old.x509 != nil && bytes.Equal(old.clientCA, c.ClientCAPEM) &&
		sameRevocation(old.revocation, c.Revocation) {
		cc.x509 = old.x509
	} else {
		a, err := p.newX509Authenticator(c.ClientCAPEM, c.Revocation)
		if err != nil {
			// Fail closed: without a usable CA no certificate authenticates.
			p.log.Error("cluster client CA unusable, x509 authentication disabled",
				"cluster", name, "error", err)
		}
		cc.x509 = a
	}
	if cc.x509 != nil {
		cc.authenticators = append(cc.authenticators, cc.x509)
	}
	return cc
}

// Check decides one request.
func (p *Pipeline) Check(ctx context.Context, req *Request) Decision {
	start := time.Now()
	cc := p.cluster(req.Cluster)
	d, _ := p.decide(ctx, req, cc, false)
	p.finish(ctx, req, cc, &d, start)
	return d
}

// TryCheck decides req if that needs no network call: every authenticator
// that would ask the apiserver answers from its cache, and the client asked
// for no impersonation (whose SubjectAccessReviews it would have to wait
// for). ok=false means nothing was decided or counted: call Check. Envoy's
// worker thread calls it in process, so it never blocks.
func (p *Pipeline) TryCheck(req *Request) (Decision, bool) {
	start := time.Now()
	cc := p.cluster(req.Cluster)
	d, blocked := p.decide(context.Background(), req, cc, true)
	if blocked {
		return Decision{}, false
	}
	p.finish(context.Background(), req, cc, &d, start)
	if !d.ReplayUntil.IsZero() && p.log.Enabled(context.Background(), p.logLevel) {
		d.ReplayUntil = time.Time{} // a replay would miss its decision log line
	}
	return d, true
}

// cluster is the compiled policy of the named cluster; nil if none.
func (p *Pipeline) cluster(name string) *compiledCluster {
	if t := p.table.Load(); t != nil {
		return t.clusters[name]
	}
	return nil
}

// finish records a decision: metrics, the per-user count, the log line.
func (p *Pipeline) finish(ctx context.Context, req *Request, cc *compiledCluster, d *Decision, start time.Time) {
	p.metrics.observe(req.Cluster, d.Outcome, time.Since(start))
	p.reqMetrics.observeDecision(req.Cluster, d)
	if cc != nil && d.User != "" {
		if _, named := cc.namedUsers[d.User]; named {
			p.reqMetrics.observeUser(req.Cluster, d)
		}
	}
	p.logDecision(ctx, req, d)
}

// decide decides req for its cluster cc (nil: no such cluster). With
// noWait it makes no network call: blocked reports that it would have had
// to, and the Decision is then meaningless.
func (p *Pipeline) decide(ctx context.Context, req *Request, cc *compiledCluster, noWait bool) (d Decision, blocked bool) {
	if cc == nil {
		return denied(Unavailable, nil), false
	}

	info, err := parseRequestInfo(req.Method, req.Path)
	if info == nil {
		p.log.Debug("unparsable request target", "cluster", req.Cluster, "error", err)
		return denied(Invalid, nil), false
	}
	// A RequestInfo error (e.g. "/api/v1/watch") still yields partial info;
	// kube-apiserver answers such requests itself, so forward them.
	if !upgradeAllowed(info, req.Headers) {
		d := denied(Invalid, info)
		d.Body = upgradeRefusedBody
		return d, false
	}

	id, err := p.authenticate(ctx, cc, req, noWait)
	if errors.Is(err, errWouldBlock) {
		return Decision{}, true
	}
	if id == nil {
		if err != nil {
			p.log.Debug("authentication failed", "cluster", req.Cluster, "error", err)
		}
		if errors.Is(err, errClientThrottled) {
			d := clientThrottled
			d.Info = info
			return d, false
		}
		if errors.Is(err, errReviewUnavailable) {
			d := reviewUnavailable
			if errors.Is(err, errReviewBusy) {
				d = reviewBusy
			}
			d.Info = info
			return d, false
		}
		return denied(Unauthenticated, info), false
	}

	requestor := id.user.GetName()
	ih, ok := impersonationHeaders(req.Headers)
	if !ok {
		return denied(Invalid, info), false
	}
	if ih != nil {
		if cc.impersonate == nil {
			return denied(Unavailable, info), false
		}
		if noWait {
			// Each impersonation asks SubjectAccessReviews (cached, but
			// the cache cannot be read without possibly calling out).
			return Decision{}, true
		}
		u, deny := cc.impersonate.impersonate(ctx, id.user, info, ih)
		if deny != nil {
			p.log.Debug("impersonation refused", "cluster", req.Cluster, "user", id.user.GetName(), "code", deny.Code)
			deny.User, deny.Requestor = requestor, requestor
			return *deny, false
		}
		if id, err = newIdentity(u); err != nil {
			p.log.Debug("impersonated identity cannot be forwarded", "cluster", req.Cluster, "error", err)
			return denied(Invalid, info), false
		}
	}

	rule := cc.defaultRule
	if dp := matchPolicy(cc.dispatch, info, id.user, equivalentRequests(info, req.Path, req.Headers)...); dp != nil {
		if dp.reject != nil {
			d := *dp.reject
			d.Info, d.User, d.Requestor, d.Rule = info, id.user.GetName(), requestor, dp.name
			return d, false
		}
		rule = dp.rule(info)
	}
	set, remove := planHeaders(id, cc.forwarding, rule, req.Headers)
	// Only a dispatch policy's route reads the user key (its per-user token
	// bucket or global descriptor); the default route has no limit, so its
	// requests carry none: one header (and one digest) less per request.
	if rule != cc.defaultRule {
		set = append(set, Header{Name: envoy.HeaderUser, Value: userKey(id.user.GetName())})
	}
	return Decision{
		Outcome:       Allowed,
		SetHeaders:    set,
		RemoveHeaders: remove,
		Rule:          rule,
		User:          id.user.GetName(),
		Requestor:     requestor,
		Groups:        len(id.user.GetGroups()),
		Info:          info,
		ReplayUntil:   p.replayUntil(req, id, noWait),
	}, false
}

// authenticate runs the cluster's authenticators in order, as kube-apiserver's
// union authenticator does: errors from one do not stop the next, and only
// if none authenticates is the request unauthenticated. With noWait an
// authenticator that would call the apiserver (a cache miss) stops it with
// errWouldBlock before anything is counted.
func (p *Pipeline) authenticate(ctx context.Context, cc *compiledCluster, req *Request, noWait bool) (*identity, error) {
	if noWait {
		for _, a := range cc.authenticators {
			if pk, ok := a.(peeker); ok && !pk.cached(req) {
				return nil, errWouldBlock
			}
		}
	}
	var errs []error
	for _, a := range cc.authenticators {
		id, ok, err := p.reqMetrics.timedAuthenticate(ctx, a, req)
		if ok {
			return id, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// As kube-apiserver (union.NewFailOnError): a credential that failed is
	// never anonymous, only a request without any credential is.
	if cc.anonymous && len(errs) == 0 {
		p.reqMetrics.observeAnonymous()
		return anonymousIdentity, nil
	}
	return nil, errors.Join(errs...)
}

// denied builds a denial whose body is pre-encoded for its outcome.
func denied(o Outcome, info *request.RequestInfo) Decision {
	d := Decision{Outcome: o, Info: info, ResponseHeaders: statusResponseHeaders}
	switch o {
	case Unauthenticated:
		d.Code, d.Body = http.StatusUnauthorized, unauthorizedBody
	case Unavailable:
		d.Code, d.Body = http.StatusServiceUnavailable, notReadyBody
	default:
		d.Code, d.Body = http.StatusBadRequest, badRequestBody
	}
	return d
}

// logDecision writes one line per decision. It never logs credentials: only
// request coordinates, the user name and the outcome.
func (p *Pipeline) logDecision(ctx context.Context, req *Request, d *Decision) {
	if !p.log.Enabled(ctx, p.logLevel) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("cluster", req.Cluster))
	if i := d.Info; i != nil {
		attrs = append(attrs,
			slog.String("verb", i.Verb),
			slog.String("apiGroup", i.APIGroup),
			slog.String("resource", i.Resource),
			slog.String("subresource", i.Subresource),
			slog.String("namespace", i.Namespace),
			slog.String("name", i.Name),
		)
		if !i.IsResourceRequest {
			attrs = append(attrs, slog.String("path", i.Path))
		}
	}
	code := d.Code
	if d.Allowed() {
		code = http.StatusOK
		attrs = append(attrs, slog.String("rule", d.Rule))
	}
	attrs = append(attrs,
		slog.String("user", d.User),
		slog.String("requestor", d.Requestor),
		slog.String("decision", string(d.Outcome)),
		slog.Int("code", code),
	)
	p.log.LogAttrs(ctx, p.logLevel, "request decision", attrs...)
}

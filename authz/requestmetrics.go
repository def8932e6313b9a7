package authz

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// requestMetrics count what operators slice traffic by: cluster, rule,
// verb, resource and decision, and how each authentication method fares.
// Every label is bounded: verbs and resources outside a fixed well-known
// set are "other", rules and clusters come from configuration, methods from
// the authenticator types compiled in.
type requestMetrics struct {
	requests     *prometheus.CounterVec
	authnResults *prometheus.CounterVec
	authnLatency *prometheus.HistogramVec
	// The TokenReview and SubjectAccessReview caches: every lookup, and
	// every review sent upstream (a miss, or a retry of one).
	reviewLookups *prometheus.CounterVec
	reviewsSent   *prometheus.CounterVec
	// reviewsThrottled counts TokenReviews not sent because the cluster
	// had its maximum in flight (answered 503).
	reviewsThrottled *prometheus.CounterVec
	// clientsThrottled counts bearer tokens not reviewed because their
	// client address caused too many refusals (answered 429).
	clientsThrottled *prometheus.CounterVec
	// The lookup counters of each review, resolved once: they are on the
	// hot path of every token request and impersonation check.
	tokenLookups, sarLookups prometheus.Counter
	// userRequests counts per user, for users named in dispatch rules
	// only: a bounded set an operator chose to watch.
	userRequests *prometheus.CounterVec
	// crlNextUpdate is each configured CRL's nextUpdate: past it, every
	// certificate of that issuer is refused (fail closed), which an
	// operator must see coming rather than learn from 401s.
	crlNextUpdate *prometheus.GaugeVec
}

// Review kinds, the review label of the review metrics.
const (
	reviewToken = "tokenreview"
	reviewSAR   = "subjectaccessreview"
)

func newRequestMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_requests_total",
			Help: "Requests decided by the request service, by cluster, rule (the dispatch policy, <policy>.long-running or default; the shedding policy when rejected; none when denied), verb, resource (well-known resources; other beyond; nonresource for non-resource URLs) and decision.",
		}, []string{"cluster", "rule", "verb", "resource", "decision"}),
		authnResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_authn_attempts_total",
			Help: "Authenticator runs, by method (x509, token, websocket_token, jwt, websocket_jwt; anonymous when a request without credentials is forwarded as system:anonymous) and result (success, no_credential, failure).",
		}, []string{"method", "result"}),
		authnLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frontdoor_authn_duration_seconds",
			Help:    "Time one authenticator takes (cache hits included), by method.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"method"}),
		reviewLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_review_cache_lookups_total",
			Help: "Lookups in the TokenReview cache (one per bearer-token authentication) and the SubjectAccessReview cache (one per impersonation check), by review (tokenreview, subjectaccessreview). Hit ratio: 1 - frontdoor_reviews_sent_total / this.",
		}, []string{"review"}),
		reviewsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_reviews_sent_total",
			Help: "TokenReviews and SubjectAccessReviews sent to the upstream apiserver (cache misses), by review and result (tokenreview: authenticated, unauthenticated, error; subjectaccessreview: the HTTP code, or error).",
		}, []string{"review", "result"}),
		reviewsThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_token_reviews_throttled_total",
			Help: "Bearer tokens not reviewed because the cluster already had its maximum of TokenReviews in flight, by cluster; each such request is answered 503 with Retry-After.",
		}, []string{"cluster"}),
		clientsThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_token_reviews_client_throttled_total",
			Help: "Bearer tokens not reviewed because their client address caused too many refused TokenReviews recently, by cluster; each such request is answered 429 with Retry-After (after a tarpit of up to 1 s).",
		}, []string{"cluster"}),
		userRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_user_requests_total",
			Help: "Requests decided by the request service for users named in the cluster's dispatch rules (users, serviceAccounts), by cluster, user, rule and decision. Other users are not counted here (unbounded); the access log has every user.",
		}, []string{"cluster", "user", "rule", "decision"}),
		crlNextUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "frontdoor_x509_crl_next_update_timestamp_seconds",
			Help: "When each CRL of a cluster's x509 revocation stops being authoritative (its nextUpdate, Unix seconds), by cluster and issuer; absent for a CRL without nextUpdate. From then on every client certificate of that issuer is refused (401) until a fresh CRL is published: alert well before it.",
		}, []string{"cluster", "issuer"}),
	}
	m.tokenLookups = m.reviewLookups.WithLabelValues(reviewToken)
	m.sarLookups = m.reviewLookups.WithLabelValues(reviewSAR)
	if reg != nil {
		collectors := []prometheus.Collector{m.requests, m.authnResults, m.authnLatency, m.reviewLookups, m.reviewsSent, m.reviewsThrottled, m.clientsThrottled, m.userRequests, m.crlNextUpdate}
		for i, c := range collectors {
			if err := reg.Register(c); err != nil {
				for _, done := range collectors[:i] {
					reg.Unregister(done)
				}
				return nil, err
			}
		}
	}
	return m, nil
}

// observeDecision counts one decision.
func (m *requestMetrics) observeDecision(cluster string, d *Decision) {
	m.requestsCounter(cluster, d).Inc()
}

// requestsCounter is d's series of frontdoor_requests_total.
func (m *requestMetrics) requestsCounter(cluster string, d *Decision) prometheus.Counter {
	rule := d.Rule
	if !d.Allowed() && d.Outcome != Rejected {
		rule = "none"
	}
	verb, resource := "other", "other"
	if i := d.Info; i != nil {
		verb = boundedVerb(i)
		resource = boundedResource(i)
	}
	return m.requests.WithLabelValues(cluster, rule, verb, resource, string(d.Outcome))
}

// observeUser counts one decision for a user named in the dispatch rules.
func (m *requestMetrics) observeUser(cluster string, d *Decision) {
	m.userRequests.WithLabelValues(cluster, d.User, d.Rule, string(d.Outcome)).Inc()
}

// timedAuthenticate runs one authenticator and records its method's
// latency and result.
func (m *requestMetrics) timedAuthenticate(ctx context.Context, a authenticator, req *Request) (*identity, bool, error) {
	start := time.Now()
	id, ok, err := a.authenticate(ctx, req)
	method := authnMethod(a)
	m.authnLatency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	result := "success"
	switch {
	case ok:
	case err != nil:
		result = "failure"
	default:
		result = "no_credential"
	}
	m.authnResults.WithLabelValues(method, result).Inc()
	return id, ok, err
}

// setCRLs publishes the nextUpdate of every CRL in t, replacing what an
// earlier policy published. Of several CRLs of one issuer the earliest
// counts: any one that expired refuses the issuer's certificates.
func (m *requestMetrics) setCRLs(t *compiledTable) {
	m.crlNextUpdate.Reset()
	for name, cc := range t.clusters {
		if cc.x509 == nil || cc.x509.revoked == nil {
			continue
		}
		earliest := map[string]time.Time{}
		for _, crl := range cc.x509.revoked.crls {
			if e, seen := earliest[crl.issuer]; !crl.nextUpdate.IsZero() && (!seen || crl.nextUpdate.Before(e)) {
				earliest[crl.issuer] = crl.nextUpdate
			}
		}
		for issuer, at := range earliest {
			m.crlNextUpdate.WithLabelValues(name, issuer).Set(float64(at.Unix()))
		}
	}
}

// observeAnonymous records a request forwarded as system:anonymous.
func (m *requestMetrics) observeAnonymous() {
	m.authnResults.WithLabelValues("anonymous", "success").Inc()
}

// authnMethod names an authenticator for metrics. Authenticators that add
// themselves later get their Go type name until named here.
func authnMethod(a authenticator) string {
	switch a.(type) {
	case *x509Authenticator:
		return "x509"
	case bearerAuthenticator:
		return "token"
	case websocketAuthenticator:
		return "websocket_token"
	case jwtBearer:
		return "jwt"
	case jwtWebsocket:
		return "websocket_jwt"
	default:
		name := strings.TrimPrefix(strings.TrimPrefix(typeName(a), "*"), "authz.")
		return strings.ToLower(strings.TrimSuffix(name, "Authenticator"))
	}
}

// wellKnownVerbs are kube-apiserver's resource verbs plus the lowercase HTTP
// methods of non-resource requests.
var wellKnownVerbs = toSet("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
	"proxy", "post", "put", "head", "options")

// wellKnownResources are the built-in resources that carry most traffic;
// CRDs and the rest are "other".
var wellKnownResources = toSet(
	"pods", "nodes", "namespaces", "services", "endpoints", "endpointslices", "configmaps", "secrets",
	"serviceaccounts", "events", "leases", "persistentvolumes", "persistentvolumeclaims",
	"deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs",
	"ingresses", "networkpolicies", "horizontalpodautoscalers", "poddisruptionbudgets",
	"roles", "rolebindings", "clusterroles", "clusterrolebindings",
	"tokenreviews", "subjectaccessreviews", "selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews",
	"customresourcedefinitions", "apiservices", "storageclasses", "csinodes", "csidrivers", "volumeattachments",
	"priorityclasses", "runtimeclasses", "flowschemas", "prioritylevelconfigurations",
	"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies",
	"validatingadmissionpolicybindings", "certificatesigningrequests", "limitranges", "resourcequotas",
	"podtemplates", "replicationcontrollers", "controllerrevisions", "ingressclasses",
)

func boundedVerb(i *request.RequestInfo) string {
	if _, ok := wellKnownVerbs[i.Verb]; ok {
		return i.Verb
	}
	return "other"
}

func boundedResource(i *request.RequestInfo) string {
	if !i.IsResourceRequest {
		return "nonresource"
	}
	if _, ok := wellKnownResources[i.Resource]; ok {
		return i.Resource
	}
	return "other"
}

func toSet(items ...string) map[string]struct{} {
	s := make(map[string]struct{}, len(items))
	for _, it := range items {
		s[it] = struct{}{}
	}
	return s
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

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
}

func newRequestMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_requests_total",
			Help: "Requests decided by the request service, by cluster, rule (the dispatch policy, <policy>.long-running or default; the shedding policy when rejected; none when denied), verb, resource (well-known resources; other beyond; nonresource for non-resource URLs) and decision.",
		}, []string{"cluster", "rule", "verb", "resource", "decision"}),
		authnResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_authn_attempts_total",
			Help: "Authenticator runs, by method (x509, token, websocket_token; anonymous when a request without credentials is forwarded as system:anonymous) and result (success, no_credential, failure).",
		}, []string{"method", "result"}),
		authnLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frontdoor_authn_duration_seconds",
			Help:    "Time one authenticator takes (cache hits included), by method.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"method"}),
	}
	if reg != nil {
		collectors := []prometheus.Collector{m.requests, m.authnResults, m.authnLatency}
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
	rule := d.Rule
	if !d.Allowed() && d.Outcome != Rejected {
		rule = "none"
	}
	verb, resource := "other", "other"
	if i := d.Info; i != nil {
		verb = boundedVerb(i)
		resource = boundedResource(i)
	}
	m.requests.WithLabelValues(cluster, rule, verb, resource, string(d.Outcome)).Inc()
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

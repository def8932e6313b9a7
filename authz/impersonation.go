package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/filters/impersonation"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	webhookmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// How long SubjectAccessReview answers for impersonation are reused: brief,
// so a revoked permission stops working within seconds (kube-apiserver's
// webhook authorizer defaults are 5m and 30s).
const (
	impersonationAllowedTTL = 30 * time.Second
	impersonationDeniedTTL  = 10 * time.Second
)

// statusCodecs encode the Status bodies of impersonation refusals, as
// kube-apiserver's own serializer would (JSON only: Check answers carry
// JSON bodies, which every Kubernetes client reads).
var statusCodecs = func() runtime.NegotiatedSerializer {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(scheme).WithoutConversion()
}()

// impersonator authorizes client impersonation (kubectl --as, --as-group,
// --as-uid, --as-user-extra) with kube-apiserver's own impersonation filter
// (constrained impersonation, as kube-apiserver 1.37 runs it by default,
// including legacy impersonate permissions) over an authorizer that asks
// the upstream cluster with SubjectAccessReviews, made with the gateway's
// identity and cached briefly. The filter decides the resulting user
// (service-account groups, system:authenticated) and formats refusals.
type impersonator struct {
	handler http.Handler
}

// impersonationResult is what the filter decided for one request.
type impersonationResult struct {
	user   user.Info
	called bool
}

type impersonationResultKey struct{}

func newImpersonator(client authorizationv1client.AuthorizationV1Interface, m *requestMetrics) (*impersonator, error) {
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1, Steps: 1}
	sar, err := webhook.NewFromInterface(client, impersonationAllowedTTL, impersonationDeniedTTL, backoff,
		authorizer.DecisionNoOpinion, sarMetrics{m: m}, nil)
	if err != nil {
		return nil, err
	}
	a := countingAuthorizer{Authorizer: sar, m: m}
	next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		res := r.Context().Value(impersonationResultKey{}).(*impersonationResult)
		res.user, _ = request.UserFrom(r.Context())
		res.called = true
	})
	return &impersonator{handler: impersonation.WithConstrainedImpersonation(next, a, statusCodecs)}, nil
}

// impersonationHeaders returns the client's Impersonate-* headers as the
// apiserver's HTTP server would hand them to its filter: canonical names,
// one value per field. Envoy joins repeated fields with ",", so values are
// split there again (a group or extra value containing a comma therefore
// cannot be impersonated through the gateway; it is refused or narrowed,
// never widened). nil when there are none; ok=false when a name is not a
// valid header name (the apiserver's HTTP server would refuse the request).
func impersonationHeaders(h map[string]string) (out http.Header, ok bool) {
	for k, v := range h {
		if len(k) < len(impersonatePrefix) || !strings.EqualFold(k[:len(impersonatePrefix)], impersonatePrefix) {
			continue
		}
		if out == nil {
			out = http.Header{}
		}
		name := textproto.CanonicalMIMEHeaderKey(k)
		if !strings.HasPrefix(name, "Impersonate-") {
			return nil, false // not a token: CanonicalMIMEHeaderKey left it as is
		}
		for part := range strings.SplitSeq(v, ",") {
			out[name] = append(out[name], strings.TrimSpace(part))
		}
	}
	return out, true
}

// impersonate runs the filter for requestor. It returns the user to
// forward, or a denial carrying the filter's own answer (403 Forbidden
// with the apiserver's message, 400 for malformed requests, 500 when the
// SubjectAccessReview failed).
func (im *impersonator) impersonate(ctx context.Context, requestor user.Info, info *request.RequestInfo, headers http.Header) (user.Info, *Decision) {
	res := &impersonationResult{}
	ctx = context.WithValue(ctx, impersonationResultKey{}, res)
	ctx = request.WithUser(ctx, requestor)
	ctx = request.WithRequestInfo(ctx, info)
	headers.Set("Accept", "application/json")
	r := (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: info.Path}, Header: headers, RequestURI: info.Path}).WithContext(ctx)
	w := httptest.NewRecorder()
	im.handler.ServeHTTP(w, r)
	if res.called && res.user != nil {
		return res.user, nil
	}
	code := w.Code
	if code < 400 {
		code = http.StatusInternalServerError
	}
	d := Decision{
		Outcome:         Forbidden,
		Code:            code,
		Body:            w.Body.Bytes(),
		ResponseHeaders: statusResponseHeaders,
		Info:            info,
	}
	if code != http.StatusForbidden {
		d.Outcome = Invalid
	}
	return nil, &d
}

// countingAuthorizer counts SubjectAccessReview cache lookups: every
// question the impersonation filter asks.
type countingAuthorizer struct {
	authorizer.Authorizer
	m *requestMetrics
}

func (c countingAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	c.m.sarLookups.Inc()
	return c.Authorizer.Authorize(ctx, attrs)
}

// sarMetrics counts the SubjectAccessReviews the webhook authorizer sends
// (it records a request only when its cache missed).
type sarMetrics struct {
	webhookmetrics.NoopAuthorizerMetrics
	m *requestMetrics
}

func (s sarMetrics) RecordRequestTotal(_ context.Context, code string) {
	s.m.reviewsSent.WithLabelValues(reviewSAR, code).Inc()
}

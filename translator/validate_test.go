package translator

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// validCluster passes validation; each case below breaks one thing.
func validCluster() *v1alpha1.UpstreamCluster {
	uc := &v1alpha1.UpstreamCluster{}
	uc.Name = "c"
	uc.Spec = v1alpha1.UpstreamClusterSpec{
		Servers: []v1alpha1.Server{
			{Endpoint: "https://10.0.0.1:6443"},
			{Endpoint: "https://10.0.0.2:6443"},
			{Endpoint: "https://10.0.0.3:6443", Disabled: true},
		},
		SecureServing: v1alpha1.SecureServing{ServerNames: []string{"a.example.com", "*.b.example.com"}},
		FlowControl: v1alpha1.FlowControl{FlowControlSchemas: []v1alpha1.FlowControlSchema{
			{Name: "bucket", TokenBucket: &v1alpha1.TokenBucket{QPS: 10}, PerUser: true},
		}},
		DispatchPolicies: []v1alpha1.DispatchPolicy{{
			Name:                  "p",
			Rules:                 []v1alpha1.DispatchPolicyRule{{Verbs: []string{"list"}}},
			UpstreamSubset:        []string{"https://10.0.0.1:6443", "https://10.0.0.3:6443"},
			FlowControlSchemaName: "bucket",
		}},
	}
	return uc
}

func metaDuration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func int32p(v int32) *int32 { return &v }

func TestValidateUpstreamCluster(t *testing.T) {
	spec := field.NewPath("spec")
	server := func(i int) *field.Path { return spec.Child("servers").Index(i).Child("endpoint") }
	hc := spec.Child("healthCheck")
	schema := func(i int) *field.Path { return spec.Child("flowControl", "flowControlSchemas").Index(i) }
	policy := func(i int) *field.Path { return spec.Child("dispatchPolicies").Index(i) }

	for _, tc := range []struct {
		name string
		edit func(s *v1alpha1.UpstreamClusterSpec)
		want field.ErrorList // matched by type, field, value and detail substring
	}{
		{name: "valid", edit: func(*v1alpha1.UpstreamClusterSpec) {}},
		{
			name: "endpoint: each server on its own path, parse error as the detail",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.Servers[0].Endpoint = "http://10.0.0.1"
				s.Servers[1].Endpoint = ""
			},
			want: field.ErrorList{
				field.Invalid(server(0), "http://10.0.0.1", "scheme must be https"),
				field.Required(server(1), ""),
			},
		},
		{
			name: "a disabled server's endpoint is never used, so never checked",
			edit: func(s *v1alpha1.UpstreamClusterSpec) { s.Servers[2].Endpoint = "not a url" },
		},
		{
			name: "the same server twice, however written",
			edit: func(s *v1alpha1.UpstreamClusterSpec) { s.Servers[1].Endpoint = "https://10.0.0.1:6443/" },
			want: field.ErrorList{field.Duplicate(server(1), "https://10.0.0.1:6443/")},
		},
		{
			name: "no enabled server",
			edit: func(s *v1alpha1.UpstreamClusterSpec) { s.Servers = s.Servers[2:]; s.DispatchPolicies = nil },
			want: field.ErrorList{field.Required(spec.Child("servers"), "at least one enabled server")},
		},
		{
			name: "no static server is fine with endpointsFrom: the slices decide",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.Servers, s.DispatchPolicies = nil, nil
				s.EndpointsFrom = &v1alpha1.EndpointsFrom{Service: v1alpha1.ServiceEndpoints{Namespace: "default", Name: "kubernetes"}}
			},
		},
		{
			name: "server names: upper case is fine, a wildcard only in front",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.SecureServing.ServerNames = []string{"UPPER.example.com", "a.*.example.com"}
			},
			want: field.ErrorList{field.Invalid(spec.Child("secureServing", "serverNames").Index(1), "a.*.example.com", "RFC 1123 subdomain")},
		},
		{
			name: "health check: every bad field at once",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.HealthCheck = v1alpha1.HealthCheck{
					Path: "/readyz#x", Interval: metaDuration(0), Timeout: metaDuration(time.Microsecond),
					UnhealthyThreshold: -1, HealthyThreshold: -2,
				}
			},
			want: field.ErrorList{
				field.Invalid(hc.Child("path"), "/readyz#x", "absolute path"),
				field.Invalid(hc.Child("interval"), "0s", "at least 1ms"),
				field.Invalid(hc.Child("timeout"), "1µs", "at least 1ms"),
				field.Invalid(hc.Child("unhealthyThreshold"), int32(-1), "greater than or equal to 0"),
				field.Invalid(hc.Child("healthyThreshold"), int32(-2), "greater than or equal to 0"),
			},
		},
		{
			name: "outlier detection: counts in range, ejection at least 1ms",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.OutlierDetection = v1alpha1.OutlierDetection{
					Consecutive5xx: int32p(-1), ConsecutiveConnectFailures: int32p(1<<20 + 1),
					MaxEjectionPercent: int32p(101), BaseEjectionTime: metaDuration(0),
				}
			},
			want: field.ErrorList{
				field.Invalid(spec.Child("outlierDetection", "consecutive5xx"), int32(-1), "between 0 and 1048576"),
				field.Invalid(spec.Child("outlierDetection", "consecutiveConnectFailures"), int32(1<<20+1), "between 0 and 1048576"),
				field.Invalid(spec.Child("outlierDetection", "maxEjectionPercent"), int32(101), "between 0 and 100"),
				field.Invalid(spec.Child("outlierDetection", "baseEjectionTime"), "0s", "at least 1ms"),
			},
		},
		{
			name: "zero outlier counts turn ejection off",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.OutlierDetection = v1alpha1.OutlierDetection{Consecutive5xx: int32p(0), ConsecutiveConnectFailures: int32p(0)}
			},
		},
		{
			name: "enums: load balancing, strategy and request service",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.LoadBalancing.Policy = "roundrobin"
				s.DispatchPolicies[0].Strategy = "Fastest"
				s.RequestService = "Lua"
			},
			want: field.ErrorList{
				field.NotSupported(spec.Child("loadBalancing", "policy"), "roundrobin", []string{"LeastRequest", "Random", "RoundRobin"}),
				field.NotSupported(spec.Child("requestService"), "Lua", []string{"ExtAuthz", "ExtProc", "InProcess"}),
				field.NotSupported(policy(0).Child("strategy"), "Fastest", []string{"LeastRequest", "Random", "RoundRobin"}),
			},
		},
		{
			name: "token review",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.Authentication.TokenReview = v1alpha1.TokenReviewAuthentication{
					CacheTTL: metaDuration(-time.Second), NegativeCacheTTL: metaDuration(0), Audiences: []string{"a", ""},
				}
			},
			want: field.ErrorList{
				field.Invalid(spec.Child("authentication", "tokenReview", "cacheTTL"), "-1s", "greater than or equal to 0"),
				field.Required(spec.Child("authentication", "tokenReview", "audiences").Index(1), ""),
			},
		},
		{
			name: "token review cache TTLs above their caps (the CRD's CEL rules)",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.Authentication.TokenReview = v1alpha1.TokenReviewAuthentication{
					CacheTTL: metaDuration(time.Hour), NegativeCacheTTL: metaDuration(time.Minute + time.Second),
				}
			},
			want: field.ErrorList{
				field.Invalid(spec.Child("authentication", "tokenReview", "cacheTTL"), "1h0m0s", "must be at most 10m0s"),
				field.Invalid(spec.Child("authentication", "tokenReview", "negativeCacheTTL"), "1m1s", "must be at most 1m0s"),
			},
		},
		{
			name: "token review cache TTLs at their caps",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.Authentication.TokenReview = v1alpha1.TokenReviewAuthentication{
					CacheTTL: metaDuration(10 * time.Minute), NegativeCacheTTL: metaDuration(time.Minute),
				}
			},
		},
		{
			name: "flow schemas: names, limits, one kind each",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.FlowControl.FlowControlSchemas = append(s.FlowControl.FlowControlSchemas,
					v1alpha1.FlowControlSchema{Name: "bucket", TokenBucket: &v1alpha1.TokenBucket{QPS: 0, Burst: -1}},
					v1alpha1.FlowControlSchema{MaxRequestsInflight: &v1alpha1.MaxRequestsInflight{Max: 0}, PerUser: true},
					v1alpha1.FlowControlSchema{Name: "none"},
					v1alpha1.FlowControlSchema{Name: "both", Exempt: &v1alpha1.Exempt{}, MaxRequestsInflight: &v1alpha1.MaxRequestsInflight{Max: 1}},
				)
			},
			want: field.ErrorList{
				field.Duplicate(schema(1).Child("name"), "bucket"),
				field.Invalid(schema(1).Child("tokenBucket", "qps"), int32(0), "greater than or equal to 1"),
				field.Invalid(schema(1).Child("tokenBucket", "burst"), int32(-1), "greater than or equal to 0"),
				field.Required(schema(2).Child("name"), ""),
				field.Invalid(schema(2).Child("maxRequestsInflight", "max"), int32(0), "greater than or equal to 1"),
				field.Forbidden(schema(2).Child("perUser"), "tokenBucket"),
				field.Required(schema(3), "exactly one of"),
				field.Forbidden(schema(4), "only one of"),
			},
		},
		{
			name: "dispatch policy names: required, DNS labels, unique, not a built-in route's",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				p := s.DispatchPolicies[0]
				s.DispatchPolicies = nil
				for _, name := range []string{"", "Upper", "p", "p", "default"} {
					p.Name = name
					s.DispatchPolicies = append(s.DispatchPolicies, p)
				}
			},
			want: field.ErrorList{
				field.Required(policy(0).Child("name"), ""),
				field.Invalid(policy(1).Child("name"), "Upper", "RFC 1123 label"),
				field.Duplicate(policy(3).Child("name"), "p"),
				field.Invalid(policy(4).Child("name"), "default", "is reserved"),
			},
		},
		{
			name: "dispatch policy: rules, subset, reject, schema",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				p := &s.DispatchPolicies[0]
				p.Rules = nil
				p.UpstreamSubset = []string{"https://10.0.0.1:6443/api", "https://10.0.0.9:6443"}
				p.Reject = &v1alpha1.RejectAction{Code: 402, RetryAfterSeconds: -1}
				p.FlowControlSchemaName = "nope"
			},
			want: field.ErrorList{
				field.Required(policy(0).Child("rules"), "at least one rule"),
				// 10.0.0.9 is no static server, but the slices could provide it.
				field.Invalid(policy(0).Child("upstreamSubset").Index(0), "https://10.0.0.1:6443/api", "must not have a path"),
				field.Invalid(policy(0).Child("reject", "code"), int32(402), "used internally"),
				field.Invalid(policy(0).Child("reject", "retryAfterSeconds"), int32(-1), "greater than or equal to 0"),
				field.NotFound(policy(0).Child("flowControlSchemaName"), "nope"),
			},
		},
		{
			name: "a subset of disabled servers only",
			edit: func(s *v1alpha1.UpstreamClusterSpec) {
				s.DispatchPolicies[0].UpstreamSubset = []string{"https://10.0.0.3:6443"}
				s.DispatchPolicies[0].Reject = &v1alpha1.RejectAction{Code: 600}
			},
			want: field.ErrorList{
				field.Invalid(policy(0).Child("upstreamSubset"), []string{"https://10.0.0.3:6443"}, "every server it lists is disabled"),
				field.Invalid(policy(0).Child("reject", "code"), int32(600), "between 400 and 599"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uc := validCluster()
			tc.edit(&uc.Spec)
			_, got := validateUpstreamCluster(uc)
			field.ErrorMatcher{}.ByType().ByField().ByValue().ByDetailSubstring().Test(t, tc.want, got)
		})
	}
}

// TestValidationOrderIsReasonPrecedence: the Accepted reason is the first
// error's, so a spec broken everywhere must list its errors in the order
// the reasons took precedence when the first failed check decided alone.
func TestValidationOrderIsReasonPrecedence(t *testing.T) {
	precedence := []string{
		v1alpha1.ReasonInvalidServer, v1alpha1.ReasonInvalidServerName, v1alpha1.ReasonInvalidHealthCheck,
		v1alpha1.ReasonInvalidLoadBalancing, v1alpha1.ReasonInvalidRequestService, v1alpha1.ReasonInvalidAuthentication,
		v1alpha1.ReasonInvalidFlowControl, v1alpha1.ReasonInvalidDispatchPolicy,
	}
	uc := validCluster()
	s := &uc.Spec
	s.DispatchPolicies[0].Name = ""
	s.FlowControl.FlowControlSchemas[0].Name = ""
	s.Authentication.TokenReview.Audiences = []string{""}
	s.RequestService = "Lua"
	s.LoadBalancing.Policy = "Fastest"
	s.OutlierDetection.MaxEjectionPercent = int32p(101)
	s.HealthCheck.Path = "readyz"
	s.SecureServing.ServerNames = []string{"_"}
	s.Servers[0].Endpoint = "ftp://10.0.0.1"

	_, errs := validateUpstreamCluster(uc)
	var reasons []string
	for _, e := range errs {
		if r := reasonOf(e); len(reasons) == 0 || reasons[len(reasons)-1] != r {
			reasons = append(reasons, r)
		}
	}
	if !slices.Equal(reasons, precedence) {
		t.Errorf("reasons in error order = %v, want %v\n%v", reasons, precedence, errs.ToAggregate())
	}
}

func TestReasonOf(t *testing.T) {
	spec := field.NewPath("spec")
	for _, tc := range []struct {
		err  *field.Error
		want string
	}{
		{field.Required(spec.Child("servers"), ""), v1alpha1.ReasonNoServers},
		{field.Invalid(spec.Child("servers").Index(0).Child("endpoint"), "", ""), v1alpha1.ReasonInvalidServer},
		{field.Invalid(spec.Child("secureServing", "serverNames").Index(0), "", ""), v1alpha1.ReasonInvalidServerName},
		{field.Invalid(spec.Child("healthCheck", "path"), "", ""), v1alpha1.ReasonInvalidHealthCheck},
		{field.Invalid(spec.Child("outlierDetection", "maxEjectionPercent"), 0, ""), v1alpha1.ReasonInvalidHealthCheck},
		{field.NotSupported[string](spec.Child("loadBalancing", "policy"), "", nil), v1alpha1.ReasonInvalidLoadBalancing},
		{field.NotSupported[string](spec.Child("requestService"), "", nil), v1alpha1.ReasonInvalidRequestService},
		{field.Required(spec.Child("authentication", "tokenReview", "audiences").Index(0), ""), v1alpha1.ReasonInvalidAuthentication},
		{field.Invalid(spec.Child("clientConfig", "insecureSkipTLSVerify"), true, ""), v1alpha1.ReasonInvalidClientConfig},
		{field.Required(spec.Child("flowControl", "flowControlSchemas").Index(0), ""), v1alpha1.ReasonInvalidFlowControl},
		{field.Invalid(spec.Child("dispatchPolicies").Index(2).Child("upstreamSubset").Index(0), "", ""), v1alpha1.ReasonInvalidDispatchPolicy},
		{field.Invalid(spec.Child("serversX"), "", ""), v1alpha1.ReasonInvalidConfig},
	} {
		if got := reasonOf(tc.err); got != tc.want {
			t.Errorf("reasonOf(%s) = %s, want %s", tc.err.Field, got, tc.want)
		}
	}
}

// TestEndpointsParsedOnce: validation hands building every endpoint of
// the spec, servers and subsets alike, so nothing parses twice.
func TestEndpointsParsedOnce(t *testing.T) {
	uc := validCluster()
	uc.Spec.DispatchPolicies[0].UpstreamSubset = append(uc.Spec.DispatchPolicies[0].UpstreamSubset, "https://10.0.0.9")
	eps, errs := validateUpstreamCluster(uc)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []string{"https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443", "https://10.0.0.9"}
	for _, e := range want {
		if _, ok := eps.server(e); !ok {
			t.Errorf("endpoint %q not parsed by validation", e)
		}
	}
	if len(eps) != len(want) {
		t.Errorf("%d endpoints parsed, want %d", len(eps), len(want))
	}
}

package translator

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Validation checks one UpstreamCluster on its own, before anything is
// defaulted or resolved, and returns every problem at once, each with its
// field path and worded as kube-apiserver words its own validation errors
// (spec.dispatchPolicies[2].upstreamSubset[0]: Invalid value: …). A user
// then fixes an object in one edit, not one error per round trip, and an
// error reads the same whether the CRD's schema caught it in Kubernetes
// mode or the translator did. The translator checks everything again: file
// mode has no apiserver, and no CRD pattern tells a mistyped IP address
// from a DNS name or https://h from https://h:443.
//
// What validation cannot know is checked while resolving (build_ir.go): the
// EndpointSlices, the Secrets and the gateway's own flags. The order of the
// checks here is the order of the Accepted reasons' precedence: the first
// error gives the reason (reasonOf), so servers come first.

// Details worded as kube-apiserver words them (isNegativeMsg is
// k8s.io/apimachinery/pkg/api/validation's IsNegativeErrorMsg).
const (
	isNegativeMsg   = "must be greater than or equal to 0"
	atLeastOneMsg   = "must be greater than or equal to 1"
	atLeastOneMsMsg = "must be at least 1ms"
)

// endpoints are a spec's endpoint strings (servers and upstreamSubset
// entries), each parsed once, however often the spec names it. Validation
// reports the parse errors; building reads the servers from here and never
// parses again, so the two cannot disagree.
type endpoints map[string]parsedEndpoint

type parsedEndpoint struct {
	srv ServerIR
	err error
}

// parse parses endpoint the first time it is asked for.
func (eps endpoints) parse(endpoint string) parsedEndpoint {
	p, ok := eps[endpoint]
	if !ok {
		p.srv, p.err = parseEndpoint(endpoint)
		eps[endpoint] = p
	}
	return p
}

// server is endpoint's server; false when it did not parse.
func (eps endpoints) server(endpoint string) (ServerIR, bool) {
	p, ok := eps[endpoint]
	return p.srv, ok && p.err == nil
}

// validateEndpoint checks one endpoint at fld.
func (eps endpoints) validateEndpoint(fld *field.Path, endpoint string) *field.Error {
	if endpoint == "" {
		return field.Required(fld, "")
	}
	if p := eps.parse(endpoint); p.err != nil {
		return field.Invalid(fld, endpoint, p.err.Error())
	}
	return nil
}

// validateUpstreamCluster returns every problem of uc's spec, and the
// spec's endpoints parsed (for building). It reads nothing but uc.
func validateUpstreamCluster(uc *v1alpha1.UpstreamCluster) (endpoints, field.ErrorList) {
	spec, fld := &uc.Spec, field.NewPath("spec")
	eps := endpoints{}
	var errs field.ErrorList
	errs = append(errs, validateServers(spec, fld.Child("servers"), eps)...)
	errs = append(errs, validateServerNames(spec.SecureServing.ServerNames, fld.Child("secureServing", "serverNames"))...)
	errs = append(errs, validateHealthCheck(spec.HealthCheck, fld.Child("healthCheck"))...)
	errs = append(errs, validateOutlier(spec.OutlierDetection, fld.Child("outlierDetection"))...)
	errs = append(errs, validateLoadBalancingPolicy(spec.LoadBalancing.Policy, fld.Child("loadBalancing", "policy"))...)
	errs = append(errs, validateRequestServiceMode(spec.RequestService, fld.Child("requestService"))...)
	errs = append(errs, validateTokenReview(spec.Authentication.TokenReview, fld.Child("authentication", "tokenReview"))...)
	errs = append(errs, validateIdentity(spec, fld)...)
	errs = append(errs, validateJWT(spec.Authentication.JWT, fld.Child("authentication", "jwt"))...)
	errs = append(errs, validateFlowSchemas(spec.FlowControl.FlowControlSchemas, fld.Child("flowControl", "flowControlSchemas"))...)
	errs = append(errs, validateDispatchPolicies(spec, fld.Child("dispatchPolicies"), eps)...)
	return eps, errs
}

// validateServers checks the enabled servers: each endpoint valid and
// naming a server no earlier entry names (https://h and https://h:443 are
// one server). A disabled server is never used, so its endpoint is parsed
// (upstreamSubset may name it) but not checked.
func validateServers(spec *v1alpha1.UpstreamClusterSpec, fld *field.Path, eps endpoints) field.ErrorList {
	var errs field.ErrorList
	first := map[ServerIR]int{} // server → index of its first entry
	enabled := 0
	for i, s := range spec.Servers {
		if s.Disabled {
			eps.parse(s.Endpoint)
			continue
		}
		enabled++
		p := fld.Index(i).Child("endpoint")
		if err := eps.validateEndpoint(p, s.Endpoint); err != nil {
			errs = append(errs, err)
			continue
		}
		srv, _ := eps.server(s.Endpoint)
		if j, dup := first[srv]; dup {
			err := field.Duplicate(p, s.Endpoint)
			err.Detail = "the same server as " + fld.Index(j).Child("endpoint").String()
			errs = append(errs, err)
			continue
		}
		first[srv] = i
	}
	// With endpointsFrom, whether any server is left is known only once
	// the EndpointSlices are read (buildServers).
	if enabled == 0 && spec.EndpointsFrom == nil {
		errs = append(errs, field.Required(fld, "at least one enabled server is required when spec.endpointsFrom is not set"))
	}
	return errs
}

// validateServerNames checks the SNI names: DNS names, optionally with a
// leading "*." wildcard as Envoy's server_names accept, in any case.
func validateServerNames(names []string, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, n := range names {
		for _, msg := range validation.IsDNS1123Subdomain(strings.TrimPrefix(strings.ToLower(n), "*.")) {
			errs = append(errs, field.Invalid(fld.Index(i), n, msg))
		}
	}
	return errs
}

// validateHealthCheck checks what Envoy would refuse or misread: a
// relative path or one with a fragment, sub-millisecond durations.
// Unset and zero fields mean the defaults (buildHealthCheck).
func validateHealthCheck(hc v1alpha1.HealthCheck, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p := hc.Path; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n#")) {
		errs = append(errs, field.Invalid(fld.Child("path"), p, "must be an absolute path, without whitespace or '#'"))
	}
	errs = append(errs, minDuration(hc.Interval, time.Millisecond, fld.Child("interval"), atLeastOneMsMsg)...)
	errs = append(errs, minDuration(hc.Timeout, time.Millisecond, fld.Child("timeout"), atLeastOneMsMsg)...)
	if hc.UnhealthyThreshold < 0 {
		errs = append(errs, field.Invalid(fld.Child("unhealthyThreshold"), hc.UnhealthyThreshold, isNegativeMsg))
	}
	if hc.HealthyThreshold < 0 {
		errs = append(errs, field.Invalid(fld.Child("healthyThreshold"), hc.HealthyThreshold, isNegativeMsg))
	}
	return errs
}

// outlierMaxCount bounds the consecutive-failure counts: far beyond any
// useful value, and well inside Envoy's uint32.
const outlierMaxCount = 1 << 20

// validateOutlier checks the counts (zero turns that ejection off) and the
// ejection time.
func validateOutlier(od v1alpha1.OutlierDetection, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	inRange := func(name string, v *int32, hi int) {
		if v != nil && (*v < 0 || int(*v) > hi) {
			errs = append(errs, field.Invalid(fld.Child(name), *v, validation.InclusiveRangeError(0, hi)))
		}
	}
	inRange("consecutive5xx", od.Consecutive5xx, outlierMaxCount)
	inRange("consecutiveConnectFailures", od.ConsecutiveConnectFailures, outlierMaxCount)
	inRange("maxEjectionPercent", od.MaxEjectionPercent, 100)
	errs = append(errs, minDuration(od.BaseEjectionTime, time.Millisecond, fld.Child("baseEjectionTime"), atLeastOneMsMsg)...)
	return errs
}

// minDuration checks an optional duration against its minimum.
func minDuration(d *metav1.Duration, lowest time.Duration, fld *field.Path, msg string) field.ErrorList {
	if d != nil && d.Duration < lowest {
		return field.ErrorList{field.Invalid(fld, d.Duration.String(), msg)}
	}
	return nil
}

// maxDuration refuses a set duration above highest.
func maxDuration(d *metav1.Duration, highest time.Duration, fld *field.Path) field.ErrorList {
	if d != nil && d.Duration > highest {
		return field.ErrorList{field.Invalid(fld, d.Duration.String(), "must be at most "+highest.String())}
	}
	return nil
}

// validateLoadBalancingPolicy checks a policy name; empty means the
// default (the cluster's, for a dispatch policy's strategy).
func validateLoadBalancingPolicy(p v1alpha1.LoadBalancingPolicy, fld *field.Path) field.ErrorList {
	if _, ok := loadBalancingPolicies[p]; p != "" && !ok {
		return field.ErrorList{field.NotSupported(fld, string(p), slices.Sorted(maps.Keys(loadBalancingPolicies)))}
	}
	return nil
}

// validateRequestServiceMode checks spec.requestService names a mode;
// whether the gateway can serve that mode is checked with its flags
// (validateRequestService).
func validateRequestServiceMode(rs v1alpha1.RequestService, fld *field.Path) field.ErrorList {
	if _, ok := requestServices[RequestServiceIR(rs)]; rs != "" && !ok {
		return field.ErrorList{field.NotSupported(fld, string(rs), slices.Sorted(maps.Keys(requestServices)))}
	}
	return nil
}

// Caps of the TokenReview cache TTLs, as the CRD's CEL rules on
// TokenReviewAuthentication (kept equal, so file mode refuses what the
// apiserver would): a revoked token stays valid for up to cacheTTL, and a
// flood of random tokens is remembered for negativeCacheTTL.
const (
	MaxTokenCacheTTL         = 10 * time.Minute
	MaxTokenNegativeCacheTTL = time.Minute
)

// validateTokenReview checks that the cache TTLs are neither negative nor
// above their caps and no audience is empty (unset TTLs mean the
// defaults, buildTokenReview).
func validateTokenReview(tr v1alpha1.TokenReviewAuthentication, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, minDuration(tr.CacheTTL, 0, fld.Child("cacheTTL"), isNegativeMsg)...)
	errs = append(errs, minDuration(tr.NegativeCacheTTL, 0, fld.Child("negativeCacheTTL"), isNegativeMsg)...)
	errs = append(errs, maxDuration(tr.CacheTTL, MaxTokenCacheTTL, fld.Child("cacheTTL"))...)
	errs = append(errs, maxDuration(tr.NegativeCacheTTL, MaxTokenNegativeCacheTTL, fld.Child("negativeCacheTTL"))...)
	for i, a := range tr.Audiences {
		if a == "" {
			errs = append(errs, field.Required(fld.Child("audiences").Index(i), ""))
		}
	}
	return errs
}

// validateFlowSchemas checks each schema: a unique name and exactly one
// kind of limit.
func validateFlowSchemas(schemas []v1alpha1.FlowControlSchema, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, s := range schemas {
		p := fld.Index(i)
		switch {
		case s.Name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case seen[s.Name]:
			errs = append(errs, field.Duplicate(p.Child("name"), s.Name))
		}
		seen[s.Name] = true
		errs = append(errs, validateFlowLimits(s, p)...)
	}
	return errs
}

// validateFlowLimits checks the limit of the schema at fld.
func validateFlowLimits(s v1alpha1.FlowControlSchema, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	kinds := 0
	if b := s.TokenBucket; b != nil {
		kinds++
		if b.QPS < 1 {
			errs = append(errs, field.Invalid(fld.Child("tokenBucket", "qps"), b.QPS, atLeastOneMsg))
		}
		if b.Burst < 0 {
			errs = append(errs, field.Invalid(fld.Child("tokenBucket", "burst"), b.Burst, isNegativeMsg))
		}
		errs = append(errs, validateBucketScope(b, fld.Child("tokenBucket"))...)
	}
	if m := s.MaxRequestsInflight; m != nil {
		kinds++
		if m.Max < 1 {
			errs = append(errs, field.Invalid(fld.Child("maxRequestsInflight", "max"), m.Max, atLeastOneMsg))
		}
	}
	if s.Exempt != nil {
		kinds++
	}
	switch {
	case kinds == 0:
		errs = append(errs, field.Required(fld, "exactly one of tokenBucket, maxRequestsInflight and exempt is required"))
	case kinds > 1:
		errs = append(errs, field.Forbidden(fld, "only one of tokenBucket, maxRequestsInflight and exempt may be set"))
	}
	if s.PerUser && s.TokenBucket == nil {
		errs = append(errs, field.Forbidden(fld.Child("perUser"), "may only be set with tokenBucket"))
	}
	return errs
}

// reservedPolicyNames are the routes every cluster already has.
var reservedPolicyNames = []string{envoy.DefaultRule, upgradeRouteName}

// validateDispatchPolicies checks each policy on its own and against the
// spec's servers and flow schemas. Whether an upstreamSubset entry is one
// of the cluster's servers needs the EndpointSlices (buildDispatch).
func validateDispatchPolicies(spec *v1alpha1.UpstreamClusterSpec, fld *field.Path, eps endpoints) field.ErrorList {
	var errs field.ErrorList
	schemas := map[string]bool{}
	for _, s := range spec.FlowControl.FlowControlSchemas {
		schemas[s.Name] = s.Name != ""
	}
	disabled := disabledServers(spec.Servers, eps)
	seen := map[string]bool{}
	for i, p := range spec.DispatchPolicies {
		at := fld.Index(i)
		errs = append(errs, validatePolicyName(p.Name, at.Child("name"), seen)...)
		if len(p.Rules) == 0 {
			errs = append(errs, field.Required(at.Child("rules"), "at least one rule is required"))
		}
		errs = append(errs, validateLoadBalancingPolicy(p.Strategy, at.Child("strategy"))...)
		errs = append(errs, validateSubset(p.UpstreamSubset, at.Child("upstreamSubset"), eps, disabled)...)
		errs = append(errs, validateReject(p.Reject, at.Child("reject"))...)
		if n := p.FlowControlSchemaName; n != "" && !schemas[n] {
			errs = append(errs, field.NotFound(at.Child("flowControlSchemaName"), n))
		}
	}
	return errs
}

// validatePolicyName checks a policy name: it names an Envoy route and
// cluster, so it is a DNS label, unique, and not a built-in route's.
func validatePolicyName(name string, fld *field.Path, seen map[string]bool) field.ErrorList {
	var errs field.ErrorList
	switch {
	case name == "":
		return field.ErrorList{field.Required(fld, "")}
	case slices.Contains(reservedPolicyNames, name):
		errs = append(errs, field.Invalid(fld, name, "is reserved: every cluster has routes named "+quotedList(reservedPolicyNames)))
	case seen[name]:
		errs = append(errs, field.Duplicate(fld, name))
	}
	seen[name] = true
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, field.Invalid(fld, name, msg))
	}
	return errs
}

// quotedList is "a", "b": how kube-apiserver lists values in messages.
func quotedList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	return strings.Join(quoted, ", ")
}

// validateSubset checks the endpoints of an upstreamSubset. Entries naming
// disabled servers are left out of the policy, so at least one must not.
func validateSubset(subset []string, fld *field.Path, eps endpoints, disabled map[ServerIR]bool) field.ErrorList {
	var errs field.ErrorList
	allDisabled := len(subset) > 0
	for j, e := range subset {
		if err := eps.validateEndpoint(fld.Index(j), e); err != nil {
			errs = append(errs, err)
		}
		srv, ok := eps.server(e)
		allDisabled = allDisabled && ok && disabled[srv]
	}
	if allDisabled {
		errs = append(errs, field.Invalid(fld, subset, "every server it lists is disabled"))
	}
	return errs
}

// disabledServers are the servers that spec.servers disables.
func disabledServers(servers []v1alpha1.Server, eps endpoints) map[ServerIR]bool {
	out := map[ServerIR]bool{}
	for _, s := range servers {
		if srv, ok := eps.server(s.Endpoint); ok && s.Disabled {
			out[srv] = true
		}
	}
	return out
}

// validateReject checks a policy's reject action. Its code may not be the
// one the gateway's own rate limiting answers with internally, which the
// local-reply mapper rewrites to 429.
func validateReject(r *v1alpha1.RejectAction, fld *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	switch code := r.Code; {
	case code == 0: // 429
	case code < 400 || code > 599:
		errs = append(errs, field.Invalid(fld.Child("code"), code, validation.InclusiveRangeError(400, 599)))
	case code == internalRateLimitedStatus:
		errs = append(errs, field.Invalid(fld.Child("code"), code, "is used internally by the gateway's rate limiting"))
	}
	if r.RetryAfterSeconds < 0 {
		errs = append(errs, field.Invalid(fld.Child("retryAfterSeconds"), r.RetryAfterSeconds, isNegativeMsg))
	}
	return errs
}

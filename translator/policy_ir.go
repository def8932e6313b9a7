package translator

import (
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// buildDispatch defaults the dispatch policies of a valid spec and
// resolves their servers; c.Servers and c.LoadBalancing must be built. The
// only error is an upstreamSubset entry that is none of the cluster's
// servers, which depends on the EndpointSlices.
func buildDispatch(spec *v1alpha1.UpstreamClusterSpec, c *ClusterIR, eps endpoints) ([]DispatchIR, field.ErrorList) {
	schemas := buildFlowSchemas(spec.FlowControl.FlowControlSchemas)
	fld := field.NewPath("spec", "dispatchPolicies")
	var out []DispatchIR
	var errs field.ErrorList
	for i, p := range spec.DispatchPolicies {
		d := DispatchIR{
			Name:          p.Name,
			LoadBalancing: loadBalancing(p.Strategy, c.LoadBalancing),
			Servers:       c.Servers,
			Flow:          schemas[p.FlowControlSchemaName],
		}
		if len(p.UpstreamSubset) > 0 {
			var subsetErrs field.ErrorList
			d.Servers, subsetErrs = subsetServers(p.UpstreamSubset, fld.Index(i).Child("upstreamSubset"), spec, c, eps)
			errs = append(errs, subsetErrs...)
		}
		for _, r := range p.Rules {
			d.Rules = append(d.Rules, compileRule(r))
		}
		if r := p.Reject; r != nil {
			code := int(r.Code)
			if code == 0 {
				code = 429 // Too Many Requests
			}
			d.Reject = &policy.Reject{Code: code, RetryAfterSeconds: int(r.RetryAfterSeconds), Message: r.Message}
		}
		out = append(out, d)
	}
	return out, errs
}

// subsetServers are the servers of an upstreamSubset, in its order and
// deduplicated, without the disabled ones.
func subsetServers(subset []string, fld *field.Path, spec *v1alpha1.UpstreamClusterSpec, c *ClusterIR, eps endpoints) ([]ServerIR, field.ErrorList) {
	disabled := disabledServers(spec.Servers, eps)
	members := map[ServerIR]bool{}
	for _, s := range c.Servers {
		members[s] = true
	}
	var out []ServerIR
	var errs field.ErrorList
	for j, e := range subset {
		srv, _ := eps.server(e)
		switch {
		case disabled[srv]:
		case !members[srv]:
			errs = append(errs, field.Invalid(fld.Index(j), e, "must be one of the cluster's servers (spec.servers or spec.endpointsFrom)"))
		case !slices.Contains(out, srv):
			out = append(out, srv)
		}
	}
	return out, errs
}

// buildFlowSchemas defaults the flow-control schemas and indexes them by
// name.
func buildFlowSchemas(in []v1alpha1.FlowControlSchema) map[string]FlowIR {
	out := map[string]FlowIR{}
	for _, s := range in {
		f := FlowIR{Schema: s.Name}
		if b := s.TokenBucket; b != nil {
			f.QPS, f.Burst, f.PerUser = uint32(b.QPS), uint32(b.Burst), s.PerUser //nolint:gosec // validated non-negative
			if f.Burst == 0 {
				f.Burst = f.QPS
			}
			f.Global = b.Scope == v1alpha1.RateLimitScopeGlobal
			f.FailClosed = f.Global && b.FailureMode == v1alpha1.RateLimitFailClosed
		}
		if m := s.MaxRequestsInflight; m != nil {
			f.MaxInflight = uint32(m.Max) //nolint:gosec // validated non-negative
		}
		out[s.Name] = f
	}
	return out
}

// compileRule turns an API rule into the request service's rule; service
// accounts become the user names kube-apiserver gives them.
func compileRule(r v1alpha1.DispatchPolicyRule) policy.Rule {
	out := policy.Rule{
		Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames,
		Namespaces: r.Namespaces, NonResourceURLs: r.NonResourceURLs, Users: r.Users, UserGroups: r.UserGroups,
	}
	for _, sa := range r.ServiceAccounts {
		out.ServiceAccounts = append(out.ServiceAccounts, "system:serviceaccount:"+sa.Namespace+":"+sa.Name)
	}
	return out
}

package translator

import (
	"fmt"
	"slices"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// reservedPolicyNames are the routes every cluster already has.
var reservedPolicyNames = []string{envoy.DefaultRule, upgradeRouteName}

// buildDispatch validates spec.dispatchPolicies against the cluster's
// servers and spec.flowControl. c.Servers and c.LoadBalancing must be built.
func buildDispatch(st *statusBuilder, c *ClusterIR) []DispatchIR {
	spec := &st.uc.Spec
	schemas, ok := buildFlowSchemas(st, spec.FlowControl.FlowControlSchemas)
	if !ok {
		return nil
	}
	servers := map[string]ServerIR{}
	for _, s := range c.Servers {
		servers[fmt.Sprintf("%s|%d", s.Host, s.Port)] = s
	}
	disabled := map[string]bool{}
	for _, s := range spec.Servers {
		if srv, err := parseEndpoint(s.Endpoint); err == nil && s.Disabled {
			disabled[fmt.Sprintf("%s|%d", srv.Host, srv.Port)] = true
		}
	}
	seen := map[string]bool{}
	var out []DispatchIR
	for i, p := range spec.DispatchPolicies {
		at := fmt.Sprintf("dispatchPolicies[%d] %q", i, p.Name)
		bad := func(format string, args ...any) []DispatchIR {
			st.reject(v1alpha1.ReasonInvalidDispatchPolicy, at+": "+fmt.Sprintf(format, args...))
			return nil
		}
		switch {
		case p.Name == "" || !dnsLabel(p.Name):
			return bad("name must be a DNS label (lower case letters, digits and '-')")
		case slices.Contains(reservedPolicyNames, p.Name):
			return bad("the names %v are reserved", reservedPolicyNames)
		case seen[p.Name]:
			return bad("another policy is already named %q", p.Name)
		case len(p.Rules) == 0:
			return bad("at least one rule is required")
		}
		seen[p.Name] = true
		d := DispatchIR{Name: p.Name, LoadBalancing: c.LoadBalancing, Servers: c.Servers}
		if p.Strategy != "" {
			lb, ok := lbPolicy(p.Strategy)
			if !ok {
				return bad("strategy %q is not one of RoundRobin, Random, LeastRequest", p.Strategy)
			}
			d.LoadBalancing = lb
		}
		if len(p.UpstreamSubset) > 0 {
			d.Servers = nil
			for j, e := range p.UpstreamSubset {
				srv, err := parseEndpoint(e)
				if err != nil {
					return bad("upstreamSubset[%d]: %v", j, err)
				}
				key := fmt.Sprintf("%s|%d", srv.Host, srv.Port)
				if disabled[key] {
					continue
				}
				s, ok := servers[key]
				if !ok {
					return bad("upstreamSubset[%d] %q is not one of the cluster's servers", j, e)
				}
				if !slices.Contains(d.Servers, s) {
					d.Servers = append(d.Servers, s)
				}
			}
			if len(d.Servers) == 0 {
				return bad("every server of upstreamSubset is disabled")
			}
		}
		for _, r := range p.Rules {
			d.Rules = append(d.Rules, compileRule(r))
		}
		if p.Reject != nil {
			code := int(p.Reject.Code)
			if code == 0 {
				code = 429 // Too Many Requests
			}
			if code < 400 || code > 599 || code == internalRateLimitedStatus || p.Reject.RetryAfterSeconds < 0 {
				return bad("reject.code must be 400-599 (but not %d, used internally) and reject.retryAfterSeconds not negative", internalRateLimitedStatus)
			}
			d.Reject = &policy.Reject{Code: code, RetryAfterSeconds: int(p.Reject.RetryAfterSeconds), Message: p.Reject.Message}
		}
		if n := p.FlowControlSchemaName; n != "" {
			f, ok := schemas[n]
			if !ok {
				return bad("flowControlSchemaName %q names no schema in flowControl.flowControlSchemas", n)
			}
			d.Flow = f
		}
		out = append(out, d)
	}
	return out
}

// buildFlowSchemas validates the schemas and indexes them by name.
func buildFlowSchemas(st *statusBuilder, in []v1alpha1.FlowControlSchema) (map[string]FlowIR, bool) {
	out := map[string]FlowIR{}
	for i, s := range in {
		bad := func(msg string) (map[string]FlowIR, bool) {
			st.reject(v1alpha1.ReasonInvalidFlowControl, fmt.Sprintf("flowControl.flowControlSchemas[%d] %q: %s", i, s.Name, msg))
			return nil, false
		}
		if s.Name == "" {
			return bad("name is required")
		}
		if _, dup := out[s.Name]; dup {
			return bad("another schema has the same name")
		}
		n := 0
		f := FlowIR{Schema: s.Name}
		if b := s.TokenBucket; b != nil {
			n++
			if b.QPS < 1 || b.Burst < 0 {
				return bad("tokenBucket.qps must be at least 1 and burst not negative")
			}
			f.QPS, f.Burst, f.PerUser = uint32(b.QPS), uint32(b.Burst), s.PerUser
			if f.Burst == 0 {
				f.Burst = f.QPS
			}
		}
		if m := s.MaxRequestsInflight; m != nil {
			n++
			if m.Max < 1 {
				return bad("maxRequestsInflight.max must be at least 1")
			}
			f.MaxInflight = uint32(m.Max)
		}
		if s.Exempt != nil {
			n++
		}
		if n != 1 {
			return bad("exactly one of tokenBucket, maxRequestsInflight and exempt is required")
		}
		if s.PerUser && s.TokenBucket == nil {
			return bad("perUser applies to tokenBucket only")
		}
		out[s.Name] = f
	}
	return out, true
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

func lbPolicy(p v1alpha1.LoadBalancingPolicy) (LoadBalancingIR, bool) {
	switch p {
	case v1alpha1.RoundRobin:
		return LBRoundRobin, true
	case v1alpha1.Random:
		return LBRandom, true
	case v1alpha1.LeastRequest:
		return LBLeastRequest, true
	}
	return "", false
}

func dnsLabel(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return true
}

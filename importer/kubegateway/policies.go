package kubegateway

import (
	"fmt"
	"sort"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Names of the policies the conversion adds; converted policies are
// policy-<index in the KubeGateway object>, so a report line and a policy
// name point at the same source policy.
const (
	denyAllPolicy   = "deny-all-requests"
	unmatchedPolicy = "no-rule-matches"
)

// CRD limits a converted policy must fit.
const (
	maxPolicies = 64
	maxRules    = 32
	maxSubset   = 16
)

// convertPolicies converts the dispatch policies in order (first match wins
// in both gateways) and adds what KubeGateway does outside them: its
// DenyAllRequests feature gate answers everything 503 before any policy,
// and a request no policy matches gets a 500, where Frontdoor would send
// it to every server (its implicit policy "default").
func (c *converter) convertPolicies() []v1alpha1.DispatchPolicy {
	var out []v1alpha1.DispatchPolicy
	uses := map[string]int{}
	for i, p := range c.in.Spec.DispatchPolicies {
		field := fmt.Sprintf("spec.dispatchPolicies[%d]", i)
		dp := v1alpha1.DispatchPolicy{Name: fmt.Sprintf("policy-%d", i)}
		for j, r := range p.Rules {
			dp.Rules = append(dp.Rules, c.convertRule(fmt.Sprintf("%s.rules[%d]", field, j), r)...)
		}
		if len(dp.Rules) == 0 {
			c.add(field, NotCarried, "no rule of it is left: the policy is dropped, and the requests it took now reach the next policy that matches them")
			continue
		}
		if len(dp.Rules) > maxRules {
			c.add(field+".rules", NotCarried, "%d rules: Frontdoor takes at most %d per policy; the rest are dropped", len(dp.Rules), maxRules)
			dp.Rules = dp.Rules[:maxRules]
		}
		c.subset(field, p, &dp)
		switch p.Strategy {
		case "":
		case "RoundRobin":
			dp.Strategy = v1alpha1.RoundRobin
		default:
			dp.Strategy = v1alpha1.RoundRobin
			c.add(field+".strategy", Converted, "%q: KubeGateway accepts only RoundRobin and picks servers round robin whatever the value; RoundRobin", p.Strategy)
		}
		if n := p.FlowControlSchemaName; n != "" {
			switch {
			case c.schemas[n]:
				dp.FlowControlSchemaName = n
				uses[n]++
			case c.definesSchema(n):
				c.add(field+".flowControlSchemaName", NotCarried, "%q was not carried (see its line); the policy has no limit", n)
			default:
				c.add(field+".flowControlSchemaName", Converted, "%q names no schema: KubeGateway applies no limit then, and neither does Frontdoor", n)
			}
		}
		if p.LogMode != "" {
			c.add(field+".logMode", NotCarried, "%q: Frontdoor logs every request in Envoy's access log (with the policy as its rule); there is no per-policy switch", p.LogMode)
		}
		out = append(out, dp)
	}
	names := make([]string, 0, len(uses))
	for n := range uses {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if uses[n] > 1 {
			c.add("spec.flowControl.flowControlSchemas["+n+"]", NotCarried,
				"used by %d policies: KubeGateway shares one limiter among them, Frontdoor gives each policy a limit of this size of its own", uses[n])
		}
	}
	res, nonRes := covered(out)
	if !res || !nonRes {
		out = append(out, v1alpha1.DispatchPolicy{
			Name:   unmatchedPolicy,
			Rules:  matchAll(!res, !nonRes),
			Reject: &v1alpha1.RejectAction{Code: 500, Message: "no router rule matches this request"},
		})
		c.add("spec.dispatchPolicies", Added, "policy %s last: KubeGateway answers 500 to a request no policy matches, where Frontdoor would send it to every server; delete the policy for Frontdoor's behaviour", unmatchedPolicy)
	}
	// Prepended last, so that unmatched requests still get their 500 once
	// the switch is deleted.
	if contains(c.featureGates(), "DenyAllRequests") {
		out = append([]v1alpha1.DispatchPolicy{{
			Name:  denyAllPolicy,
			Rules: matchAll(true, true),
			Reject: &v1alpha1.RejectAction{Code: 503,
				Message: fmt.Sprintf("request for %s denied by featureGate(DenyAllRequests)", c.in.Metadata.Name)},
		}}, out...)
		c.add("metadata.annotations["+featureGatesAnnotation+"]", Converted,
			"DenyAllRequests=true: KubeGateway answers every request 503; the first policy, %s, does the same (delete it to serve again)", denyAllPolicy)
	}
	if len(out) > maxPolicies {
		c.add("spec.dispatchPolicies", NotCarried, "%d policies: Frontdoor takes at most %d; the last ones are dropped", len(out), maxPolicies)
		out = out[:maxPolicies]
	}
	return out
}

// subset carries upstreamSubset, or upsteamSubset (the spelling
// KubeGateway's docs show and its early releases read), onto the carried
// servers. A subset of which no server is left answers as KubeGateway does
// when it finds no endpoint: 503.
func (c *converter) subset(field string, p kgDispatchPolicy, dp *v1alpha1.DispatchPolicy) {
	subset, name := p.UpstreamSubset, "upstreamSubset"
	if len(p.UpsteamSubset) > 0 {
		switch {
		case len(p.UpstreamSubset) == 0:
			subset, name = p.UpsteamSubset, "upsteamSubset"
			c.add(field+".upsteamSubset", Converted, "the misspelling KubeGateway's docs show (and its early releases read) is read as upstreamSubset")
		default:
			c.add(field+".upsteamSubset", NotCarried, "upstreamSubset is given too and is the one carried")
		}
	}
	for k, e := range subset {
		ep, ok := c.servers[e]
		if !ok {
			c.add(fmt.Sprintf("%s.%s[%d]", field, name, k), NotCarried, "%q is not one of the carried servers; KubeGateway skips it too", e)
			continue
		}
		if !contains(dp.UpstreamSubset, ep) {
			dp.UpstreamSubset = append(dp.UpstreamSubset, ep)
		}
	}
	if len(subset) > 0 && len(dp.UpstreamSubset) == 0 {
		dp.Reject = &v1alpha1.RejectAction{Code: 503, Message: "no ready endpoints"}
		c.add(field+"."+name, Converted, "no server of the subset is left: KubeGateway answers 503 (no ready endpoints), and so does this policy (reject)")
	}
	if len(dp.UpstreamSubset) > maxSubset {
		c.add(field+"."+name, NotCarried, "%d endpoints: Frontdoor takes at most %d per subset; the rest are dropped", len(dp.UpstreamSubset), maxSubset)
		dp.UpstreamSubset = dp.UpstreamSubset[:maxSubset]
	}
}

func (c *converter) definesSchema(name string) bool {
	for _, s := range c.in.Spec.FlowControl.Schemas {
		if s.Name == name {
			return true
		}
	}
	return false
}

// matchAll is a rule matching every resource request and one matching
// every non-resource request, as asked.
func matchAll(resources, nonResources bool) []v1alpha1.DispatchPolicyRule {
	var out []v1alpha1.DispatchPolicyRule
	if resources {
		out = append(out, v1alpha1.DispatchPolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}})
	}
	if nonResources {
		out = append(out, v1alpha1.DispatchPolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}})
	}
	return out
}

// covered reports whether some policy already takes every resource request
// and every non-resource request (so none is left unmatched).
func covered(ps []v1alpha1.DispatchPolicy) (resources, nonResources bool) {
	for _, p := range ps {
		for _, r := range p.Rules {
			if !contains(r.Verbs, "*") || len(r.Users)+len(r.UserGroups)+len(r.ServiceAccounts) > 0 {
				continue
			}
			if contains(r.APIGroups, "*") && contains(r.Resources, "*") && len(r.ResourceNames) == 0 && len(r.Namespaces) == 0 {
				resources = true
			}
			if contains(r.NonResourceURLs, "*") {
				nonResources = true
			}
		}
	}
	return resources, nonResources
}

package translatortest

import (
	"fmt"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Dispatch-rule configs, for the translator's dispatch-rule benchmark and
// the rules figures of tests/bench alike, are shaped inside the CRD's
// limits (64 policies of up to 32 rules per UpstreamCluster): N rules are
// policies of RulesPerPolicy rules, at most PoliciesPerCluster policies
// (1,000 rules) per UpstreamCluster, on as many UpstreamClusters as N
// needs.
const (
	RulesPerPolicy     = 20
	PoliciesPerCluster = 50
)

// DispatchRuleClusters returns UpstreamClusters like tmpl, named
// <prefix>-NNN and each serving <name>.example.com, holding n dispatch
// rules between them: each rule matches its own user, and each policy has
// its own flow-control schema (a token bucket per user).
func DispatchRuleClusters(tmpl *v1alpha1.UpstreamCluster, prefix string, n int) []*v1alpha1.UpstreamCluster {
	var out []*v1alpha1.UpstreamCluster
	perCluster := RulesPerPolicy * PoliciesPerCluster
	for c := 0; c*perCluster < n; c++ {
		uc := tmpl.DeepCopy()
		uc.Name = fmt.Sprintf("%s-%03d", prefix, c)
		uc.Spec.SecureServing.ServerNames = []string{uc.Name + ".example.com"}
		for p := 0; p < PoliciesPerCluster && c*perCluster+p*RulesPerPolicy < n; p++ {
			name := fmt.Sprintf("policy-%02d", p)
			pol := v1alpha1.DispatchPolicy{Name: name, FlowControlSchemaName: name}
			for r := 0; r < RulesPerPolicy && c*perCluster+p*RulesPerPolicy+r < n; r++ {
				pol.Rules = append(pol.Rules, v1alpha1.DispatchPolicyRule{
					Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "configmaps"},
					Users: []string{fmt.Sprintf("user-%d-%d-%d", c, p, r)},
				})
			}
			uc.Spec.DispatchPolicies = append(uc.Spec.DispatchPolicies, pol)
			uc.Spec.FlowControl.FlowControlSchemas = append(uc.Spec.FlowControl.FlowControlSchemas, v1alpha1.FlowControlSchema{
				Name: name, TokenBucket: &v1alpha1.TokenBucket{QPS: 50, Burst: 100}, PerUser: true,
			})
		}
		out = append(out, uc)
	}
	return out
}

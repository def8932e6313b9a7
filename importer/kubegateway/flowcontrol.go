package kubegateway

import (
	"fmt"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// convertFlowControl carries each schema KubeGateway would build. Its
// gateway picks a schema's kind as exempt, else maxRequestsInflight, else
// tokenBucket, and a schema with none is exempt; the global kinds only
// ever add a cross-replica limit on top of the local one (they require
// it), so the local one is carried and the global one reported.
func (c *converter) convertFlowControl() v1alpha1.FlowControl {
	c.schemas = map[string]bool{}
	var out v1alpha1.FlowControl
	for i, s := range c.in.Spec.FlowControl.Schemas {
		field := fmt.Sprintf("spec.flowControl.flowControlSchemas[%d]", i)
		switch {
		case s.Name == "":
			c.add(field+".name", NotCarried, "a schema without a name cannot be referred to")
			continue
		case len(s.Name) > 63:
			c.add(field+".name", NotCarried, "%q is longer than Frontdoor's 63 characters; policies referring to it get no limit", s.Name)
			continue
		case c.schemas[s.Name]:
			c.add(field+".name", NotCarried, "%q is defined twice; the first is carried", s.Name)
			continue
		}
		fs := v1alpha1.FlowControlSchema{Name: s.Name}
		kinds := 0
		for _, set := range []bool{s.Exempt != nil, s.MaxRequestsInflight != nil, s.TokenBucket != nil} {
			if set {
				kinds++
			}
		}
		if kinds > 1 {
			c.add(field, Converted, "more than one kind: KubeGateway uses the first of exempt, maxRequestsInflight, tokenBucket, and so does the conversion")
		}
		switch {
		case s.Exempt != nil:
			fs.Exempt = &v1alpha1.Exempt{}
		case s.MaxRequestsInflight != nil:
			if s.MaxRequestsInflight.Max < 1 {
				c.add(field+".maxRequestsInflight.max", NotCarried, "%d: Frontdoor's cap is at least 1; to refuse every request of a policy use its reject", s.MaxRequestsInflight.Max)
				continue
			}
			fs.MaxRequestsInflight = &v1alpha1.MaxRequestsInflight{Max: s.MaxRequestsInflight.Max}
			c.add(field+".maxRequestsInflight", Converted, "long-running requests (watch, exec, attach, port-forward, proxy, logs) no longer count against the cap, as in kube-apiserver; KubeGateway counted them")
		case s.TokenBucket != nil:
			if s.TokenBucket.QPS < 1 {
				c.add(field+".tokenBucket.qps", NotCarried, "%d: qps must be at least 1", s.TokenBucket.QPS)
				continue
			}
			fs.TokenBucket = &v1alpha1.TokenBucket{QPS: s.TokenBucket.QPS, Burst: max(s.TokenBucket.Burst, 0)}
		default:
			fs.Exempt = &v1alpha1.Exempt{}
			c.add(field, Converted, "no kind given: KubeGateway treats it as exempt")
		}
		if s.GlobalMaxRequestsInflight != nil || s.GlobalTokenBucket != nil {
			c.add(field, NotCarried, "the global (cross-replica) limit: Frontdoor has no global limits yet; the local limit of the schema is carried and holds per Envoy replica")
		}
		if s.Strategy != "" {
			c.add(field+".strategy", NotCarried, "%q selects KubeGateway's global limiter mode, which Frontdoor does not have", s.Strategy)
		}
		c.schemas[s.Name] = true
		out.FlowControlSchemas = append(out.FlowControlSchemas, fs)
	}
	return out
}

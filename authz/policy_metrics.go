package authz

import "github.com/prometheus/client_golang/prometheus"

// policyMetrics count decisions per dispatch policy. Envoy counts the rest
// per policy (throttled, in flight, overflow): see README "Dispatch
// policies".
type policyMetrics struct {
	decisions *prometheus.CounterVec
}

func newPolicyMetrics(reg prometheus.Registerer) (*policyMetrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "frontdoor_authz_policy_requests_total",
		Help: "Authenticated requests by cluster, dispatch rule (policy name, <policy>.long-running, or default) and decision (allowed, rejected by a shedding policy).",
	}, []string{"cluster", "rule", "decision"})
	if reg != nil {
		if err := reg.Register(decisions); err != nil {
			return nil, err
		}
	}
	return &policyMetrics{decisions: decisions}, nil
}

// observe counts d when a rule decided it (allowed or shed).
func (m *policyMetrics) observe(cluster string, d *Decision) {
	if d.Rule != "" && (d.Outcome == Allowed || d.Outcome == Rejected) {
		m.decisions.WithLabelValues(cluster, d.Rule, string(d.Outcome)).Inc()
	}
}

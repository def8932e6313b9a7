package translator

import (
	"testing"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// TestRuleRoute validates the route every dispatch policy gets.
func TestRuleRoute(t *testing.T) {
	c := &ClusterIR{Name: "alpha"}
	r := ruleRoute(c, "controller-manager")
	if err := r.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if got := r.GetRoute().GetCluster(); got != "alpha/controller-manager" {
		t.Errorf("cluster = %q", got)
	}
	if h := r.GetMatch().GetHeaders()[0]; h.GetName() != envoy.HeaderRule || h.GetStringMatch().GetExact() != "controller-manager" {
		t.Errorf("header match = %v", h)
	}
}

package translator

import (
	"testing"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
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

// The in-process filter leaves the route Envoy chose before it ran when a
// request falls to the default rule (inprocess.needsReroute). That holds
// only while no route but the default one and the upgrade route can match
// a request without the rule header, and the default route is the default
// rule's: pin both.
func TestOnlyDefaultAndUpgradeRoutesMatchWithoutRuleHeader(t *testing.T) {
	c := &ClusterIR{Name: "alpha", RequestService: RequestServiceIR(v1alpha1.RequestServiceInProcess),
		Dispatch: []DispatchIR{{Name: "batch"}, {Name: "capped", Flow: FlowIR{MaxInflight: 3}}}}
	routes := routeConfiguration(c).GetVirtualHosts()[0].GetRoutes()
	last := routes[len(routes)-1]
	if last.GetName() != envoy.DefaultRule || last.GetRoute().GetCluster() != envoy.DefaultClusterName("alpha") || len(last.GetMatch().GetHeaders()) != 0 {
		t.Errorf("last route %v, want the catch-all route of the default rule", last)
	}
	for _, r := range routes[:len(routes)-1] {
		hs := r.GetMatch().GetHeaders()
		if len(hs) != 1 {
			t.Errorf("route %q matches on %d headers", r.GetName(), len(hs))
			continue
		}
		if r.GetName() == upgradeRouteName {
			if hs[0].GetName() != "upgrade" {
				t.Errorf("upgrade route matches %v", hs[0])
			}
		} else if hs[0].GetName() != envoy.HeaderRule || hs[0].GetPresentMatch() {
			t.Errorf("route %q can match without the rule header: %v", r.GetName(), hs[0])
		}
	}
}

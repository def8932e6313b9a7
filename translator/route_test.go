package translator

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

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
	twins := 0
	for _, r := range routes[:len(routes)-1] {
		hs := r.GetMatch().GetHeaders()
		if r.GetName() == upgradeRouteName {
			if len(hs) != 1 || hs[0].GetName() != "upgrade" {
				t.Errorf("upgrade route matches %v", hs)
			}
			continue
		}
		// A rule route, or its upgrade twin (which also needs Upgrade).
		if len(hs) == 2 {
			twins++
			if hs[1].GetName() != "upgrade" || !hs[1].GetPresentMatch() {
				t.Errorf("route %q: second header match %v, want Upgrade present", r.GetName(), hs[1])
			}
		} else if len(hs) != 1 {
			t.Errorf("route %q matches on %d headers", r.GetName(), len(hs))
			continue
		}
		if hs[0].GetName() != envoy.HeaderRule || hs[0].GetPresentMatch() {
			t.Errorf("route %q can match without the rule header: %v", r.GetName(), hs[0])
		}
	}
	if twins != 3 { // batch, capped, capped.long-running
		t.Errorf("%d upgrade twin routes, want 3", twins)
	}
}

// TestUpgradeTwins pins what item 1 of the policy hardening relies on: a
// policy's upgrades take a route (before the catch-all upgrade route) to an
// HTTP/1.1 cluster over the policy's servers, with the policy's token
// bucket and in-flight cap.
func TestUpgradeTwins(t *testing.T) {
	c := &ClusterIR{Name: "alpha", RequestService: RequestServiceIR(v1alpha1.RequestServiceExtAuthz), Servers: []ServerIR{{Host: "10.0.0.1", Port: 6443}, {Host: "10.0.0.2", Port: 6443}},
		HealthCheck: HealthCheckIR{Path: "/readyz", Interval: time.Second, Timeout: time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1},
		Dispatch: []DispatchIR{
			{Name: "limited", Servers: []ServerIR{{Host: "10.0.0.2", Port: 6443}}, Flow: FlowIR{QPS: 2, Burst: 2}},
			{Name: "capped", Flow: FlowIR{MaxInflight: 3}},
		}}
	routes := routeConfiguration(c).GetVirtualHosts()[0].GetRoutes()
	index := map[string]int{}
	for i, r := range routes {
		index[r.GetName()] = i
	}
	for _, name := range []string{"limited", "capped", "capped.long-running"} {
		twin, ok := index[name+upgradeTwinSuffix]
		if !ok {
			t.Fatalf("no upgrade twin route for %q: %v", name, index)
		}
		if twin > index[upgradeRouteName] || index[upgradeRouteName] > index[name] {
			t.Errorf("route order %q %d, upgrade %d, %q %d: want twin < upgrade < rule", name+upgradeTwinSuffix, twin, index[upgradeRouteName], name, index[name])
		}
		if got, want := routes[twin].GetRoute().GetCluster(), "alpha/"+name+upgradeTwinSuffix; got != want {
			t.Errorf("twin of %q sends to %q, want %q", name, got, want)
		}
		if err := routes[twin].ValidateAll(); err != nil {
			t.Error(err)
		}
	}
	if !proto.Equal(routes[index["limited.upgrade"]].GetTypedPerFilterConfig()[localRateLimitFilterName], routes[index["limited"]].GetTypedPerFilterConfig()[localRateLimitFilterName]) ||
		routes[index["limited"]].GetTypedPerFilterConfig()[localRateLimitFilterName] == nil {
		t.Error("the upgrade twin of a token-bucket policy has not the policy's rate limit")
	}

	clusters := map[string]*clusterv3.Cluster{}
	eps := map[string]*endpointv3.ClusterLoadAssignment{}
	policyClusters(c, func(_ string, r types.Resource) {
		switch r := r.(type) {
		case *clusterv3.Cluster:
			clusters[r.GetName()] = r
		case *endpointv3.ClusterLoadAssignment:
			eps[r.GetClusterName()] = r
		}
	})
	for _, name := range []string{"limited", "capped", "capped.long-running"} {
		rule, twin := clusters["alpha/"+name], clusters["alpha/"+name+upgradeTwinSuffix]
		if twin == nil {
			t.Fatalf("no upgrade twin cluster of %q", name)
		}
		if got, want := twin.GetEdsClusterConfig().GetServiceName(), rule.GetEdsClusterConfig().GetServiceName(); got != want || got == "" {
			t.Errorf("twin of %q reads endpoints %q, want the rule cluster's %q", name, got, want)
		}
		if !proto.Equal(twin.GetCircuitBreakers(), rule.GetCircuitBreakers()) {
			t.Errorf("twin of %q circuit breakers %v, want %v", name, twin.GetCircuitBreakers(), rule.GetCircuitBreakers())
		}
		if n := len(twin.GetHealthChecks()) + len(rule.GetHealthChecks()); n != 0 {
			t.Errorf("twin of %q: %d active health checks in Envoy, want none (the control plane's verdicts come by EDS)", name, n)
		}
		var opts httpv3.HttpProtocolOptions
		if err := twin.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&opts); err != nil || opts.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
			t.Errorf("twin of %q is not HTTP/1.1: %v %v", name, &opts, err)
		}
	}
	if got := clusters["alpha/capped.upgrade"].GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue(); got != 3 {
		t.Errorf("capped twin max_requests %d, want 3", got)
	}
	subset := eps[clusters["alpha/limited.upgrade"].GetEdsClusterConfig().GetServiceName()]
	if n := len(subset.GetEndpoints()[0].GetLbEndpoints()); n != 1 {
		t.Errorf("the limited policy's twin has %d endpoints, want its subset's 1", n)
	}
}

// ExtProc's filter fails open (extProcFilter), so its routes are what fail
// closed: every route that forwards matches on a rule the request service
// set, and a request it never decided on falls to the last route, a 503
// that the mode's local reply mapper turns into the Status with
// Retry-After.
func TestExtProcRoutesForwardOnlyDecidedRequests(t *testing.T) {
	c := &ClusterIR{Name: "alpha", RequestService: RequestServiceIR(v1alpha1.RequestServiceExtProc),
		Dispatch: []DispatchIR{{Name: "batch"}, {Name: "capped", Flow: FlowIR{MaxInflight: 3}}}}
	if !extProcFilterConfig(t).GetFailureModeAllow() {
		t.Fatal("ext_proc fails closed at the filter: a broken stream fails requests already at the apiserver")
	}
	rc := routeConfiguration(c)
	if err := rc.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	for _, r := range routes[:len(routes)-1] {
		if r.GetRoute() == nil {
			t.Errorf("route %q does not forward; only the last may answer", r.GetName())
			continue
		}
		decided := false
		for _, h := range r.GetMatch().GetHeaders() {
			decided = decided || (h.GetName() == envoy.HeaderRule && h.GetStringMatch().GetExact() != "")
		}
		if !decided {
			t.Errorf("route %q forwards a request without the request service's rule header", r.GetName())
		}
	}
	last := routes[len(routes)-1]
	if last.GetDirectResponse().GetStatus() != statusServiceUnavailable || len(last.GetMatch().GetHeaders()) != 0 {
		t.Errorf("last route %v, want a catch-all 503", last)
	}
	// The other modes fail closed at their filter and keep the catch-all
	// default route (the in-process filter relies on it).
	c.RequestService = RequestServiceIR(v1alpha1.RequestServiceExtAuthz)
	routes = routeConfiguration(c).GetVirtualHosts()[0].GetRoutes()
	if routes[len(routes)-1].GetName() != envoy.DefaultRule {
		t.Errorf("ExtAuthz: last route %q, want the default route", routes[len(routes)-1].GetName())
	}
}

func extProcFilterConfig(t *testing.T) *extprocv3.ExternalProcessor {
	t.Helper()
	cfg := &extprocv3.ExternalProcessor{}
	if err := extProcFilter().GetTypedConfig().UnmarshalTo(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Upgraded requests of a dispatch policy (exec, attach, port-forward,
// proxy, WebSocket watches) must keep the policy's governance: its
// upstreamSubset, strategy, token bucket and in-flight cap. Their route
// cannot be the policy's own, whose cluster speaks HTTP/2 (SPDY/3.1 cannot
// be carried over HTTP/2 at all), so every rule route of a policy (the
// policy's and its long-running twin's) has an upgrade twin: the same exact
// match on x-frontdoor-rule plus "Upgrade present", the same per-route
// config (the local rate limit among it), to an HTTP/1.1 twin of the rule's
// cluster over the same endpoints with the same circuit breakers.
//
// Envoy keeps one token bucket per route config, so a policy's upgraded and
// other requests draw from two buckets of the same size (and count in the
// same stats, which share the stat prefix); a cap is a circuit breaker per
// cluster, so the two are capped apart as well (README: "Dispatch policies
// and upgrades").
//
// The twin routes come before the catch-all upgrade route, which serves the
// default rule's upgrades, and that before the rule routes, which must
// never see an upgrade.

// upgradeTwinSuffix names a rule's upgrade twin route and cluster; the dot
// cannot occur in a policy name, so it never collides.
const upgradeTwinSuffix = ".upgrade"

// policyUpgradeRoutes are the upgrade twins of c's rule routes (as
// policyRoutes builds them), in the same order.
func policyUpgradeRoutes(c *ClusterIR) []*routev3.Route {
	rules := policyRoutes(c)
	out := make([]*routev3.Route, 0, len(rules))
	for _, r := range rules {
		out = append(out, upgradeTwinRoute(c, r))
	}
	return out
}

// upgradeTwinRoute is rule route r restricted to upgrades and sent to the
// HTTP/1.1 twin of r's cluster.
func upgradeTwinRoute(c *ClusterIR, r *routev3.Route) *routev3.Route {
	out, _ := proto.Clone(r).(*routev3.Route)
	out.Name = r.GetName() + upgradeTwinSuffix
	out.Match.Headers = append(out.Match.Headers, &routev3.HeaderMatcher{
		Name:                 "upgrade",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
	})
	out.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: envoy.RuleClusterName(c.Name, r.GetName()+upgradeTwinSuffix)}
	return out
}

// upgradeTwinCluster is the HTTP/1.1 twin of rule cluster cl (policyCluster
// or its long-running twin, endpoints already named): the same endpoints
// (the same EDS resource, or the same inline servers), balancing, health
// check (over HTTP/1.1) and circuit breakers; the same client certificate
// offering only http/1.1 by ALPN, as upgradeCluster does for the default
// cluster.
func upgradeTwinCluster(c *ClusterIR, cl *clusterv3.Cluster) *clusterv3.Cluster {
	out, _ := proto.Clone(cl).(*clusterv3.Cluster)
	out.Name = cl.GetName() + upgradeTwinSuffix
	speakHTTP1(c, out)
	if la := out.GetLoadAssignment(); la != nil {
		la.ClusterName = out.Name
	}
	return out
}

package translator

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

const (
	upgradeRouteName = "upgrade"
	// undecidedRouteName is requireDecision's last route.
	undecidedRouteName = "undecided"
)

// routeConfiguration is the RDS resource of one cluster: one virtual host
// matching every authority (the filter chain already chose the cluster by
// SNI), tagged with the cluster name for the request service.
//
// Routes are an exact match on the rule header the request service sets,
// then the catch-all default route; dispatch policies add their rule routes
// (policy_routes.go) in between, and the upgrade twins of those routes
// (upgrade_twins.go) before the catch-all upgrade route.
func routeConfiguration(c *ClusterIR) *routev3.RouteConfiguration {
	routes := slices.Concat(policyUpgradeRoutes(c), []*routev3.Route{upgradeRoute(c)}, policyRoutes(c), []*routev3.Route{defaultRoute(c)})
	if _, ok := requestServiceOf(c).(decidedAtRoutes); ok {
		routes = requireDecision(routes)
	}
	vh := &routev3.VirtualHost{
		Name:    c.Name,
		Domains: []string{"*"},
		Routes:  routes,
		// The retry policy's internal verdict (retry.go) never reaches a client.
		ResponseHeadersToRemove: []string{upstreamVerdictHeader},
	}
	if filter, cfg := requestServiceOf(c).perRoute(c); filter != "" {
		vh.TypedPerFilterConfig = map[string]*anypb.Any{filter: mustAny(cfg)}
	}
	rc := &routev3.RouteConfiguration{Name: envoy.RouteName(c.Name), VirtualHosts: []*routev3.VirtualHost{vh}}
	edgeHeaders(rc)
	return rc
}

// upgradeRoute sends every request carrying an Upgrade header (kubectl
// exec, attach and port-forward over SPDY/3.1 or WebSocket) to the cluster's
// HTTP/1.1 upstream: an upgrade is an HTTP/1.1 mechanism, and SPDY cannot be
// carried over HTTP/2 at all. It serves the default rule's upgrades: a
// dispatch policy's upgrades take the policy's upgrade twin routes, which
// come before it, and it comes before the rule routes, which send to HTTP/2
// clusters and must never see an upgrade. The request service
// has already run when the route is chosen, so its decision (deny, identity)
// applies to upgrades exactly as to any request.
func upgradeRoute(c *ClusterIR) *routev3.Route {
	r := defaultRoute(c)
	r.Name = upgradeRouteName
	r.Match.Headers = []*routev3.HeaderMatcher{{
		Name:                 "upgrade",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
	}}
	r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: envoy.UpgradeClusterName(c.Name)}
	return r
}

// decidedAtRoutes is a mode whose filter lets a request the request service
// never decided on continue (it failed open) and relies on the routes to
// fail closed: only a request carrying the service's rule header may reach
// an upstream (extproc.go says why ext_proc works so).
type decidedAtRoutes interface{ failsClosedAtRoutes() }

// requireDecision makes routes fail closed without the request service's
// decision: the catch-all upgrade and default routes match only the default
// rule (the rule routes already match their own), and a last route answers
// every request with no rule header 503 with Retry-After (the
// request-service-unavailable Status, by the mode's local reply mapper).
// The edge strips the client's own rule header before any filter runs, so
// only the request service's answer can carry one.
func requireDecision(routes []*routev3.Route) []*routev3.Route {
	for _, r := range routes {
		if n := r.GetName(); n == envoy.DefaultRule || n == upgradeRouteName {
			r.Match.Headers = append(r.Match.Headers, ruleHeader(envoy.DefaultRule))
		}
	}
	return append(routes, &routev3.Route{
		Name:  undecidedRouteName,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: statusServiceUnavailable,
		}},
	})
}

// ruleHeader matches the rule header the request service sets to rule.
func ruleHeader(rule string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: envoy.HeaderRule,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: rule},
		}},
	}
}

// ruleRoute sends requests the request service tagged with rule to that
// rule's cluster.
func ruleRoute(c *ClusterIR, rule string) *routev3.Route {
	r := defaultRoute(c)
	r.Name = rule
	r.Match = &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
		Headers:       []*routev3.HeaderMatcher{ruleHeader(rule)},
	}
	r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: envoy.RuleClusterName(c.Name, rule)}
	return r
}

// defaultRoute is the catch-all route to the cluster's default upstream.
func defaultRoute(c *ClusterIR) *routev3.Route {
	return &routev3.Route{
		Name:  envoy.DefaultRule,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: envoy.DefaultClusterName(c.Name)},
			// Watches, logs -f and exec streams live for minutes to hours;
			// kube-apiserver enforces its own request timeouts, so Envoy
			// must not cut requests (0 disables both timeouts).
			Timeout:     duration(0),
			IdleTimeout: duration(0),
			RetryPolicy: retryPolicy(),
		}},
	}
}

package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Every dispatch policy has a route (an exact match on x-frontdoor-rule,
// which the request service sets to the policy name) and a cluster
// <uc>/<policy> over the policy's servers with the policy's strategy. A
// rejecting policy keeps its route and cluster: the request service answers
// its requests, so flipping reject on and off changes only the policy table
// and traffic moves at once, with no cluster to warm. Each rule route and
// cluster has an HTTP/1.1 upgrade twin (upgrade_twins.go).

// policyRoutes are the routes of c's dispatch policies, in spec order.
func policyRoutes(c *ClusterIR) []*routev3.Route {
	var out []*routev3.Route
	for i := range c.Dispatch {
		d := &c.Dispatch[i]
		r := ruleRoute(c, d.Name)
		if rl := policyRateLimit(c, d); rl != nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{localRateLimitFilterName: mustAny(rl)}
		}
		r.GetRoute().RateLimits = globalRateLimits(d)
		out = append(out, r)
		if lr := longRunningRule(d); lr != "" {
			out = append(out, ruleRoute(c, lr))
		}
	}
	return out
}

// longRunningRule names the route and cluster of a capped policy's
// long-running requests (watches, logs, exec, proxy): the same servers
// without the in-flight cap, as kube-apiserver does not count them either.
// The dot cannot occur in a policy name, so it never collides. Empty when
// the policy has no cap.
func longRunningRule(d *DispatchIR) string {
	if d.Flow.MaxInflight == 0 {
		return ""
	}
	return d.Name + ".long-running"
}

// policyCluster is the default cluster's twin for one policy: same TLS,
// protocol and health verdicts, the policy's balancing, and its own
// endpoints.
func policyCluster(c *ClusterIR, d *DispatchIR) *clusterv3.Cluster {
	out := cluster(c)
	out.Name = envoy.RuleClusterName(c.Name, d.Name)
	out.LbPolicy = lbPolicies[d.LoadBalancing]
	if out.GetEdsClusterConfig() != nil {
		out.GetEdsClusterConfig().ServiceName = out.Name // renamed by versionedEDSName
	} else {
		out.LoadAssignment = serversAssignment(c, out.Name, d.Servers)
	}
	if d.Flow.MaxInflight > 0 {
		out.CircuitBreakers.Thresholds[0].MaxRequests = wrapperspb.UInt32(d.Flow.MaxInflight)
	}
	return out
}

// policyClusters adds each policy's cluster (and, for EDS, its own
// endpoints resource named after the cluster's content).
func policyClusters(c *ClusterIR, add func(typeURL string, r types.Resource)) {
	for i := range c.Dispatch {
		d := &c.Dispatch[i]
		cl := policyCluster(c, d)
		if cl.GetEdsClusterConfig() != nil {
			name := versionedEDSName(cl)
			cl.GetEdsClusterConfig().ServiceName = name
			add(resourcev3.EndpointType, serversAssignment(c, name, d.Servers))
		}
		add(resourcev3.ClusterType, cl)
		add(resourcev3.ClusterType, upgradeTwinCluster(c, cl))
		if lr := longRunningRule(d); lr != "" {
			// Same endpoints resource: the twin differs only in its cap.
			twin := policyCluster(c, d)
			twin.Name = envoy.RuleClusterName(c.Name, lr)
			twin.CircuitBreakers.Thresholds[0].MaxRequests = wrapperspb.UInt32(unlimited)
			if cl.GetEdsClusterConfig() != nil {
				twin.GetEdsClusterConfig().ServiceName = cl.GetEdsClusterConfig().ServiceName
			} else {
				twin.LoadAssignment.ClusterName = twin.Name
			}
			add(resourcev3.ClusterType, twin)
			add(resourcev3.ClusterType, upgradeTwinCluster(c, twin))
		}
	}
}

// serversAssignment is one locality holding servers of c, each with the
// control plane's health verdict (none in a DNS cluster: Envoy checks
// those itself, and its inline endpoints would only change by CDS).
func serversAssignment(c *ClusterIR, name string, servers []ServerIR) *endpointv3.ClusterLoadAssignment {
	eps := make([]*endpointv3.LbEndpoint, 0, len(servers))
	for _, s := range servers {
		ep := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(s.Host, s.Port),
		}}}
		if !c.ResolveDNS {
			ep.HealthStatus = endpointHealth(c, s)
		}
		eps = append(eps, ep)
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
	}
}

// dispatchPolicy is the request service's view of c's policies.
func dispatchPolicy(c *ClusterIR) []policy.Dispatch {
	var out []policy.Dispatch
	for _, d := range c.Dispatch {
		out = append(out, policy.Dispatch{Name: d.Name, Rules: d.Rules, Reject: d.Reject, LongRunningRule: longRunningRule(&d)})
	}
	return out
}

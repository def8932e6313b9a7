// Package envoy holds what Frontdoor's Go code and the Envoy config it
// generates must agree on: header names, the ext_authz context keys, static
// cluster names; plus the bootstrap renderer.
package envoy

const (
	// HeaderPrefix is the prefix of every internal header. Envoy strips every
	// incoming header with this prefix before any filter sees it (an early
	// header mutation), so only the request service can set one.
	HeaderPrefix = "x-frontdoor-"
	// HeaderRule carries the dispatch rule chosen by the request service;
	// routes match it exactly.
	HeaderRule = "x-frontdoor-rule"

	// ContextKeyCluster is the ext_authz context extension (set per virtual
	// host) that names the UpstreamCluster a request belongs to.
	ContextKeyCluster = "frontdoor.dev/cluster"

	// ControlPlaneCluster is the bootstrap's static cluster pointing at the
	// frontdoor gRPC server, which serves ADS and ext_authz on one port.
	ControlPlaneCluster = "frontdoor"

	// DefaultRule is the name of the rule (and route) every request falls to
	// when no dispatch policy matches.
	DefaultRule = "default"
)

package translator

import (
	"time"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// The edge: what the public listener does against connection abuse and
// which client headers it refuses to pass on. Everything here is
// gateway-wide (one listener serves every cluster), so it comes from
// Options (frontdoor serve's flags), never from an UpstreamCluster.

// Defaults of EdgeOptions. Both timeouts end before a request reaches the
// request service, so neither can cut a watch or an exec session: a client
// that needs more than 10 s to finish a TLS handshake or to send its
// request headers is not one kube-apiserver would wait for either (its
// own handshake and header timeouts are 10 s).
const (
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultRequestHeadersTimeout = 10 * time.Second
)

const (
	// headerMutationFilterName is the HTTP filter that stamps the upstream
	// verdict on responses (retry.go).
	headerMutationFilterName = "envoy.filters.http.header_mutation"

	// headerAuditID is kube-apiserver's audit ID header: when a request
	// carries one, the apiserver records it as the event's auditID instead
	// of making one up.
	headerAuditID = "audit-id"
	// headerXFF is what kube-apiserver records as the audit sourceIPs
	// (first entry first), before X-Real-Ip and the peer address.
	headerXFF = "x-forwarded-for"
)

// untrustedForwardingHeaders are removed from every client request before
// any filter sees it: the apiserver reads X-Real-Ip into sourceIPs and an
// Audit-ID into the audit event, and Forwarded may be read by a workload
// behind a proxy subresource. Envoy itself reads none of them; the gateway
// sets Audit-ID and X-Forwarded-For itself (edgeHeaders).
var untrustedForwardingHeaders = []string{headerAuditID, "forwarded", "x-real-ip"}

// EdgeOptions tune the public listener. Zero fields take the defaults.
type EdgeOptions struct {
	// TLSHandshakeTimeout closes a client connection whose TLS handshake
	// has not finished in time (transport_socket_connect_timeout).
	TLSHandshakeTimeout time.Duration
	// RequestHeadersTimeout ends a request whose headers have not all
	// arrived in time (request_headers_timeout): 408, and the connection
	// closes.
	RequestHeadersTimeout time.Duration
	// TrustedForwardingHops is how many proxies in front of Envoy (an L7
	// load balancer, say) append to X-Forwarded-For; the client address is
	// taken that many entries from the right (xff_num_trusted_hops). Zero,
	// the default, trusts no X-Forwarded-For: the client address is the
	// TCP peer's.
	TrustedForwardingHops uint32
	// ProxyProtocolPorts are the listener ports (main or extra) whose
	// connections start with a PROXY protocol header (v1 or v2) from an L4
	// load balancer; the header's source becomes the client address. A
	// connection to such a port without the header is closed.
	ProxyProtocolPorts []uint32
	// MaxConnectionAge rebalances long-lived client connections
	// (connectionage.go): once a connection is that old, Envoy sends it a
	// GOAWAY. Zero, the default, is off.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeJitter is the percentage (0 to 100) of
	// MaxConnectionAge by which each connection's age is randomly extended.
	MaxConnectionAgeJitter float64
	// DrainBuckets splits every filter chain into ConnectionBuckets chains
	// by the client's source port (buckets.go), so a drain can close the
	// connections one bucket at a time.
	DrainBuckets bool
}

// withDefaults fills o: a zero or negative timeout takes the default, as
// no timeout at all is exactly what these settings are here to prevent.
func (o EdgeOptions) withDefaults() EdgeOptions {
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if o.RequestHeadersTimeout <= 0 {
		o.RequestHeadersTimeout = DefaultRequestHeadersTimeout
	}
	return o
}

// applyEdge sets the listener-wide protections on one cluster's HTTP
// connection manager:
//
//   - request_headers_timeout (slowloris: headers sent a byte at a time);
//   - header names with underscores are refused with 400
//     (REJECT_REQUEST): `impersonate_user` is not an Impersonate-* header
//     to the request service, but a server or proxy that folds underscores
//     into dashes would read it as one;
//   - xff_num_trusted_hops for the client address Envoy (and so the access
//     log and the request service) sees;
//   - the gateway's request ID is generated for every request (a client's
//     x-request-id is not kept: use_remote_address makes every client
//     external) and returned in x-request-id, so a client can quote it.
func applyEdge(e EdgeOptions, hcm *hcmv3.HttpConnectionManager) {
	hcm.RequestHeadersTimeout = duration(e.RequestHeadersTimeout)
	hcm.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{
		HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_REJECT_REQUEST,
	}
	hcm.XffNumTrustedHops = e.TrustedForwardingHops
	hcm.AlwaysSetRequestIdInResponse = true
	applyConnectionAge(e, hcm.CommonHttpProtocolOptions)
}

// The edge headers (edgeHeaders) make the request the upstream sees, in
// every request-service mode. They are the route configuration's own
// request_headers_to_remove and request_headers_to_add, which the router
// applies as it forwards (removals first), after every filter ran and the
// route was chosen: Envoy's own place for a request's last edits, so the
// filter chain holds no filter of its own for them.
//
//   - x-frontdoor-rule and x-frontdoor-user are removed. The route has
//     already been chosen on the rule and the rate limits have already
//     read the user key, and kube-apiserver's proxy subresources would
//     otherwise copy them to workloads (the user key is a digest of the
//     user name).
//   - Audit-ID is the gateway's request ID (x-request-id, which Envoy
//     generated), so the access log line and every apiserver's audit
//     event of one request share one ID. It is removed first: an empty
//     request ID (never expected) leaves no Audit-ID at all, since Envoy
//     adds no header whose value formats empty.
//   - X-Forwarded-For is exactly the client's address as Envoy determined
//     it (the TCP peer, or the trusted hops' entry), so the apiserver's
//     audit sourceIPs start with the real client and never with a value
//     the client wrote.
func edgeHeaders(rc *routev3.RouteConfiguration) {
	rc.RequestHeadersToRemove = []string{envoy.HeaderRule, envoy.HeaderUser, headerAuditID, headerXFF}
	set := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: name, Value: value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	rc.RequestHeadersToAdd = []*corev3.HeaderValueOption{
		set(headerAuditID, "%REQ(X-REQUEST-ID)%"),
		set(headerXFF, "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
	}
}

// earlyRemovals are the early header mutations of every client request of
// c: internal (x-frontdoor-*) and front-proxy (X-Remote-*) headers by
// prefix, and the untrusted forwarding headers by name. A cluster that
// accepts front proxies keeps X-Remote-* for the request service, which
// reads them only from a proxy and strips them from every request.
func earlyRemovals(c *ClusterIR) []*mutationrulesv3.HeaderMutation {
	m := []*mutationrulesv3.HeaderMutation{removeHeadersWithPrefix(envoy.HeaderPrefix)}
	if stripsRemoteHeaders(c) {
		m = append(m, removeHeadersWithPrefix(remoteHeaderPrefix))
	}
	for _, name := range untrustedForwardingHeaders {
		m = append(m, removeHeader(name))
	}
	return m
}

// removeHeader drops the request header name (any case) early, before any
// filter or route sees it.
func removeHeader(name string) *mutationrulesv3.HeaderMutation {
	return &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
		RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name},
			IgnoreCase:   true,
		}},
	}}
}

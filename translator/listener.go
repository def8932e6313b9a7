package translator

import (
	"time"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

const (
	tlsInspectorName   = "envoy.filters.listener.tls_inspector"
	hcmName            = "envoy.filters.network.http_connection_manager"
	routerName         = "envoy.filters.http.router"
	headerMutationName = "envoy.http.early_header_mutation.header_mutation"

	// remoteHeaderPrefix is kube-apiserver's requestheader (front-proxy)
	// prefix, X-Remote-User / -Group / -Extra-. A client must never reach the
	// apiserver with one, even though the gateway authenticates upstream by
	// certificate, in case the apiserver also trusts a front proxy.
	remoteHeaderPrefix = "x-remote-"

	// upgradeWebSocket and upgradeSPDY are the Upgrade header values of
	// kubectl's two streaming protocols (exec, attach, port-forward).
	upgradeWebSocket = "websocket"
	upgradeSPDY      = "spdy/3.1"

	// downstreamMaxStreams lets one client connection (a controller
	// manager with hundreds of informers) multiplex many watches.
	downstreamMaxStreams = 1000

	// downstreamPingInterval and downstreamPingTimeout: every client HTTP/2
	// connection is pinged each minute and closed if an answer takes 20s.
	downstreamPingInterval = time.Minute
	downstreamPingTimeout  = 20 * time.Second
)

// listener is the one listener serving every cluster: TLS is terminated
// here and the filter chain is picked by SNI, so one port fronts any number
// of clusters. The tls_inspector reads the SNI before the chain is chosen;
// a connection that sends no ClientHello within the TLS handshake timeout
// is closed (listener_filters_timeout, Envoy's default 15 s otherwise).
//
// Extra ports and PROXY protocol ports (ports.go) are the same listener.
func listener(l ListenerIR, chains []*listenerv3.FilterChain) *listenerv3.Listener {
	var filters []*listenerv3.ListenerFilter
	if pp := proxyProtocolFilter(l); pp != nil {
		filters = append(filters, pp)
	}
	filters = append(filters, &listenerv3.ListenerFilter{
		Name:       tlsInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	})
	return &listenerv3.Listener{
		Name:                   envoy.ListenerName,
		Address:                socketAddress(l.Address, l.Port),
		AdditionalAddresses:    additionalAddresses(l),
		ListenerFiltersTimeout: duration(l.Edge.TLSHandshakeTimeout),
		ListenerFilters:        filters,
		FilterChains:           chains,
	}
}

// filterChain serves one cluster. With no server names it matches any SNI
// no other chain claims, including none at all (kubectl to an IP address).
//
// transport_socket_connect_timeout closes a connection whose TLS handshake
// stalls after its ClientHello (the tls_inspector only bounds the wait for
// the ClientHello itself).
func filterChain(l ListenerIR, c *ClusterIR) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{
		Name:                          c.Name,
		TransportSocketConnectTimeout: duration(l.Edge.TLSHandshakeTimeout),
		TransportSocket: &corev3.TransportSocket{
			Name:       tlsTransportSocket,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(downstreamTLS(c))},
		},
		Filters: []*listenerv3.Filter{{
			Name:       hcmName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(httpConnectionManager(l.Edge, c))},
		}},
	}
	if len(c.ServerNames) > 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: c.ServerNames}
	}
	return fc
}

// downstreamTLS serves the cluster's certificate and asks for (but does not
// require) a client certificate. Like kube-apiserver, the handshake
// succeeds with an unverifiable client certificate (ACCEPT_UNTRUSTED): the
// request service verifies the chain and answers 401, which is what clients
// expect from an apiserver, instead of a TLS alert.
func downstreamTLS(c *ClusterIR) *tlsv3.DownstreamTlsContext {
	common := &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"h2", "http/1.1"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(envoy.ServingSecretName(c.Name))},
	}
	if c.ClientCA != nil {
		// The SDS secret only carries the CA; the policy on how to apply it
		// comes from the default context merged with it.
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED,
				},
				ValidationContextSdsSecretConfig: sdsSecret(envoy.ClientCASecretName(c.Name)),
			},
		}
	}
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(false),
		CommonTlsContext:         common,
	}
}

// httpConnectionManager strips internal and untrusted forwarding headers
// first, then asks the request service (ext_authz), then routes; the edge
// settings (edge.go) bound slow clients and fix the headers the upstream
// sees.
//
// stream_idle_timeout is disabled: kube-apiserver has no idle timeout on a
// watch (a quiet watch only gets a bookmark about once a minute, and only if
// the client asked for bookmarks), nor on an exec, attach or port-forward
// session (the kubelet cuts those after its own streaming idle timeout, 4h by
// default). Envoy's default of 5 minutes would cut a quiet watch or an idle
// shell that kube-apiserver keeps open. Dead clients are still noticed: an
// HTTP/2 connection is pinged (downstreamKeepalive) and closed when pings
// go unanswered, which resets every stream on it; a dead HTTP/1.1 client is
// noticed by TCP when the next bytes are written.
//
// Upgrades: kubectl exec, attach and port-forward upgrade an HTTP/1.1
// request to SPDY/3.1 or to WebSocket. Envoy passes both through once the
// whole filter chain (ext_authz and the identity filter) has run on the
// upgrade request, so a request is authenticated, authorized and
// impersonated before any upgraded byte flows.
func httpConnectionManager(e EdgeOptions, c *ClusterIR) *hcmv3.HttpConnectionManager {
	rs := requestServiceOf(c)
	xfcc, xfccDetails := rs.forwardClientCert()
	lr := localReplyConfig()
	if _, closed := globalStages(c); closed {
		// Before any 503 mapper of the request service: an RLSE 503 is the
		// rate limit service's failure, not the request service's.
		lr.Mappers = append(lr.Mappers[:1], append([]*hcmv3.ResponseMapper{rateLimitUnavailableMapper()}, lr.Mappers[1:]...)...)
	}
	lr.Mappers = append(lr.Mappers, rs.localReplyMappers()...)
	hcm := &hcmv3.HttpConnectionManager{
		ForwardClientCertDetails:    xfcc,
		SetCurrentClientCertDetails: xfccDetails,
		StatPrefix:                  c.Name,
		CodecType:                   hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: envoy.RouteName(c.Name),
			ConfigSource:    adsConfigSource(),
		}},
		UseRemoteAddress:  wrapperspb.Bool(true),
		AccessLog:         accessLogs(c.AccessLog, c.Name, rs),
		StreamIdleTimeout: duration(0),
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{
			{UpgradeType: upgradeWebSocket},
			{UpgradeType: upgradeSPDY},
		},
		LocalReplyConfig: lr,
		Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
			MaxConcurrentStreams: wrapperspb.UInt32(downstreamMaxStreams),
			ConnectionKeepalive:  downstreamKeepalive(),
		},
		EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{
			typedExtension(headerMutationName, &headermutationv3.HeaderMutation{Mutations: earlyRemovals(c)}),
		},
		HttpFilters: append(append(rs.httpFilters(c),
			localRateLimitFilter()),
			append(globalRateLimitFilters(c),
				&hcmv3.HttpFilter{Name: routerName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
			)...,
		),
	}
	applyEdge(e, hcm)
	return hcm
}

// removeHeadersWithPrefix drops every request header starting with prefix.
// It runs as an early header mutation, before any filter or route sees the
// request, so no client can smuggle an internal header past ext_authz.
func removeHeadersWithPrefix(prefix string) *mutationrulesv3.HeaderMutation {
	return &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
		RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix},
			IgnoreCase:   true,
		}},
	}}
}

// downstreamKeepalive pings each client HTTP/2 connection once a minute, so
// a client that vanished without closing its connection does not pin its
// watches forever now that streams have no idle timeout. Every HTTP/2
// client (Go's, so kubectl and client-go) answers pings by itself.
func downstreamKeepalive() *corev3.KeepaliveSettings {
	return &corev3.KeepaliveSettings{
		Interval: duration(downstreamPingInterval),
		Timeout:  duration(downstreamPingTimeout),
	}
}

package translator

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

const (
	// upstreamConnectTimeout bounds the TCP+TLS handshake to one server.
	upstreamConnectTimeout = 5 * time.Second
	// upstreamMaxStreams matches kube-apiserver's default per-connection
	// HTTP/2 stream limit (Go's server default, 250, unless
	// --http2-max-streams-per-connection changes it), so Envoy opens another
	// connection rather than queueing streams the server would refuse.
	upstreamMaxStreams = 250
	// unlimited is a circuit-breaker threshold Envoy never reaches: the
	// apiserver's own max-inflight limits (and our flow control) decide
	// when to shed, not Envoy's defaults of 1024.
	unlimited = 1 << 20

	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	tlsTransportSocket     = "envoy.transport_sockets.tls"
)

var lbPolicies = map[LoadBalancingIR]clusterv3.Cluster_LbPolicy{
	LBRoundRobin:   clusterv3.Cluster_ROUND_ROBIN,
	LBRandom:       clusterv3.Cluster_RANDOM,
	LBLeastRequest: clusterv3.Cluster_LEAST_REQUEST,
}

// cluster is the default upstream cluster of c: every server, over HTTP/2
// and mutual TLS, health-checked actively and by outlier detection, never
// sending to an unhealthy server.
//
// Servers named by IP come by EDS, so a server change updates endpoints
// without touching the cluster, and their active health check is the
// control plane's: its verdicts arrive as EDS health status (probes.go).
// Servers named by DNS make the cluster STRICT_DNS with its endpoints
// inline, because Envoy resolves names only in DNS clusters (an EDS
// endpoint must be an IP address); Envoy health-checks those itself.
func cluster(c *ClusterIR) *clusterv3.Cluster {
	name := envoy.DefaultClusterName(c.Name)
	out := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: duration(upstreamConnectTimeout),
		LbPolicy:       lbPolicies[c.LoadBalancing],
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: mustAny(upstreamHTTP2Options()),
		},
		TransportSocket: &corev3.TransportSocket{
			Name:       tlsTransportSocket,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(upstreamTLS(c))},
		},
		OutlierDetection: outlierDetection(c.Outlier),
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(unlimited),
			MaxPendingRequests: wrapperspb.UInt32(unlimited),
			MaxRequests:        wrapperspb.UInt32(unlimited),
			MaxRetries:         wrapperspb.UInt32(unlimited),
		}}},
		// Panic mode would spread load over unhealthy servers when too few
		// are healthy; a failing apiserver answers errors, so never do it.
		//
		// update_merge_window 0: Envoy applies membership and health changes
		// at once instead of batching them for 1 s, so a server added by an
		// edit takes requests as soon as its first health check passes.
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 0},
			UpdateMergeWindow:     duration(0),
		},
		// A removed server stops receiving requests at once, even if its
		// health check still passes.
		IgnoreHealthOnHostRemoval: true,
	}
	if c.ResolveDNS {
		out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		out.LoadAssignment = loadAssignment(c)
		out.HealthChecks = []*corev3.HealthCheck{healthCheck(c)}
	} else {
		out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		out.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource(), ServiceName: name} // renamed by versionedEDSName
	}
	return out
}

// upgradeCluster is the HTTP/1.1 twin of the default cluster, for upgraded
// requests (SPDY/3.1 and WebSocket: exec, attach, port-forward). It reads
// the same EDS endpoints (the default cluster's service name), presents the
// same client certificate and offers only http/1.1 by ALPN.
func upgradeCluster(c *ClusterIR) *clusterv3.Cluster {
	out := cluster(c)
	out.Name = envoy.UpgradeClusterName(c.Name)
	speakHTTP1(c, out)
	return out
}

// speakHTTP1 turns cluster out of c into one for upgraded requests: every
// connection HTTP/1.1 (the same client certificate, offering only http/1.1
// by ALPN), health checks too.
func speakHTTP1(c *ClusterIR, out *clusterv3.Cluster) {
	out.TypedExtensionProtocolOptions = map[string]*anypb.Any{
		httpProtocolOptionsKey: mustAny(upstreamHTTP1Options()),
	}
	tls := upstreamTLS(c)
	tls.CommonTlsContext.AlpnProtocols = []string{"http/1.1"}
	out.TransportSocket = &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tls)},
	}
	for _, hc := range out.GetHealthChecks() {
		if h := hc.GetHttpHealthCheck(); h != nil {
			h.CodecClientType = typev3.CodecClientType_HTTP1
		}
	}
}

// upstreamHTTP1Options makes every upstream connection HTTP/1.1: an
// upgraded connection carries exactly one session.
func upstreamHTTP1Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
		HttpFilters: upstreamFilters(),
	}
}

// upstreamHTTP2Options makes every upstream connection HTTP/2 with
// keepalive pings, so a dead or hung server is noticed even on idle watch
// streams: a connection whose PING goes unanswered for 5 s is closed, and
// the requests and watches on it fail over instead of waiting on it (an
// ejected host keeps its connections otherwise; Envoy closes them on
// health failure only for tcp_proxy). Go's HTTP/2 server answers PINGs from
// its read loop, so a busy apiserver still answers in time.
func upstreamHTTP2Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
				MaxConcurrentStreams: wrapperspb.UInt32(upstreamMaxStreams),
				ConnectionKeepalive: &corev3.KeepaliveSettings{
					Interval: duration(10 * time.Second),
					Timeout:  duration(5 * time.Second),
				},
			}},
		}},
		HttpFilters: upstreamFilters(),
	}
}

// upstreamTLS presents the gateway's client certificate and verifies the
// servers against the cluster's CA and by name: the certificate must carry
// a SAN naming one of the cluster's servers (upstreamSANs). A chain check
// alone would accept any serving certificate the CA ever issued (every
// kubelet's, with the cluster CA), so whoever could redirect one server
// address (an EndpointSlice, DNS) could then read user traffic.
// Without an upstream CA (clientConfig.insecureSkipTLSVerify) there is no
// validation context, so Envoy accepts any server certificate.
func upstreamTLS(c *ClusterIR) *tlsv3.UpstreamTlsContext {
	out := &tlsv3.UpstreamTlsContext{
		Sni: c.SNI,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(envoy.UpstreamClientSecretName(c.Name))},
		},
	}
	if c.UpstreamCA != nil {
		out.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: upstreamSANs(c),
				},
				ValidationContextSdsSecretConfig: sdsSecret(envoy.UpstreamCASecretName(c.Name)),
			},
		}
	}
	return out
}

// upstreamSANs accepts a certificate that names one of the cluster's
// servers (c.ServerSANs): an IP SAN for an IP address, a DNS SAN for a name
// (Envoy matches a wildcard SAN as RFC 6125 says). It is one list per
// cluster, built from the spec only: servers found through EndpointSlices
// are verified by their Service's name, not their address, so an endpoint
// change stays an EDS update that rebuilds no cluster.
func upstreamSANs(c *ClusterIR) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(c.ServerSANs))
	for _, san := range c.ServerSANs {
		m := &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san.Name}},
		}
		if san.IsIP {
			m.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
		}
		if san.Prefix {
			m.Matcher.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: san.Name}
		}
		out = append(out, m)
	}
	return out
}

// healthCheck is Envoy's own active check of a DNS cluster (probeTargets
// is everyone else's): an HTTP/2 GET of the health path with the gateway's
// client identity. no_traffic_interval equals interval: a cluster nobody
// uses yet must still know its healthy servers before the first request
// arrives.
func healthCheck(c *ClusterIR) *corev3.HealthCheck {
	host := healthCheckHost(c)
	hc := c.HealthCheck
	return &corev3.HealthCheck{
		Timeout:            duration(hc.Timeout),
		Interval:           duration(hc.Interval),
		NoTrafficInterval:  duration(hc.Interval),
		UnhealthyThreshold: wrapperspb.UInt32(hc.UnhealthyThreshold),
		HealthyThreshold:   wrapperspb.UInt32(hc.HealthyThreshold),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Host:            host,
			Path:            hc.Path,
			CodecClientType: typev3.CodecClientType_HTTP2,
		}},
	}
}

// loadAssignment is one locality holding every enabled server.
func loadAssignment(c *ClusterIR) *endpointv3.ClusterLoadAssignment {
	return serversAssignment(c, envoy.DefaultClusterName(c.Name), c.Servers)
}

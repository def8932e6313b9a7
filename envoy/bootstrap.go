package envoy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"
)

// DefaultNodeCluster is the node cluster every Frontdoor Envoy reports.
const DefaultNodeCluster = "frontdoor"

// BootstrapOptions are what an Envoy needs to find its control plane.
type BootstrapOptions struct {
	// NodeID identifies this Envoy to the control plane (e.g. the pod name).
	NodeID string
	// NodeCluster groups Envoys that get the same config; defaults to
	// DefaultNodeCluster.
	NodeCluster string
	// Overload bounds connections and heap (overload.go).
	Overload OverloadOptions
	// XDSAddress is host:port of the frontdoor gRPC server (ADS and
	// ext_authz: plaintext HTTP/2 on loopback, else XDSTLS), or
	// unix:///path for its Unix socket (frontdoor serve --grpc-address
	// unix:///path, when Envoy shares the host or pod).
	XDSAddress string
	// AdminAddress is host:port of Envoy's admin interface. Keep it on
	// loopback: the admin API can change Envoy's state.
	AdminAddress string
	// XDSTLS, when set, makes Envoy reach the control plane over mutual
	// TLS (frontdoor serve --grpc-tls-*): required for an XDSAddress other
	// than loopback or a Unix socket, since the stream carries private keys.
	XDSTLS *XDSTLS
	// Listen, when set, is where this Envoy serves clients instead of
	// frontdoor serve's --listen-address, --listen-port and
	// --extra-listen-ports. It travels as node metadata (NodeMeta*) and the
	// control plane applies it to this node's listener only: several Envoys
	// on one host and one serve cannot bind the same address and port.
	Listen *ListenOverride
	// AccessLogPath, when set, is this Envoy's own access log file in place
	// of serve's --access-log file (node metadata, like Listen).
	AccessLogPath string
}

// ListenOverride is one Envoy's own listener address and ports. Zero fields
// keep serve's: an empty Address keeps --listen-address, Port 0 keeps
// --listen-port. ExtraPorts pair in order with serve's --extra-listen-ports
// (and so keep their PROXY protocol setting); with Port set, serve's extra
// ports beyond len(ExtraPorts) are not bound on this node.
type ListenOverride struct {
	Address    string
	Port       uint32
	ExtraPorts []uint32
}

// XDSTLS are the files Envoy reads for mutual TLS to the control plane.
// Envoy reads them at startup; a rotated certificate needs an Envoy restart
// (the control plane reads its own at startup too).
type XDSTLS struct {
	// CertFile and KeyFile are Envoy's client certificate and key (PEM).
	CertFile, KeyFile string
	// CAFile is the CA bundle (PEM) the control plane's certificate must
	// chain to.
	CAFile string
	// ServerName is sent as SNI, and the control plane's certificate must
	// name it (a DNS or IP SAN); empty means the host of XDSAddress.
	ServerName string
}

// controlPlaneConnectTimeout is short: the control plane is on loopback or
// in the same pod, and Envoy retries the ADS stream on its own.
const controlPlaneConnectTimeout = time.Second

// Bootstrap builds the static config Envoy starts with: who it is, its
// admin listener, the one static cluster pointing at the control plane, the
// overload manager and the pinned runtime guards (overload.go).
// Everything else (listeners, routes, clusters, endpoints, secrets) comes
// over one ADS stream, so Envoy applies it in a consistent order.
func Bootstrap(opts BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if opts.NodeID == "" {
		return nil, fmt.Errorf("bootstrap: node ID is required")
	}
	if opts.NodeCluster == "" {
		opts.NodeCluster = DefaultNodeCluster
	}
	adminHost, adminPort, err := splitHostPort("admin address", opts.AdminAddress)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(adminHost); err != nil {
		return nil, fmt.Errorf("bootstrap: admin address %q: host must be an IP address", opts.AdminAddress)
	}

	meta, err := nodeMetadata(opts.Listen, opts.AccessLogPath)
	if err != nil {
		return nil, err
	}
	cp, err := controlPlaneCluster(opts.XDSAddress, opts.XDSTLS)
	if err != nil {
		return nil, err
	}
	cp.CircuitBreakers = controlPlaneCircuitBreakers()
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: opts.NodeID, Cluster: opts.NodeCluster, Metadata: meta},
		Admin: &bootstrapv3.Admin{
			Address: socketAddress(adminHost, adminPort),
			// Health checks, stats and drains keep working when clients
			// have taken every connection the overload manager allows.
			IgnoreGlobalConnLimit: true,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{cp},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				// Incremental (delta) ADS: Envoy subscribes to exactly the
				// secrets and endpoints its listeners and clusters name, and
				// an edit sends only what changed. State-of-the-world ADS
				// deadlocks here: the SotW snapshot cache answers an SDS
				// request only once it names every secret in the snapshot,
				// while Envoy asks for listener secrets only after its
				// clusters (waiting on their own secrets) have warmed.
				ApiType:             corev3.ApiConfigSource_DELTA_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
						ClusterName: ControlPlaneCluster,
					}},
				}},
				// The node does not change within a stream; sending it once
				// keeps every later DiscoveryRequest small.
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StatsConfig:     policyStatsConfig(),
		OverloadManager: overloadManager(opts.Overload),
		LayeredRuntime:  staticRuntime(),
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}

// controlPlaneCluster reaches the frontdoor gRPC server over HTTP/2 (gRPC)
// at addr: plaintext on loopback or a Unix socket, mutual TLS (xt) on any
// other address, which it refuses without. An IP address makes a STATIC
// cluster; a DNS name a LOGICAL_DNS one, which re-resolves and keeps one
// connection (what a gRPC stream to one server needs); unix:///path a
// STATIC cluster on the pipe.
func controlPlaneCluster(addr string, xt *XDSTLS) (*clusterv3.Cluster, error) {
	var endpoint *corev3.Address
	typ := clusterv3.Cluster_STATIC
	host := ""
	if path, ok := UnixSocketPath(addr); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("bootstrap: xDS address %q: want unix:///absolute/path", addr)
		}
		endpoint = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
	} else {
		h, port, err := splitHostPort("xDS address", addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(h); err != nil {
			typ = clusterv3.Cluster_LOGICAL_DNS
		}
		if xt == nil && !IsLoopbackHost(h) {
			return nil, fmt.Errorf("bootstrap: xDS address %q is not loopback or a Unix socket: the xDS stream carries private keys, "+
				"so Envoy must reach it over mutual TLS (--xds-tls-cert-file, --xds-tls-key-file, --xds-ca-file)", addr)
		}
		host = h
		endpoint = socketAddress(h, port)
	}
	socket, err := controlPlaneTLS(xt, host)
	if err != nil {
		return nil, err
	}
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &clusterv3.Cluster{
		Name:                 ControlPlaneCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(controlPlaneConnectTimeout),
		TransportSocket:      socket,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
		},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ControlPlaneCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: endpoint,
				}},
			}}}},
		},
	}, nil
}

// controlPlaneTLS is the TLS transport socket of the control-plane
// cluster (nil without xt): Envoy presents its client certificate and
// verifies the control plane's against the CA and the server name (xt's, or
// host). ALPN h2: gRPC servers require it over TLS.
func controlPlaneTLS(xt *XDSTLS, host string) (*corev3.TransportSocket, error) {
	if xt == nil {
		return nil, nil
	}
	if xt.CertFile == "" || xt.KeyFile == "" || xt.CAFile == "" {
		return nil, fmt.Errorf("bootstrap: xDS TLS needs a client certificate, its key and the control plane's CA (--xds-tls-cert-file, --xds-tls-key-file, --xds-ca-file)")
	}
	name := xt.ServerName
	if name == "" {
		name = host
	}
	if name == "" {
		return nil, fmt.Errorf("bootstrap: xDS TLS over a Unix socket needs --xds-server-name (the name the control plane's certificate carries)")
	}
	san := &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
	}
	sni := name
	if _, err := netip.ParseAddr(name); err == nil {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
		sni = "" // RFC 6066: no IP addresses in SNI
	}
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	tc, err := anypb.New(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:   []string{"h2"},
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(xt.CertFile), PrivateKey: file(xt.KeyFile)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 file(xt.CAFile),
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
			}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tc},
	}, nil
}

// BootstrapYAML renders a bootstrap as YAML, the format Envoy's -c flag
// reads, with proto field names as in Envoy's documentation.
func BootstrapYAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return y, nil
}

// UnixSocketPath returns the path of a unix:///path gRPC address, the form
// frontdoor serve --grpc-address and bootstrap --xds-address take for a
// Unix socket.
func UnixSocketPath(addr string) (string, bool) {
	return strings.CutPrefix(addr, "unix://")
}

// IsLoopbackHost is true for a loopback IP address and for "localhost":
// the hosts a plaintext gRPC port (ADS carries the gateway's private keys)
// may be bound to and reached on; an empty host (every interface) is not.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func splitHostPort(what, addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bootstrap: %s %q: %w", what, addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if host == "" || err != nil || n == 0 {
		return "", 0, fmt.Errorf("bootstrap: %s %q: want host:port with a port 1-65535", what, addr)
	}
	return host, uint32(n), nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// PolicyStatTag is the Prometheus label carrying "<cluster>/<policy>" on a
// dispatch policy's local rate limit stats. The translator gives each
// policy route the stat prefix "policy.<cluster>/<policy>."; this tag takes
// the name part out, so every policy shares one metric name
// (envoy_policy_http_local_rate_limit_rate_limited{frontdoor_policy="gov/limited"}).
const PolicyStatTag = "frontdoor_policy"

func policyStatsConfig() *metricsv3.StatsConfig {
	return &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{
		TagName:  PolicyStatTag,
		TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^policy\.((.+?)\.)http_local_rate_limit\.`},
	}}}
}

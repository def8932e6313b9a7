package translator

import (
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Health checks that do not multiply. Every Envoy cluster of an
// UpstreamCluster (the default one, its upgrade twin, each dispatch
// policy's cluster and their twins) reaches the same servers. Were each
// health-checked by Envoy, a cluster with N policies on M Envoys would send
// (2N+2)×M probes per interval to every apiserver. Envoy cannot make one
// cluster follow another's health (a cluster's hosts are its own; there is
// no "health from cluster X"), so the control plane probes instead:
// `frontdoor serve` checks each server of each UpstreamCluster once per
// interval (ProbeTarget, the same request Envoy's checker would send) and
// the verdicts come back as Inputs.Health, which sets the health_status of
// every EDS endpoint. Envoy's clusters carry no active health check then;
// outlier detection stays in each of them. A verdict change is an EDS-only
// change: cluster names and contents do not move.
//
// Servers named by DNS are the exception: Envoy resolves them itself
// (STRICT_DNS, one host per address) and its inline endpoints cannot take
// a status without rebuilding the cluster, so those clusters keep Envoy's
// active health check.

// ServerHealth are health verdicts by UpstreamCluster name, then by server
// address ("host:port", as ProbeTarget.Address): true when the server may
// take traffic. A server without a verdict is published without a health
// status, which Envoy treats as healthy.
type ServerHealth map[string]map[string]bool

// ProbeTarget is one server of one UpstreamCluster that the control plane
// health-checks for Envoy: an HTTP GET of Path with the gateway's client
// certificate, verified like Envoy verifies the server (upstreamTLS).
type ProbeTarget struct {
	// Cluster is the UpstreamCluster's name; Address the server's
	// "host:port" (an IP address, bracketed for IPv6).
	Cluster string
	Address string
	// ServerName is the SNI sent (empty: none); Host the Host header, as
	// Envoy's checker sends (the SNI, else the cluster's name).
	ServerName string
	Host       string

	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	UnhealthyThreshold uint32
	HealthyThreshold   uint32

	ClientCertPEM []byte
	ClientKeyPEM  []byte
	// CAPEM is the bundle the server's certificate must chain to; nil
	// accepts any certificate (insecureSkipTLSVerify).
	CAPEM []byte
	// SANs are the names the certificate must carry one of (upstreamSANs).
	SANs []SANIR
}

// probeTargets are c's servers for the control plane to check; none when
// Envoy checks them itself (servers named by DNS).
func probeTargets(c *ClusterIR) []ProbeTarget {
	if c.ResolveDNS {
		return nil
	}
	out := make([]ProbeTarget, 0, len(c.Servers))
	for _, s := range c.Servers {
		out = append(out, ProbeTarget{
			Cluster:            c.Name,
			Address:            serverAddress(s),
			ServerName:         c.SNI,
			Host:               healthCheckHost(c),
			Path:               c.HealthCheck.Path,
			Interval:           c.HealthCheck.Interval,
			Timeout:            c.HealthCheck.Timeout,
			UnhealthyThreshold: c.HealthCheck.UnhealthyThreshold,
			HealthyThreshold:   c.HealthCheck.HealthyThreshold,
			ClientCertPEM:      c.UpstreamClient.CertPEM,
			ClientKeyPEM:       c.UpstreamClient.KeyPEM,
			CAPEM:              c.UpstreamCA,
			SANs:               c.ServerSANs,
		})
	}
	return out
}

// serverAddress is s as "host:port", the key of ServerHealth.
func serverAddress(s ServerIR) string {
	host := s.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.FormatUint(uint64(s.Port), 10)
}

// healthCheckHost is the Host of a health check: the SNI, else the cluster
// name (a valid DNS name; Envoy's default, the Envoy cluster name, has a
// "/").
func healthCheckHost(c *ClusterIR) string {
	if c.SNI != "" {
		return c.SNI
	}
	return c.Name
}

// endpointHealth is the EDS health status of server s of c: the control
// plane's verdict, or UNKNOWN (healthy to Envoy) before the first one.
func endpointHealth(c *ClusterIR, s ServerIR) corev3.HealthStatus {
	healthy, ok := c.ServerHealth[serverAddress(s)]
	switch {
	case !ok:
		return corev3.HealthStatus_UNKNOWN
	case healthy:
		return corev3.HealthStatus_HEALTHY
	default:
		return corev3.HealthStatus_UNHEALTHY
	}
}

package translator

import (
	"encoding/json"
	"time"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// The IR (intermediate representation) sits between the CRDs and the xDS
// protos, as in Envoy Gateway. It holds only validated, resolved, defaulted
// plain data: every Secret is already read and its PEM checked, every server
// already parsed to host and port. The xDS stage can therefore build protos
// without error paths of its own, and a test can compare IR values directly.

// IR is one translation's validated view of all accepted UpstreamClusters.
type IR struct {
	// Listener is where Envoy serves clients.
	Listener ListenerIR
	// Clusters are the accepted UpstreamClusters, sorted by name, with
	// unique names and non-conflicting server names.
	Clusters []*ClusterIR
}

// ListenerIR is the one listener every cluster shares.
type ListenerIR struct {
	Address string
	Port    uint32
	// ExtraPorts are more ports on Address serving the same chains.
	ExtraPorts []uint32
	// Edge are the listener's abuse limits and forwarding-header trust,
	// defaulted.
	Edge EdgeOptions
	// RateLimitAddress is the gateway's ratelimit service (host:port), for
	// Global token buckets; empty when there is none.
	RateLimitAddress string
}

// ClusterIR is one accepted UpstreamCluster.
type ClusterIR struct {
	// Name is the UpstreamCluster's name; every xDS name derives from it.
	Name string
	// ServerNames are the SNI names selecting this cluster, sorted and
	// deduplicated. Empty means this cluster owns the default filter chain.
	ServerNames []string
	// Servers are the enabled servers, in spec order.
	Servers []ServerIR
	// ServerSANs are the names a server's certificate may carry to be
	// accepted (any one of them), from the spec: each enabled static
	// server's host, and for endpointsFrom the Service's DNS names.
	ServerSANs []SANIR
	// SNI is sent to the servers when they all share one DNS name; empty
	// otherwise (IP addresses or mixed names).
	SNI string
	// ResolveDNS is true when a server is addressed by a DNS name: Envoy only
	// resolves names in DNS clusters, never in EDS endpoints.
	ResolveDNS bool

	// Serving is the certificate Envoy presents to clients.
	Serving CertKeyIR
	// ClientCA is the PEM bundle client certificates are checked against;
	// nil when secureServing.clientCASecretRef is unset.
	ClientCA []byte
	// Revocation is x509.revocation resolved: the CRLs read and checked
	// against ClientCA, the fingerprints normalized (revocation.go). Only
	// the request service sees it, never Envoy's listener.
	Revocation *policy.Revocation
	// UpstreamClient is the gateway's own client certificate.
	UpstreamClient CertKeyIR
	// UpstreamCA is the PEM bundle the servers' certificates must chain to;
	// nil when clientConfig.insecureSkipTLSVerify is set.
	UpstreamCA []byte

	HealthCheck HealthCheckIR
	// ServerHealth are the control plane's verdicts on Servers, by
	// "host:port" (Inputs.Health; probes.go).
	ServerHealth  map[string]bool
	Outlier       OutlierIR
	LoadBalancing LoadBalancingIR
	// X509 enables client-certificate authentication in the request service.
	X509 bool
	// AccessLog is where Envoy logs this cluster's requests (gateway-wide).
	AccessLog AccessLogIR
	// RequestService is how Envoy asks the request service.
	RequestService RequestServiceIR
	// Module is how Envoy loads the in-process request service (gateway-wide).
	Module ModuleIR
	// TokenReview is the defaulted bearer-token authentication.
	TokenReview TokenReviewIR
	// JWT are the JWT authenticators, each encoded for the policy table
	// (jwt.go), in spec order.
	JWT []json.RawMessage
	// Anonymous forwards requests without credentials as system:anonymous.
	Anonymous bool
	// Forwarding is how the identity reaches the servers (identity.go).
	Forwarding ForwardingIR
	// FrontProxy, when set, accepts front-proxy clients (identity.go).
	FrontProxy *FrontProxyIR
	// Dispatch are the dispatch policies in spec order (policy_routes.go).
	Dispatch []DispatchIR
}

// TokenReviewIR is the defaulted spec.authentication.tokenReview.
type TokenReviewIR struct {
	Enabled          bool
	CacheTTL         time.Duration
	NegativeCacheTTL time.Duration
	Audiences        []string
}

// ServerIR is one enabled server, parsed from https://host:port.
type ServerIR struct {
	// Host is an IP address (without brackets) or a DNS name.
	Host string
	Port uint32
	// IsIP is true when Host is an IP address.
	IsIP bool
}

// SANIR is one subject alternative name a server certificate may carry.
type SANIR struct {
	// Name is an IP address (IsIP) or a DNS name.
	Name string
	IsIP bool
	// Prefix matches every DNS SAN that starts with Name.
	Prefix bool
}

// CertKeyIR is a validated certificate chain and its matching private key.
type CertKeyIR struct {
	CertPEM []byte
	KeyPEM  []byte
}

// HealthCheckIR is a defaulted active HTTP health check.
type HealthCheckIR struct {
	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	UnhealthyThreshold uint32
	HealthyThreshold   uint32
}

// OutlierIR is defaulted outlier detection; a zero count disables that
// kind of ejection.
type OutlierIR struct {
	Consecutive5xx             uint32
	ConsecutiveConnectFailures uint32
	BaseEjectionTime           time.Duration
	MaxEjectionPercent         uint32
}

// LoadBalancingIR is the defaulted per-request balancing policy.
type LoadBalancingIR string

// IR load-balancing policies; they map one to one onto Envoy's lb_policy.
const (
	LBRoundRobin   LoadBalancingIR = "RoundRobin"
	LBRandom       LoadBalancingIR = "Random"
	LBLeastRequest LoadBalancingIR = "LeastRequest"
)

// DispatchIR is one validated dispatch policy.
type DispatchIR struct {
	// Name names the policy's route and cluster (<uc>/<name>).
	Name string
	// Rules are the compiled match rules (service accounts as user names).
	Rules []policy.Rule
	// Servers are the policy's servers: its upstreamSubset, or every server.
	Servers []ServerIR
	// LoadBalancing is the policy's strategy (defaulted to the cluster's).
	LoadBalancing LoadBalancingIR
	// Reject, when set, is answered by the request service.
	Reject *policy.Reject
	// Flow is the referenced flow-control schema; zero when none.
	Flow FlowIR
}

// FlowIR is a resolved flow-control schema.
type FlowIR struct {
	// Schema is the schema's name; empty means no flow control.
	Schema string
	// QPS and Burst are the token bucket (QPS 0: no bucket).
	QPS, Burst uint32
	// PerUser gives each user its own bucket.
	PerUser bool
	// MaxInflight caps concurrent non-long-running requests (0: no cap).
	MaxInflight uint32
	// Global keeps the bucket in the ratelimit service, shared by every
	// gateway replica (globalratelimit.go); Burst is then unused.
	Global bool
	// FailClosed refuses a Global policy's requests while the ratelimit
	// service cannot decide (else they pass).
	FailClosed bool
}

// RequestServiceIR names the mode of a cluster's request service (the
// defaulted spec.requestService).
type RequestServiceIR string

// AccessLogIR says where Envoy writes the access log (accesslog.go).
type AccessLogIR struct {
	// Disabled turns the access log off.
	Disabled bool
	// Path is the file Envoy appends to; empty means Envoy's stdout.
	Path string
	// FailuresOnly and SlowerThan filter the lines (Options).
	FailuresOnly bool
	SlowerThan   time.Duration
}

// ModuleIR is how Envoy loads frontdoor's dynamic module (inprocess.go)
// and where the module finds frontdoor serve (gateway-wide, from Options).
type ModuleIR struct {
	// Path is the absolute path of the module (libfrontdoor.so) on the
	// Envoy host; empty when the gateway was not given one.
	Path string
	// PolicyAddress and MetricsAddress are envoy.InProcessConfig's.
	PolicyAddress  string
	MetricsAddress string
}

// Package policy is the request service's view of the configuration: one
// Table per translated config version, produced by translator.Translate and
// consumed by the authz pipeline. It holds plain data only (no I/O, no
// protos), so translator can build it and authz can read it without either
// importing the other.
package policy

import "time"

// Table is the complete request-service policy for one config version.
type Table struct {
	// Version is the xDS snapshot version this table belongs to.
	Version string
	// Clusters maps an UpstreamCluster name to its policy. Envoy names the
	// cluster of each request in the ext_authz context extension
	// envoy.ContextKeyCluster.
	Clusters map[string]*Cluster
}

// Cluster is the policy of one UpstreamCluster.
type Cluster struct {
	// Name is the UpstreamCluster's name.
	Name string
	// X509 enables client-certificate authentication.
	X509 bool
	// ClientCAPEM is the PEM bundle client certificates must chain to. Empty
	// means no certificate can authenticate.
	ClientCAPEM []byte
	// DefaultRule is the rule name answered when no dispatch rule matches;
	// it names the cluster's default route.
	DefaultRule string

	// TokenReview enables bearer-token authentication by TokenReview.
	TokenReview bool
	// TokenCacheTTL and TokenNegativeCacheTTL are how long a TokenReview's
	// success and failure are remembered.
	TokenCacheTTL, TokenNegativeCacheTTL time.Duration
	// TokenAudiences are sent in every TokenReview (empty: the upstream's
	// API audiences).
	TokenAudiences []string
	// Anonymous forwards requests without credentials as system:anonymous.
	Anonymous bool
	// Upstream is how the request service itself reaches the cluster's
	// apiservers (TokenReviews, SubjectAccessReviews for impersonation).
	Upstream Upstream
}

// Upstream is the gateway's own connection to one cluster's apiservers.
type Upstream struct {
	// ServerURLs are the enabled servers (https://host:port), in spec order;
	// reviews are spread over them with failover.
	ServerURLs []string
	// ServerName, when set, is the TLS server name sent to every server.
	ServerName string
	// ClientCertPEM and ClientKeyPEM are the gateway's client identity.
	ClientCertPEM, ClientKeyPEM []byte
	// CAPEM is the bundle the servers' certificates must chain to.
	CAPEM []byte
}

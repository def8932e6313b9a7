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
	// Dispatch are the cluster's dispatch policies in spec order; the first
	// with a matching rule decides the request.
	Dispatch []Dispatch

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

// Dispatch is one dispatch policy as the request service applies it.
type Dispatch struct {
	// Name is the policy name, answered in x-frontdoor-rule; Envoy has a
	// route of that name.
	Name string `json:"name"`
	// Rules match requests; any matching rule selects the policy.
	Rules []Rule `json:"rules"`
	// Reject, when set, makes the request service answer every matching
	// request itself.
	Reject *Reject `json:"reject,omitempty"`
	// LongRunningRule, when set, is answered instead of Name for the
	// policy's long-running requests (watches, logs, exec, proxy, as
	// kube-apiserver counts them), so they take a route whose cluster has
	// no in-flight cap.
	LongRunningRule string `json:"longRunningRule,omitempty"`
}

// Rule is one RBAC-like dispatch rule (api/v1alpha1 DispatchPolicyRule).
type Rule struct {
	Verbs           []string `json:"verbs,omitempty"`
	APIGroups       []string `json:"apiGroups,omitempty"`
	Resources       []string `json:"resources,omitempty"`
	ResourceNames   []string `json:"resourceNames,omitempty"`
	Namespaces      []string `json:"namespaces,omitempty"`
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
	Users           []string `json:"users,omitempty"`
	UserGroups      []string `json:"userGroups,omitempty"`
	// ServiceAccounts are full user names, system:serviceaccount:<ns>:<name>.
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
}

// Reject is a shedding policy's answer.
type Reject struct {
	Code              int    `json:"code"`
	RetryAfterSeconds int    `json:"retryAfterSeconds,omitempty"`
	Message           string `json:"message,omitempty"`
}

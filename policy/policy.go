// Package policy is the request service's view of the configuration: one
// Table per translated config version, produced by translator.Translate and
// consumed by the request pipeline (authz), in frontdoor serve or inside
// Envoy. It holds plain data only (no I/O, no protos), so the translator can
// build it and the pipeline can read it without either importing the other.
//
// Everything derived from a Table (its version hash, equality, its wire form
// to the in-process module, the golden and debug views) comes from its whole
// encoding (Encode), never from a list of fields, so a new field cannot be
// silently left out of any of them.
//
// It is a leaf: it imports only the standard library.
package policy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Table is the complete request-service policy for one config version.
type Table struct {
	// Version is the xDS snapshot version this table belongs to.
	Version string `json:"version"`
	// Clusters maps an UpstreamCluster name to its policy. Envoy names the
	// cluster of each request (ext_authz context extension, ext_proc
	// metadata, in-process filter config).
	Clusters map[string]*Cluster `json:"clusters"`
}

// Cluster is the policy of one UpstreamCluster.
type Cluster struct {
	// Name is the UpstreamCluster's name.
	Name string `json:"name"`
	// X509 enables client-certificate authentication.
	X509 bool `json:"x509"`
	// ClientCAPEM is the PEM bundle client certificates must chain to. Empty
	// means no certificate can authenticate.
	ClientCAPEM []byte `json:"clientCAPEM,omitempty"`
	// Revocation lists revoked client certificates; nil when none are.
	Revocation *Revocation `json:"revocation,omitempty"`
	// DefaultRule is the rule name answered when no dispatch rule matches;
	// it names the cluster's default route.
	DefaultRule string `json:"defaultRule"`
	// Dispatch are the cluster's dispatch policies in spec order; the first
	// with a matching rule decides the request.
	Dispatch []Dispatch `json:"dispatch,omitempty"`

	// TokenReview is bearer-token authentication by TokenReview.
	TokenReview TokenReview `json:"tokenReview"`
	// JWT are the cluster's JWT authenticators in spec order, each the JSON
	// of one kube-apiserver JWTAuthenticator (apiserver.config.k8s.io/v1,
	// validated by the translator). They stay JSON so this package needs
	// no Kubernetes types; the request service decodes them.
	JWT []json.RawMessage `json:"jwt,omitempty"`
	// Anonymous forwards requests without credentials as system:anonymous.
	Anonymous bool `json:"anonymous"`
	// Upstream is how the request service itself reaches the cluster's
	// apiservers (TokenReviews, SubjectAccessReviews for impersonation).
	Upstream Upstream `json:"upstream"`
	// Forwarding is how the identity reaches the apiservers:
	// ForwardingRequestHeader, or empty for impersonation (the default;
	// empty so tables of clusters that never chose stay as they were).
	Forwarding string `json:"forwarding,omitempty"`
	// FrontProxy, when set, lets front-proxy clients name the user in
	// X-Remote-* headers.
	FrontProxy *FrontProxy `json:"frontProxy,omitempty"`
}

// ForwardingRequestHeader is Cluster.Forwarding for front-proxy headers
// (X-Remote-*) instead of impersonation.
const ForwardingRequestHeader = "RequestHeader"

// FrontProxy configures front-proxy clients (kube-apiserver's
// requestheader authenticator).
type FrontProxy struct {
	// ClientCAPEM is the bundle a front proxy's certificate must chain to.
	ClientCAPEM []byte `json:"clientCAPEM"`
	// AllowedNames are the common names a front proxy may have (never
	// empty: the translator refuses an empty list).
	AllowedNames []string `json:"allowedNames"`
}

// TokenReview configures bearer-token authentication.
type TokenReview struct {
	// Enabled turns it on.
	Enabled bool `json:"enabled"`
	// CacheTTL and NegativeCacheTTL are how long a TokenReview's success
	// and failure are remembered.
	CacheTTL         Duration `json:"cacheTTL"`
	NegativeCacheTTL Duration `json:"negativeCacheTTL"`
	// Audiences are sent in every TokenReview (empty: the upstream's API
	// audiences).
	Audiences []string `json:"audiences,omitempty"`
}

// Upstream is the gateway's own connection to one cluster's apiservers.
type Upstream struct {
	// ServerURLs are the enabled servers (https://host:port), in spec order;
	// reviews are spread over them with failover.
	ServerURLs []string `json:"serverURLs"`
	// ServerName, when set, is the TLS server name sent to every server.
	ServerName string `json:"serverName,omitempty"`
	// ClientCertPEM and ClientKeyPEM are the gateway's client identity.
	ClientCertPEM []byte `json:"clientCertPEM,omitempty"`
	ClientKeyPEM  []byte `json:"clientKeyPEM,omitempty"`
	// CAPEM is the bundle the servers' certificates must chain to.
	CAPEM []byte `json:"caPEM,omitempty"`
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

// Duration is a time.Duration that encodes as Go's duration string ("2m0s"),
// so the encoded table reads like the CRD it came from.
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON decodes a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Encode is the table's canonical encoding: JSON, with map keys sorted (as
// encoding/json writes them), so equal tables encode to equal bytes in
// every process. Versions hash it, the in-process module receives it.
func (t *Table) Encode() ([]byte, error) { return json.Marshal(t) }

// Decode is the inverse of Encode.
func Decode(b []byte) (*Table, error) {
	t := &Table{}
	if err := json.Unmarshal(b, t); err != nil {
		return nil, err
	}
	return t, nil
}

// View is the table as generic JSON values (maps, lists, strings, numbers),
// derived from Encode, with the bytes of every field whose JSON name ends
// in "PEM" (CA bundles, certificates, private keys) replaced by pem(name,
// bytes): debug and golden views summarize or digest them and never show
// key material. A field added to the table appears in every view at once.
func (t *Table) View(pem func(field string, b []byte) any) (map[string]any, error) {
	b, err := t.Encode()
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if err := replacePEM(v, pem); err != nil {
		return nil, err
	}
	return v, nil
}

func replacePEM(v any, pem func(string, []byte) any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && strings.HasSuffix(k, "PEM") {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return fmt.Errorf("policy view: field %s: %w", k, err)
				}
				v[k] = pem(k, b)
				continue
			}
			if err := replacePEM(e, pem); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := replacePEM(e, pem); err != nil {
				return err
			}
		}
	}
	return nil
}

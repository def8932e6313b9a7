package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

// UpstreamCluster is one proxied Kubernetes cluster: the kube-apiserver
// replicas Frontdoor spreads requests over, the names and certificates it
// serves clients with, and how it authenticates clients and itself.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=uc
// +kubebuilder:printcolumn:name="Servers",type=integer,JSONPath=`.status.serverCount`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.healthyServerCount`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UpstreamCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired configuration of this cluster.
	Spec UpstreamClusterSpec `json:"spec"`
	// Status is what the control plane observed and programmed.
	// +optional
	Status UpstreamClusterStatus `json:"status,omitempty"`
}

// UpstreamClusterSpec describes one fronted Kubernetes cluster.
// +kubebuilder:validation:XValidation:rule="(has(self.servers) && size(self.servers) > 0) || has(self.endpointsFrom)",message="at least one server or endpointsFrom is required"
// +kubebuilder:validation:XValidation:rule="!has(self.dispatchPolicies) || self.dispatchPolicies.all(p, !has(p.flowControlSchemaName) || (has(self.flowControl) && has(self.flowControl.flowControlSchemas) && self.flowControl.flowControlSchemas.exists(s, s.name == p.flowControlSchemaName)))",message="every dispatchPolicies[].flowControlSchemaName must name a schema in flowControl.flowControlSchemas"
// +kubebuilder:validation:XValidation:rule="!has(self.dispatchPolicies) || has(self.endpointsFrom) || self.dispatchPolicies.all(p, !has(p.upstreamSubset) || p.upstreamSubset.all(e, has(self.servers) && self.servers.exists(s, s.endpoint == e)))",message="every dispatchPolicies[].upstreamSubset endpoint must be one of servers[].endpoint"
type UpstreamClusterSpec struct {
	// Servers are the kube-apiserver replicas of this cluster. Requests are
	// balanced over every enabled server that passes its health check.
	// Required unless endpointsFrom is set; both may be set (the union is
	// served).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=endpoint
	Servers []Server `json:"servers,omitempty"`

	// EndpointsFrom discovers servers from the EndpointSlices of a Service
	// in the control cluster (Kubernetes mode only), e.g. default/kubernetes.
	// Every ready endpoint becomes a server, on the port its own slice
	// declares; a change reaches Envoy over EDS.
	// +optional
	EndpointsFrom *EndpointsFrom `json:"endpointsFrom,omitempty"`

	// ClientConfig is how Frontdoor authenticates itself to the servers.
	ClientConfig ClientConfig `json:"clientConfig"`

	// SecureServing is how Frontdoor serves this cluster's clients.
	SecureServing SecureServing `json:"secureServing"`

	// Authentication selects the ways a client may prove who it is.
	// +optional
	Authentication Authentication `json:"authentication,omitempty"`

	// HealthCheck is the active health check of every server: frontdoor
	// serve probes each server once per interval and Envoy's clusters follow
	// the verdict (servers named by DNS are checked by Envoy itself).
	// +optional
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`

	// OutlierDetection ejects a server on what its live traffic shows,
	// between active health checks: runs of 5xx answers, or of connect
	// failures, resets and timeouts.
	// +optional
	OutlierDetection OutlierDetection `json:"outlierDetection,omitempty"`

	// LoadBalancing is how requests are spread over healthy servers.
	// +optional
	LoadBalancing LoadBalancing `json:"loadBalancing,omitempty"`

	// DispatchPolicies send matching requests to their own destination,
	// flow control or rejection. They are tried in order and the first
	// policy with a matching rule wins; a request no policy matches takes
	// the implicit policy "default" (every server, loadBalancing, no flow
	// control).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	DispatchPolicies []DispatchPolicy `json:"dispatchPolicies,omitempty"`

	// FlowControl holds the flow-control schemas policies refer to.
	// +optional
	FlowControl FlowControl `json:"flowControl,omitempty"`

	// RequestService selects how Envoy asks frontdoor's request service
	// about each request: ExtAuthz (ext_authz over gRPC, the default),
	// ExtProc (ext_proc over gRPC, which also observes each response's
	// status and latency) or InProcess (the same pipeline compiled into
	// Envoy as a dynamic module: no gRPC hop; frontdoor serve must be given
	// the module with --inprocess-module). All run the same pipeline and
	// forward the same identity.
	// +optional
	// +kubebuilder:default=ExtAuthz
	RequestService RequestService `json:"requestService,omitempty"`
}

// DispatchPolicy is one named dispatch policy: which requests it takes
// (rules) and what happens to them.
// +kubebuilder:validation:XValidation:rule="self.name != 'default' && self.name != 'upgrade'",message="policy names default and upgrade are reserved"
type DispatchPolicy struct {
	// Name identifies the policy; it names the Envoy route and cluster
	// (<upstreamcluster>/<name>) and is reported in x-frontdoor-rule.
	// KubeGateway's policies are unnamed: give each one a name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Rules select the requests of this policy; a request matches when any
	// rule matches it.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Rules []DispatchPolicyRule `json:"rules"`
	// UpstreamSubset restricts the policy to these servers (endpoints as in
	// spec.servers). Empty means every server.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	UpstreamSubset []string `json:"upstreamSubset,omitempty"`
	// Strategy is how the policy's requests are spread over its servers.
	// Empty means spec.loadBalancing.policy.
	// +optional
	Strategy LoadBalancingPolicy `json:"strategy,omitempty"`
	// FlowControlSchemaName names a schema in spec.flowControl that limits
	// this policy's requests. Empty means no limit.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	FlowControlSchemaName string `json:"flowControlSchemaName,omitempty"`
	// Reject answers every matching request itself instead of forwarding
	// it (load shedding). Editing it takes effect at once.
	// +optional
	Reject *RejectAction `json:"reject,omitempty"`
}

// DispatchPolicyRule matches requests with the semantics of an RBAC
// PolicyRule: every non-empty field must match (AND), a field matches when
// any of its values does (OR), and "*" matches anything. A rule has either
// resource fields (verbs with apiGroups and resources) or nonResourceURLs.
// The subject fields (users, userGroups, serviceAccounts) are ORed with one
// another; when all are empty the rule matches every subject.
type DispatchPolicyRule struct {
	// Verbs are Kubernetes request verbs (get, list, watch, create, update,
	// patch, delete, deletecollection, proxy, ...) or HTTP verbs in lower
	// case for nonResourceURLs. "*" matches any.
	// +kubebuilder:validation:MinItems=1
	Verbs []string `json:"verbs"`
	// APIGroups the resources belong to; "" is the core group, "*" any.
	// +optional
	APIGroups []string `json:"apiGroups,omitempty"`
	// Resources are resource names, "resource/subresource" for a
	// subresource (pods/log), "*" for any, "*/sub" for a subresource of
	// any resource, "resource/*" for a resource and its subresources.
	// +optional
	Resources []string `json:"resources,omitempty"`
	// ResourceNames are the object names the rule applies to. Empty
	// means any.
	// +optional
	ResourceNames []string `json:"resourceNames,omitempty"`
	// Namespaces restricts namespaced requests to these namespaces; "*"
	// matches any. Empty means any namespace and cluster-scoped requests.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// NonResourceURLs are paths of non-resource requests (/healthz,
	// /version); a final "*" matches any suffix (/apis/*).
	// +optional
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
	// Users are user names ("*" any).
	// +optional
	Users []string `json:"users,omitempty"`
	// UserGroups are group names ("*" any).
	// +optional
	UserGroups []string `json:"userGroups,omitempty"`
	// ServiceAccounts are service accounts (user
	// system:serviceaccount:<namespace>:<name>).
	// +optional
	ServiceAccounts []ServiceAccountRef `json:"serviceAccounts,omitempty"`
}

// ServiceAccountRef names a service account.
type ServiceAccountRef struct {
	// Namespace of the service account.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// Name of the service account.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// RejectAction is how a rejecting policy answers.
type RejectAction struct {
	// Code is the HTTP status, 400-599. Defaults to 429.
	// +optional
	// +kubebuilder:default=429
	// +kubebuilder:validation:Minimum=400
	// +kubebuilder:validation:Maximum=599
	Code int32 `json:"code,omitempty"`
	// RetryAfterSeconds, when positive, is sent as Retry-After (and in the
	// Status details) so clients back off.
	// +optional
	// +kubebuilder:validation:Minimum=0
	RetryAfterSeconds int32 `json:"retryAfterSeconds,omitempty"`
	// Message is the Status message.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// FlowControl holds named flow-control schemas.
type FlowControl struct {
	// FlowControlSchemas are the schemas dispatch policies refer to by name.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	FlowControlSchemas []FlowControlSchema `json:"flowControlSchemas,omitempty"`
}

// FlowControlSchema is one limit. Exactly one of tokenBucket,
// maxRequestsInflight and exempt is set.
// +kubebuilder:validation:XValidation:rule="(has(self.tokenBucket) ? 1 : 0) + (has(self.maxRequestsInflight) ? 1 : 0) + (has(self.exempt) ? 1 : 0) == 1",message="exactly one of tokenBucket, maxRequestsInflight and exempt is required"
type FlowControlSchema struct {
	// Name identifies the schema.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// TokenBucket limits the rate of requests.
	// +optional
	TokenBucket *TokenBucket `json:"tokenBucket,omitempty"`
	// MaxRequestsInflight limits concurrent requests (long-running requests
	// such as watches excluded, as in kube-apiserver).
	// +optional
	MaxRequestsInflight *MaxRequestsInflight `json:"maxRequestsInflight,omitempty"`
	// Exempt applies no limit.
	// +optional
	Exempt *Exempt `json:"exempt,omitempty"`
	// PerUser gives every user its own token bucket instead of one shared
	// by every request of the policy.
	// +optional
	PerUser bool `json:"perUser,omitempty"`
}

// TokenBucket admits qps requests per second on average with bursts of up
// to burst requests.
// +kubebuilder:validation:XValidation:rule="!has(self.failureMode) || (has(self.scope) && self.scope == 'Global')",message="failureMode applies only to scope Global"
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst == 0 || !has(self.scope) || self.scope != 'Global'",message="burst does not apply to scope Global (its window is one second)"
type TokenBucket struct {
	// QPS is the refill rate, in requests per second.
	// +kubebuilder:validation:Minimum=1
	QPS int32 `json:"qps"`
	// Burst is the bucket size. Defaults to qps. Scope Global has no burst:
	// the ratelimit service counts requests in one-second windows.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Burst int32 `json:"burst,omitempty"`
	// Scope says where the bucket lives. Local (the default) is one bucket
	// in each gateway replica, so N replicas admit up to N×qps. Global is
	// one budget shared by every replica, enforced by the ratelimit service
	// (RLS, backed by Redis) that frontdoor serve's --ratelimit-address
	// names; without that flag a Global schema is rejected.
	// +optional
	Scope RateLimitScope `json:"scope,omitempty"`
	// FailureMode says what a Global bucket does while the ratelimit service
	// (or its Redis) cannot answer. Open (the default) admits the requests,
	// counted in envoy_cluster_ratelimit_failure_mode_allowed and logged: the
	// limit protects the apiservers but is not worth an outage of its own.
	// Closed refuses them with 503 and a Kubernetes Status, for budgets that
	// must never be exceeded.
	// +optional
	FailureMode RateLimitFailureMode `json:"failureMode,omitempty"`
}

// RateLimitScope is where a token bucket is kept.
// +kubebuilder:validation:Enum=Local;Global
type RateLimitScope string

// Token bucket scopes.
const (
	RateLimitScopeLocal  RateLimitScope = "Local"
	RateLimitScopeGlobal RateLimitScope = "Global"
)

// RateLimitFailureMode is what a Global bucket does when the ratelimit
// service cannot decide.
// +kubebuilder:validation:Enum=Open;Closed
type RateLimitFailureMode string

// Failure modes of a Global bucket.
const (
	RateLimitFailOpen   RateLimitFailureMode = "Open"
	RateLimitFailClosed RateLimitFailureMode = "Closed"
)

// MaxRequestsInflight caps concurrent requests.
type MaxRequestsInflight struct {
	// Max is the number of requests allowed in flight at once.
	// +kubebuilder:validation:Minimum=1
	Max int32 `json:"max"`
}

// Exempt means no flow control.
type Exempt struct{}

// RequestService is how Envoy asks the request service.
// +kubebuilder:validation:Enum=ExtAuthz;ExtProc;InProcess
type RequestService string

// Request-service modes.
const (
	RequestServiceExtAuthz  RequestService = "ExtAuthz"
	RequestServiceExtProc   RequestService = "ExtProc"
	RequestServiceInProcess RequestService = "InProcess"
)

// Server is one kube-apiserver replica.
type Server struct {
	// Endpoint is the replica's URL, https://host:port. Host may be an IP
	// address or a DNS name.
	// +kubebuilder:validation:Pattern=`^https://[^/?#]+$`
	// +kubebuilder:validation:MaxLength=256
	Endpoint string `json:"endpoint"`
	// Disabled takes the replica out of rotation without deleting it.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// EndpointsFrom names where servers are discovered.
type EndpointsFrom struct {
	// Service selects the EndpointSlices labelled
	// kubernetes.io/service-name=<name> in the Service's namespace.
	Service ServiceEndpoints `json:"service"`
}

// ServiceEndpoints selects the EndpointSlices of one Service.
type ServiceEndpoints struct {
	// Namespace of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// PortName picks the slice port by name. Empty: the port named "https"
	// if the slice has one, else the slice's only port.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	PortName string `json:"portName,omitempty"`
}

// SecretReference names a Kubernetes Secret. In file mode (--config-dir) the
// Secret is a manifest in the same directory.
type SecretReference struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ClientConfig is the identity Frontdoor presents to the servers and how it
// verifies them. The identity needs impersonate rights (see manifests/rbac).
type ClientConfig struct {
	// SecretRef names a kubernetes.io/tls Secret with tls.crt and tls.key (the
	// gateway's client certificate) and ca.crt (the CA that signed the
	// servers' serving certificates).
	SecretRef SecretReference `json:"secretRef"`
	// InsecureSkipTLSVerify makes Frontdoor accept any server certificate.
	// For test clusters only: anyone on the path can then impersonate the
	// servers. The Secret must not hold a ca.crt when it is set (a CA that
	// would silently be ignored is a contradiction, reported as Accepted
	// False with reason InvalidClientConfig).
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`
	// IdentityForwarding is how the gateway tells the servers who each
	// request's user is. Impersonation (the default) sends Impersonate-User,
	// -Group, -Uid and -Extra-*: it works on every apiserver, managed ones
	// included, but the apiservers authorize every impersonated field and
	// audit the gateway as the user. RequestHeader sends the front-proxy
	// headers X-Remote-User, X-Remote-Group, X-Remote-Uid and
	// X-Remote-Extra-*: the apiservers trust them without further checks and
	// audit the real user, but only from a client certificate signed by
	// their --requestheader-client-ca-file whose CN is one of their
	// --requestheader-allowed-names, so the certificate in secretRef must
	// be one (see the README's Identity reference).
	// +optional
	// +kubebuilder:default=Impersonation
	IdentityForwarding IdentityForwarding `json:"identityForwarding,omitempty"`
}

// IdentityForwarding is how the gateway forwards a request's identity.
// +kubebuilder:validation:Enum=Impersonation;RequestHeader
type IdentityForwarding string

// Identity-forwarding modes.
const (
	IdentityForwardingImpersonation IdentityForwarding = "Impersonation"
	IdentityForwardingRequestHeader IdentityForwarding = "RequestHeader"
)

// SecureServing is how clients reach this cluster through Frontdoor.
type SecureServing struct {
	// ServerNames are the TLS SNI names that select this cluster. A cluster
	// with no server names serves clients that send no (or an unknown) SNI;
	// at most one cluster may do so.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	ServerNames []string `json:"serverNames,omitempty"`
	// SecretRef names a kubernetes.io/tls Secret with the serving certificate
	// and key (tls.crt, tls.key) Envoy presents to clients.
	SecretRef SecretReference `json:"secretRef"`
	// ClientCASecretRef names a Secret whose ca.crt holds the CA bundle that
	// x509 client certificates must chain to.
	// +optional
	ClientCASecretRef *SecretReference `json:"clientCASecretRef,omitempty"`
}

// Authentication selects the ways a client may prove who it is.
type Authentication struct {
	// X509 authenticates clients by certificates signed by
	// secureServing.clientCASecretRef: user is the CN, groups the O values.
	// +optional
	X509 X509Authentication `json:"x509,omitempty"`
	// TokenReview authenticates bearer tokens (the Authorization header, or
	// the WebSocket subprotocol base64url.bearer.authorization.k8s.io.<token>)
	// with a TokenReview against the upstream cluster, made with the
	// gateway's own identity.
	// +optional
	TokenReview TokenReviewAuthentication `json:"tokenReview,omitempty"`
	// JWT authenticates bearer tokens issued by OIDC/JWT issuers. Each entry
	// is one kube-apiserver AuthenticationConfiguration jwt authenticator
	// (apiserver.config.k8s.io/v1), pasted as is, and validated and run by
	// kube-apiserver's own code: issuer (URL, discovery, audiences,
	// certificate authority), claim validation rules, claim mappings and
	// user validation rules. A token whose iss claim matches an issuer is
	// decided by that issuer only; other tokens go on to the TokenReview.
	// See README "JWT / OIDC clients".
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	JWT []apiserverv1.JWTAuthenticator `json:"jwt,omitempty"`
	// Anonymous forwards requests without credentials as system:anonymous
	// (group system:unauthenticated) instead of answering 401.
	// +optional
	Anonymous AnonymousAuthentication `json:"anonymous,omitempty"`
	// RequestHeader accepts front-proxy clients: a client whose
	// certificate is signed by clientCASecretRef with a CN in allowedNames
	// may name the user in X-Remote-User, X-Remote-Group, X-Remote-Uid and
	// X-Remote-Extra-* (kube-apiserver's requestheader authenticator), for
	// a gateway placed behind another authenticating proxy. Every other
	// client's X-Remote-* headers are stripped. Unset: nobody may.
	// +optional
	RequestHeader *RequestHeaderAuthentication `json:"requestHeader,omitempty"`
}

// RequestHeaderAuthentication configures front-proxy clients, as
// kube-apiserver's --requestheader-client-ca-file and
// --requestheader-allowed-names do.
type RequestHeaderAuthentication struct {
	// ClientCASecretRef names a Secret whose ca.crt holds the CA bundle a
	// front proxy's client certificate must chain to.
	ClientCASecretRef SecretReference `json:"clientCASecretRef"`
	// AllowedNames are the common names a front proxy's certificate may
	// have. Required: unlike kube-apiserver, an empty list does not mean
	// "any certificate of the CA", so a CA that also signs ordinary client
	// certificates cannot turn every client into a proxy by accident.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	AllowedNames []string `json:"allowedNames"`
}

// TokenReviewAuthentication configures bearer-token authentication.
// The cache TTLs are capped: a long cacheTTL keeps a revoked token
// working that long, and a long negativeCacheTTL only grows what a flood
// of random tokens leaves in memory.
// +kubebuilder:validation:XValidation:rule="!has(self.cacheTTL) || duration(self.cacheTTL) <= duration('10m')",message="cacheTTL must be at most 10m"
// +kubebuilder:validation:XValidation:rule="!has(self.negativeCacheTTL) || duration(self.negativeCacheTTL) <= duration('1m')",message="negativeCacheTTL must be at most 1m"
type TokenReviewAuthentication struct {
	// Enabled turns bearer-token authentication on. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// CacheTTL is how long an authenticated token is remembered (keyed by a
	// hash of the token). Defaults to 2m, as kube-apiserver's webhook
	// token authenticator; at most 10m.
	// +optional
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
	// NegativeCacheTTL is how long a rejected token is remembered. Defaults
	// to 10s; at most 1m.
	// +optional
	NegativeCacheTTL *metav1.Duration `json:"negativeCacheTTL,omitempty"`
	// Audiences are sent in every TokenReview; the token must be valid for
	// one of them. Empty means the upstream's own API audiences.
	// +optional
	Audiences []string `json:"audiences,omitempty"`
}

// AnonymousAuthentication configures anonymous requests.
type AnonymousAuthentication struct {
	// Enabled forwards requests that carry no credential as
	// system:anonymous. A request with a bad credential is still refused,
	// as kube-apiserver refuses it. Defaults to false.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// X509Authentication configures client-certificate authentication.
type X509Authentication struct {
	// Enabled turns client-certificate authentication on. It needs
	// secureServing.clientCASecretRef. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// Revocation refuses certificates that chain to the client CA but were
	// revoked since. An edit takes effect within a second or two, without
	// a restart and without closing any connection.
	// +optional
	Revocation X509Revocation `json:"revocation,omitempty"`
}

// X509Revocation lists revoked client certificates. Every certificate of
// the chain a client presents (leaf and intermediates) is checked: a match
// anywhere is answered 401, as an unknown certificate is.
type X509Revocation struct {
	// CRLSecretRef names a Secret whose ca.crl holds one or more CRLs (PEM
	// X509 CRL blocks, or a single DER CRL), each signed by a certificate
	// of secureServing.clientCASecretRef. A certificate is checked against
	// the CRLs of its issuer. A CRL whose nextUpdate has passed refuses
	// every certificate of its issuer until a fresh one is published (as
	// OpenSSL and Envoy do). A CRL that does not parse or is not signed by
	// the client CA rejects the edit (ResolvedRefs False, InvalidSecret);
	// the last good version keeps serving.
	// +optional
	CRLSecretRef *SecretReference `json:"crlSecretRef,omitempty"`
	// DeniedFingerprints are SHA-256 fingerprints of DER certificates
	// (64 hex digits, optionally colon-separated in pairs, either case);
	// a chain holding any of them is refused.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:Pattern=`^([0-9A-Fa-f]{64}|([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2})$`
	DeniedFingerprints []string `json:"deniedFingerprints,omitempty"`
}

// HealthCheck is an active HTTP health check against every server. A
// non-200 answer ejects the server at once; no answer (refused, reset, no
// answer within the timeout) counts towards UnhealthyThreshold.
type HealthCheck struct {
	// Path is requested with the gateway's client identity; a 200 is healthy.
	// +optional
	// +kubebuilder:default="/readyz"
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
	// Interval between checks.
	// +optional
	// +kubebuilder:default="5s"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one check.
	// +optional
	// +kubebuilder:default="2s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// UnhealthyThreshold is how many unanswered checks in a row eject a
	// server.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	UnhealthyThreshold int32 `json:"unhealthyThreshold,omitempty"`
	// HealthyThreshold is how many passed checks in a row bring it back.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	HealthyThreshold int32 `json:"healthyThreshold,omitempty"`
}

// OutlierDetection is passive health checking: Envoy ejects a server from
// every cluster of the UpstreamCluster for a while when its live traffic
// fails in a row. Ejection never takes out more than maxEjectionPercent of
// the servers (at least one can always be ejected), so one bad request
// pattern cannot empty the pool.
type OutlierDetection struct {
	// Consecutive5xx is how many 5xx answers in a row from one server eject
	// it; 0 disables. Only answers the server sent count (503 from an
	// apiserver that lost etcd, say); failures to reach it count below.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	Consecutive5xx *int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveConnectFailures is how many connect failures, connection
	// resets and timeouts in a row eject a server; 0 disables.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	ConsecutiveConnectFailures *int32 `json:"consecutiveConnectFailures,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts; a server ejected
	// again stays out that many times longer.
	// +optional
	// +kubebuilder:default="10s"
	BaseEjectionTime *metav1.Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of servers ejected at once.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// LoadBalancingPolicy is how Envoy picks a server for each request.
// +kubebuilder:validation:Enum=RoundRobin;Random;LeastRequest
type LoadBalancingPolicy string

// Load-balancing policies.
const (
	RoundRobin   LoadBalancingPolicy = "RoundRobin"
	Random       LoadBalancingPolicy = "Random"
	LeastRequest LoadBalancingPolicy = "LeastRequest"
)

// LoadBalancing is how requests are spread over healthy servers.
type LoadBalancing struct {
	// Policy picks a server per request (not per connection).
	// +optional
	// +kubebuilder:default=RoundRobin
	Policy LoadBalancingPolicy `json:"policy,omitempty"`
}

// UpstreamClusterStatus is what the control plane observed.
type UpstreamClusterStatus struct {
	// Conditions are Accepted, ResolvedRefs and Programmed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ServerCount is how many servers are configured and enabled.
	// +optional
	ServerCount int32 `json:"serverCount,omitempty"`
	// HealthyServerCount is how many of them pass their health check.
	// +optional
	HealthyServerCount int32 `json:"healthyServerCount,omitempty"`
	// UnhealthyServers are the servers Envoy sends no traffic to, with why:
	// "host:port: failed_health_probe" (frontdoor's health check),
	// "...: failed_outlier_check" or another of Envoy's flags. Empty when
	// every server is healthy.
	// +optional
	// +listType=atomic
	UnhealthyServers []string `json:"unhealthyServers,omitempty"`
}

// UpstreamClusterList is a list of UpstreamClusters.
//
// +kubebuilder:object:root=true
type UpstreamClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the UpstreamClusters.
	Items []UpstreamCluster `json:"items"`
}

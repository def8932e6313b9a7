package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// +kubebuilder:validation:XValidation:rule="size(self.servers) > 0",message="at least one server is required"
type UpstreamClusterSpec struct {
	// Servers are the kube-apiserver replicas of this cluster. Requests are
	// balanced over every enabled server that passes its health check.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=endpoint
	Servers []Server `json:"servers"`

	// ClientConfig is how Frontdoor authenticates itself to the servers.
	ClientConfig ClientConfig `json:"clientConfig"`

	// SecureServing is how Frontdoor serves this cluster's clients.
	SecureServing SecureServing `json:"secureServing"`

	// Authentication selects the ways a client may prove who it is.
	// +optional
	Authentication Authentication `json:"authentication,omitempty"`

	// HealthCheck is the active health check Envoy runs against every server.
	// +optional
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`

	// LoadBalancing is how requests are spread over healthy servers.
	// +optional
	LoadBalancing LoadBalancing `json:"loadBalancing,omitempty"`

	// RequestService selects the Envoy filter that asks frontdoor's request
	// service about each request: ExtAuthz (ext_authz, the default) or
	// ExtProc (ext_proc, which also observes each response's status and
	// latency). Both run the same pipeline and forward the same identity.
	// +optional
	// +kubebuilder:default=ExtAuthz
	RequestService RequestService `json:"requestService,omitempty"`
}

// RequestService is the Envoy filter that calls the request service.
// +kubebuilder:validation:Enum=ExtAuthz;ExtProc
type RequestService string

// Request-service filters.
const (
	RequestServiceExtAuthz RequestService = "ExtAuthz"
	RequestServiceExtProc  RequestService = "ExtProc"
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
}

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
}

// X509Authentication configures client-certificate authentication.
type X509Authentication struct {
	// Enabled turns client-certificate authentication on. It needs
	// secureServing.clientCASecretRef. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// HealthCheck is an active HTTP health check against every server.
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
	// UnhealthyThreshold is how many failed checks in a row eject a server.
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

// Condition types set on an UpstreamCluster.
const (
	// ConditionAccepted is True when the spec is valid and was translated.
	ConditionAccepted = "Accepted"
	// ConditionResolvedRefs is True when every referenced Secret was found and valid.
	ConditionResolvedRefs = "ResolvedRefs"
	// ConditionProgrammed is True when the config reached the xDS server.
	ConditionProgrammed = "Programmed"
)

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

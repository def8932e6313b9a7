package kubegateway

// The input types: KubeGateway's proxy.kubegateway.io/v1alpha1
// UpstreamCluster as its documentation and CRD describe it (including the
// fields later releases added: clientConfig.serverName,
// secureServing.serverNames, the global flow-control schemas). They are our
// own, decoded tolerantly: PEM fields stay strings so that a placeholder or
// bad base64 is reported per field instead of failing the whole object, and
// unknown fields are reported (unknownFields) rather than refused, as
// KubeGateway's apiserver silently dropped them.

// APIVersion is the only apiVersion Convert reads.
const APIVersion = "proxy.kubegateway.io/v1alpha1"

type kgObjectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type kgUpstreamCluster struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   kgObjectMeta   `json:"metadata"`
	Spec       kgSpec         `json:"spec"`
	Status     map[string]any `json:"status,omitempty"`
}

type kgSpec struct {
	Servers          []kgServer         `json:"servers,omitempty"`
	ClientConfig     kgClientConfig     `json:"clientConfig"`
	SecureServing    kgSecureServing    `json:"secureServing"`
	FlowControl      kgFlowControl      `json:"flowControl"`
	DispatchPolicies []kgDispatchPolicy `json:"dispatchPolicies,omitempty"`
	Logging          kgLogging          `json:"logging"`
}

type kgServer struct {
	Endpoint string `json:"endpoint"`
	Disabled *bool  `json:"disabled,omitempty"`
}

type kgClientConfig struct {
	Insecure    bool   `json:"insecure,omitempty"`
	BearerToken string `json:"bearerToken,omitempty"`
	KeyData     string `json:"keyData,omitempty"`
	CertData    string `json:"certData,omitempty"`
	CAData      string `json:"caData,omitempty"`
	QPS         int32  `json:"qps,omitempty"`
	Burst       int32  `json:"burst,omitempty"`
	QPSDivisor  int32  `json:"qpsDivisor,omitempty"`
	ServerName  string `json:"serverName,omitempty"`
}

type kgSecureServing struct {
	KeyData      string   `json:"keyData,omitempty"`
	CertData     string   `json:"certData,omitempty"`
	ClientCAData string   `json:"clientCAData,omitempty"`
	ServerNames  []string `json:"serverNames,omitempty"`
}

type kgFlowControl struct {
	Schemas []kgSchema `json:"flowControlSchemas,omitempty"`
}

type kgSchema struct {
	Name                      string    `json:"name"`
	Exempt                    *struct{} `json:"exempt,omitempty"`
	MaxRequestsInflight       *kgMax    `json:"maxRequestsInflight,omitempty"`
	TokenBucket               *kgBucket `json:"tokenBucket,omitempty"`
	GlobalMaxRequestsInflight *kgMax    `json:"globalMaxRequestsInflight,omitempty"`
	GlobalTokenBucket         *kgBucket `json:"globalTokenBucket,omitempty"`
	Strategy                  string    `json:"strategy,omitempty"`
}

type kgMax struct {
	Max int32 `json:"max"`
}

type kgBucket struct {
	QPS   int32 `json:"qps"`
	Burst int32 `json:"burst"`
}

type kgDispatchPolicy struct {
	Strategy              string   `json:"strategy,omitempty"`
	UpstreamSubset        []string `json:"upstreamSubset,omitempty"`
	UpsteamSubset         []string `json:"upsteamSubset,omitempty"` // KubeGateway's docs' (and early releases') spelling
	Rules                 []kgRule `json:"rules,omitempty"`
	FlowControlSchemaName string   `json:"flowControlSchemaName,omitempty"`
	LogMode               string   `json:"logMode,omitempty"`
}

type kgRule struct {
	Verbs           []string  `json:"verbs,omitempty"`
	APIGroups       []string  `json:"apiGroups,omitempty"`
	Resources       []string  `json:"resources,omitempty"`
	ResourceNames   []string  `json:"resourceNames,omitempty"`
	Users           []string  `json:"users,omitempty"`
	ServiceAccounts []kgSARef `json:"serviceAccounts,omitempty"`
	UserGroups      []string  `json:"userGroups,omitempty"`
	NonResourceURLs []string  `json:"nonResourceURLs,omitempty"`
}

type kgSARef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

type kgLogging struct {
	Mode string `json:"mode,omitempty"`
}

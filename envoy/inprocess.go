package envoy

// In-process mode (UpstreamCluster spec.requestService: InProcess): the
// request pipeline runs inside Envoy as a dynamic module
// (cmd/frontdoor-module, package inprocess). What the translator writes
// into the filter's config and what the module reads from it.

const (
	// InProcessFilterName is the HCM filter running the module.
	InProcessFilterName = "frontdoor.inprocess"
	// InProcessModuleFilter is the filter_name the module registers its
	// request filter under.
	InProcessModuleFilter = "request_service"

	// MetadataNamespaceInProcess is the dynamic metadata namespace of the
	// module: it sets InProcessLoggedKey there (a number) on every stream
	// whose access log line it writes itself (InProcessAccessLog), and
	// Envoy's own access log, kept for the requests the filter never sees,
	// passes only streams without it.
	MetadataNamespaceInProcess = "frontdoor.inprocess"
	// InProcessLoggedKey marks a stream the module logged.
	InProcessLoggedKey = "logged"
)

// InProcessConfig is the module filter's config (filter_config, JSON in a
// google.protobuf.StringValue). It changes only with the cluster or the
// gateway's flags, never with a policy edit: the module receives the
// policy table from frontdoor serve (PolicyAddress), so editing an
// UpstreamCluster never replaces the listener and never drains
// connections.
type InProcessConfig struct {
	// Cluster is the UpstreamCluster whose requests the filter decides.
	Cluster string `json:"cluster"`
	// PolicyAddress is frontdoor serve's gRPC address (host:port or
	// unix:///path), where the module subscribes to the policy table.
	PolicyAddress string `json:"policyAddress"`
	// MetricsAddress, when set, is where the module serves the pipeline's
	// Prometheus metrics (/metrics), host:port.
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// AccessLog, when set, makes the module write the cluster's access log
	// line for every request its filter sees; nil: no access log.
	AccessLog *InProcessAccessLog `json:"accessLog,omitempty"`
}

// InProcessAccessLog is where and what the module logs: the gateway's
// access log settings (the same line, file and filters as Envoy's own
// access log in the other modes).
type InProcessAccessLog struct {
	// Path is the file appended to; empty: Envoy's standard output.
	Path string `json:"path,omitempty"`
	// FailuresOnly keeps only failed requests (an answer of 400 or more, no
	// answer, a response flag) and, with SlowerThanMs, slow ones.
	FailuresOnly bool  `json:"failuresOnly,omitempty"`
	SlowerThanMs int64 `json:"slowerThanMs,omitempty"`
}

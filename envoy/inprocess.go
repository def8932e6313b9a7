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

	// MetadataNamespaceInProcess is the dynamic metadata namespace the
	// module writes the numeric access-log field AccessLogGroups into (a
	// number in the JSON line). AccessLogRequestServiceUs, how long the
	// request service took for the request (inline, the pipeline's own
	// time; paused, until the decision was applied), is filter state
	// (InProcessFilterStateKey), whole microseconds as digits like the
	// other modes' latencies.
	MetadataNamespaceInProcess = "frontdoor.inprocess"
	// filterStatePrefixInProcess starts InProcessFilterStateKey.
	filterStatePrefixInProcess = "frontdoor.inprocess."
)

// InProcessFilterStateKey is the filter state key of a string access-log
// field (AccessLogFields but AccessLogGroups), which the module writes as a
// string object and the access log formats as it is
// (%FILTER_STATE(key:PLAIN)%), where a dynamic metadata field costs a
// lookup and a protobuf conversion per field and line. The module and the
// translator both name the key through it.
func InProcessFilterStateKey(field string) string { return filterStatePrefixInProcess + field }

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
}

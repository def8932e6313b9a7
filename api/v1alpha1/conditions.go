package v1alpha1

// The status contract of an UpstreamCluster: condition types and their
// reasons. They are part of the API (users alert on them), so they live
// beside the types, are exported, and are never reworded. The translator
// decides Accepted and ResolvedRefs, the control plane Programmed.

// Condition types set on an UpstreamCluster.
const (
	// ConditionAccepted is True when the spec is valid and was translated.
	ConditionAccepted = "Accepted"
	// ConditionResolvedRefs is True when every referenced Secret was found and valid.
	ConditionResolvedRefs = "ResolvedRefs"
	// ConditionProgrammed is True when the snapshot holding this generation
	// was set in the xDS server (Envoy is then sent it).
	ConditionProgrammed = "Programmed"
)

// Reasons of the Accepted condition.
const (
	ReasonAccepted               = "Accepted"
	ReasonDuplicateName          = "DuplicateName"
	ReasonInvalidServer          = "InvalidServer"
	ReasonNoServers              = "NoServers"
	ReasonInvalidServerName      = "InvalidServerName"
	ReasonConflictingServerNames = "ConflictingServerNames"
	// ReasonInvalidHealthCheck covers spec.healthCheck and spec.outlierDetection.
	ReasonInvalidHealthCheck    = "InvalidHealthCheck"
	ReasonInvalidLoadBalancing  = "InvalidLoadBalancing"
	ReasonInvalidAuthentication = "InvalidAuthentication"
	// ReasonInvalidConfig: the cluster's Envoy config failed validation, or
	// translating it failed unexpectedly.
	ReasonInvalidConfig         = "InvalidConfig"
	ReasonInvalidClientConfig   = "InvalidClientConfig"
	ReasonInvalidDispatchPolicy = "InvalidDispatchPolicy"
	ReasonInvalidFlowControl    = "InvalidFlowControl"
	// ReasonInvalidRequestService: spec.requestService is not a known mode.
	ReasonInvalidRequestService = "InvalidRequestService"
)

// Reasons of the ResolvedRefs condition.
const (
	ReasonResolvedRefs   = "ResolvedRefs"
	ReasonUnresolvedRefs = "UnresolvedRefs"
	ReasonSecretNotFound = "SecretNotFound"
	ReasonInvalidSecret  = "InvalidSecret"
	// ReasonRefNotPermitted: a Secret reference names a namespace the
	// gateway does not read Secrets from (frontdoor serve
	// --secret-namespaces).
	ReasonRefNotPermitted = "RefNotPermitted"
)

// Reasons of the Programmed condition.
const (
	ReasonProgrammed = "Programmed"
	// ReasonLastGoodServed: this generation was rejected, and the last
	// accepted version of the object keeps serving in its place.
	ReasonLastGoodServed = "LastGoodServed"
	// ReasonNotServed: this generation was rejected and no earlier version
	// was ever accepted, so nothing of the object is served.
	ReasonNotServed = "NotServed"
	// ReasonSnapshotFailed: the translated config could not be served; the
	// previous snapshot stays.
	ReasonSnapshotFailed = "SnapshotFailed"
)

package envoy

// ext_proc mode (UpstreamCluster spec.requestService: ExtProc).

const (
	// GRPCMetadataCluster is the gRPC initial metadata key (set per virtual
	// host) that names the UpstreamCluster of an ext_proc stream, as
	// ContextKeyCluster does for ext_authz.
	GRPCMetadataCluster = "x-frontdoor-cluster"

	// HeaderClientCert is the header through which the ext_proc service
	// sees the client certificate. ext_proc has no peer-certificate
	// attribute, so the HCM sets it (forward_client_cert_details
	// SANITIZE_SET with the certificate), after dropping any copy the
	// client sent; the service removes it before the request goes upstream.
	HeaderClientCert = "x-forwarded-client-cert"

	// AttributeSourceAddress is the Envoy attribute of the client's
	// address ("ip:port", after PROXY protocol and trusted forwarding
	// hops), which the ext_proc filter sends with the request headers
	// (request_attributes) for the refusal gate of bearer tokens.
	AttributeSourceAddress = "source.address"

	// MetadataNamespaceExtProc is the dynamic metadata namespace the ext_proc
	// service writes the access-log fields (MetadataKeyRequest) into.
	MetadataNamespaceExtProc = "envoy.filters.http.ext_proc"
)

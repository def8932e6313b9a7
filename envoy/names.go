// Package envoy holds what Frontdoor's Go code and the Envoy config it
// generates must agree on: header names, the ext_authz context keys, static
// cluster names; plus the bootstrap renderer.
//
// It is a leaf of names and renderers: it imports nothing of the project but
// kubestatus, and never gRPC or client-go.
package envoy

import "strings"

const (
	// HeaderPrefix is the prefix of every internal header. Envoy strips every
	// incoming header with this prefix before any filter sees it (an early
	// header mutation), so only the request service can set one.
	HeaderPrefix = "x-frontdoor-"
	// HeaderRule carries the dispatch rule chosen by the request service;
	// routes match it exactly.
	HeaderRule = "x-frontdoor-rule"
	// HeaderUser carries a digest of the (final) user name, set by the
	// request service on requests of a dispatch policy (not of the default
	// rule); per-user token buckets and global descriptors key on it.
	HeaderUser = "x-frontdoor-user"

	// ContextKeyCluster is the ext_authz context extension (set per virtual
	// host) that names the UpstreamCluster a request belongs to.
	ContextKeyCluster = "frontdoor.dev/cluster"

	// ControlPlaneCluster is the bootstrap's static cluster pointing at the
	// frontdoor gRPC server, which serves ADS and ext_authz on one port.
	ControlPlaneCluster = "frontdoor"

	// RateLimitCluster is the CDS cluster of the ratelimit service (RLS)
	// that enforces Global token buckets; it exists only while one does.
	RateLimitCluster = "frontdoor_ratelimit"

	// DefaultRule is the name of the rule (and route) every request falls to
	// when no dispatch policy matches.
	DefaultRule = "default"
)

// RequestHeaderMatch names one request header the request service reads,
// or with Prefix every header starting with Name. Names are lowercase, as
// Envoy passes them.
type RequestHeaderMatch struct {
	Name   string
	Prefix bool
}

// Matches reports whether the lowercase header name is m's.
func (m RequestHeaderMatch) Matches(name string) bool {
	return name == m.Name || m.Prefix && strings.HasPrefix(name, m.Name)
}

// RequestServiceHeaders are the request headers the request service's
// pipeline (authz) reads, and so the only ones ext_authz sends it
// (allowed_headers); method, path, the peer certificate and the cluster
// travel in their own CheckRequest fields. authz's tests run the pipeline
// on requests filtered by this list, so they fail if it starts reading
// another header.
var RequestServiceHeaders = []RequestHeaderMatch{
	// Bearer tokens.
	{Name: "authorization"},
	// Client impersonation (kubectl --as), authorized then stripped.
	{Name: "impersonate-", Prefix: true},
	// WebSocket clients' bearer tokens, stripped before forwarding; with
	// Connection and Upgrade, what makes the request a WebSocket upgrade.
	{Name: "sec-websocket-protocol"},
	{Name: "connection"},
	{Name: "upgrade"},
	// Front-proxy identity headers: read from a front proxy (a cluster's
	// spec.authentication.requestHeader), stripped from every request
	// (Envoy already drops them before any filter on other clusters).
	{Name: "x-remote-", Prefix: true},
	// A server-side apply (PATCH with an apply-patch media type) may
	// create its object: dispatch rules on create catch it too.
	{Name: "content-type"},
}

// RequestServiceReads reports whether the request service reads the header
// with this lowercase name (RequestServiceHeaders).
func RequestServiceReads(name string) bool {
	for _, m := range RequestServiceHeaders {
		if m.Matches(name) {
			return true
		}
	}
	return false
}

// MetadataKeyIdentityHeaders is the key, in the ext_authz filter's dynamic
// metadata namespace (MetadataNamespaceExtAuthz), of the identity header
// fields the request service decided on: a flat list name, value, name,
// value, ... The identity filter (IdentityFilterLua) adds each pair as its own
// header field: Impersonate-* or X-Remote-*, by the cluster's identity
// forwarding mode.
//
// Why not ext_authz's own header mutations: Envoy 1.40's ext_authz gRPC
// client ignores append_action and either replaces a header or comma-joins
// values into one field, while kube-apiserver reads every Impersonate-Group
// (and multi-valued Impersonate-Extra-*) field as one value. A comma-joined
// "dev,ops" would be a single group named "dev,ops".
const MetadataKeyIdentityHeaders = "frontdoor.dev/identity-headers"

// MetadataNamespaceExtAuthz is where Envoy stores ext_authz dynamic metadata.
const MetadataNamespaceExtAuthz = "envoy.filters.http.ext_authz"

// MetadataKeyRequest is the key, in the ext_authz dynamic metadata namespace
// (MetadataNamespaceExtAuthz), of the request's Kubernetes coordinates as the
// request service decided them: a struct with the AccessLog* fields below.
// Envoy's access log reads them with
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:frontdoor.dev/request:<field>)%.
// It never carries credentials: no token, certificate or header value.
const MetadataKeyRequest = "frontdoor.dev/request"

// The fields of MetadataKeyRequest.
const (
	// AccessLogUser is the user the request runs as upstream: the user the
	// client impersonated, if any (the apiserver's impersonatedUser).
	AccessLogUser = "user"
	// AccessLogRequestor is the user who authenticated to the gateway: the
	// same as AccessLogUser unless the client impersonated someone. The
	// apiserver never sees it (its audit user is the gateway's identity).
	AccessLogRequestor   = "requestor"
	AccessLogGroups      = "groups" // a number: how many groups, never their names
	AccessLogVerb        = "verb"
	AccessLogAPIGroup    = "apiGroup"
	AccessLogResource    = "resource"
	AccessLogSubresource = "subresource"
	AccessLogNamespace   = "namespace"
	AccessLogName        = "name"
	AccessLogRule        = "rule"
	AccessLogDecision    = "decision"
)

// Access-log timing fields the bench and operators read, besides Envoy's own
// durationUs and upstreamUs: the microseconds Envoy waited on the request
// service before forwarding (every mode) and, in ExtProc mode, on its answer
// to the response headers.
const (
	AccessLogRequestServiceUs         = "requestServiceUs"
	AccessLogRequestServiceResponseUs = "requestServiceResponseUs"
)

// AccessLogFields lists the MetadataKeyRequest fields in log order.
var AccessLogFields = []string{
	AccessLogUser, AccessLogRequestor, AccessLogGroups, AccessLogVerb, AccessLogAPIGroup, AccessLogResource,
	AccessLogSubresource, AccessLogNamespace, AccessLogName, AccessLogRule, AccessLogDecision,
}

// Names of the xDS resources of one UpstreamCluster uc. Every reference
// between resources goes through these (LDS → RDS → CDS → EDS → SDS), and
// whoever reads Envoy's admin API back (health polling, tests) finds the
// resources by the same names.
func RouteName(uc string) string                { return uc }
func DefaultClusterName(uc string) string       { return uc + defaultClusterSuffix }
func UpgradeClusterName(uc string) string       { return uc + "/upgrade" }
func RuleClusterName(uc, rule string) string    { return uc + "/" + rule }
func ServingSecretName(uc string) string        { return uc + "/serving" }
func ClientCASecretName(uc string) string       { return uc + "/client-ca" }
func UpstreamClientSecretName(uc string) string { return uc + "/upstream-client" }
func UpstreamCASecretName(uc string) string     { return uc + "/upstream-ca" }

const defaultClusterSuffix = "/default"

// UpstreamClusterOfDefault returns the UpstreamCluster whose default Envoy
// cluster is named cluster (the inverse of DefaultClusterName).
func UpstreamClusterOfDefault(cluster string) (uc string, ok bool) {
	return strings.CutSuffix(cluster, defaultClusterSuffix)
}

// ListenerName is the one listener serving every cluster.
const ListenerName = "frontdoor"

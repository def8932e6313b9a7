package translator

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// Envoy's own 503 answers have an empty or plain-text body; kubectl then
// prints a bare "the server is currently unable to handle the request".
// The local reply mappers below give them the Kubernetes Status body
// kube-apiserver would send (kind Status, status Failure, reason
// ServiceUnavailable, code 503), so clients print what they would for an
// unavailable apiserver. The request service's own denials keep their
// bodies, whatever their code: a dispatch policy may reject with 503 and
// its own message and Retry-After. Envoy marks a denial and a failure of
// the service alike (ext_authz flags both UAEX; ext_proc flags neither),
// so each mode's mapper (localReplyMappers) tells its service's failures
// by what a denial always carries and a failure never does: the
// decision in the service's access-log metadata (serviceFailed).

// HTTP codes of the mapped replies (net/http stays out of the translator).
const (
	statusServiceUnavailable  = 503
	statusTooManyRequestsCode = 429
)

var (
	// statusRequestServiceUnavailable answers the 503s Envoy sends when
	// the request service failed: unreachable, too slow (fail closed), or
	// answering with an error.
	statusRequestServiceUnavailable = kubestatus.Body(statusServiceUnavailable,
		"the gateway cannot authenticate requests right now: its request service is unavailable or not ready")
	// statusNoUpstream answers 503s of the router: no healthy replica, a
	// failed connection or an overflowing circuit breaker.
	statusNoUpstream = kubestatus.Body(statusServiceUnavailable, "no kube-apiserver of this cluster is available")
)

func localReplyConfig() *hcmv3.LocalReplyConfig {
	return &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{
		tooManyRequestsMapper(), // first: UO of a capped policy is a 429 (ratelimit.go)
		statusMapper(statusNoUpstream, flagged("UH", "UF", "UO", "URX")),
	}}
}

// statusMapper replaces the body of a 503 local reply that also matches
// every one of conds with body, as JSON.
func statusMapper(body []byte, conds ...*accesslogv3.AccessLogFilter) *hcmv3.ResponseMapper {
	is503 := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{
			DefaultValue: 503, RuntimeKey: "frontdoor.local_reply.status_code",
		}},
	}}}
	return statusReplyMapper(&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
		Filters: append([]*accesslogv3.AccessLogFilter{is503}, conds...),
	}}}, statusServiceUnavailable, body)
}

// flagged matches a reply carrying one of Envoy's response flags.
func flagged(flags ...string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}}
}

// serviceFailureMapper gives the 503s Envoy answers when the request
// service failed the Status body statusRequestServiceUnavailable: a 503
// local reply carrying one of flags (none: whatever its flags) whose
// request has no decision in the service's access-log metadata (namespace,
// then the envoy.MetadataKeyRequest struct). Every answer of the service
// records its decision there, a denial too, so a 503 the service chose (a
// dispatch policy's reject, a review it could not make) keeps its own
// body.
func serviceFailureMapper(namespace string, flags []string) *hcmv3.ResponseMapper {
	noDecision := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
		MetadataFilter: &accesslogv3.MetadataFilter{
			Matcher: &matcherv3.MetadataMatcher{
				Filter: namespace,
				Path: []*matcherv3.MetadataMatcher_PathSegment{
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: envoy.MetadataKeyRequest}},
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: envoy.AccessLogDecision}},
				},
				// Envoy's access-log MetadataFilter ignores the matcher's
				// invert: a present key matches iff this value matcher does,
				// and present_match false matches no value. So: a recorded
				// decision never matches, a missing one always does.
				Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: false}},
			},
			MatchIfKeyNotFound: wrapperspb.Bool(true),
		},
	}}
	conds := []*accesslogv3.AccessLogFilter{noDecision}
	if len(flags) != 0 {
		conds = []*accesslogv3.AccessLogFilter{flagged(flags...), noDecision}
	}
	// The request was never forwarded: client-go retries a 5xx carrying
	// Retry-After (any verb), so a restart of the request service is a
	// pause for its clients, not an error.
	return withRetryAfter(statusMapper(statusRequestServiceUnavailable, conds...))
}

// withRetryAfter adds Retry-After: 1 to m's reply (unless the reply has
// one): for refusals of requests that were never executed.
func withRetryAfter(m *hcmv3.ResponseMapper) *hcmv3.ResponseMapper {
	m.HeadersToAdd = append(m.HeadersToAdd, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: "retry-after", Value: "1"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
	})
	return m
}

// statusReplyMapper answers the local replies filter matches with code and
// the Status body, as kube-apiserver would send it: JSON, with its
// cache-control header (withRetryAfter adds Retry-After).
func statusReplyMapper(filter *accesslogv3.AccessLogFilter, code uint32, body []byte) *hcmv3.ResponseMapper {
	headers := []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "cache-control", Value: kubestatus.CacheControl},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
	return &hcmv3.ResponseMapper{
		Filter: filter,
		Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(body)}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%LOCAL_REPLY_BODY%"}}},
			ContentType: kubestatus.ContentType,
		},
		HeadersToAdd: headers,
		StatusCode:   wrapperspb.UInt32(code),
	}
}

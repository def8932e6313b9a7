package translator

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// Envoy's own 503 answers have an empty or plain-text body; kubectl then
// prints a bare "the server is currently unable to handle the request".
// The local reply mappers below give them the Kubernetes Status body
// kube-apiserver would send (kind Status, status Failure, reason
// ServiceUnavailable, code 503), so clients print what they would for an
// unavailable apiserver. The request service's own denials (401/403/429,
// also local replies flagged UAEX) keep their bodies: only 503s are mapped.

// HTTP codes of the mapped replies (net/http stays out of the translator).
const (
	statusServiceUnavailable  = 503
	statusTooManyRequestsCode = 429
)

var (
	// statusRequestServiceUnavailable answers 503s of ext_authz: the
	// request service is unreachable, too slow (fail closed), or has no
	// configuration for the cluster yet.
	statusRequestServiceUnavailable = kubestatus.Body(statusServiceUnavailable,
		"the gateway cannot authenticate requests right now: its request service is unavailable or not ready")
	// statusNoUpstream answers 503s of the router: no healthy replica, a
	// failed connection or an overflowing circuit breaker.
	statusNoUpstream = kubestatus.Body(statusServiceUnavailable, "no kube-apiserver of this cluster is available")
)

func localReplyConfig() *hcmv3.LocalReplyConfig {
	return &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{
		tooManyRequestsMapper(), // first: UO of a capped policy is a 429 (ratelimit.go)
		statusMapper([]string{"UAEX"}, statusRequestServiceUnavailable),
		statusMapper([]string{"UH", "UF", "UO", "URX"}, statusNoUpstream),
	}}
}

// statusMapper replaces the body of a 503 local reply carrying one of flags
// with body, as JSON.
func statusMapper(flags []string, body []byte) *hcmv3.ResponseMapper {
	return statusReplyMapper(&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
		Filters: []*accesslogv3.AccessLogFilter{
			{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
				Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{
					DefaultValue: 503, RuntimeKey: "frontdoor.local_reply.status_code",
				}},
			}}},
			{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}},
		},
	}}}, statusServiceUnavailable, body)
}

// statusReplyMapper answers the local replies filter matches with code and
// the Status body, as kube-apiserver would send it: JSON, with its
// cache-control header, plus any extra headers.
func statusReplyMapper(filter *accesslogv3.AccessLogFilter, code uint32, body []byte, extra ...*corev3.HeaderValueOption) *hcmv3.ResponseMapper {
	headers := append([]*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "cache-control", Value: kubestatus.CacheControl},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}, extra...)
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

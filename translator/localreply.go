package translator

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's own 503 answers have an empty or plain-text body; kubectl then
// prints a bare "the server is currently unable to handle the request".
// The local reply mappers below give them the Kubernetes Status body
// kube-apiserver would send (kind Status, status Failure, reason
// ServiceUnavailable, code 503), so clients print what they would for an
// unavailable apiserver. The request service's own denials (401/403/429,
// also local replies flagged UAEX) keep their bodies: only 503s are mapped.

const (
	// statusRequestServiceUnavailable answers 503s of ext_authz: the
	// request service is unreachable, too slow (fail closed), or has no
	// configuration for the cluster yet.
	statusRequestServiceUnavailable = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the gateway cannot authenticate requests right now: its request service is unavailable or not ready","reason":"ServiceUnavailable","code":503}` + "\n"
	// statusNoUpstream answers 503s of the router: no healthy replica, a
	// failed connection or an overflowing circuit breaker.
	statusNoUpstream = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no kube-apiserver of this cluster is available","reason":"ServiceUnavailable","code":503}` + "\n"
)

func localReplyConfig() *hcmv3.LocalReplyConfig {
	return &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{
		statusMapper([]string{"UAEX"}, statusRequestServiceUnavailable),
		statusMapper([]string{"UH", "UF", "UO", "URX"}, statusNoUpstream),
	}}
}

// statusMapper replaces the body of a 503 local reply carrying one of flags
// with body, as JSON.
func statusMapper(flags []string, body string) *hcmv3.ResponseMapper {
	return &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
			Filters: []*accesslogv3.AccessLogFilter{
				{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
					Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{
						DefaultValue: 503, RuntimeKey: "frontdoor.local_reply.status_code",
					}},
				}}},
				{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}},
			},
		}}},
		Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%LOCAL_REPLY_BODY%"}}},
			ContentType: "application/json",
		},
		HeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "cache-control", Value: "no-cache, private"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
		StatusCode: wrapperspb.UInt32(503),
	}
}

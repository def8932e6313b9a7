package translator

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
)

// The ext_proc filter is the alternative to ext_authz (spec.requestService:
// ExtProc). It asks the same request service on the request headers and
// applies the answer as a header mutation (each Impersonate-Group its own
// field, so no identity Lua filter is needed), then sends the response
// headers too, so the service can record each request's status code and
// latency per rule.

const (
	extProcFilterName = "envoy.filters.http.ext_proc"
	// extProcTimeout bounds each ext_proc message, like extAuthzTimeout.
	extProcTimeout = extAuthzTimeout

	// ReasonInvalidRequestService: spec.requestService is not a known filter.
	ReasonInvalidRequestService = "InvalidRequestService"
)

// RequestServiceIR is the filter that calls the request service.
type RequestServiceIR string

// IR request services.
const (
	RequestServiceExtAuthz RequestServiceIR = "ExtAuthz"
	RequestServiceExtProc  RequestServiceIR = "ExtProc"
)

func buildRequestService(st *statusBuilder, rs v1alpha1.RequestService) RequestServiceIR {
	switch rs {
	case "", v1alpha1.RequestServiceExtAuthz:
		return RequestServiceExtAuthz
	case v1alpha1.RequestServiceExtProc:
		return RequestServiceExtProc
	default:
		st.reject(ReasonInvalidRequestService, fmt.Sprintf("requestService %q is not one of ExtAuthz, ExtProc", rs))
		return RequestServiceExtAuthz
	}
}

// requestServiceFilters are the HTTP filters before the router.
func requestServiceFilters(c *ClusterIR) []*hcmv3.HttpFilter {
	if c.RequestService == RequestServiceExtProc {
		return []*hcmv3.HttpFilter{extProcFilter()}
	}
	return []*hcmv3.HttpFilter{extAuthzFilter(), identityFilter()}
}

// requestServicePerRoute is the virtual host's per-filter config naming
// the cluster for the request service.
func requestServicePerRoute(c *ClusterIR) (string, proto.Message) {
	if c.RequestService == RequestServiceExtProc {
		return extProcFilterName, &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
			GrpcInitialMetadata: []*corev3.HeaderValue{{Key: envoy.GRPCMetadataCluster, Value: c.Name}},
			// Responses of routed requests go to the service; see extProcFilter.
			ProcessingMode: extProcMode(extprocv3.ProcessingMode_SEND),
		}}}
	}
	return extAuthzFilterName, extAuthzPerRoute(c.Name)
}

// requestMetadataNamespace is where the access log finds the request
// service's fields.
func requestMetadataNamespace(c *ClusterIR) string {
	if c.RequestService == RequestServiceExtProc {
		return envoy.MetadataNamespaceExtProc
	}
	return envoy.MetadataNamespaceExtAuthz
}

// requestServiceLatency is the access log's request-service timing: the
// microseconds Envoy waited on the request service, from the filter's own
// per-stream stats (ext_authz: emit_filter_state_stats; ext_proc records
// them always). ext_proc's response-headers exchange is a second wait,
// logged apart.
func requestServiceLatency(c *ClusterIR) map[string]string {
	if c.RequestService == RequestServiceExtProc {
		return map[string]string{
			envoy.AccessLogRequestServiceUs:         "%FILTER_STATE(" + extProcFilterName + ":FIELD:request_header_latency_us)%",
			envoy.AccessLogRequestServiceResponseUs: "%FILTER_STATE(" + extProcFilterName + ":FIELD:response_header_latency_us)%",
		}
	}
	return map[string]string{
		envoy.AccessLogRequestServiceUs: "%FILTER_STATE(" + extAuthzFilterName + ":FIELD:latency_us)%",
	}
}

// forwardClientCert makes Envoy hand the client certificate to the ext_proc
// service in envoy.HeaderClientCert: SANITIZE_SET replaces whatever the
// client sent with Envoy's own view (the verified TLS session), and removes
// it when the client presented no certificate. ext_authz gets the
// certificate in its CheckRequest instead, so its chains keep the default
// (SANITIZE: the header never passes).
func forwardClientCert(c *ClusterIR) (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	if c.RequestService != RequestServiceExtProc {
		return hcmv3.HttpConnectionManager_SANITIZE, nil
	}
	return hcmv3.HttpConnectionManager_SANITIZE_SET, &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true}
}

// extProcFilter fails closed like ext_authz: an unreachable or slow service
// answers 503. Request headers go to the service (it decides), response
// headers too (it observes); bodies and trailers never do.
func extProcFilter() *hcmv3.HttpFilter {
	cfg := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: envoy.ControlPlaneCluster,
			}},
			Timeout: duration(extProcTimeout),
		},
		FailureModeAllow: false,
		// Response headers are skipped here and sent only per virtual host
		// (requestServicePerRoute): a request Envoy refuses before routing
		// (a malformed HTTP/1.1 request, oversized headers) gets its local
		// reply at once instead of waiting on an ext_proc stream while the
		// codec closes the connection.
		ProcessingMode: extProcMode(extprocv3.ProcessingMode_SKIP),
		MessageTimeout: duration(extProcTimeout),
		// The access-log fields come back as dynamic metadata.
		MetadataOptions: &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: []string{envoy.MetadataNamespaceExtProc},
		}},
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
	return &hcmv3.HttpFilter{Name: extProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// extProcMode sends request headers, response headers per responses, and
// never bodies or trailers.
func extProcMode(responses extprocv3.ProcessingMode_HeaderSendMode) *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  responses,
		RequestBodyMode:     extprocv3.ProcessingMode_NONE,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

// localReplies adds, for an ExtProc cluster, the Status body to the 503
// Envoy answers when the ext_proc service is unreachable or too slow. Unlike
// ext_authz (flag UAEX) ext_proc sets no response flag; what marks that 503
// is that the service never answered, so its access-log metadata is absent.
func localReplies(c *ClusterIR) *hcmv3.LocalReplyConfig {
	lr := localReplyConfig()
	if c.RequestService != RequestServiceExtProc {
		return lr
	}
	m := statusMapper(nil, statusRequestServiceUnavailable)
	m.Filter.GetAndFilter().Filters[1] = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
		MetadataFilter: &accesslogv3.MetadataFilter{
			Matcher: &matcherv3.MetadataMatcher{
				Filter: envoy.MetadataNamespaceExtProc,
				Path: []*matcherv3.MetadataMatcher_PathSegment{
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: envoy.MetadataKeyRequest}},
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: envoy.AccessLogDecision}},
				},
				Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
				Invert: true, // match when no decision was recorded
			},
			MatchIfKeyNotFound: wrapperspb.Bool(true),
		},
	}}
	lr.Mappers = append(lr.Mappers, m)
	return lr
}

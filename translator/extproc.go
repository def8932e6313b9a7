package translator

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// The ext_proc filter is the alternative to ext_authz (spec.requestService:
// ExtProc). It asks the same request service on the request headers and
// applies the answer as a header mutation (each Impersonate-Group its own
// field, so no identity Lua filter is needed), then sends the response
// headers too, so the service can record each request's status code and
// latency per rule. For a long-running request the service ends the stream
// with its request-headers answer (extproc.Server.Process), so Envoy skips
// the response phase and no ext_proc stream (a request of Envoy's circuit
// breaker on the request service's cluster, 1024 by default) waits on a
// watch, an exec session or a proxied pod that never answers.

const (
	extProcFilterName = "envoy.filters.http.ext_proc"
	// extProcTimeout bounds each ext_proc message, like extAuthzTimeout.
	extProcTimeout = extAuthzTimeout
	// extProcTryTimeout is the retry policy's back-off maximum, which Envoy
	// also makes each try's timeout (requestServiceBackoffMax): for a
	// stream that lives as long as its request, so it is longer than
	// kube-apiserver's 60 s request timeout. The 2 s message timeout still
	// bounds how long a request waits for its decision, retries included.
	extProcTryTimeout = 5 * time.Minute
)

// extProc asks the request service over ext_proc.
type extProc struct{}

var _ requestService = extProc{}

func (extProc) httpFilters(*ClusterIR) []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{extProcFilter()}
}

// perRoute names the cluster in the stream's gRPC initial metadata and
// sends the response headers of routed requests to the service (see
// extProcFilter).
func (extProc) perRoute(c *ClusterIR) (string, proto.Message) {
	return extProcFilterName, &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		GrpcInitialMetadata: []*corev3.HeaderValue{{Key: envoy.GRPCMetadataCluster, Value: c.Name}},
		ProcessingMode:      extProcMode(extprocv3.ProcessingMode_SEND),
	}}}
}

// accessLogFields: the service answers the access-log fields as ext_proc
// dynamic metadata.
func (extProc) accessLogFields() map[string]string {
	return metadataFields(envoy.MetadataNamespaceExtProc, envoy.MetadataKeyRequest)
}

// accessLogTiming: ext_proc records its per-stream latencies in filter
// state always; the response-headers exchange is a second wait, logged
// apart.
func (extProc) accessLogTiming() map[string]string {
	return map[string]string{
		envoy.AccessLogRequestServiceUs:         "%FILTER_STATE(" + extProcFilterName + ":FIELD:request_header_latency_us)%",
		envoy.AccessLogRequestServiceResponseUs: "%FILTER_STATE(" + extProcFilterName + ":FIELD:response_header_latency_us)%",
	}
}

// forwardClientCert makes Envoy hand the client certificate to the ext_proc
// service in envoy.HeaderClientCert: SANITIZE_SET replaces whatever the
// client sent with Envoy's own view (the verified TLS session), and removes
// it when the client presented no certificate. The service removes the
// header again before the request is forwarded.
func (extProc) forwardClientCert() (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	return forwardClientCertToFilters()
}

// localReplyMappers give the 503 of a request the ext_proc service never
// decided on (unreachable or too slow: the filter fails open and the
// undecided route answers, see extProcFilter) the Status body. Unlike
// ext_authz (flag UAEX) that reply has no response flag; what marks it is
// that the service never answered, so its access-log metadata is absent.
func (extProc) localReplyMappers() []*hcmv3.ResponseMapper {
	return []*hcmv3.ResponseMapper{serviceFailureMapper(envoy.MetadataNamespaceExtProc, nil)}
}

// forwardClientCertToFilters is the x-forwarded-client-cert handling of
// modes whose filter reads the client certificate from the request
// headers: SANITIZE_SET replaces whatever the client sent with Envoy's own
// view of the verified TLS session (and removes it when the client showed
// no certificate), Cert puts the URL-encoded PEM in it.
func forwardClientCertToFilters() (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	return hcmv3.HttpConnectionManager_SANITIZE_SET, &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true}
}

// failsClosedAtRoutes: see extProcFilter.
func (extProc) failsClosedAtRoutes() {}

// extProcFilter asks the service on the request headers (it decides) and
// on the response headers (it observes); bodies and trailers never go.
//
// Opening a stream is retried like an ext_authz call while serve
// restarts (requestServiceRetryPolicy), within the message timeout.
//
// It fails open, and the routes fail closed (requireDecision): a request
// the service never decided on (unreachable, too slow) carries no rule
// header and gets the catch-all 503 with Retry-After.
// Failing closed at the filter instead would also fail every request
// whose stream broke after its decision: Envoy answers any stream error
// before the request ends with the error status, even while the request
// is at the apiserver, so a restart of frontdoor serve would turn the
// requests in flight (writes already executed among them) into 503s
// because their observer went away. Open at the filter, a broken stream
// after the decision only costs the observation.
func extProcFilter() *hcmv3.HttpFilter {
	cfg := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: envoy.ControlPlaneCluster,
			}},
			Timeout:     duration(extProcTimeout),
			RetryPolicy: requestServiceRetryPolicy(extProcTryTimeout),
		},
		FailureModeAllow: true,
		// Response headers are skipped here and sent only per virtual host
		// (perRoute): a request Envoy refuses before routing
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
		// The client's address, for the refusal gate of bearer tokens
		// (ext_authz sends it unasked; the module reads it itself).
		RequestAttributes: []string{envoy.AttributeSourceAddress},
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

// accessLogSkip: Envoy logs every request.
func (extProc) accessLogSkip() *accesslogv3.AccessLogFilter { return nil }

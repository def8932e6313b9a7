package translator

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Every request passes the request service before it is routed: it
// authenticates the client, picks the dispatch rule and decides the
// identity headers. spec.requestService picks how Envoy reaches it; each
// way is one requestService implementation, in a file of its own
// (extauthz.go, extproc.go), and the rest of the translator only talks to
// this interface. Adding a way is adding a file and a line in
// requestServices, not a branch anywhere else.
type requestService interface {
	// httpFilters are the HCM filters that ask the request service and
	// apply its answer, in order. They run after the early header mutation
	// (client x-frontdoor-* and x-remote-* already stripped) and before
	// the local rate limit filter and the router.
	httpFilters(c *ClusterIR) []*hcmv3.HttpFilter
	// perRoute is the virtual host's per-filter config for filter, which
	// names the cluster to a service shared by every cluster; filter ""
	// means the mode needs none.
	perRoute(c *ClusterIR) (filter string, cfg proto.Message)
	// accessLogFields maps each of the request's Kubernetes fields in the
	// access log (envoy.AccessLogFields) to the command operator that reads
	// it from where the mode's filter put it.
	accessLogFields() map[string]string
	// accessLogTiming maps the access log's request-service timing fields
	// (envoy.AccessLogRequestServiceUs, ...) to the command operators that
	// read how long Envoy waited on the request service for this request.
	accessLogTiming() map[string]string
	// accessLogSkip, when not nil, passes only the requests Envoy's access
	// log must write: a mode whose filter writes the lines of the requests
	// it sees leaves Envoy the others.
	accessLogSkip() *accesslogv3.AccessLogFilter
	// forwardClientCert is how the HCM treats x-forwarded-client-cert,
	// which carries the client certificate to modes that read it from the
	// request headers.
	forwardClientCert() (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails)
	// localReplyMappers come after the shared mappers (localReplyConfig):
	// Status bodies for the mode's own failure replies.
	localReplyMappers() []*hcmv3.ResponseMapper
}

// requestServices are the modes, by the spec.requestService value that
// selects them.
var requestServices = map[RequestServiceIR]requestService{
	RequestServiceIR(v1alpha1.RequestServiceExtAuthz):  extAuthz{},
	RequestServiceIR(v1alpha1.RequestServiceExtProc):   extProc{},
	RequestServiceIR(v1alpha1.RequestServiceInProcess): inProcess{},
}

// modeValidator is a mode with requirements beyond the spec (gateway
// flags, files): an error rejects the cluster, as the detail of an error
// on spec.requestService (validateRequestService).
type modeValidator interface {
	validate(c *ClusterIR) error
}

// requestServiceOf is the mode of c. The IR only holds validated modes.
func requestServiceOf(c *ClusterIR) requestService { return requestServices[c.RequestService] }

const (
	// requestServiceRetries and requestServiceBackoff bound how a call to
	// the request service is retried; the call's own timeout
	// (extAuthzTimeout) bounds the whole, retries included.
	requestServiceRetries     = 20
	requestServiceBackoffBase = 50 * time.Millisecond
	// requestServiceBackoffMax is also each try's timeout: Envoy turns a
	// GrpcService retry policy into a route retry policy whose
	// per_try_timeout is the back-off's max_interval. It must let a call
	// the service holds on purpose (the refusal gate's 1 s tarpit) finish,
	// so it is the call's whole timeout; the back-off doubles from 50 ms
	// (jittered), which still retries several times within a restart.
	requestServiceBackoffMax = extAuthzTimeout
)

// requestServiceRetryPolicy carries calls to the request service over a
// restart of frontdoor serve (it lives in that process in ExtAuthz and
// ExtProc mode): a call that finds no server (connection refused, the
// connection reset or refused by a server shutting down, gRPC
// UNAVAILABLE) is tried again after a back-off doubling from 50 ms, until
// the call's timeout.
// A Check only reads, so repeating one is safe. A call the service
// answered, allow or deny, is never retried.
//
// maxBackoff is also each try's timeout (see requestServiceBackoffMax);
// an ext_proc stream lives as long as its request, so its maximum is long
// (extProcTryTimeout), and the message timeout bounds the wait. A try cut
// or failed after the decision only costs ext_proc its observation: the
// filter fails open, the routes closed (extProcFilter).
func requestServiceRetryPolicy(maxBackoff time.Duration) *corev3.RetryPolicy {
	return &corev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset,unavailable",
		NumRetries: wrapperspb.UInt32(requestServiceRetries),
		RetryBackOff: &corev3.BackoffStrategy{
			BaseInterval: duration(requestServiceBackoffBase),
			MaxInterval:  duration(maxBackoff),
		},
	}
}

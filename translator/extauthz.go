package translator

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// The ext_authz filter sends every request to the frontdoor request service,
// which authenticates the client, picks the dispatch rule and answers with
// the impersonation headers; the identity Lua filter then adds them, one
// field per value. The default mode (spec.requestService: ExtAuthz). Its
// configuration lives here, in one place.

// extAuthz asks the request service over ext_authz.
type extAuthz struct{}

var _ requestService = extAuthz{}

func (extAuthz) httpFilters(*ClusterIR) []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{extAuthzFilter(), identityFilter()}
}

func (extAuthz) perRoute(c *ClusterIR) (string, proto.Message) {
	return extAuthzFilterName, extAuthzPerRoute(c.Name)
}

func (extAuthz) accessLogFields() map[string]string {
	return metadataFields(envoy.MetadataNamespaceExtAuthz, envoy.MetadataKeyRequest)
}

// accessLogTiming: with emit_filter_state_stats, ext_authz records the
// check's latency (gRPC round trip included) in its filter state.
func (extAuthz) accessLogTiming() map[string]string {
	return map[string]string{
		envoy.AccessLogRequestServiceUs: "%FILTER_STATE(" + extAuthzFilterName + ":FIELD:latency_us)%",
	}
}

// forwardClientCert: ext_authz gets the certificate in its CheckRequest,
// so the header never passes (SANITIZE).
func (extAuthz) forwardClientCert() (hcmv3.HttpConnectionManager_ForwardClientCertDetails, *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) {
	return hcmv3.HttpConnectionManager_SANITIZE, nil
}

// localReplyMappers give the 503 Envoy answers when the ext_authz service
// failed (flag UAEX, and no decision in the metadata: a denial carries
// UAEX too, and its decision) the Status body.
func (extAuthz) localReplyMappers() []*hcmv3.ResponseMapper {
	return []*hcmv3.ResponseMapper{serviceFailureMapper(envoy.MetadataNamespaceExtAuthz, []string{"UAEX"})}
}

const (
	extAuthzFilterName = "envoy.filters.http.ext_authz"
	// extAuthzTimeout bounds one Check. It covers a cold TokenReview or
	// SubjectAccessReview against the apiserver; cached answers take
	// microseconds.
	extAuthzTimeout = 2 * time.Second
)

// extAuthzFilter fails closed: if the request service is unreachable or
// slow, the request is answered 503 and never forwarded unauthenticated.
func extAuthzFilter() *hcmv3.HttpFilter {
	cfg := &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: envoy.ControlPlaneCluster,
			}},
			Timeout:     duration(extAuthzTimeout),
			RetryPolicy: requestServiceRetryPolicy(requestServiceBackoffMax),
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    false,
		// The service authenticates x509 clients itself (the listener
		// accepts untrusted chains), so it needs the certificate.
		IncludePeerCertificate: true,
		// The service's x-frontdoor-rule header selects the route, so the
		// route must be chosen again after the check.
		ClearRouteCache: true,
		StatusOnError:   &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		// Per-request Check latency in filter state, for the access log's
		// requestServiceUs field (accessLogTiming).
		EmitFilterStateStats: true,
		// Only the headers the service reads: a smaller CheckRequest to
		// build, send and parse.
		AllowedHeaders: requestServiceHeaders(),
	}
	return &hcmv3.HttpFilter{Name: extAuthzFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// requestServiceHeaders matches envoy.RequestServiceHeaders (Envoy's header
// names are lowercase).
func requestServiceHeaders() *matcherv3.ListStringMatcher {
	l := &matcherv3.ListStringMatcher{}
	for _, h := range envoy.RequestServiceHeaders {
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Name}}
		if h.Prefix {
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: h.Name}
		}
		l.Patterns = append(l.Patterns, m)
	}
	return l
}

// extAuthzPerRoute names the UpstreamCluster in the Check request, so one
// request service can serve every cluster behind one listener.
func extAuthzPerRoute(uc string) *extauthzv3.ExtAuthzPerRoute {
	return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions: map[string]string{envoy.ContextKeyCluster: uc},
	}}}
}

// identityFilter adds the impersonation headers the request service decided
// on, from ext_authz dynamic metadata, each value as its own header field
// (see envoy.MetadataKeyIdentityHeaders for why ext_authz cannot).
func identityFilter() *hcmv3.HttpFilter {
	cfg := &luav3.Lua{DefaultSourceCode: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: envoy.IdentityFilterLua},
	}}
	return &hcmv3.HttpFilter{Name: envoy.IdentityFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// accessLogSkip: Envoy logs every request.
func (extAuthz) accessLogSkip() *accesslogv3.AccessLogFilter { return nil }

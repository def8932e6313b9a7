package translator

import (
	"net"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// A token bucket of scope Global is one budget for every gateway replica.
// Envoy's HTTP rate limit filter asks the ratelimit service (RLS, the
// envoyproxy/ratelimit reference service, backed by Redis) on every
// request of a global policy; the service counts the requests of the
// current second across all replicas.
//
// Each UpstreamCluster is one RLS domain (its name). A global policy's
// route carries the descriptor (frontdoor_policy, <policy>), plus
// (frontdoor_user, <x-frontdoor-user>) for perUser, and the ratelimit
// service's own config, one RateLimitConfig per UpstreamCluster, comes
// from the same snapshot over xDS (the service asks for that type with its
// own node id; Envoy never does), so an edited qps reaches the service
// with the next snapshot and Envoy's config does not change.
//
// Failure mode is per schema. Envoy's filter has one failure_mode_deny, so
// the HCM carries up to two instances: stage 0 fails open, stage 1 fails
// closed, and each route's rate_limits name the stage of its schema. Over
// limit the filter answers internalRateLimitedStatus, which the local
// limiter's mapper turns into 429 + Retry-After + Status (ratelimit.go); a
// closed schema whose service fails answers 503 (flag RLSE), mapped to a
// ServiceUnavailable Status. A cluster without global schemas gets neither
// filter, and a gateway without any gets no RLS cluster nor config.

const (
	globalRateLimitOpenFilter   = "frontdoor.global_ratelimit.fail_open"
	globalRateLimitClosedFilter = "frontdoor.global_ratelimit.fail_closed"
	stageFailOpen               = 0
	stageFailClosed             = 1
	// policyDescriptorKey is the descriptor entry naming the policy.
	policyDescriptorKey = "frontdoor_policy"
	// globalRateLimitTimeout bounds one RLS call. A loaded RLS over Redis
	// answers in about a millisecond; past this the schema's failure mode
	// decides, so a stuck service costs a request at most this much.
	globalRateLimitTimeout = 250 * time.Millisecond
)

// statusRateLimitUnavailable answers a fail-closed global policy's
// requests while the ratelimit service cannot decide.
var statusRateLimitUnavailable = kubestatus.Body(statusServiceUnavailable,
	"the gateway cannot check this dispatch policy's global rate limit right now: its rate limit service is unavailable")

// validateBucketScope checks scope and failureMode of a token bucket.
func validateBucketScope(b *v1alpha1.TokenBucket, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch b.Scope {
	case "", v1alpha1.RateLimitScopeLocal, v1alpha1.RateLimitScopeGlobal:
	default:
		errs = append(errs, field.NotSupported(fld.Child("scope"), b.Scope, []string{string(v1alpha1.RateLimitScopeLocal), string(v1alpha1.RateLimitScopeGlobal)}))
	}
	switch b.FailureMode {
	case "", v1alpha1.RateLimitFailOpen, v1alpha1.RateLimitFailClosed:
	default:
		errs = append(errs, field.NotSupported(fld.Child("failureMode"), b.FailureMode, []string{string(v1alpha1.RateLimitFailOpen), string(v1alpha1.RateLimitFailClosed)}))
	}
	if b.FailureMode != "" && (b.Scope == "" || b.Scope == v1alpha1.RateLimitScopeLocal) {
		errs = append(errs, field.Forbidden(fld.Child("failureMode"), "applies only to scope Global"))
	}
	if b.Burst != 0 && b.Scope == v1alpha1.RateLimitScopeGlobal {
		errs = append(errs, field.Forbidden(fld.Child("burst"), "does not apply to scope Global (its window is one second)"))
	}
	return errs
}

// checkGlobalRateLimitService rejects Global schemas when the gateway has
// no ratelimit service (frontdoor serve --ratelimit-address): they could
// not be enforced, and silently enforcing them per replica would admit N
// times the budget.
func checkGlobalRateLimitService(spec *v1alpha1.UpstreamClusterSpec, opts Options) field.ErrorList {
	if opts.RateLimitAddress != "" {
		return nil
	}
	var errs field.ErrorList
	fld := field.NewPath("spec", "flowControl", "flowControlSchemas")
	for i, s := range spec.FlowControl.FlowControlSchemas {
		if b := s.TokenBucket; b != nil && b.Scope == v1alpha1.RateLimitScopeGlobal {
			errs = append(errs, field.Invalid(fld.Index(i).Child("tokenBucket", "scope"), b.Scope,
				"this gateway has no rate limit service (frontdoor serve --ratelimit-address)"))
		}
	}
	return errs
}

// globalStages says which of the two filters c's policies use.
func globalStages(c *ClusterIR) (open, closed bool) {
	for i := range c.Dispatch {
		if f := c.Dispatch[i].Flow; f.Global {
			open, closed = open || !f.FailClosed, closed || f.FailClosed
		}
	}
	return open, closed
}

// globalRateLimitFilters are the HCM's rate limit filters for c: none when
// no policy of c is global.
func globalRateLimitFilters(c *ClusterIR) []*hcmv3.HttpFilter {
	open, closed := globalStages(c)
	var out []*hcmv3.HttpFilter
	if open {
		out = append(out, globalRateLimitFilter(c, globalRateLimitOpenFilter, stageFailOpen, false))
	}
	if closed {
		out = append(out, globalRateLimitFilter(c, globalRateLimitClosedFilter, stageFailClosed, true))
	}
	return out
}

func globalRateLimitFilter(c *ClusterIR, name string, stage uint32, deny bool) *hcmv3.HttpFilter {
	cfg := &ratelimitv3.RateLimit{
		Domain:          c.Name,
		Stage:           stage,
		Timeout:         duration(globalRateLimitTimeout),
		FailureModeDeny: deny,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: envoy.RateLimitCluster,
			}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		RateLimitedStatus: &typev3.HttpStatus{Code: internalRateLimitedStatus},
		StatusOnError:     &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// globalRateLimits are the rate_limits of a global policy's route: its
// descriptor at its schema's stage; nil for other policies.
func globalRateLimits(d *DispatchIR) []*routev3.RateLimit {
	if !d.Flow.Global {
		return nil
	}
	actions := []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{
		DescriptorKey: policyDescriptorKey, DescriptorValue: d.Name,
	}}}}
	if d.Flow.PerUser {
		actions = append(actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
			HeaderName: envoy.HeaderUser, DescriptorKey: userDescriptorKey,
		}}})
	}
	stage := uint32(stageFailOpen)
	if d.Flow.FailClosed {
		stage = stageFailClosed
	}
	return []*routev3.RateLimit{{Stage: wrapperspb.UInt32(stage), Actions: actions}}
}

// rateLimitUnavailableMapper gives a fail-closed policy's 503 (flag RLSE:
// the service failed) Retry-After and the ServiceUnavailable Status body.
func rateLimitUnavailableMapper() *hcmv3.ResponseMapper {
	return withRetryAfter(statusMapper(statusRateLimitUnavailable, flagged("RLSE")))
}

// rateLimitServiceCluster is how Envoy reaches the ratelimit service at
// addr (host:port; a name is resolved by DNS): plain-text HTTP/2 gRPC, as
// the service serves it.
func rateLimitServiceCluster(addr string) *clusterv3.Cluster {
	host, portStr, _ := net.SplitHostPort(addr) // checked by frontdoor serve
	port, _ := strconv.ParseUint(portStr, 10, 32)
	return &clusterv3.Cluster{
		Name:                 envoy.RateLimitCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       duration(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: mustAny(upstreamHTTP2Options()),
		},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: envoy.RateLimitCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}},
			}}}},
		},
	}
}

// rateLimitConfig is the ratelimit service's config for c (domain c.Name):
// one descriptor per global policy, with a nested per-user descriptor for
// perUser (no value: one counter per user). Nil when c has no global
// policy.
func rateLimitConfig(c *ClusterIR) *rlsconfv3.RateLimitConfig {
	var descs []*rlsconfv3.RateLimitDescriptor
	for i := range c.Dispatch {
		d := &c.Dispatch[i]
		if !d.Flow.Global {
			continue
		}
		limit := &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_SECOND, RequestsPerUnit: d.Flow.QPS}
		desc := &rlsconfv3.RateLimitDescriptor{Key: policyDescriptorKey, Value: d.Name}
		if d.Flow.PerUser {
			desc.Descriptors = []*rlsconfv3.RateLimitDescriptor{{Key: userDescriptorKey, RateLimit: limit}}
		} else {
			desc.RateLimit = limit
		}
		descs = append(descs, desc)
	}
	if len(descs) == 0 {
		return nil
	}
	return &rlsconfv3.RateLimitConfig{Name: c.Name, Domain: c.Name, Descriptors: descs}
}

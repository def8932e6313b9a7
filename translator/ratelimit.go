package translator

import (
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// Token buckets run in Envoy's local rate limit filter. The HCM carries the
// filter disabled (no bucket, enabled for 0% of requests); a policy with a
// tokenBucket schema enables it on its own route through
// typed_per_filter_config. A perUser bucket uses a wildcard descriptor on
// the x-frontdoor-user header the request service sets (a digest of the
// user name), so Envoy keeps one bucket per user (an LRU of
// maxUserBuckets) and the request service stays stateless.
//
// Over-limit requests, and requests a maxRequestsInflight circuit breaker
// refuses (flag UO), are answered 429 with Retry-After and a Kubernetes
// Status body of reason TooManyRequests, as kube-apiserver's own
// throttling answers, so client-go backs off and retries.
//
// The local reply mapper cannot recognise a rate-limited reply by its flag
// (the filter sets RL only after sending the reply) nor by status 429 (the
// request service's own 429s must keep their bodies), so the filter answers
// with the otherwise unused internalRateLimitedStatus and the mapper turns
// it into the 429. The tokens refill every second, so Retry-After is 1.

const (
	localRateLimitFilterName = "envoy.filters.http.local_ratelimit"
	userDescriptorKey        = "frontdoor_user"
	// maxUserBuckets bounds the per-user buckets of one policy route.
	maxUserBuckets = 4096

	// internalRateLimitedStatus is what the local rate limit filter answers
	// before the mapper rewrites it to 429; no reject policy may use it.
	internalRateLimitedStatus = 402 // Payment Required: neither the apiserver nor the gateway uses it
)

// statusTooManyRequests is the body of every rate-limited or capped reply.
var statusTooManyRequests = kubestatus.Encode(&apierrors.NewTooManyRequests(
	"too many requests for this dispatch policy of the gateway, please try again later", 1).ErrStatus)

// localRateLimitFilter is the HCM's disabled local rate limit filter.
func localRateLimitFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       localRateLimitFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&localratelimitv3.LocalRateLimit{StatPrefix: "frontdoor_policy"})},
	}
}

// policyRateLimit is the per-route config of a policy's token bucket; nil
// when the policy has none. Stats: policy.<uc>/<policy>.http_local_rate_limit.*,
// which the bootstrap's tag envoy.PolicyStatTag turns into one metric with
// a label frontdoor_policy="<uc>/<policy>" (the policy cluster's name).
func policyRateLimit(c *ClusterIR, d *DispatchIR) *localratelimitv3.LocalRateLimit {
	if d.Flow.QPS == 0 || d.Flow.Global {
		return nil
	}
	bucket := &typev3.TokenBucket{
		MaxTokens:     d.Flow.Burst,
		TokensPerFill: wrapperspb.UInt32(d.Flow.QPS),
		FillInterval:  duration(time.Second),
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	out := &localratelimitv3.LocalRateLimit{
		StatPrefix:     "policy." + envoy.RuleClusterName(c.Name, d.Name),
		TokenBucket:    bucket,
		FilterEnabled:  all,
		FilterEnforced: all,
		Status:         &typev3.HttpStatus{Code: internalRateLimitedStatus},
	}
	if d.Flow.PerUser {
		out.Descriptors = []*ratelimitv3.LocalRateLimitDescriptor{{
			Entries:     []*ratelimitv3.RateLimitDescriptor_Entry{{Key: userDescriptorKey}}, // no value: one bucket per value
			TokenBucket: bucket,
		}}
		out.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{
			ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
				HeaderName: envoy.HeaderUser, DescriptorKey: userDescriptorKey,
			}},
		}}}}
		out.AlwaysConsumeDefaultTokenBucket = wrapperspb.Bool(false)
		out.MaxDynamicDescriptors = wrapperspb.UInt32(maxUserBuckets)
	}
	return out
}

// tooManyRequestsMapper gives rate-limited (internalRateLimitedStatus) and
// circuit-breaker overflow (UO) local replies status 429, Retry-After and
// the Status body.
func tooManyRequestsMapper() *hcmv3.ResponseMapper {
	return withRetryAfter(statusReplyMapper(&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
		Filters: []*accesslogv3.AccessLogFilter{
			{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
				Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{
					DefaultValue: internalRateLimitedStatus, RuntimeKey: "frontdoor.local_reply.rate_limited_status",
				}},
			}}},
			{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"UO"}}}},
		},
	}}}, statusTooManyRequestsCode, statusTooManyRequests))
}

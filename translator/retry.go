package translator

import (
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// Retries. Envoy retries a request on another server (previous_hosts) when
// the request certainly was not executed:
//
//   - it never reached a server (connect failure, refused stream, reset
//     before the request was sent), up to numRetries times;
//   - the server refused it before executing it: kube-apiserver's API
//     Priority and Fairness and max-inflight rejections
//     (k8s.io/apiserver/pkg/server/filters tooManyRequests) and the 429 a
//     replica shutting down sends (filters.WithRetryAfter,
//     --shutdown-send-retry-after). These are written with http.Error: 429,
//     Content-Type "text/plain; charset=utf-8", Retry-After, no Status.
//     Every 429 a request earns by executing (an Eviction refused by a
//     PodDisruptionBudget, an admission webhook, a cache not ready yet) is
//     a Kubernetes Status (JSON, protobuf or CBOR), and must reach the
//     client: the 429 of an Eviction is the answer, not an accident. So a
//     429 is retried iff its Content-Type is text/plain, and only when it
//     answered the first attempt: one extra request per refusal, never a
//     storm against replicas that are all overloaded.
//
// The route's retry policy can test a status code or a header, never both
// at once ("retriable-headers" on text/plain alone would retry a 200 of
// pods/log). So an upstream HTTP filter on every cluster (a header_mutation
// before the upstream codec, which Envoy runs on each attempt before the
// router decides whether to retry) writes one internal header,
// upstreamVerdictHeader = "<attempt> <status> <content-type>", and the
// retry policy matches its prefix "1 429 text/plain". The virtual host
// removes the header from every response, so no client ever sees it; a
// server cannot forge a verdict either, as the filter overwrites the
// header on every response. The cost is one formatted header per response,
// no script and no body inspection.
//
// A retry needs the request body, which Envoy buffers up to its
// per-request buffer limit (1 MiB by default); a larger body is sent once
// and its 429 reaches the client, which retries it after Retry-After as
// client-go does.

const (
	// retryOn lists the failures where the request certainly never reached
	// an apiserver, so retrying cannot apply a mutation twice, and the
	// refusals upstreamVerdictHeader marks.
	retryOn         = "connect-failure,refused-stream,reset-before-request,retriable-headers"
	numRetries      = 2
	previousHosts   = "envoy.retry_host_predicates.previous_hosts"
	hostSelectRetry = 3

	// upstreamVerdictHeader is the internal response header the upstream
	// filter writes for the retry policy; it never leaves Envoy.
	upstreamVerdictHeader = envoy.HeaderPrefix + "upstream-verdict"
	// upstreamVerdict is its value: the attempt number (1 for the first),
	// the status code and the Content-Type of the server's answer.
	upstreamVerdict = "%UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESP(:STATUS)% %RESP(CONTENT-TYPE)%"
	// refusedBeforeExecution is the verdict prefix that is retried: a
	// first attempt answered 429 by a plain-text body (no Status).
	refusedBeforeExecution = "1 429 text/plain"

	upstreamCodecFilterName = "envoy.filters.http.upstream_codec"
)

// retryPolicy retries requests that were certainly not executed (see
// above), each time on a different server when there is one.
func retryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    retryOn,
		NumRetries: wrapperspb.UInt32(numRetries),
		RetriableHeaders: []*routev3.HeaderMatcher{{
			Name: upstreamVerdictHeader,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: refusedBeforeExecution},
				IgnoreCase:   true,
			}},
		}},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       previousHosts,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: hostSelectRetry,
	}
}

// upstreamFilters are every cluster's upstream HTTP filters: the verdict
// writer, then the codec (which must come last).
func upstreamFilters() []*hcmv3.HttpFilter {
	verdict := &headermutationfilterv3.HeaderMutation{Mutations: &headermutationfilterv3.Mutations{
		ResponseMutations: []*mutationrulesv3.HeaderMutation{{Action: &mutationrulesv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: upstreamVerdictHeader, Value: upstreamVerdict},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}}},
	}}
	return []*hcmv3.HttpFilter{
		{Name: headerMutationFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(verdict)}},
		{Name: upstreamCodecFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&upstreamcodecv3.UpstreamCodec{})}},
	}
}

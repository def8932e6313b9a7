package authz

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// Bodies of the pipeline's own denials, encoded once.
var (
	unauthorizedBody = kubestatus.Encode(&apierrors.NewUnauthorized("Unauthorized").ErrStatus)
	notReadyBody     = kubestatus.Body(http.StatusServiceUnavailable,
		"the gateway's configuration for this cluster is not ready")
	badRequestBody = kubestatus.Body(http.StatusBadRequest, "malformed request target")
)

// reviewUnavailable answers a request whose bearer token could not be
// reviewed (errReviewUnavailable): 503 with Retry-After, which client-go
// honours and retries.
var reviewUnavailable = statusDecision(Unavailable, http.StatusServiceUnavailable,
	"the gateway cannot verify bearer tokens right now: its TokenReviews to the cluster fail; retry shortly", 1)

// reviewBusy answers a request whose bearer token was not reviewed because
// the cluster already has its maximum of TokenReviews in flight
// (errReviewBusy): the same 503 with Retry-After, which client-go retries,
// with the cause in the message.
var reviewBusy = statusDecision(Unavailable, http.StatusServiceUnavailable,
	"the gateway cannot verify bearer tokens right now: too many TokenReviews to the cluster are in flight; retry shortly", 1)

// clientThrottled answers a request whose bearer token was not reviewed
// because its client address caused too many refused TokenReviews
// (errClientThrottled): 429 with Retry-After, which client-go retries; a
// token that is good is reviewed once the address's budget refills.
var clientThrottled = statusDecision(Throttled, http.StatusTooManyRequests,
	"too many bearer tokens from this client address were refused recently; retry after the Retry-After interval", 1)

// statusResponseHeaders go with every Status body, as the apiserver sends
// them (content type, and the no-cache its WithCacheControl filter adds).
var statusResponseHeaders = []Header{
	{Name: "content-type", Value: kubestatus.ContentType},
	{Name: "cache-control", Value: kubestatus.CacheControl},
}

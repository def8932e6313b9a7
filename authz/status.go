package authz

import (
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
// reviewed (errReviewUnavailable): 503 with Retry-After in the header and
// the Status details, which client-go honours and retries.
var reviewUnavailable = Decision{
	Outcome: Unavailable,
	Code:    http.StatusServiceUnavailable,
	Body: kubestatus.Encode(&metav1.Status{
		Status:  metav1.StatusFailure,
		Message: "the gateway cannot verify bearer tokens right now: its TokenReviews to the cluster fail; retry shortly",
		Reason:  metav1.StatusReasonServiceUnavailable,
		Details: &metav1.StatusDetails{RetryAfterSeconds: 1},
		Code:    http.StatusServiceUnavailable,
	}),
	ResponseHeaders: append(slices.Clone(statusResponseHeaders), Header{Name: "retry-after", Value: "1"}),
}

// statusResponseHeaders go with every Status body, as the apiserver sends
// them (content type, and the no-cache its WithCacheControl filter adds).
var statusResponseHeaders = []Header{
	{Name: "content-type", Value: kubestatus.ContentType},
	{Name: "cache-control", Value: kubestatus.CacheControl},
}

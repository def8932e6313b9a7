package authz

import (
	"bytes"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// statusSerializer is the JSON serializer kube-apiserver encodes Status
// errors with; using it (not encoding/json by hand) keeps our bodies
// byte-identical to the apiserver's, trailing newline included.
var statusSerializer = json.NewSerializerWithOptions(json.DefaultMetaFactory, nil, nil, json.SerializerOptions{})

// Bodies of the denials the pipeline answers today, encoded once.
var (
	unauthorizedBody = EncodeStatus(&apierrors.NewUnauthorized("Unauthorized").ErrStatus)
	notReadyBody     = StatusBody(http.StatusServiceUnavailable,
		"the gateway's configuration for this cluster is not ready")
	badRequestBody = StatusBody(http.StatusBadRequest, "malformed request target")
)

// statusResponseHeaders go with every Status body, as the apiserver sends
// them (content type, and the no-cache its WithCacheControl filter adds).
var statusResponseHeaders = []Header{
	{Name: "content-type", Value: "application/json"},
	{Name: "cache-control", Value: "no-cache, private"},
}

// EncodeStatus returns st as kube-apiserver's JSON serializer writes it.
// Kind and APIVersion default to Status and v1, as the apiserver sets them.
func EncodeStatus(st *metav1.Status) []byte {
	s := *st
	if s.Kind == "" {
		s.Kind = "Status"
	}
	if s.APIVersion == "" {
		s.APIVersion = "v1"
	}
	var buf bytes.Buffer
	if err := statusSerializer.Encode(&s, &buf); err != nil {
		// A metav1.Status always encodes; reaching this is a programming error.
		panic(fmt.Sprintf("encoding Status: %v", err))
	}
	return buf.Bytes()
}

// StatusBody returns the Status body for a denial with the given HTTP code
// and message, with the reason kube-apiserver uses for that code (401
// Unauthorized, 403 Forbidden, 429 TooManyRequests, 503 ServiceUnavailable,
// 400 BadRequest; others InternalError for 5xx and Unknown otherwise).
// Encode once and reuse: this is not for the hot path.
func StatusBody(code int, message string) []byte {
	return EncodeStatus(&metav1.Status{
		Status:  metav1.StatusFailure,
		Message: message,
		Reason:  reasonForCode(code),
		Code:    int32(code), //nolint:gosec // HTTP status codes fit in int32.
	})
}

func reasonForCode(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	}
	if code >= 500 {
		return metav1.StatusReasonInternalError
	}
	return metav1.StatusReasonUnknown
}

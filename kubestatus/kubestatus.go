// Package kubestatus encodes the Kubernetes Status bodies the gateway
// answers with instead of forwarding a request: the request service's
// denials, Envoy's local replies (as built by the translator) and the
// in-Envoy filters' fail-closed answers. One encoder keeps them all
// byte-identical to what kube-apiserver itself would send, so clients print
// the same errors through the gateway as without it.
//
// It is a leaf: it imports only apimachinery's types and serializer, never
// client-go, gRPC or the project's other packages.
package kubestatus

import (
	"bytes"
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// serializer is the JSON serializer kube-apiserver encodes Status errors
// with; using it (not encoding/json by hand) keeps our bodies byte-identical
// to the apiserver's, trailing newline included.
var serializer = json.NewSerializerWithOptions(json.DefaultMetaFactory, nil, nil, json.SerializerOptions{})

// ContentType is the content type of every Status body.
const ContentType = "application/json"

// CacheControl is the cache-control value kube-apiserver's WithCacheControl
// filter sends with every response, Status bodies included.
const CacheControl = "no-cache, private"

// Encode returns st as kube-apiserver's JSON serializer writes it. Kind and
// APIVersion default to Status and v1, as the apiserver sets them.
func Encode(st *metav1.Status) []byte {
	s := *st
	if s.Kind == "" {
		s.Kind = "Status"
	}
	if s.APIVersion == "" {
		s.APIVersion = "v1"
	}
	var buf bytes.Buffer
	if err := serializer.Encode(&s, &buf); err != nil {
		// A metav1.Status always encodes; reaching this is a programming error.
		panic(fmt.Sprintf("encoding Status: %v", err))
	}
	return buf.Bytes()
}

// Body returns the Status body for a denial with the given HTTP code and
// message, with the reason kube-apiserver uses for that code (401
// Unauthorized, 403 Forbidden, 429 TooManyRequests, 503 ServiceUnavailable,
// 400 BadRequest; others InternalError for 5xx and Unknown otherwise).
// Encode once and reuse: this is not for the hot path.
func Body(code int, message string) []byte {
	return Encode(&metav1.Status{
		Status:  metav1.StatusFailure,
		Message: message,
		Reason:  ReasonForCode(code),
		Code:    int32(code), //nolint:gosec // HTTP status codes fit in int32.
	})
}

// ReasonForCode is the Status reason kube-apiserver gives an HTTP code.
func ReasonForCode(code int) metav1.StatusReason {
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

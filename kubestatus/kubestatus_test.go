package kubestatus

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestUnauthorizedBodyMatchesAPIServer(t *testing.T) {
	const want = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}` + "\n"
	if got := string(Encode(&apierrors.NewUnauthorized("Unauthorized").ErrStatus)); got != want {
		t.Errorf("401 body:\n got %q\nwant %q", got, want)
	}
	if got := string(Body(401, "Unauthorized")); got != want {
		t.Errorf("Body(401):\n got %q\nwant %q", got, want)
	}
}

func TestStatusBody(t *testing.T) {
	for _, tt := range []struct {
		code int
		msg  string
		want string
	}{
		{403, "forbidden", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","code":403}` + "\n"},
		{429, "slow down", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"slow down","reason":"TooManyRequests","code":429}` + "\n"},
		{503, "not ready", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not ready","reason":"ServiceUnavailable","code":503}` + "\n"},
		{400, "bad", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"bad","reason":"BadRequest","code":400}` + "\n"},
	} {
		if got := string(Body(tt.code, tt.msg)); got != tt.want {
			t.Errorf("Body(%d):\n got %q\nwant %q", tt.code, got, tt.want)
		}
	}
}

func TestEncodeWithDetails(t *testing.T) {
	// The rate-limit mapper's 429 carries the apiserver's Retry-After details.
	got := string(Encode(&apierrors.NewTooManyRequests("slow down", 5).ErrStatus))
	const want = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"slow down","reason":"TooManyRequests","details":{"retryAfterSeconds":5},"code":429}` + "\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

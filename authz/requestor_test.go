package authz

import (
	"context"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// accessLogFields is what the access log learns about d.
func accessLogFields(d *Decision) map[string]any {
	f := map[string]any{}
	d.EachAccessLogField(func(k, v string) { f[k] = v }, func(k string, v float64) { f[k] = v })
	return f
}

// Who asked stays visible when the client impersonates: the decision and
// its access-log fields carry the authenticated user as requestor beside
// the impersonated user, for an allowed request and a refused
// impersonation. It is never forwarded: the
// impersonation headers name exactly the identity the client asked for.
func TestRequestorOfImpersonation(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["ops"] = authenticationv1.UserInfo{Username: "ops", Groups: []string{"system:authenticated"}}
	f.allow = func(s authorizationv1.SubjectAccessReviewSpec) bool {
		ra := s.ResourceAttributes
		return s.User == "ops" && ra != nil && ra.Verb == "impersonate" && ra.Name == "bob"
	}
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	check := func(h map[string]string) Decision {
		h["authorization"] = "Bearer ops"
		return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: "/api/v1/namespaces/default/pods", Headers: h})
	}

	d := check(map[string]string{"impersonate-user": "bob"})
	if !d.Allowed() || d.User != "bob" || d.Requestor != "ops" {
		t.Fatalf("impersonating bob: %s, user %q, requestor %q; want allowed, bob, ops", d.Outcome, d.User, d.Requestor)
	}
	if f := accessLogFields(&d); f[envoy.AccessLogUser] != "bob" || f[envoy.AccessLogRequestor] != "ops" {
		t.Errorf("access-log fields %v, want user bob, requestor ops", f)
	}
	for _, h := range d.SetHeaders {
		if strings.Contains(h.Value, "ops") || strings.Contains(strings.ToLower(h.Name), "requestor") {
			t.Errorf("forwarded header %s: %s names the requestor; the apiserver must authorize exactly bob", h.Name, h.Value)
		}
	}

	d = check(map[string]string{})
	if !d.Allowed() || d.User != "ops" || d.Requestor != "ops" {
		t.Errorf("no impersonation: %s, user %q, requestor %q; want allowed, ops, ops", d.Outcome, d.User, d.Requestor)
	}

	d = check(map[string]string{"impersonate-user": "alice"})
	if d.Outcome != Forbidden || d.Requestor != "ops" {
		t.Errorf("impersonating alice: %s, requestor %q; want forbidden, ops", d.Outcome, d.Requestor)
	}
	if f := accessLogFields(&d); f[envoy.AccessLogRequestor] != "ops" || f[envoy.AccessLogUser] != nil {
		t.Errorf("refused impersonation's access-log fields %v, want requestor ops and no user", f)
	}
}

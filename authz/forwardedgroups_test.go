package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/filters/impersonation"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// forwardedUsers are identities the authenticators produce (every one but
// the anonymous user ends in system:authenticated, added by the
// authenticated-group adder) and edge cases of the group list.
var forwardedUsers = []*user.DefaultInfo{
	{Name: "alice", Groups: []string{"dev", user.AllAuthenticated}},
	{Name: "system:serviceaccount:ns:sa", UID: "5a1c",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", user.AllAuthenticated},
		Extra:  map[string][]string{"authentication.kubernetes.io/credential-id": {"JTI=abc"}}},
	// A certificate named like a service account: without any group the
	// apiserver would give it the service-account groups.
	{Name: "system:serviceaccount:ns:cert-robot", Groups: []string{user.AllAuthenticated}},
	{Name: "system:serviceaccount:ns:cert-robot", Groups: []string{"team", user.AllAuthenticated}},
	{Name: "system:serviceaccount:ns:cert-robot", Groups: []string{"", user.AllAuthenticated}},
	{Name: "system:node:n1", Groups: []string{user.NodesGroup, user.AllAuthenticated}},
	{Name: "bob", Groups: []string{user.AllAuthenticated, "dev"}},
	{Name: "bob", Groups: []string{"dev", user.AllAuthenticated, user.AllAuthenticated}},
	{Name: "carol", Groups: []string{user.AllUnauthenticated, user.AllAuthenticated}},
	{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}},
}

// The forwarded fields name the same user, groups in the same order, when
// the apiserver derives the user from them: with impersonation through
// k8s.io/apiserver's own impersonation filter (the gateway holding only the
// legacy impersonate permission, as its RBAC grants), with front-proxy
// headers through the requestheader authenticator behind the
// authenticated-group adder, as kube-apiserver chains them. So leaving out
// a trailing system:authenticated (forwardedGroups) changes nobody.
func TestForwardedIdentityIsWhatTheApiserverDerives(t *testing.T) {
	legacyOnly := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetVerb() == "impersonate" {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "", nil
	})
	var derived user.Info
	filter := impersonation.WithConstrainedImpersonation(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		derived, _ = request.UserFrom(r.Context())
	}), legacyOnly, statusCodecs)
	n := forwardingNames[forwardRequestHeader]
	frontProxy, err := headerrequest.New([]string{n.user}, []string{n.uid}, []string{n.group}, []string{n.extraPrefix})
	if err != nil {
		t.Fatal(err)
	}
	frontProxy = group.NewAuthenticatedGroupAdder(frontProxy)
	gateway := &user.DefaultInfo{Name: "frontdoor-gateway", Groups: []string{user.AllAuthenticated}}
	info := &request.RequestInfo{IsResourceRequest: true, Path: "/api/v1/pods", Verb: "list", APIVersion: "v1", Resource: "pods"}

	dropped := 0
	for _, u := range forwardedUsers {
		if len(forwardedGroups(u)) < len(u.Groups) {
			dropped++
		}
		for f, names := range forwardingNames {
			if forwarding(f) == forwardRequestHeader && slices.Contains(u.Groups, "") {
				// The requestheader authenticator drops empty values,
				// whatever the gateway sends: an empty group never
				// reaches the apiserver in this mode.
				continue
			}
			fields, err := forwardedFields(u, names)
			if err != nil {
				t.Fatalf("%v: %v", u, err)
			}
			h := http.Header{}
			for _, fl := range fields {
				h.Add(fl.Name, fl.Value)
			}
			r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: info.Path}, RequestURI: info.Path, Header: h}
			derived = nil
			if forwarding(f) == forwardImpersonation {
				ctx := request.WithRequestInfo(request.WithUser(context.Background(), gateway), info)
				filter.ServeHTTP(httptest.NewRecorder(), r.WithContext(ctx))
			} else {
				resp, ok, err := frontProxy.AuthenticateRequest(r)
				if err != nil || !ok {
					t.Fatalf("%v: front-proxy headers did not authenticate: %v", u, err)
				}
				derived = resp.User
			}
			if derived == nil {
				t.Fatalf("%v, mode %d: the apiserver refused %v", u, f, fields)
			}
			got := &user.DefaultInfo{Name: derived.GetName(), UID: derived.GetUID(), Groups: derived.GetGroups(), Extra: derived.GetExtra()}
			want := &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
			if len(want.Extra) == 0 {
				want.Extra = got.Extra // nil and empty maps name the same user
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mode %d: %v forwarded as %v: the apiserver derives another user (-want +got):\n%s", f, u, fields, diff)
			}
		}
	}
	// The rule must apply somewhere, or this test proves nothing about it.
	if dropped != 4 {
		t.Errorf("system:authenticated left out for %d users, want 4 (alice, the service account, team cert-robot, the node)", dropped)
	}
}

// The anonymous user never gains system:authenticated at the apiserver (it
// gains system:unauthenticated), so a group list that names it is sent as
// it is.
func TestForwardedGroupsKeepAnonymousAsIs(t *testing.T) {
	u := &user.DefaultInfo{Name: user.Anonymous, Groups: []string{"dev", user.AllAuthenticated}}
	if got := forwardedGroups(u); !slices.Equal(got, u.Groups) {
		t.Errorf("forwardedGroups(%v) = %q, want every group", u, got)
	}
}

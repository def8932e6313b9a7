package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// whoami through the gateway equals direct for service-account tokens: a
// plain TokenRequest token and one bound to a pod, whose extras (pod-name,
// pod-uid, node-name, credential-id) and uid reach the apiserver intact.
func TestWhoamiTokensThroughGatewayEqualsDirect(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	name := "whoami-" + uniq()
	serviceAccount(t, ctx, name)
	pod := podFor(t, ctx, name, name)
	for _, tc := range []struct {
		name  string
		token string
		extra []string // extras the direct answer must have
	}{
		{name: "TokenRequest token", token: tokenFor(t, ctx, name, nil),
			extra: []string{"authentication.kubernetes.io/credential-id"}},
		{name: "TokenRequest token bound to a pod", token: tokenFor(t, ctx, name, pod),
			extra: []string{"authentication.kubernetes.io/credential-id", "authentication.kubernetes.io/pod-name",
				"authentication.kubernetes.io/pod-uid", "authentication.kubernetes.io/node-name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := whoami(t, ctx, sandbox.Clientset(t, tokenConfig(sb.ReplicaURLs[0], "", tc.token)))
			through := whoami(t, ctx, sandbox.Clientset(t, tokenConfig(sb.GatewayURL, "", tc.token)))
			if direct.Username != "system:serviceaccount:default:"+name || direct.UID == "" {
				t.Fatalf("direct whoami = %+v (sandbox broken?)", direct)
			}
			for _, k := range tc.extra {
				if len(direct.Extra[k]) == 0 {
					t.Errorf("direct whoami lacks extra %s: %v", k, direct.Extra)
				}
			}
			if diff := cmp.Diff(direct, through); diff != "" {
				t.Errorf("whoami through the gateway differs from direct (-direct +gateway):\n%s", diff)
			}
		})
	}
}

// kubectl --as/--as-group/--as-uid/--as-user-extra by a client allowed to
// impersonate: whoami through the gateway equals direct, for a user with
// groups, uid and extras, and for a service account (groups derived).
func TestWhoamiImpersonationThroughGatewayEqualsDirect(t *testing.T) {
	ctx := setup(t, time.Minute)
	gatewayKC, directKC := adminUser().kubeconfigs(t)
	for _, args := range [][]string{
		{"--as", "bob", "--as-group", "dev", "--as-group", "qa", "--as-uid", "42", "--as-user-extra", "team=blue", "--as-user-extra", "example.com/scope=read"},
		{"--as", "bob"},
		{"--as", "bob", "--as-group", "system:authenticated"},
		{"--as", "system:serviceaccount:kube-system:default"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			parse := func(out string) authenticationv1.UserInfo {
				var review authenticationv1.SelfSubjectReview
				if err := json.Unmarshal([]byte(out), &review); err != nil {
					t.Fatalf("parsing whoami output: %v\n%s", err, out)
				}
				return review.Status.UserInfo
			}
			cmd := append(args[:len(args):len(args)], "auth", "whoami", "-o", "json")
			direct := parse(kubectl(t, ctx, directKC, cmd...))
			through := parse(kubectl(t, ctx, gatewayKC, cmd...))
			if direct.Username != args[1] {
				t.Fatalf("direct whoami = %+v (sandbox broken?)", direct)
			}
			if diff := cmp.Diff(direct, through); diff != "" {
				t.Errorf("whoami through the gateway differs from direct (-direct +gateway):\n%s", diff)
			}
		})
	}
}

// A refused impersonation gets exactly the replica's own 403 Status (code,
// reason, message), for --as and for --as-group system:masters by a
// client allowed to impersonate users but not groups; an allowed --as
// system:anonymous gets the apiserver's own 403 for system:anonymous.
func TestImpersonationRefusalEqualsDirect(t *testing.T) {
	ctx := setup(t, time.Minute)
	// carol may impersonate user bob only.
	bindRules(t, ctx, "imp-users-"+uniq(), "carol",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"bob"}})
	carol := newUser("carol")
	mallory := newUser("mallory")
	for _, tc := range []struct {
		name string
		u    user
		h    http.Header
	}{
		{"--as without permission", mallory, http.Header{"Impersonate-User": {"bob"}}},
		{"--as-group system:masters without permission", carol, http.Header{"Impersonate-User": {"bob"}, "Impersonate-Group": {"system:masters"}}},
		{"--as-uid without permission", carol, http.Header{"Impersonate-User": {"bob"}, "Impersonate-Uid": {"0"}}},
		{"--as-uid without --as (400)", carol, http.Header{"Impersonate-Uid": {"0"}}},
		// Allowed, and the apiserver itself refuses system:anonymous: the
		// same 403 proves it saw the same user.
		{"admin --as system:anonymous (403 from the apiserver)", adminUser(), http.Header{"Impersonate-User": {"system:anonymous"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/namespaces/default/configmaps/" + uniq()
			dcode, _, dbody := do(t, ctx, httpClient(t, "", tc.u.certPEM, tc.u.keyPEM), "GET", sb.ReplicaURLs[0]+path, tc.h, nil)
			gcode, _, gbody := do(t, ctx, httpClient(t, "", tc.u.certPEM, tc.u.keyPEM), "GET", sb.GatewayURL+path, tc.h, nil)
			if dcode != http.StatusForbidden && dcode != http.StatusBadRequest {
				t.Fatalf("direct answered %d %s (sandbox broken?)", dcode, dbody)
			}
			if gcode != dcode || string(gbody) != string(dbody) {
				t.Errorf("gateway answered %d %s\ndirect answered %d %s", gcode, gbody, dcode, dbody)
			}
		})
	}
	// And carol's allowed impersonation works.
	cs := sandbox.Clientset(t, withHeaders(carol.gateway(), http.Header{"Impersonate-User": {"bob"}}))
	if got := whoami(t, ctx, cs); got.Username != "bob" {
		t.Errorf("carol --as bob: whoami = %q", got.Username)
	}
}

// A service account's token stops working through the gateway once the
// account is deleted; so does a pod-bound token once its pod is gone. The
// bound is the gateway's cache TTL (the second UpstreamCluster caches
// tokens for 2s) on top of kube-apiserver's own: its token authenticator,
// which answers the TokenReview, remembers successes for 10 s
// (TokenSuccessCacheTTL, a kube-apiserver default), so a replica that saw the token
// just before the deletion still vouches for it that long. A direct
// client sees the same delay; what the gateway must not do is add more
// than its TTL.
func TestRevokedTokensStopAfterCacheTTL(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureAltCluster(t, ctx)
	admin := sandbox.Clientset(t, adminUser().direct())

	name := "revoke-" + uniq()
	serviceAccount(t, ctx, name)
	saToken := tokenFor(t, ctx, name, nil)
	pod := podFor(t, ctx, name, name)
	podToken := tokenFor(t, ctx, name, pod)
	for _, tok := range []string{saToken, podToken} {
		if u := whoami(t, ctx, sandbox.Clientset(t, tokenConfig(sb.GatewayURL, altSNI, tok))); u.Username != "system:serviceaccount:default:"+name {
			t.Fatalf("whoami = %q before revocation", u.Username)
		}
	}
	zero := int64(0)
	if err := admin.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().ServiceAccounts("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	deadline := revoked.Add(altTokenCacheTTL + apiserverTokenCacheTTL + time.Second)
	for what, tok := range map[string]string{"deleted service account": saToken, "deleted pod": podToken} {
		cs := sandbox.Clientset(t, tokenConfig(sb.GatewayURL, altSNI, tok))
		var err error
		for {
			_, err = cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if apierrors.IsUnauthorized(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("token of a %s %v after the revocation: %v, want 401 Unauthorized", what, time.Since(revoked).Round(time.Millisecond), err)
		} else {
			t.Logf("token of a %s refused %v after the revocation", what, time.Since(revoked).Round(time.Millisecond))
		}
	}
}

// apiserverTokenCacheTTL is how long kube-apiserver remembers a token it
// authenticated (its TokenSuccessCacheTTL default, not a flag of ours).
const apiserverTokenCacheTTL = 10 * time.Second

// Anonymous, when the UpstreamCluster enables it: a request without
// credentials is system:anonymous (whoami), and the apiserver's anonymous
// rules apply: /version and /healthz are allowed, namespaces are not. A
// bad credential is still 401, not anonymous. On the sandbox's own cluster
// (anonymous off) the same requests get 401.
func TestAnonymousWhenEnabled(t *testing.T) {
	ctx := setup(t, time.Minute)
	ensureAltCluster(t, ctx)
	alt := httpClient(t, altSNI, nil, nil)
	main := httpClient(t, "", nil, nil)
	marker := uniq()
	for _, tc := range []struct {
		path       string
		anon, main int
	}{
		{"/version?" + marker, 200, 401},
		{"/healthz?" + marker, 200, 401},
		{"/readyz?" + marker, 200, 401},
		{"/api/v1/namespaces?" + marker, 403, 401},
	} {
		if code, _, body := do(t, ctx, alt, "GET", sb.GatewayURL+tc.path, nil, nil); code != tc.anon {
			t.Errorf("anonymous on: GET %s = %d %s, want %d", tc.path, code, body, tc.anon)
		}
		if code, _, _ := do(t, ctx, main, "GET", sb.GatewayURL+tc.path, nil, nil); code != tc.main {
			t.Errorf("anonymous off: GET %s = %d, want %d", tc.path, code, tc.main)
		}
	}
	reachedAs(t, marker, ptr.To("system:anonymous"))

	// The apiserver itself names the user it saw: system:anonymous may not
	// even ask who it is (system:basic-user is for authenticated users).
	cfg := tokenConfig(sb.GatewayURL, altSNI, "")
	_, err := sandbox.Clientset(t, cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "system:anonymous"`) {
		t.Errorf("anonymous whoami: %v, want 403 for system:anonymous", err)
	}
	if code, _, _ := do(t, ctx, alt, "GET", sb.GatewayURL+"/version", http.Header{"Authorization": {"Bearer not-a-token"}}, nil); code != 401 {
		t.Errorf("bad token with anonymous on = %d, want 401", code)
	}
}

// bindRules binds a new ClusterRole with rules to user (direct, as admin),
// and removes both when the test ends.
func bindRules(t *testing.T, ctx context.Context, name, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	rbac := sandbox.Clientset(t, adminUser().direct()).RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// RBAC reaches every replica through its informer; wait until replica 1
	// and the gateway both see it.
	time.Sleep(500 * time.Millisecond)
}

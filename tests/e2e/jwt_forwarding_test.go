package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// jwtForwardingClusterTemplate is an UpstreamCluster of JWT clients only
// (TokenReview off), in the given identity forwarding mode.
const jwtForwardingClusterTemplate = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata:
  name: %[1]s
spec:
  servers:
%[2]s  clientConfig:
    secretRef: {namespace: %[3]s, name: upstream}
    identityForwarding: %[4]s
  secureServing:
    serverNames: [%[5]s]
    secretRef: {namespace: %[3]s, name: serving}
    clientCASecretRef: {namespace: %[3]s, name: client-ca}
  authentication: %[6]s
%[7]s`

// An OIDC client's identity (the user, groups, uid and extras the claim
// mappings make) reaches the apiservers the same in both forwarding modes:
// whoami through the gateway is the mapped identity in each, and every
// replica's audit log names the mapped user as the one the request ran as:
// as user itself in RequestHeader mode, as the gateway impersonating it in
// Impersonation mode.
func TestJWTWhoamiInBothForwardingModes(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	allowIssuerDiscovery(t, ctx)
	name := "jwtfwd-" + uniq()
	sa := serviceAccount(t, ctx, name)
	admin := sandbox.Clientset(t, adminUser().direct())
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{jwtAudience}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	user := "sa-oidc:system:serviceaccount:default:" + name
	want := authenticationv1.UserInfo{
		Username: user,
		UID:      string(sa.UID),
		Groups:   []string{"jwt-sa", "jwt-ns:default", "system:authenticated"},
		Extra: map[string]authenticationv1.ExtraValue{
			"example.com/sa-name":                        {name},
			"authentication.kubernetes.io/credential-id": {"JTI=" + jwtClaim(t, token, "jti")},
		},
	}
	auth, err := json.Marshal(map[string]any{"tokenReview": map[string]bool{"enabled": false}, "jwt": []any{saJWTAuthenticator("sa-oidc:")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"Impersonation", "RequestHeader"} {
		t.Run(mode, func(t *testing.T) {
			cluster := fmt.Sprintf("%s-%s", name, map[string]string{"Impersonation": "imp", "RequestHeader": "rh"}[mode])
			sni := cluster + "." + sandbox.TestDomain
			uc := fmt.Sprintf(jwtForwardingClusterTemplate, cluster, sandbox.ServersYAML(sb.ReplicaURLs), sandbox.SecretNamespace,
				mode, sni, auth, sb.RequestServiceField())
			path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+cluster+".yaml")
			if err := os.WriteFile(path, []byte(uc), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove(path) })

			got := waitWhoami(t, ctx, sni, token, user)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("whoami through the gateway in %s mode (-mapped +got):\n%s", mode, diff)
			}

			// Enough requests that every replica serves some.
			marker := "jwtfwd-" + uniq()
			client := httpClient(t, sni, nil, nil)
			defer client.CloseIdleConnections()
			const requests = 12
			for range requests {
				// The service account may not list configmaps: 403 is the
				// apiserver's answer to the mapped user.
				if code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?m="+marker, bearer(token), nil); code != http.StatusForbidden {
					t.Fatalf("GET as the JWT user: %d %s, want the apiserver's 403", code, body)
				}
			}
			replicas := map[int]bool{}
			for _, e := range waitAuditEvents(t, marker, requests) {
				replicas[e.Replica] = true
				switch mode {
				case "RequestHeader":
					if e.User.Username != user || e.ImpersonatedUser != nil {
						t.Errorf("replica %d audit user %q impersonated %v, want %q itself", e.Replica, e.User.Username, e.ImpersonatedUser, user)
					}
				default:
					if e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != user {
						t.Errorf("replica %d audit impersonatedUser %v, want %q", e.Replica, e.ImpersonatedUser, user)
					}
				}
			}
			if len(replicas) != len(sb.ReplicaURLs) {
				t.Errorf("audit events on replicas %v, want every one of %d", replicas, len(sb.ReplicaURLs))
			}
		})
	}
}

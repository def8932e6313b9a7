package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/internal/testoidc"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// JWT / OIDC clients (spec.authentication.jwt) against real issuers: the
// sandbox apiserver's own service-account issuer (its discovery document
// and JWKS, fetched by the gateway as any OIDC issuer's), and an issuer the
// test runs whose key it rotates live.

const (
	// saIssuer is the sandbox apiservers' --service-account-issuer.
	saIssuer = "https://kubernetes.default.svc.cluster.local"
	// jwtAudience is the audience the JWT authenticators accept; the
	// apiservers' own API audience is saIssuer, so a token for it is no
	// JWT-client token.
	jwtAudience = "frontdoor-jwt"
)

// allowIssuerDiscovery lets anonymous clients (the gateway's issuer
// fetches carry no credential) read the service-account issuer's discovery
// document and JWKS, as a cluster that publishes its issuer does.
func allowIssuerDiscovery(t *testing.T, ctx context.Context) {
	t.Helper()
	cs := sandbox.Clientset(t, adminUser().direct())
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "frontdoor-e2e-issuer-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("issuer discovery binding: %v", err)
	}
}

// saJWTAuthenticator maps service-account tokens for jwtAudience with CEL:
// every user field, a claim validation rule and a user validation rule.
func saJWTAuthenticator(prefix string) map[string]any {
	return map[string]any{
		"issuer": map[string]any{
			"url":                  saIssuer,
			"discoveryURL":         sb.ReplicaURLs[0] + "/.well-known/openid-configuration",
			"audiences":            []string{jwtAudience},
			"certificateAuthority": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sb.CA.Cert.Raw})),
		},
		"claimValidationRules": []map[string]string{{
			"expression": "claims['kubernetes.io'].namespace == 'default'", "message": "only namespace default",
		}},
		"claimMappings": map[string]any{
			"username": map[string]string{"expression": "'" + prefix + "' + claims.sub"},
			"groups":   map[string]string{"expression": "['jwt-sa', 'jwt-ns:' + claims['kubernetes.io'].namespace]"},
			"uid":      map[string]string{"expression": "claims['kubernetes.io'].serviceaccount.uid"},
			"extra": []map[string]string{{
				"key": "example.com/sa-name", "valueExpression": "claims['kubernetes.io'].serviceaccount.name",
			}},
		},
		"userValidationRules": []map[string]string{{
			"expression": "!user.username.startsWith('system:')", "message": "no system: users",
		}},
	}
}

// writeJWTCluster writes (or rewrites) UpstreamCluster name, chosen by SNI
// name.sandbox.test, with the JWT authenticators jwt and TokenReview off
// (so every answer here is the JWT authenticators'). It is removed when
// the test ends.
func writeJWTCluster(t *testing.T, name string, jwt ...map[string]any) {
	t.Helper()
	auth, err := json.Marshal(map[string]any{"tokenReview": map[string]bool{"enabled": false}, "jwt": jwt})
	if err != nil {
		t.Fatal(err)
	}
	uc := sb.UpstreamClusterYAML(name, sandbox.ServersYAML(sb.ReplicaURLs), []string{name + "." + sandbox.TestDomain},
		"  authentication: "+string(auth)+"\n")
	path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+name+".yaml")
	if err := os.WriteFile(path, []byte(uc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
}

// saJWTCluster writes a cluster of its own (writeJWTCluster) whose JWT
// authenticator is the sandbox's service-account issuer with users
// prefixed "sa-oidc:", and a ServiceAccount of the same name whose tokens
// it accepts: the cluster's name, its SNI and the ServiceAccount.
func saJWTCluster(t *testing.T, ctx context.Context, prefix string) (name, sni string, sa *corev1.ServiceAccount) {
	t.Helper()
	allowIssuerDiscovery(t, ctx)
	name = prefix + uniq()
	sa = serviceAccount(t, ctx, name)
	writeJWTCluster(t, name, saJWTAuthenticator("sa-oidc:"))
	return name, name + "." + sandbox.TestDomain, sa
}

// whoamiToken is whoami through the gateway's cluster sni with token: the
// user, or the HTTP status of the refusal.
func whoamiToken(ctx context.Context, t *testing.T, sni, token string) (authenticationv1.UserInfo, int) {
	t.Helper()
	// Its own dialer keeps client-go from sharing a cached transport: a
	// connection stays on the filter chain that accepted it, which before
	// the cluster was served was the default one.
	cfg := tokenConfig(sb.GatewayURL, sni, token)
	cfg.Dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	cs := sandbox.Clientset(t, cfg)
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			return authenticationv1.UserInfo{}, int(se.Status().Code)
		}
		return authenticationv1.UserInfo{}, -1
	}
	return review.Status.UserInfo, http.StatusOK
}

// waitWhoami polls whoami until it names user (the config is live).
func waitWhoami(t *testing.T, ctx context.Context, sni, token, user string) authenticationv1.UserInfo {
	t.Helper()
	var got authenticationv1.UserInfo
	var code int
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := poll(wctx, 250*time.Millisecond, func() (bool, error) {
		got, code = whoamiToken(wctx, t, sni, token)
		return code == http.StatusOK && got.Username == user, nil
	}); err != nil {
		t.Fatalf("whoami through %s never was %q: last %d %+v", sni, user, code, got)
	}
	return got
}

// signES256 signs claims with key (no kid: every JWKS key is tried), or
// leaves the token unsigned (alg none) for a nil key.
func signES256(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	if key == nil {
		return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// sandboxSAKey is the apiservers' service-account signing key.
func sandboxSAKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(sb.Dir, "pki", "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal("pki/sa.key holds no PEM")
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// saClaims are the claims of a service-account token of sa for aud, as
// the TokenRequest API writes them.
func saClaims(sa, uid, aud string, exp time.Time) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": saIssuer, "aud": []string{aud}, "sub": "system:serviceaccount:default:" + sa,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": exp.Unix(),
		"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]string{"name": sa, "uid": uid}},
	}
}

// A service-account token requested for jwtAudience (TokenRequest API, as
// `kubectl create token --audience`) is authenticated through the
// apiserver's issuer discovery and JWKS: whoami through the gateway shows
// exactly the user, groups, uid and extras the CEL claim mappings make
// (what kube-apiserver would make with the same AuthenticationConfiguration;
// the apiserver itself does not know this audience). Each bad token is
// answered 401 with the apiserver's own Status body. Editing the mapping
// takes effect live; an invalid edit leaves the last good config serving.
func TestJWTServiceAccountIssuer(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	name, sni, sa := saJWTCluster(t, ctx, "jwt-")

	admin := sandbox.Clientset(t, adminUser().direct())
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{jwtAudience}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	got := waitWhoami(t, ctx, sni, token, "sa-oidc:system:serviceaccount:default:"+name)
	want := authenticationv1.UserInfo{
		Username: "sa-oidc:system:serviceaccount:default:" + name,
		UID:      string(sa.UID),
		Groups:   []string{"jwt-sa", "jwt-ns:default", "system:authenticated"},
		Extra:    map[string]authenticationv1.ExtraValue{"example.com/sa-name": {name}},
	}
	// kube-apiserver's JWT authenticator also sets the token's credential
	// id from its jti, which every TokenRequest token has.
	want.Extra["authentication.kubernetes.io/credential-id"] = authenticationv1.ExtraValue{"JTI=" + jwtClaim(t, token, "jti")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("whoami through the gateway (-mapped +got):\n%s", diff)
	}

	// Direct, the apiserver refuses a JWT of an audience it does not
	// serve: its 401 body is what every bad token must get.
	_, _, directBody := do(t, ctx, httpClient(t, "", nil, nil), http.MethodGet, sb.ReplicaURLs[0]+"/api",
		http.Header{"Authorization": {"Bearer " + token}}, nil)
	if !strings.Contains(string(directBody), `"code":401`) {
		t.Fatalf("direct answer to a JWT-client token: %s", directBody)
	}

	key := sandboxSAKey(t)
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uid, hour := string(sa.UID), time.Now().Add(time.Hour)
	// The positive control: a token minted here like the TokenRequest
	// API's authenticates, so each bad one below fails for its one fault.
	if u, code := whoamiToken(ctx, t, sni, signES256(t, key, saClaims(name, uid, jwtAudience, hour))); code != http.StatusOK || u.Username != want.Username {
		t.Fatalf("self-minted good token: %d %+v", code, u)
	}
	wrongIssuer := saClaims(name, uid, jwtAudience, hour)
	wrongIssuer["iss"] = "https://elsewhere.example"
	otherNS := saClaims(name, uid, jwtAudience, hour)
	otherNS["kubernetes.io"] = map[string]any{"namespace": "kube-system", "serviceaccount": map[string]string{"name": name, "uid": uid}}
	client := httpClient(t, sni, nil, nil)
	for _, tc := range []struct{ name, token string }{
		{"expired", signES256(t, key, saClaims(name, uid, jwtAudience, time.Now().Add(-time.Minute)))},
		{"wrong audience", signES256(t, key, saClaims(name, uid, "other-audience", hour))},
		{"apiserver audience", signES256(t, key, saClaims(name, uid, saIssuer, hour))},
		{"wrong issuer", signES256(t, key, wrongIssuer)},
		{"unsigned (alg none)", signES256(t, nil, saClaims(name, uid, jwtAudience, hour))},
		{"foreign key", signES256(t, foreign, saClaims(name, uid, jwtAudience, hour))},
		{"claim validation rule", signES256(t, key, otherNS)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api",
				http.Header{"Authorization": {"Bearer " + tc.token}}, nil)
			if code != http.StatusUnauthorized || string(body) != string(directBody) {
				t.Errorf("answer = %d %s, want 401 %s", code, body, directBody)
			}
		})
	}

	// A live edit of the mapping: the same token maps to the new user
	// without a restart.
	pids := sb.PIDs()
	writeJWTCluster(t, name, saJWTAuthenticator("sa-oidc2:"))
	waitWhoami(t, ctx, sni, token, "sa-oidc2:system:serviceaccount:default:"+name)
	// An invalid edit (a CEL expression that does not compile) is refused
	// and the last good config keeps serving.
	bad := saJWTAuthenticator("sa-oidc3:")
	bad["claimMappings"].(map[string]any)["username"] = map[string]string{"expression": "claims.sub +"}
	writeJWTCluster(t, name, bad)
	waitRejected(t, ctx, name, "InvalidAuthentication")
	if u, code := whoamiToken(ctx, t, sni, token); code != http.StatusOK || u.Username != "sa-oidc2:system:serviceaccount:default:"+name {
		t.Errorf("after an invalid edit: %d %+v, want the last good mapping", code, u)
	}
	if diff := cmp.Diff(pids, sb.PIDs()); diff != "" {
		t.Errorf("processes changed:\n%s", diff)
	}
}

// rotatingToken signs a token for sub with the issuer's current key.
func rotatingToken(t *testing.T, is *testoidc.Issuer, sub string) string {
	t.Helper()
	key, kid := is.Key()
	return signedToken(t, is, key, kid, sub)
}

// signedToken signs sub's token of issuer is with key (which the issuer
// may have retired).
func signedToken(t *testing.T, is *testoidc.Issuer, key *rsa.PrivateKey, kid, sub string) string {
	t.Helper()
	now := time.Now()
	return testoidc.Sign(t, key, kid, map[string]any{
		"iss": is.URL(), "aud": jwtAudience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}

// The issuer's key is rotated live: the gateway (no restart) accepts a
// token of the new key at once, its unknown kid making kube-apiserver's
// authenticator fetch the JWKS again, and refuses a token of the retired
// key with the apiserver's 401.
func TestJWTKeyRotationLive(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	is := testoidc.New(t, "key-1")
	name := "jwtrot-" + uniq()
	sni := name + "." + sandbox.TestDomain
	writeJWTCluster(t, name, map[string]any{
		"issuer": map[string]any{
			"url": is.URL(), "audiences": []string{jwtAudience}, "certificateAuthority": is.CAPEM(),
		},
		"claimMappings": map[string]any{"username": map[string]string{"claim": "sub", "prefix": "rot:"}},
	})
	waitWhoami(t, ctx, sni, rotatingToken(t, is, "before"), "rot:before")
	pids := sb.PIDs()

	oldKey, oldKid := is.Key()
	is.Rotate(t, "key-2")
	if u, code := whoamiToken(ctx, t, sni, rotatingToken(t, is, "after")); code != http.StatusOK || u.Username != "rot:after" {
		t.Errorf("token of the new key: %d %+v", code, u)
	}
	_, _, directBody := do(t, ctx, httpClient(t, "", nil, nil), http.MethodGet, sb.ReplicaURLs[0]+"/api",
		http.Header{"Authorization": {"Bearer " + rotatingToken(t, is, "x")}}, nil)
	code, _, body := do(t, ctx, httpClient(t, sni, nil, nil), http.MethodGet, sb.GatewayURL+"/api",
		http.Header{"Authorization": {"Bearer " + signedToken(t, is, oldKey, oldKid, "retired")}}, nil)
	if code != http.StatusUnauthorized || string(body) != string(directBody) {
		t.Errorf("token of the retired key: %d %s, want 401 %s", code, body, directBody)
	}
	if diff := cmp.Diff(pids, sb.PIDs()); diff != "" {
		t.Errorf("processes changed:\n%s", diff)
	}
}

// waitRejected waits until frontdoor logs that it refused UpstreamCluster
// name with reason (its edit was read; the served config, /debug/config,
// stays the last good one, so only the log shows the refusal in file mode).
func waitRejected(t *testing.T, ctx context.Context, name, reason string) {
	t.Helper()
	path := sb.LogFiles()["frontdoor"]
	want := `"msg":"upstreamcluster rejected","name":"` + name + `"`
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := poll(wctx, 250*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, want) && strings.Contains(line, `"reason":"`+reason+`"`) {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("frontdoor never logged UpstreamCluster %s rejected with %s (%s): %v", name, reason, path, err)
	}
}

// jwtClaim is the string claim name of token's (unverified) payload.
func jwtClaim(t *testing.T, token, name string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	v, _ := claims[name].(string)
	if v == "" {
		t.Fatalf("token has no %s claim", name)
	}
	return v
}

// The CRD's schema for spec.authentication.jwt (kube-apiserver's own
// JWTAuthenticator type) is accepted by kube-apiserver, and an
// UpstreamCluster carrying a full AuthenticationConfiguration entry passes
// it (server-side dry run), so Kubernetes mode takes what file mode takes.
func TestJWTCRDSchema(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(root, "manifests", "crds")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/upstreamclusters.frontdoor.dev"); err != nil {
		t.Fatal(err)
	}
	auth, err := json.Marshal(map[string]any{"jwt": []map[string]any{saJWTAuthenticator("sa-oidc:")}})
	if err != nil {
		t.Fatal(err)
	}
	uc := sb.UpstreamClusterYAML("jwt-crd", sandbox.ServersYAML(sb.ReplicaURLs), nil, "  authentication: "+string(auth)+"\n")
	path := filepath.Join(t.TempDir(), "uc.yaml")
	if err := os.WriteFile(path, []byte(uc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := sb.Kubectl(ctx, "create", "--dry-run=server", "-o", "json", "-f", path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Spec struct {
			Authentication struct {
				JWT []map[string]any `json:"jwt"`
			} `json:"authentication"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := saJWTAuthenticator("sa-oidc:")
	wantJSON, _ := json.Marshal(want)
	var wantMap map[string]any
	if err := json.Unmarshal(wantJSON, &wantMap); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Authentication.JWT) != 1 {
		t.Fatalf("stored jwt = %v", got.Spec.Authentication.JWT)
	}
	if diff := cmp.Diff(wantMap, got.Spec.Authentication.JWT[0]); diff != "" {
		t.Errorf("the apiserver changed the jwt entry (pruned or defaulted) (-sent +stored):\n%s", diff)
	}
}

// A second cluster's service-account issuer: tokens its TokenRequest API
// issues (for jwtAudience) map to prefixed users on the sandbox's cluster
// through the gateway, with the second cluster's service-account uid. The
// sandbox's apiservers do not know that issuer (direct: 401), and a token
// of the sandbox's own issuer is no token of this one (401).
func TestJWTSecondClusterIssuer(t *testing.T) {
	ctx := setup(t, 5*time.Minute)
	name := "c2-" + uniq()
	c2, err := sb.StartSecondCluster(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Stop)
	remote := sandbox.Clientset(t, sb.RESTConfig(c2.URL, sb.AdminCertPEM, sb.AdminKeyPEM))
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "issuer-discovery-anonymous"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
	}
	if _, err := remote.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, err := remote.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "remote"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := remote.CoreV1().ServiceAccounts("default").CreateToken(ctx, "remote", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{jwtAudience}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token

	cluster := "jwtc2-" + uniq()
	sni := cluster + "." + sandbox.TestDomain
	writeJWTCluster(t, cluster, map[string]any{
		"issuer": map[string]any{
			"url":                  c2.Issuer,
			"discoveryURL":         c2.URL + "/.well-known/openid-configuration",
			"audiences":            []string{jwtAudience},
			"certificateAuthority": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sb.CA.Cert.Raw})),
		},
		"claimMappings": map[string]any{
			"username": map[string]string{"expression": "'" + name + ":' + claims.sub"},
			"groups":   map[string]string{"expression": "['" + name + ":system:serviceaccounts', '" + name + ":system:serviceaccounts:' + claims['kubernetes.io'].namespace]"},
			"uid":      map[string]string{"expression": "claims['kubernetes.io'].serviceaccount.uid"},
		},
	})
	user := name + ":system:serviceaccount:default:remote"
	got := waitWhoami(t, ctx, sni, token, user)
	want := authenticationv1.UserInfo{
		Username: user,
		UID:      string(sa.UID),
		Groups:   []string{name + ":system:serviceaccounts", name + ":system:serviceaccounts:default", "system:authenticated"},
		Extra:    map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {"JTI=" + jwtClaim(t, token, "jti")}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("whoami through the gateway (-mapped +got):\n%s", diff)
	}
	code, _, _ := do(t, ctx, httpClient(t, "", nil, nil), http.MethodGet, sb.ReplicaURLs[0]+"/api",
		http.Header{"Authorization": {"Bearer " + token}}, nil)
	if code != http.StatusUnauthorized {
		t.Errorf("direct at the sandbox's apiserver: %d, want 401 (it does not know %s)", code, c2.Issuer)
	}
	local := serviceAccount(t, ctx, "local-"+uniq())
	localToken, err := sandbox.Clientset(t, adminUser().direct()).CoreV1().ServiceAccounts("default").CreateToken(ctx, local.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{jwtAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := whoamiToken(ctx, t, sni, localToken.Status.Token); code != http.StatusUnauthorized {
		t.Errorf("the sandbox's own token through the second cluster's issuer: %d, want 401", code)
	}
}

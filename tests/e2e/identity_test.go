package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The gateway is transparent: `kubectl auth whoami` through it prints the
// same user, uid, groups and extras as against an apiserver directly, for an
// x509 user with several groups.
func TestWhoamiThroughGatewayEqualsDirect(t *testing.T) {
	ctx := setup(t, time.Minute)
	alice := newUser("alice", "dev", "ops")
	gatewayKC, directKC := alice.kubeconfigs(t)

	parse := func(out string) authenticationv1.UserInfo {
		var review authenticationv1.SelfSubjectReview
		if err := json.Unmarshal([]byte(out), &review); err != nil {
			t.Fatalf("parsing whoami output: %v\n%s", err, out)
		}
		return review.Status.UserInfo
	}
	direct := parse(kubectl(t, ctx, directKC, "auth", "whoami", "-o", "json"))
	through := parse(kubectl(t, ctx, gatewayKC, "auth", "whoami", "-o", "json"))
	if direct.Username != "alice" {
		t.Fatalf("direct whoami says %q, want alice (sandbox broken?)", direct.Username)
	}
	if diff := cmp.Diff(direct, through); diff != "" {
		t.Errorf("whoami through the gateway differs from direct (-direct +gateway):\n%s", diff)
	}
}

// unauthorizedStatus is the body kube-apiserver sends with a 401; clients
// (client-go, kubectl) decode it into their "Unauthorized" error.
var unauthorizedStatus = map[string]any{
	"kind":       "Status",
	"apiVersion": "v1",
	"metadata":   map[string]any{},
	"status":     "Failure",
	"message":    "Unauthorized",
	"reason":     "Unauthorized",
	"code":       float64(401),
}

// A client without a credential, or with a certificate the cluster's client
// CA did not sign, gets 401 with exactly kube-apiserver's Status body. The
// TLS handshake itself succeeds (client certs are optional, as on the
// apiserver): the refusal is an HTTP answer clients understand.
//
// The body is compared with a constant, not with a replica's answer: the
// replicas run with anonymous auth on (kube-apiserver's default), so they
// answer both clients as system:anonymous with 403; kube-apiserver answers
// 401 with this body only when anonymous auth is off, which is the gateway's
// default.
func TestUnauthenticatedClientsGet401Status(t *testing.T) {
	ctx := setup(t, time.Minute)
	foreignCert, foreignKey, err := sandbox.ForeignClientCert("mallory", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name            string
		certPEM, keyPEM []byte
	}{
		{name: "no credential"},
		{name: "client cert from a foreign CA", certPEM: foreignCert, keyPEM: foreignKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := sb.HTTPClient(tc.certPEM, tc.keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			code, ctype, body := rawGet(t, ctx, client, sb.GatewayURL+"/api/v1/namespaces")
			if code != http.StatusUnauthorized {
				t.Fatalf("gateway answered %d, want 401; body: %s", code, body)
			}
			if !strings.HasPrefix(ctype, "application/json") {
				t.Errorf("Content-Type %q, want application/json (clients decode the Status only then)", ctype)
			}
			if diff := cmp.Diff(unauthorizedStatus, decodeJSON(t, body)); diff != "" {
				t.Errorf("401 body differs from kube-apiserver's (-want +got):\n%s\nbody: %s", diff, body)
			}
		})
	}
}

// A client cannot choose its identity or the gateway's internal decisions by
// sending headers: Frontdoor's internal x-frontdoor-* headers and the
// apiserver's front-proxy X-Remote-* headers are ignored (Impersonate-*
// headers are authorized like kube-apiserver does: adversarial_test.go). The client
// stays itself (whoami) and gains no permission (403 on secrets).
func TestClientIdentityHeadersGainNothing(t *testing.T) {
	ctx := setup(t, time.Minute)
	mallory := newUser("mallory", "dev")
	want := whoami(t, ctx, sandbox.Clientset(t, mallory.direct()))

	for _, tc := range []struct {
		name    string
		headers http.Header
	}{
		{
			name: "internal and front-proxy headers",
			headers: http.Header{
				"X-Frontdoor-Rule": {"anything"},
				"X-Frontdoor-User": {"admin"},
				"X-Remote-User":    {"admin"},
				"X-Remote-Group":   {"system:masters"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := sandbox.Clientset(t, withHeaders(mallory.gateway(), tc.headers))
			if diff := cmp.Diff(want, whoami(t, ctx, cs)); diff != "" {
				t.Errorf("whoami with %v through the gateway (-mallory +got):\n%s", tc.headers, diff)
			}
			_, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("listing kube-system secrets with %v: got %v, want 403 Forbidden", tc.headers, err)
			}
			if !strings.Contains(err.Error(), `User "mallory"`) {
				t.Errorf("403 is not about mallory: %v", err)
			}
		})
	}
}

// A certificate whose CN is a service-account name authenticates directly
// as that user with its O groups and system:authenticated, and through the
// gateway it must stay exactly that: kube-apiserver would add the
// service-account groups to an impersonated service account forwarded
// without any group.
func TestServiceAccountNamedCertificateGainsNoGroups(t *testing.T) {
	ctx := setup(t, time.Minute)
	for _, u := range []user{newUser("system:serviceaccount:default:cert-robot"), newUser("system:serviceaccount:default:cert-robot-o", "team")} {
		want := whoami(t, ctx, sandbox.Clientset(t, u.direct()))
		if slices.Contains(want.Groups, "system:serviceaccounts") {
			t.Fatalf("direct whoami of %s already has service-account groups: %v", u.name, want.Groups)
		}
		got := whoami(t, ctx, sandbox.Clientset(t, u.gateway()))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("whoami of %s (groups %q) through the gateway (-direct +gateway):\n%s", u.name, u.groups, diff)
		}
	}
}

// A client cannot hand the gateway someone else's certificate in an
// x-forwarded-client-cert header (in ExtProc mode the request service reads
// the certificate from that header, which only Envoy may set): without a
// TLS client certificate it gets 401, with its own it stays itself.
func TestForwardedClientCertFromClientGainsNothing(t *testing.T) {
	ctx := setup(t, time.Minute)
	// The admin's certificate, as Envoy would encode it (%20, never '+').
	adminCert := strings.ReplaceAll(url.QueryEscape(string(sb.AdminCertPEM)), "+", "%20")
	spoof := http.Header{"X-Forwarded-Client-Cert": {`Hash=00;Cert="` + adminCert + `"`}}

	anonymous, err := sb.HTTPClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := do(t, ctx, anonymous, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces", spoof, nil); code != http.StatusUnauthorized {
		t.Errorf("no client certificate, spoofed x-forwarded-client-cert: %d, want 401", code)
	}

	mallory := newUser("mallory-xfcc", "dev")
	want := whoami(t, ctx, sandbox.Clientset(t, mallory.direct()))
	got := whoami(t, ctx, sandbox.Clientset(t, withHeaders(mallory.gateway(), spoof)))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("whoami with a spoofed x-forwarded-client-cert (-mallory +got):\n%s", diff)
	}
}

func rawGet(t *testing.T, ctx context.Context, client *http.Client, url string) (code int, contentType string, body []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v (the TLS handshake must succeed; refusals are HTTP answers)", url, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	return m
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Every refusal looks like Kubernetes: 401, 403 and 503 carry a Status
// object (kind, apiVersion, status Failure, message, reason, code) as JSON,
// including the 503s Envoy answers itself when no apiserver of the cluster
// is reachable and when the request service is down (fail closed), so
// client-go and kubectl report them as they would an apiserver's.
func TestRefusalsCarryKubernetesStatus(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureDeadCluster(t, ctx)
	admin := adminUser()
	mallory := newUser("mallory")

	check := func(t *testing.T, c *http.Client, h http.Header, code int, reason metav1.StatusReason) {
		t.Helper()
		got, hdr, body := do(t, ctx, c, "GET", sb.GatewayURL+"/api/v1/namespaces/default/configmaps", h, nil)
		if got != code {
			t.Fatalf("status %d %s, want %d", got, body, code)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content type %q, want application/json", ct)
		}
		m := decodeJSON(t, body)
		if m["kind"] != "Status" || m["apiVersion"] != "v1" || m["status"] != "Failure" ||
			m["reason"] != string(reason) || m["code"] != float64(code) || m["message"] == "" {
			t.Errorf("body is not a %d %s Status: %s", code, reason, body)
		}
	}
	t.Run("401 without credentials", func(t *testing.T) {
		check(t, httpClient(t, "", nil, nil), nil, 401, metav1.StatusReasonUnauthorized)
	})
	t.Run("403 for a refused impersonation", func(t *testing.T) {
		check(t, httpClient(t, "", mallory.certPEM, mallory.keyPEM), http.Header{"Impersonate-User": {"bob"}}, 403, metav1.StatusReasonForbidden)
	})
	t.Run("503 when no apiserver of the cluster is reachable", func(t *testing.T) {
		check(t, httpClient(t, deadSNI, admin.certPEM, admin.keyPEM), nil, 503, metav1.StatusReasonServiceUnavailable)
		cfg := admin.gateway()
		cfg.ServerName = deadSNI
		_, err := sandbox.Clientset(t, cfg).CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "no kube-apiserver of this cluster is available") {
			t.Errorf("client-go error %v, want ServiceUnavailable with the Status message", err)
		}
	})
	// A bearer token the cluster cannot review (its only server is down) is
	// neither valid nor invalid: 503 with Retry-After, which client-go
	// retries, not a 401 that tells the client its token is bad.
	t.Run("503 with Retry-After when a token cannot be reviewed", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + uniq()}}
		check(t, httpClient(t, deadSNI, nil, nil), h, 503, metav1.StatusReasonServiceUnavailable)
		_, hdr, _ := do(t, ctx, httpClient(t, deadSNI, nil, nil), "GET", sb.GatewayURL+"/api/v1/namespaces/default/configmaps", h, nil)
		if ra := hdr.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After %q, want 1", ra)
		}
	})
	// frontdoor serve down: ext_authz and ext_proc fail closed with 503 and
	// Retry-After (ext_proc at its routes: extproc_restart_test.go). In
	// process, the request service is Envoy itself: it keeps deciding with
	// the last policy table it received, still refusing what has no
	// identity.
	t.Run("frontdoor serve down", func(t *testing.T) {
		sb.StopFrontdoor()
		defer func() {
			if err := sb.StartFrontdoor(context.Background()); err != nil {
				t.Fatalf("restarting frontdoor: %v", err)
			}
			// Back to normal: Envoy reconnects to frontdoor.
			c := httpClient(t, "", admin.certPEM, admin.keyPEM)
			if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
				code, _, _ := do(t, ctx, c, "GET", sb.GatewayURL+"/version", nil, nil)
				return code == http.StatusOK, nil
			}); err != nil {
				t.Fatalf("gateway not serving after frontdoor restarted: %v", err)
			}
		}()
		if sandbox.RequestServiceFromEnv() != "InProcess" {
			// A credential the request service would accept: fail closed,
			// with the gateway's own message (not a dispatch policy's 503).
			check(t, httpClient(t, "", admin.certPEM, admin.keyPEM), nil, 503, metav1.StatusReasonServiceUnavailable)
			_, hdr, body := do(t, ctx, httpClient(t, "", admin.certPEM, admin.keyPEM), "GET", sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil)
			if m := decodeJSON(t, body)["message"]; !strings.Contains(fmt.Sprint(m), "request service is unavailable") {
				t.Errorf("fail-closed 503 message %q, want the gateway's own (request service unavailable)", m)
			}
			// Never forwarded: client-go retries it after Retry-After.
			if ra := hdr.Get("Retry-After"); ra != "1" {
				t.Errorf("fail-closed 503: Retry-After %q, want 1", ra)
			}
			return
		}
		code, _, body := do(t, ctx, httpClient(t, "", admin.certPEM, admin.keyPEM), "GET", sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil)
		if code != http.StatusOK {
			t.Errorf("with frontdoor serve down: status %d %s, want 200 (decided in Envoy with the last table)", code, body)
		}
		check(t, httpClient(t, "", nil, nil), nil, 401, metav1.StatusReasonUnauthorized)
	})
}

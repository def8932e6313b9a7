package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Request-service hardening (issue 14, items 9 and 15): a dispatch
// policy's rejection reaches the client as configured, whatever its code,
// and the access log names who asked as well as who the request runs as.

// rejectsCluster has one rejecting dispatch policy per code, each for its
// own user (in system:masters, so anything it forwards is authorized).
const rejectsCluster = "rejects"

var rejectsSNI = rejectsCluster + "." + sandbox.TestDomain

// rejectCases are the rejecting policies of rejectsCluster: a code with
// its reason (kubestatus.ReasonForCode: InternalError for 5xx codes
// without one of their own), a Retry-After (0: none) and a message.
var rejectCases = []struct {
	user       string
	code       int
	reason     metav1.StatusReason
	retryAfter int
	message    string
}{
	{"rej-503", http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, 7, "cluster b is closed"},
	{"rej-503-bare", http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, 0, "closed, no retry"},
	{"rej-500", http.StatusInternalServerError, metav1.StatusReasonInternalError, 0, "shed with 500"},
	{"rej-502", http.StatusBadGateway, metav1.StatusReasonInternalError, 3, "shed with 502"},
	{"rej-504", http.StatusGatewayTimeout, metav1.StatusReasonInternalError, 2, "shed with 504"},
	{"rej-429", http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, 7, "shed with 429"},
	{"rej-403", http.StatusForbidden, metav1.StatusReasonForbidden, 0, "shed with 403"},
}

var rejectsOnce struct {
	sync.Once
	err error
}

func ensureRejectsCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	rejectsOnce.Do(func() {
		uc := altClusterYAML(rejectsCluster, rejectsSNI, sandbox.ServersYAML(sb.ReplicaURLs)) + "  dispatchPolicies:\n"
		for _, c := range rejectCases {
			uc += fmt.Sprintf("  - name: %s\n    rules: [{verbs: [\"*\"], apiGroups: [\"*\"], resources: [\"*\"], users: [%s]}]\n"+
				"    reject: {code: %d, retryAfterSeconds: %d, message: %q}\n", c.user, c.user, c.code, c.retryAfter, c.message)
		}
		path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+rejectsCluster+".yaml")
		if rejectsOnce.err = os.WriteFile(path+".tmp", []byte(uc), 0o644); rejectsOnce.err != nil {
			return
		}
		if rejectsOnce.err = os.Rename(path+".tmp", path); rejectsOnce.err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rejectsOnce.err = poll(wctx, 200*time.Millisecond, func() (bool, error) {
			client := httpClient(t, rejectsSNI, nil, nil)
			defer client.CloseIdleConnections()
			code, _, _ := do(t, wctx, client, http.MethodGet, sb.GatewayURL+"/version", nil, nil)
			return code == http.StatusOK, nil // anonymous /version answers 200 only on this cluster
		})
	})
	if rejectsOnce.err != nil {
		t.Fatalf("UpstreamCluster %q not serving: %v", rejectsCluster, rejectsOnce.err)
	}
}

// Every configured rejection keeps its own code, reason, message and
// Retry-After: a 503 of a dispatch policy is not the gateway's "request
// service unavailable" 503, which Envoy answers only when the service
// itself failed.
func TestDispatchRejectKeepsItsStatus(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureRejectsCluster(t, ctx)
	for _, c := range rejectCases {
		t.Run(c.user, func(t *testing.T) {
			u := newUser(c.user, "system:masters")
			client := httpClient(t, rejectsSNI, u.certPEM, u.keyPEM)
			defer client.CloseIdleConnections()
			code, hdr, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil)
			if code != c.code {
				t.Fatalf("status %d %s, want %d", code, body, c.code)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q, want application/json", ct)
			}
			want := ""
			if c.retryAfter > 0 {
				want = fmt.Sprint(c.retryAfter)
			}
			if ra := hdr.Get("Retry-After"); ra != want {
				t.Errorf("Retry-After %q, want %q", ra, want)
			}
			m := decodeJSON(t, body)
			if m["kind"] != "Status" || m["status"] != "Failure" || m["code"] != float64(c.code) ||
				m["reason"] != string(c.reason) || m["message"] != c.message {
				t.Errorf("body %s, want a %d %s Status with message %q", body, c.code, c.reason, c.message)
			}
			if c.retryAfter > 0 {
				d, _ := m["details"].(map[string]any)
				if d["retryAfterSeconds"] != float64(c.retryAfter) {
					t.Errorf("Status details %v, want retryAfterSeconds %d", m["details"], c.retryAfter)
				}
			}
		})
	}
}

// An impersonated request's access-log line names both identities: user
// is who the apiserver authorizes (the impersonated user), requestor who
// authenticated to the gateway. A request without impersonation has the
// same name in both. The apiserver's audit shows the gateway's own
// identity as user and the final user as impersonatedUser, never the
// requestor: the gateway forwards no extra naming it, so the identity the
// apiserver authorizes is exactly the one asked for.
func TestAccessLogNamesRequestorOfImpersonation(t *testing.T) {
	ctx := setup(t, time.Minute)
	probe := "requestor-probe-" + randomHex(t, 6)
	admin := adminUser()
	client := httpClient(t, "", admin.certPEM, admin.keyPEM)
	defer client.CloseIdleConnections()

	impPath := "/api/v1/namespaces/kube-system/configmaps/" + probe + "-imp"
	plainPath := "/api/v1/namespaces/kube-system/configmaps/" + probe + "-plain"
	// Impersonating a user without rights: the apiserver answers 403.
	code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+impPath,
		http.Header{"Impersonate-User": {"requestor-target"}, "Impersonate-Group": {"requestor-group"}}, nil)
	if code != http.StatusForbidden {
		t.Fatalf("GET %s as requestor-target: %d %s, want 403 from the apiserver", impPath, code, body)
	}
	if code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+plainPath, nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET %s: %d %s, want 404", plainPath, code, body)
	}

	var imp, plain map[string]any
	var raw []byte
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var err error
		if raw, err = os.ReadFile(sb.AccessLogPath); err != nil {
			return false, err
		}
		imp, plain = findLogLine(t, raw, impPath), findLogLine(t, raw, plainPath)
		return imp != nil && plain != nil, nil
	})
	if err != nil {
		t.Fatalf("access log has no lines for %s and %s: %v\n%s", impPath, plainPath, err, tailBytes(raw, 2000))
	}
	for _, c := range []struct {
		what            string
		line            map[string]any
		user, requestor string
	}{
		{"impersonated", imp, "requestor-target", admin.name},
		{"plain", plain, admin.name, admin.name},
	} {
		if c.line["user"] != c.user || c.line["requestor"] != c.requestor || c.line["decision"] != "allowed" {
			t.Errorf("%s request's access-log line: user %v, requestor %v, decision %v; want user %q, requestor %q, allowed",
				c.what, c.line["user"], c.line["requestor"], c.line["decision"], c.user, c.requestor)
		}
	}

	// What the apiserver recorded: the gateway as user, the final user as
	// impersonatedUser, and nothing naming the requestor.
	events := auditEvents(t, probe+"-imp")
	if len(events) == 0 {
		t.Fatalf("no audit event of %s", impPath)
	}
	for _, e := range events {
		if e.User.Username != sandbox.GatewayUser || e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != "requestor-target" {
			t.Errorf("audit event user %q impersonatedUser %+v, want %q impersonating requestor-target", e.User.Username, e.ImpersonatedUser, sandbox.GatewayUser)
			continue
		}
		if len(e.ImpersonatedUser.Extra) != 0 {
			t.Errorf("impersonated user carries extras %v, want none (the client asked for none)", e.ImpersonatedUser.Extra)
		}
	}
}

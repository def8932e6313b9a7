package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Envoy writes one JSON line per request with the Kubernetes coordinates the
// request service decided (user, group count, verb, resource, namespace,
// name, rule, decision) beside its own (code, replica, duration, bytes);
// and no line ever carries a client's token or certificate.
func TestAccessLogCarriesKubernetesFieldsAndNoSecrets(t *testing.T) {
	ctx := setup(t, time.Minute)
	probe := "accesslog-probe-" + randomHex(t, 6)
	token := "frontdoor-secret-token-" + randomHex(t, 16)

	// An x509 user with two groups (three with system:authenticated, which
	// kube-apiserver gives every authenticated user) reads a ConfigMap that
	// does not exist (404 from the apiserver), with a bearer token the
	// gateway must drop.
	u := newUser("audrey", "system:masters", "log-readers")
	certified, err := sb.HTTPClient(u.certPEM, u.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/namespaces/kube-system/configmaps/" + probe
	if code := doGet(t, ctx, certified, path, token); code != http.StatusNotFound {
		t.Fatalf("GET %s through the gateway: %d, want 404", path, code)
	}
	// The same token without a certificate: 401 from the request service.
	anonymous, err := sb.HTTPClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deniedPath := "/apis/apps/v1/namespaces/default/deployments/" + probe
	if code := doGet(t, ctx, anonymous, deniedPath, token); code != http.StatusUnauthorized {
		t.Fatalf("GET %s without a certificate: %d, want 401", deniedPath, code)
	}

	var allowed, denied map[string]any
	var raw []byte
	err = poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var err error
		raw, err = os.ReadFile(sb.AccessLogPath)
		if err != nil {
			return false, err
		}
		allowed, denied = findLogLine(t, raw, path), findLogLine(t, raw, deniedPath)
		return allowed != nil && denied != nil, nil
	})
	if err != nil {
		t.Fatalf("access log %s has no lines for %s and %s: %v\n%s", sb.AccessLogPath, path, deniedPath, err, tailBytes(raw, 2000))
	}

	if denied["upstream"] != nil {
		t.Errorf("denied request's upstream = %v, want null (never forwarded)", denied["upstream"])
	}
	upstream, _ := allowed["upstream"].(string)
	if !isReplica(upstream) {
		t.Errorf("upstream = %q, want one of the replicas %v", upstream, sb.ReplicaURLs)
	}
	// Timing: the whole exchange and the apiserver's part (numbers), and the
	// wait on the request service (Envoy writes its filter-state figures as
	// strings of digits); a denied request never reached an apiserver.
	for _, k := range []string{"durationUs", "upstreamUs", "requestServiceUs"} {
		if us := micros(allowed[k]); us <= 0 {
			t.Errorf("allowed request's %s = %v, want microseconds > 0", k, allowed[k])
		}
	}
	if micros(allowed["upstreamUs"])+micros(allowed["requestServiceUs"]) > micros(allowed["durationUs"]) {
		t.Errorf("upstreamUs %v + requestServiceUs %v > durationUs %v", allowed["upstreamUs"], allowed["requestServiceUs"], allowed["durationUs"])
	}
	if micros(denied["requestServiceUs"]) <= 0 || denied["upstreamUs"] != nil {
		t.Errorf("denied request's requestServiceUs = %v, upstreamUs = %v; want microseconds, null", denied["requestServiceUs"], denied["upstreamUs"])
	}
	if sandbox.RequestServiceFromEnv() == "InProcess" {
		// In process the module writes the lines of the requests its filter
		// sees, not Envoy (which would have written them too, unmarked).
		lines := series{what: "frontdoor's and the module's /metrics", scrape: sb.FrontdoorMetrics,
			name: "frontdoor_inprocess_access_log_lines_total", labels: map[string]string{"outcome": "queued"}}
		if v, text := lines.read(t, ctx); v < 2 {
			t.Errorf("the module queued %v access log lines, want at least these two:\n%s", v, text)
		}
		dropped := lines
		dropped.labels = map[string]string{"outcome": "dropped"}
		if v, _ := dropped.read(t, ctx); v != 0 {
			t.Errorf("the module dropped %v access log lines, want 0", v)
		}
	}
	if sandbox.RequestServiceFromEnv() == "ExtProc" { // the response headers are a second exchange
		if us := micros(allowed["requestServiceResponseUs"]); us <= 0 {
			t.Errorf("allowed request's requestServiceResponseUs = %v, want microseconds > 0", allowed["requestServiceResponseUs"])
		}
	}
	for _, k := range []string{"durationMs", "bytesSent", "bytesReceived", "time", "upstream",
		"durationUs", "upstreamUs", "requestServiceUs", "requestServiceResponseUs"} {
		delete(allowed, k)
		delete(denied, k)
	}
	wantAllowed := map[string]any{
		"cluster": "sandbox", "method": "GET", "path": path, "code": float64(404), "decision": "allowed",
		"user": "audrey", "requestor": "audrey", "groups": float64(3), "verb": "get", "apiGroup": "", "resource": "configmaps",
		"subresource": "", "namespace": "kube-system", "name": probe, "rule": "default",
		"upstreamCluster": "sandbox/default",
	}
	wantDenied := map[string]any{
		"cluster": "sandbox", "method": "GET", "path": deniedPath, "code": float64(401), "decision": "unauthenticated",
		"user": nil, "requestor": nil, "groups": nil, "verb": "get", "apiGroup": "apps", "resource": "deployments",
		"subresource": "", "namespace": "default", "name": probe, "rule": nil,
		// The route's cluster, though nothing was sent upstream (upstream is
		// null). ExtProc routes only requests the service allowed
		// (translator requireDecision): a denied one has no route cluster.
		"upstreamCluster": "sandbox/default",
	}
	if sandbox.RequestServiceFromEnv() == "ExtProc" {
		wantDenied["upstreamCluster"] = nil
	}
	ignore := map[string]bool{"client": true, "flags": true, "protocol": true, "requestID": true, "userAgent": true}
	for _, c := range []struct {
		what      string
		got, want map[string]any
	}{{"allowed", allowed, wantAllowed}, {"denied", denied, wantDenied}} {
		for k := range ignore {
			delete(c.got, k)
		}
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s request's access-log line (-want +got):\n%s", c.what, diff)
		}
	}

	// No secret material anywhere in the log: not the token, not any
	// line of the certificate's or key's base64 body (raw or URL-encoded,
	// as Envoy hands the peer certificate to ext_authz).
	secrets := map[string]string{"bearer token": token}
	for what, p := range map[string][]byte{"certificate": u.certPEM, "key": u.keyPEM} {
		block, _ := pem.Decode(p)
		b64 := strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n")
		for i, line := range b64[1 : len(b64)-1] {
			if len(line) >= 32 {
				secrets[fmt.Sprintf("%s line %d", what, i+1)] = line[:32]
			}
		}
		secrets[what+" (URL-encoded)"] = url.QueryEscape(string(p))[:80]
	}
	for what, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("access log contains the client's %s", what)
		}
	}
}

// micros reads an access-log duration: a JSON number, or a string of digits.
func micros(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	return 0
}

func doGet(t *testing.T, ctx context.Context, c *http.Client, path, token string) int {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	code, _, _ := do(t, ctx, c, http.MethodGet, sb.GatewayURL+path, h, nil)
	return code
}

// findLogLine returns the first decoded access-log line whose path is path.
func findLogLine(t *testing.T, log []byte, path string) map[string]any {
	t.Helper()
	if lines := logLines(t, log, path); len(lines) > 0 {
		return lines[0]
	}
	return nil
}

func isReplica(hostPort string) bool {
	for _, u := range sb.ReplicaURLs {
		if strings.TrimPrefix(u, "https://") == hostPort {
			return true
		}
	}
	return false
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

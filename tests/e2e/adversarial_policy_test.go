package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kubefrontdoor/frontdoor/internal/testhttp"
)

// Dispatch-policy evasion: a user whose configmap lists and creates and
// kube-system secrets are shed by the gov cluster's "equivalents" policy
// tries to get the same data under another verb or namespace: a watch that
// begins with the current state (a list), a server-side apply (a create),
// an all-namespaces list pinned to kube-system by a field selector. Each is
// shed like what it is equivalent to, and never reaches an apiserver; the
// requests that are not equivalent still go through.

func init() { registerAdversarial(policyAdversarialCases) }

func policyAdversarialCases(t *testing.T, ctx context.Context, env *advEnv) []advCase {
	ensureGovCluster(t, ctx)
	equiv := govClient(t, "gov-equiv")
	send := func(method, target, contentType, body string) func(*testing.T, context.Context, string) []int {
		return func(t *testing.T, ctx context.Context, marker string) []int {
			h := http.Header{}
			if contentType != "" {
				h.Set("Content-Type", contentType)
			}
			var b io.Reader
			if body != "" {
				b = strings.NewReader(strings.ReplaceAll(body, "MARKER", marker))
			}
			// testhttp.Do keeps this Content-Type (do would make it JSON).
			resp, _ := testhttp.Do(t, ctx, equiv, method, sb.GatewayURL+strings.ReplaceAll(target, "MARKER", marker), h, b)
			return []int{resp.StatusCode}
		}
	}
	// Watches end after a second, so a watch that got through is answered.
	const watch = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&m=MARKER"
	apply := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"MARKER"},"data":{"k":"v"}}`
	shed := []int{http.StatusTooManyRequests}
	return []advCase{
		{name: "policy: watch with sendInitialEvents is a list", send: send("GET", watch+"&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", "", ""), want: shed},
		{name: "policy: watch from no resourceVersion is a list", send: send("GET", watch, "", ""), want: shed},
		{name: "policy: watch from resourceVersion 0 is a list", send: send("GET", watch+"&resourceVersion=0", "", ""), want: shed},
		{name: "policy: legacy watch path is a list", send: send("GET", "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1&m=MARKER", "", ""), want: shed},
		{name: "policy: server-side apply is a create", send: send("PATCH", "/api/v1/namespaces/default/configmaps/MARKER?fieldManager=adv&m=MARKER", "application/apply-patch+yaml", apply), want: shed},
		{name: "policy: all-namespaces list pinned by field selector is in that namespace", send: send("GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3Dkube-system&m=MARKER", "", ""), want: shed},
		{name: "policy: all-namespaces watch pinned by field selector is in that namespace", send: send("GET", "/api/v1/secrets?watch=true&timeoutSeconds=1&fieldSelector=metadata.namespace%3D%3Dkube-system&m=MARKER", "", ""), want: shed},
		// Not equivalent: these go through as the user.
		{name: "policy: merge patch is not a create", send: send("PATCH", "/api/v1/namespaces/default/configmaps/absent-MARKER?m=MARKER", "application/merge-patch+json", `{"data":{"k":"v"}}`), want: []int{http.StatusNotFound}, reachedAs: "gov-equiv"},
		{name: "policy: list pinned to another namespace is not shed", send: send("GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3Ddefault&m=MARKER", "", ""), want: []int{http.StatusOK}, reachedAs: "gov-equiv"},
	}
}

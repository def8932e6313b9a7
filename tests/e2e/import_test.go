package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Issue 17: `frontdoor import kubegateway`. KubeGateway's documented
// read-write separation (reads to one server, the rest to another, with the
// misspelled upsteamSubset and the schemas directly under flowControl its
// docs show), behind two policies of our own (a user with a negated verb, a
// group), pointed at the sandbox's replicas with the sandbox's PEMs as a
// user would edit it, is converted by the real binary, passes the CRD's
// validation on a real apiserver, and is served: each user's requests reach
// the replica KubeGateway would send them to, and what KubeGateway would
// refuse (no policy matches: here every non-resource request, as in the
// documented example) is refused with its 500.

var importSNI = "kg." + sandbox.TestDomain

// importSource is the KubeGateway object; %[1]s..%[3]s are the replicas,
// %[4]s the inline TLS blocks, %[5]s the name.
const importSource = `apiVersion: proxy.kubegateway.io/v1alpha1
kind: UpstreamCluster
metadata:
  name: %[5]s
spec:
  servers:
  - endpoint: %[1]s
  - endpoint: %[2]s
  - endpoint: %[3]s
%[4]s  flowControl:
    - name: "exempt"
      exempt: {}
  dispatchPolicies:
  - rules:
    - verbs: ["-create"]
      apiGroups: ["*"]
      resources: ["*"]
      users: ["kg-pinned"]
    upstreamSubset:
    - %[3]s
  - rules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
      userGroups: ["kg-team"]
    upstreamSubset:
    - %[3]s
  - rules:
    - verbs: ["list", "get", "watch"]
      apiGroups: ["*"]
      resources: ["*"]
    upsteamSubset:
    - %[1]s
    flowControlSchemaName: exempt
  - rules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
    upsteamSubset:
    - %[2]s
`

func TestImportKubeGatewayRoutesLikeTheSource(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	work := t.TempDir()
	pem := func(name string) string {
		data, err := os.ReadFile(filepath.Join(sb.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(data)
	}
	tlsBlocks := fmt.Sprintf("  secureServing:\n    keyData: %s\n    certData: %s\n    clientCAData: %s\n  clientConfig:\n    keyData: %s\n    certData: %s\n    caData: %s\n",
		pem("pki/gateway-serving.key"), pem("pki/gateway-serving.crt"), pem("ca.crt"),
		pem("pki/gateway-client.key"), pem("pki/gateway-client.crt"), pem("ca.crt"))
	r := sb.ReplicaURLs
	src := filepath.Join(work, "kubegateway.yaml")
	if err := os.WriteFile(src, []byte(fmt.Sprintf(importSource, r[0], r[1], r[2], tlsBlocks, importSNI)), 0o600); err != nil {
		t.Fatal(err)
	}

	// Convert with the binary under test.
	out := filepath.Join(work, "out")
	args := []string{"import", "kubegateway", "-f", src, "-o", out, "--namespace", sandbox.SecretNamespace}
	if mode := sandbox.RequestServiceFromEnv(); mode != "" {
		args = append(args, "--request-service", mode)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(sb.BinDir, "frontdoor"), args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("frontdoor import: %v\n%s", err, stderr.String())
	}
	report := stderr.String()
	t.Logf("import report:\n%s", report)
	for _, want := range []string{"upsteamSubset: converted", "spec.flowControl: converted", "verbs: converted: -create", "added: policy no-rule-matches"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	files, err := filepath.Glob(filepath.Join(out, "*.yaml"))
	if err != nil || len(files) != 4 {
		t.Fatalf("want 3 Secrets and 1 UpstreamCluster in %s, got %v (%v)", out, files, err)
	}

	// The CRD's own validation (OpenAPI schema and CEL rules) on a real
	// apiserver accepts the output.
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Kubectl(ctx, "apply", "-f", filepath.Join(root, "manifests", "crds")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Kubectl(ctx, "wait", "--for=condition=established", "--timeout=60s", "crd/upstreamclusters.frontdoor.dev"); err != nil {
		t.Fatal(err)
	}
	ns := filepath.Join(work, "namespace.yaml")
	if err := os.WriteFile(ns, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: "+sandbox.SecretNamespace+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Kubectl(ctx, "apply", "-f", ns); err != nil {
		t.Fatal(err)
	}
	dry, err := sb.Kubectl(ctx, "apply", "--dry-run=server", "-f", out)
	if err != nil {
		t.Fatalf("the converted objects fail the apiserver's validation: %v", err)
	}
	t.Logf("kubectl apply --dry-run=server:\n%s", dry)

	// Serve them: Secrets first, the UpstreamCluster last, each by rename
	// so frontdoor never reads half a file.
	config := filepath.Join(sb.Dir, "config")
	for _, f := range files { // Glob sorts: secret-* before upstreamcluster-*
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(config, "import-"+filepath.Base(f))
		if err := os.WriteFile(dst+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(dst) })
	}

	client := func(name string, groups ...string) *http.Client {
		u := newUser(name, append(groups, "system:masters")...)
		c := httpClient(t, importSNI, u.certPEM, u.keyPEM)
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	reader, pinned, team := client("kg-reader"), client("kg-pinned"), client("kg-member", "kg-team")
	list := sb.GatewayURL + "/api/v1/namespaces/default/configmaps"

	// Served once a request no policy matches gets KubeGateway's 500 (the
	// sandbox's own cluster, which the SNI reaches before, answers 200),
	// and the policy clusters' replicas pass their health checks.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := poll(wctx, 250*time.Millisecond, func() (bool, error) {
		fresh := client("kg-reader")
		defer fresh.CloseIdleConnections()
		code, _, body := do(t, wctx, fresh, http.MethodGet, sb.GatewayURL+"/version", nil, nil)
		if code != http.StatusInternalServerError {
			return false, nil
		}
		if !strings.Contains(string(body), "no router rule matches this request") || !strings.Contains(string(body), `"kind":"Status"`) {
			return false, fmt.Errorf("500 without KubeGateway's message in a Status: %s", body)
		}
		for _, c := range []*http.Client{reader, pinned, team} {
			if code, _, _ := do(t, wctx, c, http.MethodGet, list, nil, nil); code != http.StatusOK {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("imported UpstreamCluster not serving: %v", err)
	}

	// Each user's requests reach only the replica of the policy KubeGateway
	// would pick, as the replicas' own apiserver_request_total shows.
	const n = 10
	cm := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"kg-import-"}}`)
	for _, tc := range []struct {
		who     string
		client  *http.Client
		create  bool
		replica int // 0-based
	}{
		{"any user's reads (documented split, upsteamSubset)", reader, false, 0},
		{"any user's writes (documented split, upsteamSubset)", reader, true, 1},
		{"kg-pinned's reads (users, verbs -create)", pinned, false, 2},
		{"kg-pinned's creates (negated: the split takes them)", pinned, true, 1},
		{"group kg-team's reads (userGroups)", team, false, 2},
		{"group kg-team's writes (userGroups)", team, true, 2},
	} {
		method, verb, want := http.MethodGet, "LIST", http.StatusOK
		var body []byte
		if tc.create {
			method, verb, want, body = http.MethodPost, "POST", http.StatusCreated, cm
		}
		filter := map[string]string{"resource": "configmaps", "verb": verb}
		before, err := sb.ReplicaRequestCounts(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if code, _, out := do(t, ctx, tc.client, method, list, nil, body); code != want {
				t.Fatalf("%s: request %d: %d %s", tc.who, i, code, out)
			}
		}
		deltas, err := replicaDeltas(ctx, filter, before, func(d []float64) bool { return d[tc.replica] >= n })
		t.Logf("%s: %s configmaps per replica: %v", tc.who, verb, deltas)
		if err != nil {
			t.Fatalf("%s: replica %d did not count %d requests: %v", tc.who, tc.replica+1, n, err)
		}
		for i, d := range deltas {
			if i != tc.replica && d != 0 {
				t.Errorf("%s: replica %d served %v, want 0 (only replica %d)", tc.who, i+1, d, tc.replica+1)
			}
		}
	}
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// bigListObjects ConfigMaps of about 1 KiB each make a list of about 25 MB.
const bigListObjects = 20000

// A list of 20,000 ConfigMaps (tens of MB) comes through the gateway whole,
// in JSON and in protobuf, and page by page with limit/continue.
func TestBigListThroughGateway(t *testing.T) {
	t.Parallel()
	ctx := setup(t, 10*time.Minute)
	ns := createNamespace(t, ctx, "e2e-big-list")

	// Created straight on the replicas (spread over all of them): the
	// gateway's part is the list, not the writes.
	value := strings.Repeat("x", 1024)
	replicas := make([]corev1ConfigMaps, len(sb.ReplicaURLs))
	for i := range sb.ReplicaURLs {
		cfg := sb.DirectConfig(i+1, sb.AdminCertPEM, sb.AdminKeyPEM)
		cfg.QPS, cfg.Burst = -1, 0
		replicas[i] = sandbox.Clientset(t, cfg).CoreV1().ConfigMaps(ns)
	}
	started := time.Now()
	if err := createConcurrently(ctx, bigListObjects, 24, func(ctx context.Context, i int) error {
		_, err := replicas[i%len(replicas)].Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("big-%05d", i)},
			Data:       map[string]string{"v": value},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d ConfigMaps in %v", bigListObjects, time.Since(started).Round(time.Millisecond))

	gw := watchConfig(adminUser().gateway()) // no 30s client timeout: this is a big download on busy cores
	cs := sandbox.Clientset(t, gw)

	// Whole, JSON: count the bytes too.
	started = time.Now()
	raw, err := cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("configmaps").DoRaw(ctx)
	if err != nil {
		t.Fatalf("unpaginated JSON list: %v", err)
	}
	var list corev1.ConfigMapList
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != bigListObjects {
		t.Fatalf("unpaginated JSON list: %d items, want %d", len(list.Items), bigListObjects)
	}
	t.Logf("unpaginated JSON list: %d items, %.1f MB in %v", len(list.Items), float64(len(raw))/1e6, time.Since(started).Round(time.Millisecond))

	// Whole, protobuf.
	pb := rest.CopyConfig(gw)
	pb.ContentType = runtime.ContentTypeProtobuf
	pb.AcceptContentTypes = runtime.ContentTypeProtobuf
	started = time.Now()
	pbList, err := sandbox.Clientset(t, pb).CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("unpaginated protobuf list: %v", err)
	}
	if len(pbList.Items) != bigListObjects || pbList.Items[123].Data["v"] != value {
		t.Fatalf("unpaginated protobuf list: %d items, want %d with their data", len(pbList.Items), bigListObjects)
	}
	t.Logf("unpaginated protobuf list: %d items in %v", len(pbList.Items), time.Since(started).Round(time.Millisecond))

	// Paginated: every object exactly once.
	seen := map[string]bool{}
	pages := 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		page, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		for _, cm := range page.Items {
			if seen[cm.Name] {
				t.Fatalf("%s listed twice", cm.Name)
			}
			seen[cm.Name] = true
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if len(seen) != bigListObjects || pages != bigListObjects/500 {
		t.Fatalf("paginated list: %d objects in %d pages, want %d in %d", len(seen), pages, bigListObjects, bigListObjects/500)
	}
}

type corev1ConfigMaps = interface {
	Create(ctx context.Context, cm *corev1.ConfigMap, opts metav1.CreateOptions) (*corev1.ConfigMap, error)
}

// Every PATCH content type the apiserver accepts passes through the gateway
// intact, server-side apply included.
func TestPatchContentTypesThroughGateway(t *testing.T) {
	ctx := setup(t, time.Minute)
	ns := createNamespace(t, ctx, "e2e-patch")
	cms := sandbox.Clientset(t, adminUser().gateway()).CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patches := []struct {
		pt    types.PatchType
		body  string
		key   string
		value string
	}{
		{types.JSONPatchType, `[{"op":"add","path":"/data/b","value":"2"}]`, "b", "2"},
		{types.MergePatchType, `{"data":{"c":"3"}}`, "c", "3"},
		{types.StrategicMergePatchType, `{"data":{"d":"4"}}`, "d", "4"},
		{types.ApplyYAMLPatchType, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\ndata:\n  e: \"5\"\n", "e", "5"},
	}
	for _, p := range patches {
		opts := metav1.PatchOptions{}
		if p.pt == types.ApplyYAMLPatchType {
			opts.FieldManager = "e2e"
		}
		got, err := cms.Patch(ctx, "p", p.pt, []byte(p.body), opts)
		if err != nil {
			t.Errorf("%s patch: %v", p.pt, err)
			continue
		}
		if got.Data[p.key] != p.value {
			t.Errorf("%s patch: data %v, want %s=%s", p.pt, got.Data, p.key, p.value)
		}
	}
}

// kubectl apply --server-side (with its conflict detection), kubectl diff,
// and a CRD created and used, all through the gateway.
func TestKubectlApplyDiffAndCRDThroughGateway(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ns := createNamespace(t, ctx, "e2e-apply")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k := func(args ...string) (string, string, int) {
		return kubectlStream(t, ctx, nil, nil, append([]string{"-n", ns}, args...)...)
	}
	cm := write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: v1\n")
	if out, errOut, code := k("apply", "--server-side", "-f", cm); code != 0 || !strings.Contains(out, "serverside-applied") {
		t.Fatalf("apply --server-side: exit %d: %s%s", code, out, errOut)
	}
	changed := write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: v2\n")
	// A second manager changing the same field conflicts (409 through
	// the gateway, as direct) until it forces.
	if out, errOut, code := k("apply", "--server-side", "--field-manager", "other", "-f", changed); code == 0 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("conflicting apply: exit %d, want a conflict: %s%s", code, out, errOut)
	}
	if out, errOut, code := k("diff", "--server-side", "-f", changed); code != 1 || !strings.Contains(out, "-  k: v1") || !strings.Contains(out, "+  k: v2") {
		t.Fatalf("kubectl diff: exit %d (want 1), output:\n%s%s", code, out, errOut)
	}
	if out, errOut, code := k("apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", changed); code != 0 {
		t.Fatalf("forced apply: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := k("diff", "-f", changed); code != 0 {
		t.Fatalf("kubectl diff after apply: exit %d, want 0 (no difference):\n%s%s", code, out, errOut)
	}

	// A CRD: create, wait until established (discovery through the
	// gateway must show it), then create and read a custom object.
	suffix := strings.TrimPrefix(ns, "e2e-apply-")
	group := "e2e" + suffix + ".frontdoor.dev"
	crd := write("crd.yaml", fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`, group))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kubectlStream(t, ctx, nil, nil, "delete", "--wait=false", "-f", crd)
	})
	if out, errOut, code := k("apply", "-f", crd); code != 0 {
		t.Fatalf("creating the CRD: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := k("wait", "--for=condition=Established", "--timeout=60s", "crd/widgets."+group); code != 0 {
		t.Fatalf("CRD not established: %s%s", out, errOut)
	}
	w := write("widget.yaml", fmt.Sprintf("apiVersion: %s/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n", group))
	// Discovery caches may lag a fresh CRD on some replica; kubectl retries
	// by invalidating its cache, so allow a few attempts.
	err := poll(ctx, time.Second, func() (bool, error) {
		_, _, code := k("apply", "--server-side", "-f", w)
		return code == 0, nil
	})
	if err != nil {
		_, errOut, _ := k("apply", "--server-side", "-f", w)
		t.Fatalf("creating a Widget: %s", errOut)
	}
	if out, errOut, code := k("get", "widgets."+group, "w1", "-o", "jsonpath={.spec.size}"); code != 0 || out != "3" {
		t.Fatalf("reading the Widget: exit %d, %q %s", code, out, errOut)
	}
}

// Discovery (aggregated, as kubectl fetches it) and OpenAPI v3 documents
// come through the gateway exactly as a replica serves them.
func TestDiscoveryAndOpenAPIThroughGateway(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	if out, errOut, code := kubectlStream(t, ctx, nil, nil, "api-resources", "-o", "name"); code != 0 || !strings.Contains(out, "configmaps\n") {
		t.Fatalf("kubectl api-resources: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := kubectlStream(t, ctx, nil, nil, "explain", "configmap.data"); code != 0 || !strings.Contains(out, "FIELD: data") {
		t.Fatalf("kubectl explain (OpenAPI v3): exit %d: %s%s", code, out, errOut)
	}
	gw := watchConfig(adminUser().gateway())
	direct := watchConfig(adminUser().direct())
	fetch := func(cfg *rest.Config, path string) []byte {
		u, err := url.Parse(path)
		if err != nil {
			t.Fatal(err)
		}
		req := sandbox.Clientset(t, cfg).RESTClient().Get().AbsPath(u.Path)
		for k, vs := range u.Query() {
			req = req.Param(k, vs[0])
		}
		b, err := req.DoRaw(ctx)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return b
	}
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(fetch(gw, "/openapi/v3"), &index); err != nil {
		t.Fatal(err)
	}
	apiV1, ok := index.Paths["api/v1"]
	if !ok {
		t.Fatalf("/openapi/v3 through the gateway lacks api/v1: %v", index.Paths)
	}
	// The hashed URL is immutable content: identical bytes from a replica.
	viaGateway, viaReplica := fetch(gw, apiV1.ServerRelativeURL), fetch(direct, apiV1.ServerRelativeURL)
	if string(viaGateway) != string(viaReplica) || len(viaGateway) < 100000 {
		t.Fatalf("OpenAPI v3 api/v1: %d bytes through the gateway, %d direct; want equal and large", len(viaGateway), len(viaReplica))
	}
}

// kubectl proxy pointed at the gateway serves plain HTTP clients on
// loopback, watches included.
func TestKubectlProxyThroughGateway(t *testing.T) {
	ctx := setup(t, time.Minute)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, stdout, _ := startKubectl(t, pctx, nil, "proxy", "--port=0")
	defer func() { cancel(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("kubectl proxy: %v", err)
	}
	var addr string
	if _, err := fmt.Sscanf(line, "Starting to serve on %s", &addr); err != nil {
		t.Fatalf("kubectl proxy printed %q", line)
	}
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	}
	resp, err := get("/api/v1/namespaces/default")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"default"`) {
		t.Fatalf("GET through kubectl proxy: %d %s", resp.StatusCode, body)
	}
	// A watch through the proxy streams its first event.
	ns := createNamespace(t, ctx, "e2e-proxy")
	resp, err = get("/api/v1/namespaces/" + ns + "/configmaps?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "via-proxy"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Type   string
		Object corev1.ConfigMap
	}
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Type != "ADDED" || ev.Object.Name != "via-proxy" {
		t.Fatalf("watch through kubectl proxy: %v %+v", err, ev)
	}
}

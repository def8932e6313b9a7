package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// ManifestEnv overrides the manifest whose Deployment Pod is played (the
// default is manifests/deploy/frontdoor.yaml), e.g. a `helm template`
// output with other values.
const ManifestEnv = "FRONTDOOR_DEPLOY_MANIFEST"

// played is a Pod of the manifest running under podman.
type played struct {
	p          *Podman
	r          *Rendered
	gatewayURL string // Envoy's client listener
	adminURL   string // Envoy's admin API
}

// TestManifestPodServesAndDrains plays the manifest's gateway Pod from the
// built images against the sandbox apiserver and uses it as a client
// would: the init container renders the bootstrap, every probe the spec
// declares passes, `kubectl get ns` works through it, `kubectl auth whoami`
// through it equals direct, a watch survives an UpstreamCluster edit, and
// stopping the Pod as the kubelet does (preStop hooks, then SIGTERM) drains
// it: a watch open during the drain keeps delivering and ends cleanly,
// frontdoor turns not-ready, and both containers exit 0 inside the grace
// period instead of being killed.
func TestManifestPodServesAndDrains(t *testing.T) {
	ctx := sandbox.TestContext(t, sb, 4*time.Minute, func(name string) int {
		if strings.HasPrefix(name, "apiserver") {
			return 5
		}
		return 0
	})
	pl := playManifestPod(t, ctx)

	admin := filepath.Join(t.TempDir(), "admin-gateway.kubeconfig")
	if err := sb.WriteKubeconfig(admin, pl.gatewayURL, sb.AdminCertPEM, sb.AdminKeyPEM); err != nil {
		t.Fatal(err)
	}
	out, err := sb.KubectlWith(ctx, admin, 20*time.Second, "get", "ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "frontdoor-system", "kube-system"} {
		if !strings.Contains(out, ns) {
			t.Errorf("kubectl get ns through the Pod lacks %s:\n%s", ns, out)
		}
	}

	t.Run("whoami equals direct", func(t *testing.T) { whoamiEqualsDirect(t, ctx, pl) })
	t.Run("watch survives an UpstreamCluster edit", func(t *testing.T) { watchSurvivesEdit(t, ctx, pl) })
	t.Run("pod stop drains", func(t *testing.T) { stopDrains(t, ctx, pl) })
}

// playManifestPod renders the manifest's Pod (RenderPod) and plays it,
// then waits until every readiness probe passes and checks every liveness
// probe once. The pod is removed when the test ends, by its name.
func playManifestPod(t *testing.T, ctx context.Context) *played {
	t.Helper()
	p, _, images := loadBuiltImages(t, ctx, t.TempDir())
	manifestPath := os.Getenv(ManifestEnv)
	if manifestPath == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		manifestPath = filepath.Join(root, "manifests", "deploy", "frontdoor.yaml")
	}
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatalf("%s: %v", manifestPath, err)
	}
	saDir := serviceAccountFiles(t, ctx, m)
	replica, err := url.Parse(sb.ReplicaURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := RenderPod(m, images, Target{
		PodName:       "frontdoor-deploy-" + randSuffix(),
		APIServerHost: replica.Hostname(), APIServerPort: replica.Port(),
		ServiceAccountDir: saDir,
		FreePort:          testenv.FreePort,
	})
	if err != nil {
		t.Fatalf("rendering the Pod of %s: %v", manifestPath, err)
	}
	t.Logf("Pod %s from %s, adjusted:\n  - %s\nports: %v", r.Pod.Name, manifestPath, strings.Join(r.Adjustments, "\n  - "), r.Ports)
	podYAML, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	podFile := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(podFile, podYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	pl := &played{p: p, r: r}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			t.Logf("played Pod:\n%s", podYAML)
			for _, c := range r.Pod.Spec.Containers {
				logs, err := p.RunCombined(cctx, "logs", "--tail", "40", ContainerName(r.Pod.Name, c.Name)) // stderr too: Envoy and serve log there
				t.Logf("--- podman logs %s (%v):\n%s", ContainerName(r.Pod.Name, c.Name), err, logs)
			}
		}
		// The pod this test created, by name: its containers and its
		// emptyDir volumes go with it.
		if _, err := p.Run(cctx, "pod", "rm", "--force", "--time", "0", r.Pod.Name); err != nil {
			t.Logf("removing pod %s: %v", r.Pod.Name, err)
		}
	})
	if out, err := p.Run(ctx, "kube", "play", podFile); err != nil {
		t.Fatalf("podman kube play: %v\n%s", err, out)
	}

	// The gateway's address: the container port named https (the Service's
	// targetPort); Envoy's admin: the bootstrap's --admin-address.
	for _, c := range r.Pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "https" {
				pl.gatewayURL = fmt.Sprintf("https://127.0.0.1:%d", port.ContainerPort)
			}
		}
	}
	for _, c := range r.Pod.Spec.InitContainers {
		if v := flagValue(c.Args, "--admin-address"); v != "" {
			pl.adminURL = "http://" + v
		}
	}
	if pl.gatewayURL == "" || pl.adminURL == "" {
		t.Fatalf("the Pod names no https port (%q) or its bootstrap no --admin-address (%q)", pl.gatewayURL, pl.adminURL)
	}

	// Readiness: every probe passes within a minute, as a rollout needs.
	deadline := time.Now().Add(90 * time.Second)
	for _, c := range r.Pod.Spec.Containers {
		if c.ReadinessProbe == nil {
			continue
		}
		for {
			err := Probe(ctx, &c, c.ReadinessProbe)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("container %s never became ready: %v", c.Name, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	for _, c := range r.Pod.Spec.Containers {
		if c.LivenessProbe != nil {
			if err := Probe(ctx, &c, c.LivenessProbe); err != nil {
				t.Errorf("container %s fails its liveness probe (the kubelet would restart it): %v", c.Name, err)
			}
		}
	}
	return pl
}

// serviceAccountFiles applies the manifest's ServiceAccounts, requests a
// token for the Pod's (TokenRequest, as the kubelet's projected volume
// does) and writes what that volume holds: token, ca.crt, namespace.
func serviceAccountFiles(t *testing.T, ctx context.Context, m *Manifest) string {
	t.Helper()
	ns, sa := m.Deployment.Namespace, m.Deployment.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		t.Fatal("the Deployment's Pod names no serviceAccountName")
	}
	tmp := t.TempDir()
	for _, acct := range m.ServiceAccounts {
		acct.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}
		data, err := yaml.Marshal(acct)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(tmp, "sa-"+acct.Name+".yaml")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Kubectl(ctx, "apply", "-f", f); err != nil {
			t.Fatal(err)
		}
	}
	token, err := sb.Kubectl(ctx, "create", "token", sa, "--namespace", ns, "--duration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "serviceaccount")
	// World-readable: the containers run as uid 65532.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"token": []byte(strings.TrimSpace(token)), "ca.crt": sb.CA.CertPEM, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// flagValue is the value of --name=V or --name V in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// whoamiEqualsDirect: a user with groups sees the same identity through
// the Pod as straight at the apiserver.
func whoamiEqualsDirect(t *testing.T, ctx context.Context, pl *played) {
	cert, key := sb.ClientCert("deploy-user", "deploy-team", "deploy-oncall")
	whoami := func(server string) string {
		kc := filepath.Join(t.TempDir(), "user.kubeconfig")
		if err := sb.WriteKubeconfig(kc, server, cert, key); err != nil {
			t.Fatal(err)
		}
		out, err := sb.KubectlWith(ctx, kc, 20*time.Second, "auth", "whoami", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var review struct {
			Status struct {
				UserInfo json.RawMessage `json:"userInfo"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &review); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(review.Status.UserInfo)
	}
	through, direct := whoami(pl.gatewayURL), whoami(sb.ReplicaURLs[0])
	if through != direct {
		t.Errorf("auth whoami through the Pod = %s, direct = %s", through, direct)
	}
	if !strings.Contains(direct, `"deploy-user"`) {
		t.Errorf("auth whoami direct = %s, want user deploy-user", direct)
	}
}

// watchSurvivesEdit: a watch opened through the Pod before an
// UpstreamCluster edit (outlier detection's base ejection time, which the
// Pod's Envoy takes as a cluster update) still delivers an event created after it, on the same stream.
func watchSurvivesEdit(t *testing.T, ctx context.Context, pl *played) {
	cfg := sb.RESTConfig(pl.gatewayURL, sb.AdminCertPEM, sb.AdminKeyPEM)
	cfg.Timeout = 0 // a controller's watch: no request timeout
	cms := sandbox.Clientset(t, cfg).CoreV1().ConfigMaps(metav1.NamespaceDefault)
	w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "frontdoor-test=deploy-edit"})
	if err != nil {
		t.Fatal(err)
	}
	// The drain below counts in-flight requests: end this one first.
	defer w.Stop()

	if _, err := sb.Kubectl(ctx, "patch", "upstreamcluster", sandbox.ClusterName, "--type=merge",
		"-p", `{"spec":{"outlierDetection":{"baseEjectionTime":"7s"}}}`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		dump, err := envoyAdminGet(ctx, pl.adminURL+"/config_dump?resource=dynamic_active_clusters")
		if err == nil && strings.Contains(dump, `"base_ejection_time": "7s"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Pod's Envoy did not take the edit (base ejection time 7s) within 20 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	direct := sandbox.Clientset(t, sb.DirectConfig(1, sb.AdminCertPEM, sb.AdminKeyPEM)).CoreV1().ConfigMaps(metav1.NamespaceDefault)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "deploy-edit-" + randSuffix(), Labels: map[string]string{"frontdoor-test": "deploy-edit"}}}
	if _, err := direct.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch ended after the edit")
		}
		if got, isCM := ev.Object.(*corev1.ConfigMap); ev.Type != watch.Added || !isCM || got.Name != cm.Name {
			t.Fatalf("the watch delivered %s %T, want ADDED %s", ev.Type, ev.Object, cm.Name)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the watch opened before the edit delivered nothing within 15 s of a create")
	}
}

func envoyAdminGet(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}

// drainWatchSeconds bounds the watch open across the drain: the apiserver
// ends it cleanly after this long, which the drain must wait for (a drain
// that does not wait, or no drain at all, resets it).
const drainWatchSeconds = 8

// stopDrains stops the Pod as the kubelet does and checks the drain.
func stopDrains(t *testing.T, ctx context.Context, pl *played) {
	var hooks int
	for _, c := range pl.r.Pod.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			hooks++
		}
	}
	if hooks == 0 {
		t.Fatal("no container of the Pod has a preStop hook: on pod stop Envoy gets SIGTERM at once and every open connection is reset (README \"Graceful drain\": Envoy's preStop runs frontdoor drain)")
	}

	// A watch through the Pod that the apiserver ends after
	// drainWatchSeconds, read as raw HTTP/2 so a clean end (EOF after the
	// last event) is told apart from a reset.
	client, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 0
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/default/configmaps?watch=1&labelSelector=frontdoor-test%%3Ddeploy-drain&timeoutSeconds=%d",
		pl.gatewayURL, drainWatchSeconds), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("watch through the Pod: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	type watchEnd struct {
		names []string
		err   error
	}
	ended := make(chan watchEnd, 1)
	go func() {
		defer resp.Body.Close()
		var end watchEnd
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev struct {
				Type   string
				Object struct{ Metadata struct{ Name string } }
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err == nil {
				end.names = append(end.names, ev.Type+" "+ev.Object.Metadata.Name)
			}
		}
		end.err = sc.Err()
		ended <- end
	}()

	var (
		hookResults []HookResult
		stopErr     error
		stopped     = make(chan struct{})
		once        sync.Once
	)
	start := time.Now()
	go func() {
		defer once.Do(func() { close(stopped) })
		hookResults, stopErr = StopPod(ctx, pl.p, pl.r.Pod)
	}()

	// During the drain: frontdoor reports not-ready (SIGTERM), and the
	// watch keeps delivering events.
	time.Sleep(time.Second)
	var readiness []string
	for _, c := range pl.r.Pod.Spec.Containers {
		if c.ReadinessProbe != nil {
			err := Probe(ctx, &c, c.ReadinessProbe)
			readiness = append(readiness, fmt.Sprintf("%s: %v", c.Name, err))
			if c.ReadinessProbe.HTTPGet != nil && err == nil {
				t.Errorf("container %s still passes its readiness probe while the Pod terminates: the Service keeps sending it connections", c.Name)
			}
		}
	}
	t.Logf("readiness during the drain: %v", readiness)
	direct := sandbox.Clientset(t, sb.DirectConfig(1, sb.AdminCertPEM, sb.AdminKeyPEM)).CoreV1().ConfigMaps(metav1.NamespaceDefault)
	name := "deploy-drain-" + randSuffix()
	if _, err := direct.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"frontdoor-test": "deploy-drain"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var end watchEnd
	select {
	case end = <-ended:
	case <-time.After(drainWatchSeconds*time.Second + 20*time.Second):
		t.Fatal("the watch did not end")
	}
	<-stopped
	took := time.Since(start)
	t.Logf("watch through the draining Pod: events %v, ended after %v with %v", end.names, took.Round(time.Millisecond), end.err)
	if end.err != nil && !errors.Is(end.err, io.EOF) {
		t.Errorf("the watch open across the drain ended with %v, want a clean end when the apiserver closes it", end.err)
	}
	if !strings.Contains(strings.Join(end.names, ","), "ADDED "+name) {
		t.Errorf("the watch open across the drain missed the ConfigMap created during it (events %v)", end.names)
	}
	var drained bool
	for _, h := range hookResults {
		t.Logf("preStop of %s: after %v, %v, output %q", h.Container, h.Took.Round(time.Millisecond), h.Err, h.Output)
		if h.Err != nil {
			t.Errorf("preStop hook of %s failed: %v", h.Container, h.Err)
		}
		// frontdoor drain waits while a request is in flight: the watch
		// above was, until the apiserver ended it.
		if strings.Contains(h.Output, "envoy draining") {
			drained = true
			if !strings.Contains(h.Output, "envoy drained: no request in flight") {
				t.Errorf("the preStop of %s did not wait for the in-flight watch to end (frontdoor drain's log: %q)", h.Container, h.Output)
			}
		}
	}
	if !drained {
		t.Error("no preStop hook ran frontdoor drain (its log says \"envoy draining\")")
	}
	if stopErr != nil {
		t.Errorf("stopping the Pod: %v", stopErr)
	}
	grace := time.Duration(*pl.r.Pod.Spec.TerminationGracePeriodSeconds) * time.Second
	for _, c := range pl.r.Pod.Spec.Containers {
		code, err := ExitCode(ctx, pl.p, ContainerName(pl.r.Pod.Name, c.Name))
		if err != nil {
			t.Error(err)
			continue
		}
		if code != 0 {
			t.Errorf("container %s exited %d after the stop, want 0 (137: killed at the end of the %v grace period)", c.Name, code, grace)
		}
	}
	if took >= grace {
		t.Errorf("the Pod took %v to stop, the whole grace period (%v)", took, grace)
	}
}

package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/source"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// TestConfigPropagationLatency measures the time from an UpstreamCluster
// update (the PATCH being sent) to Envoy serving the new config (the
// server set in Envoy's admin /clusters changed), over 50 edits that add or
// remove a server. It prints p50/p99/max; the only bar is that every edit
// arrives (within 10 s): the figures depend on the machine's load.
func TestConfigPropagationLatency(t *testing.T) {
	ctx := setup(t, 5*time.Minute)
	const name, edits = "latency", 50
	r1, r2 := sb.ReplicaURLs[0], sb.ReplicaURLs[1]
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: %s}
spec:
  servers: [{endpoint: %q}]
  clientConfig:
    secretRef: {namespace: %[3]s, name: upstream}
  secureServing:
    serverNames: [latency.frontdoor.test]
    secretRef: {namespace: %[3]s, name: serving}
`, name, r1, sandbox.SecretNamespace))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = sb.Kubectl(cctx, "delete", "upstreamcluster", name, "--ignore-not-found")
	})
	waitUC(t, ctx, name, 30*time.Second, "Programmed", func(uc *v1alpha1.UpstreamCluster) bool { return programmed(uc) })
	waitEnvoy(t, ctx, name, 10*time.Second, "one server", func(h map[string]string) bool { return len(h) == 1 })

	dyn, err := dynamic.NewForConfig(adminDirect())
	if err != nil {
		t.Fatal(err)
	}
	ucs := dyn.Resource(v1alpha1.UpstreamClusterResource)
	var lat []time.Duration
	for i := range edits {
		urls := []string{r1}
		if i%2 == 0 {
			urls = append(urls, r2)
		}
		// From sending the update (its response may arrive after Envoy
		// already has the change) to Envoy having it.
		start := time.Now()
		if _, err := ucs.Patch(ctx, name, types.MergePatchType, []byte(serversPatch(urls...)), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		for {
			h, err := envoyHosts(ctx, name)
			if err == nil && len(h) == len(urls) {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("edit %d: Envoy did not follow within 10 s (hosts %v)", i, h)
			}
			time.Sleep(10 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1)+0.5)] }
	t.Logf("CRD update → Envoy serving it, %d edits (debounce %v, Envoy /clusters polled every 10 ms): p50 %v, p99 %v, max %v, min %v",
		edits, source.DefaultDebounce, p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond), lat[0].Round(time.Millisecond))
	over := 0
	for _, d := range lat {
		if d > 2*time.Second {
			over++
		}
	}
	t.Logf("edits slower than 2 s: %d of %d; all: %v", over, edits, lat)
}

// TestManifestsApplyServerSide: every shipped manifest is accepted by the
// sandbox apiserver with --dry-run=server (the CRDs are installed for real
// by the sandbox), so RBAC, Deployment, Service and examples are valid.
func TestManifestsApplyServerSide(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := func(p string) string { return filepath.Join(root, "manifests", p) }
	out := kubectl(t, ctx, "apply", "--dry-run=server",
		"-f", m("crds"), "-f", m("deploy"), "-f", m("rbac"), "-f", m("examples"))
	t.Logf("kubectl apply --dry-run=server:\n%s", out)
}

// TestClusterEditIsServedPromptly: an edit that changes the Envoy cluster
// itself (here outlier detection's base ejection time; the health check is
// frontdoor's own prober now, not in the Envoy cluster), not only its
// endpoints, is
// active in Envoy within 3 s. Over delta ADS an unchanged endpoint resource
// is not resent, so a rebuilt cluster used to wait out Envoy's 15 s initial
// fetch timeout before taking traffic; the translator now renames a
// cluster's endpoints whenever the cluster changes.
func TestClusterEditIsServedPromptly(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const name = "cluster-edit"
	applyYAML(t, ctx, fmt.Sprintf(`apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: %s}
spec:
  servers: [{endpoint: %q}, {endpoint: %q}]
  clientConfig:
    secretRef: {namespace: %[4]s, name: upstream}
  secureServing:
    serverNames: [cluster-edit.frontdoor.test]
    secretRef: {namespace: %[4]s, name: serving}
  outlierDetection: {baseEjectionTime: 1s}
`, name, sb.ReplicaURLs[0], sb.ReplicaURLs[1], sandbox.SecretNamespace))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = sb.Kubectl(cctx, "delete", "upstreamcluster", name, "--ignore-not-found")
	})
	waitUC(t, ctx, name, 30*time.Second, "Programmed", func(uc *v1alpha1.UpstreamCluster) bool { return programmed(uc) })

	for i, interval := range []string{"2s", "3s", "1s", "2s"} {
		start := time.Now()
		patchUC(t, ctx, name, fmt.Sprintf(`{"spec":{"outlierDetection":{"baseEjectionTime":%q}}}`, interval))
		for {
			got, err := activeBaseEjectionTime(ctx, name+"/default")
			if err == nil && got == interval {
				break
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("edit %d (base ejection time %s): Envoy's active cluster still has %q (err %v) after 3 s", i, interval, got, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("edit %d (base ejection time %s): active in Envoy after %v", i, interval, time.Since(start).Round(time.Millisecond))
	}
}

// activeBaseEjectionTime reads outlier detection's base ejection time of an
// active (warmed) cluster from Envoy's config dump.
func activeBaseEjectionTime(ctx context.Context, cluster string) (string, error) {
	body, err := sb.EnvoyAdmin(ctx, "/config_dump?resource=dynamic_active_clusters")
	if err != nil {
		return "", err
	}
	var dump struct {
		Configs []struct {
			Cluster struct {
				Name             string `json:"name"`
				OutlierDetection *struct {
					BaseEjectionTime string `json:"base_ejection_time"`
				} `json:"outlier_detection"`
			} `json:"cluster"`
		} `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		return "", err
	}
	for _, c := range dump.Configs {
		if c.Cluster.Name == cluster && c.Cluster.OutlierDetection != nil {
			return c.Cluster.OutlierDetection.BaseEjectionTime, nil
		}
	}
	return "", fmt.Errorf("cluster %s not active", cluster)
}

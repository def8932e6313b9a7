package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// gatewayCluster is the Envoy cluster of the sandbox's default route.
const gatewayCluster = "sandbox/default"

// kubectl pointed at the gateway works exactly as against an apiserver.
func TestKubectlGetNamespacesThroughGateway(t *testing.T) {
	ctx := setup(t, time.Minute)
	out := kubectl(t, ctx, sb.AdminKubeconfig, "get", "namespaces", "-o", "name")
	for _, ns := range []string{"namespace/default", "namespace/kube-system"} {
		if !strings.Contains(out, ns) {
			t.Errorf("kubectl get namespaces through the gateway lacks %s; got:\n%s", ns, out)
		}
	}
}

// client-go can create, read, update, list and delete objects through the
// gateway, with the writes visible to every replica (they share etcd).
func TestConfigMapCRUDThroughGateway(t *testing.T) {
	ctx := setup(t, time.Minute)
	cs := sandbox.Clientset(t, adminUser().gateway())
	cms := cs.CoreV1().ConfigMaps(metav1.NamespaceDefault)
	name := fmt.Sprintf("e2e-crud-%d", time.Now().UnixNano())

	created, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e": "crud"}},
		Data:       map[string]string{"k": "v1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v1" {
		t.Fatalf("get: %v, data %v", err, got.Data)
	}
	created.Data["k"] = "v2"
	if _, err := cms.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "e2e=crud"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != name || list.Items[0].Data["k"] != "v2" {
		t.Fatalf("list returned %d items (%+v), want just %s with k=v2", len(list.Items), list.Items, name)
	}
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	// Read back directly from a replica: the delete really happened.
	direct := sandbox.Clientset(t, adminUser().direct())
	if _, err := direct.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete, direct get returned %v, want NotFound", err)
	}
}

// One client on one HTTP/2 connection still has its requests spread over
// all replicas: Envoy balances per request, not per connection (a plain L4
// balancer would pin all of them to one replica).
func TestRequestsSpreadOverAllReplicas(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	const n = 300
	cs := sandbox.Clientset(t, adminUser().gateway())
	name := createConfigMap(t, ctx, cs, "e2e-spread")
	filter := map[string]string{"resource": "configmaps", "verb": "GET"}

	before, err := sb.ReplicaRequestCounts(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := cs.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	deltas, err := replicaDeltas(ctx, filter, before, func(deltas []float64) bool {
		var total float64
		for _, d := range deltas {
			total += d
		}
		return total >= n
	})
	if err != nil {
		t.Fatalf("replicas counted %v configmap GETs, want %d in total: %v", deltas, n, err)
	}
	t.Logf("configmap GETs per replica: %v", deltas)
	for i, d := range deltas {
		if d < 0.2*n {
			t.Errorf("replica %d served %v of %d GETs, want at least 20%% (all: %v)", i+1, d, n, deltas)
		}
	}
}

// When a replica dies, frontdoor's health probes take it out of rotation
// (EDS health status) within seconds and every client request keeps
// succeeding on the others.
func TestKilledReplicaLeavesRotation(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	const victim = 3
	hostPort := strings.TrimPrefix(sb.ReplicaURLs[victim-1], "https://")
	cs := sandbox.Clientset(t, adminUser().gateway())
	name := createConfigMap(t, ctx, cs, "e2e-failover")

	if err := sb.StopReplica(victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bring the replica back for the tests that follow, and wait until
		// Envoy sends it traffic again.
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		restartReplica(t, cctx, victim, hostPort)
	})

	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := waitHostHealth(hctx, hostPort, func(flags []string) bool {
		if len(flags) == 0 {
			return false
		}
		for _, f := range flags {
			if !strings.Contains(f, "failed_eds_health") {
				return false
			}
		}
		return true
	}); err != nil {
		clusters, _ := sb.EnvoyAdmin(ctx, "/clusters")
		t.Fatalf("Envoy did not mark %s failed_eds_health within 10s: %v\n/clusters:\n%s", hostPort, err, clusters)
	}
	for i := range 100 {
		if _, err := cs.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("request %d after replica %d died: %v", i, victim, err)
		}
	}
}

// replicaDeltas polls each replica's apiserver_request_total matching
// filter until done accepts the counts since before (one per replica), for
// up to 10 s: an apiserver counts a request after answering it, so the last
// ones take a moment to land. It returns the last deltas either way.
func replicaDeltas(ctx context.Context, filter map[string]string, before []float64, done func([]float64) bool) ([]float64, error) {
	var deltas []float64
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := poll(pctx, 200*time.Millisecond, func() (bool, error) {
		after, err := sb.ReplicaRequestCounts(ctx, filter)
		if err != nil {
			return false, err
		}
		deltas = make([]float64, len(after))
		for i := range after {
			deltas[i] = after[i] - before[i]
		}
		return done(deltas), nil
	})
	return deltas, err
}

// waitHostHealth polls Envoy's /clusters until ok accepts the health_flags
// of every line for hostPort in the gateway cluster.
func waitHostHealth(ctx context.Context, hostPort string, ok func(flags []string) bool) error {
	return waitClusterHostHealth(ctx, gatewayCluster, 200*time.Millisecond, hostPort, ok)
}

// waitClusterHostHealth is waitHostHealth for any Envoy cluster, polling
// every interval.
func waitClusterHostHealth(ctx context.Context, cluster string, interval time.Duration, hostPort string, ok func(flags []string) bool) error {
	var last []string
	err := poll(ctx, interval, func() (bool, error) {
		text, err := sb.EnvoyAdmin(ctx, "/clusters")
		if err != nil {
			return false, nil // Envoy busy; try again
		}
		last = hostHealthFlags(text, cluster, hostPort)
		return ok(last), nil
	})
	if err != nil {
		return fmt.Errorf("%w (last health_flags: %q)", err, last)
	}
	return nil
}

// hostHealthFlags returns the health_flags values of a host in Envoy's
// /clusters text ("cluster::host:port::health_flags::/failed_active_hc").
func hostHealthFlags(text, cluster, hostPort string) []string {
	prefix := cluster + "::" + hostPort + "::health_flags::"
	var flags []string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			flags = append(flags, v)
		}
	}
	return flags
}

func allEqual(values []string, want string) bool {
	for _, v := range values {
		if v != want {
			return false
		}
	}
	return true
}

// createConfigMap creates a uniquely named ConfigMap in default and deletes
// it when the test ends.
func createConfigMap(t *testing.T, ctx context.Context, cs *kubernetes.Clientset, prefix string) string {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a ConfigMap: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = sandbox.Clientset(t, adminUser().direct()).CoreV1().ConfigMaps(metav1.NamespaceDefault).Delete(ctx, cm.Name, metav1.DeleteOptions{})
	})
	return cm.Name
}

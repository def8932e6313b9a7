package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestRepoRootSkipsTheTestsModule: run from inside tests/ (its own module),
// RepoRoot still finds the product module, where bin/ and _sandbox/ are.
func TestRepoRootSkipsTheTestsModule(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if root != want {
		t.Errorf("RepoRoot() = %s, want %s (the directory above tests/)", root, want)
	}
}

// TestControlPlaneOnly checks the part of the harness every e2e test stands
// on, without frontdoor: one etcd and one apiserver come up, the gateway's
// RBAC is applied, request counts are readable per replica, and a replica
// can be killed and restarted on the same port. Stop leaves nothing running.
func TestControlPlaneOnly(t *testing.T) {
	ctx := SlowTest(t, "etcd and kube-apiserver", 3*time.Minute)
	var progress strings.Builder
	s, err := Start(ctx, Options{Dir: t.TempDir(), Replicas: 1, SkipGateway: true, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	t.Log(progress.String())
	for _, want := range []string{">> etcd on 127.0.0.1:", ">> kube-apiserver replica 1 on 127.0.0.1:"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}

	cs := kubernetes.NewForConfigOrDie(s.DirectConfig(1, s.AdminCertPEM, s.AdminKeyPEM))
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, GatewayUser, metav1.GetOptions{}); err != nil {
		t.Fatalf("gateway binding: %v", err)
	}
	before, err := s.ReplicaRequestCounts(ctx, map[string]string{"resource": "namespaces", "verb": "GET"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.ReplicaRequestCounts(ctx, map[string]string{"resource": "namespaces", "verb": "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if d := after[0] - before[0]; d < 5 {
		t.Errorf("replica 1 counted %v namespace GETs, want >= 5", d)
	}

	if err := s.StopReplica(1); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err == nil {
		t.Fatal("replica 1 still answers after StopReplica")
	}
	if err := s.StartReplica(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("after StartReplica: %v", err)
	}
	for _, f := range []string{s.AdminKubeconfig, s.DirectKubeconfig, s.EndpointsEnv} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}

	s.Stop()
	s.Stop() // twice is fine
	for _, p := range s.all() {
		if exited, _ := p.exited(); !exited {
			t.Errorf("%s still running after Stop", p.name)
		}
	}
}

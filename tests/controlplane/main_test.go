// Package controlplane tests Frontdoor's Kubernetes mode end to end: the
// sandbox (real etcd, kube-apiservers, frontdoor and Envoy) runs
// `frontdoor serve --kubeconfig` against its own apiserver, with the
// UpstreamCluster CRD installed and the sandbox's UpstreamCluster applied
// by kubectl. Every test edits CRDs with kubectl or client-go and asserts
// what Envoy does, and what the status says.
package controlplane

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

var sb *sandbox.Sandbox

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, "controlplane", sandbox.Options{Progress: os.Stderr, Mode: sandbox.ModeKubernetes}, func(s *sandbox.Sandbox) { sb = s }))
}

// setup skips without a sandbox and prints the tails of the frontdoor and
// Envoy logs on failure (sandbox.TestContext).
func setup(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	return sandbox.TestContext(t, sb, timeout, func(name string) int {
		if name == "frontdoor" || name == "envoy" {
			return 30
		}
		return 0
	})
}

func kubectl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := sb.Kubectl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyYAML writes doc to a file and applies it with kubectl.
func applyYAML(t *testing.T, ctx context.Context, doc string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obj.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, ctx, "apply", "-f", p)
}

func adminDirect() *rest.Config { return sb.DirectConfig(1, sb.AdminCertPEM, sb.AdminKeyPEM) }

func adminGateway() *rest.Config { return sb.GatewayConfig(sb.AdminCertPEM, sb.AdminKeyPEM) }

// getUC reads an UpstreamCluster straight from replica 1.
func getUC(ctx context.Context, name string) (*v1alpha1.UpstreamCluster, error) {
	dyn, err := dynamic.NewForConfig(adminDirect())
	if err != nil {
		return nil, err
	}
	u, err := dyn.Resource(v1alpha1.UpstreamClusterResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	uc := &v1alpha1.UpstreamCluster{}
	return uc, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, uc)
}

func cond(uc *v1alpha1.UpstreamCluster, typ string) metav1.Condition {
	for _, c := range uc.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// waitUC polls the UpstreamCluster until ok accepts it.
func waitUC(t *testing.T, ctx context.Context, name string, timeout time.Duration, what string, ok func(*v1alpha1.UpstreamCluster) bool) *v1alpha1.UpstreamCluster {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *v1alpha1.UpstreamCluster
	for {
		uc, err := getUC(ctx, name)
		if err == nil {
			last = uc
			if ok(uc) {
				return uc
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("UpstreamCluster %s: %s not reached in %s; last: generation %d status %+v (err %v)", name, what, timeout, last.GetGeneration(), last.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// programmed: every condition True for the current generation.
func programmed(uc *v1alpha1.UpstreamCluster) bool {
	if uc.Status.ObservedGeneration != uc.Generation || len(uc.Status.Conditions) < 3 {
		return false
	}
	for _, c := range uc.Status.Conditions {
		if c.Status != metav1.ConditionTrue || c.ObservedGeneration != uc.Generation {
			return false
		}
	}
	return true
}

// envoyHosts returns the host:port addresses Envoy has in cluster
// "<uc>/default", with their health flags.
func envoyHosts(ctx context.Context, uc string) (map[string]string, error) {
	text, err := sb.EnvoyAdmin(ctx, "/clusters")
	if err != nil {
		return nil, err
	}
	hosts := map[string]string{}
	prefix := uc + "/default::"
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		parts := strings.SplitN(rest, "::", 3)
		if len(parts) != 3 {
			continue
		}
		if h, _, err := net.SplitHostPort(parts[0]); err != nil || net.ParseIP(h) == nil {
			continue // a cluster-wide line (default_priority::..., added_via_api::...)
		}
		if parts[1] == "health_flags" {
			hosts[parts[0]] = parts[2]
		} else if _, seen := hosts[parts[0]]; !seen {
			hosts[parts[0]] = ""
		}
	}
	return hosts, nil
}

func hostPort(url string) string { return strings.TrimPrefix(url, "https://") }

// extraReplicas returns the numbers of n replicas beyond the sandbox's
// three, starting any that tests have not started yet. They listen on every
// interface, so EndpointSlices can name them by a non-loopback address.
func extraReplicas(t *testing.T, ctx context.Context, n int) []int {
	t.Helper()
	for len(sb.ReplicaURLs) < 3+n {
		if _, _, err := sb.AddReplicaBound(ctx, "0.0.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	var out []int
	for i := 4; i < 4+n; i++ {
		out = append(out, i)
	}
	return out
}

// hostIP is a non-loopback IPv4 address of this machine.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address for EndpointSlices to name")
	return ""
}

package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

var sb *sandbox.Sandbox

// TestMain starts etcd and one kube-apiserver (no gateway: the dry-run
// needs only an apiserver), except under -short.
func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, "chart", sandbox.Options{Progress: os.Stderr, Replicas: 1, SkipGateway: true}, func(s *sandbox.Sandbox) { sb = s }))
}

// prerequisites is the release namespace and the least of prometheus-operator's ServiceMonitor
// CRD that lets the apiserver accept one (the sandbox has no
// prometheus-operator); the real schema is checked by the operator's
// admission, not here.
const prerequisites = `apiVersion: v1
kind: Namespace
metadata: {name: ` + releaseNamespace + `}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestChartDryRunServer: for every value set of ci/ (defaults included), helm
// template (with the CRDs) piped into kubectl apply --dry-run=server is
// accepted by a real kube-apiserver: every object validates against the
// apiserver's schemas and admission, RBAC included. The release namespace
// and the namespaces value sets name exist for real (a dry run cannot
// create a namespace and use it); so does a minimal ServiceMonitor CRD.
func TestChartDryRunServer(t *testing.T) {
	ctx := sandbox.TestContext(t, sb, 3*time.Minute, func(name string) int {
		if name == "apiserver-1" {
			return 20
		}
		return 0
	})
	crd := filepath.Join(t.TempDir(), "prerequisites.yaml")
	if err := os.WriteFile(crd, []byte(prerequisites), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"apply", "-f", crd},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com"},
	} {
		if _, err := sb.Kubectl(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range valueSets(t) {
		flags := []string{"--include-crds", "-f", f}
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := template(t, flags...)
			if err != nil {
				t.Fatal(err)
			}
			o := parse(t, out)
			for _, k := range []string{"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount"} {
				if o.kinds()[k] == 0 {
					t.Fatalf("the rendering has no %s: %v", k, o.kinds())
				}
			}
			p := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := sb.Kubectl(ctx, "apply", "--dry-run=server", "-f", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kubectl apply --dry-run=server (%d objects):\n%s", len(o), res)
		})
	}

	// The apiserver, not only the client, judges: a negative replica count
	// renders but is refused.
	t.Run("a value the apiserver refuses", func(t *testing.T) {
		out, err := template(t, "--set", "replicaCount=-1")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "rendered.yaml")
		if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := sb.Kubectl(ctx, "apply", "--dry-run=server", "-f", p)
		if err == nil || !strings.Contains(err.Error(), "spec.replicas") {
			t.Errorf("replicas -1 accepted by the dry run (err %v):\n%s", err, res)
		}
	})
}

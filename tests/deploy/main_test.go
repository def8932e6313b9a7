package deploy

import (
	"os"
	"testing"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// sb is the package's sandbox: etcd and one kube-apiserver with the
// control plane installed (Kubernetes mode: the CRD, control-plane RBAC,
// the Secrets and the sandbox UpstreamCluster), which the played Pod's
// frontdoor watches through its in-cluster config. The sandbox's own
// gateway runs too; the tests never use it.
var sb *sandbox.Sandbox

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, "deploy", sandbox.Options{
		Progress: os.Stderr, Replicas: 1, Mode: sandbox.ModeKubernetes,
	}, func(s *sandbox.Sandbox) { sb = s }))
}

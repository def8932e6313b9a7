package xds

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports: xds serves; it reads no Kubernetes API (client-go is the
// Kubernetes source's) and does not reach into the sources or the health
// poller.
func TestImports(t *testing.T) {
	deps, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/kubefrontdoor/frontdoor"
	for _, d := range strings.Fields(string(deps)) {
		// PEM parsing that kube-apiserver's own AuthenticationConfiguration
		// validation brings in through the translator (translator/jwt.go):
		// no client, no I/O.
		if d == "k8s.io/client-go/util/cert" || d == "k8s.io/client-go/util/keyutil" {
			continue
		}
		for _, banned := range []string{"k8s.io/client-go", module + "/source", module + "/health", module + "/envoy/admin"} {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("xds depends on %s", d)
			}
		}
	}
}

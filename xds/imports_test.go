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
		for _, banned := range []string{"k8s.io/client-go", module + "/source", module + "/health", module + "/envoy/admin"} {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("xds depends on %s", d)
			}
		}
	}
}

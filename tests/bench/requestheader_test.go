package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The frontdoor-requestheader path's cluster is the sandbox's, renamed,
// chosen by its own SNI, with identityForwarding: RequestHeader under
// clientConfig (replacing any the sandbox's had).
func TestRequestHeaderClusterYAML(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := "apiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\nmetadata:\n  name: " + sandbox.ClusterName + "\nspec:\n" +
		"  servers:\n  - endpoint: \"https://127.0.0.1:1\"\n  clientConfig:\n    secretRef: {namespace: ns, name: upstream}\n" +
		"    identityForwarding: Impersonation\n  secureServing:\n    secretRef: {namespace: ns, name: serving}\n"
	if err := os.WriteFile(filepath.Join(dir, "config", "upstreamcluster-"+sandbox.ClusterName+".yaml"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := requestHeaderCluster.writeForwarding(dir, dir, requestHeaderCluster.forwarding); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "upstreamcluster-"+requestHeaderCluster.name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\nmetadata:\n  name: bench-requestheader\nspec:\n" +
		"  servers:\n  - endpoint: \"https://127.0.0.1:1\"\n  clientConfig:\n    identityForwarding: RequestHeader\n    secretRef: {namespace: ns, name: upstream}\n" +
		"  secureServing:\n    serverNames: [requestheader.sandbox.test]\n    secretRef: {namespace: ns, name: serving}\n  requestService: ExtAuthz\n"
	if string(got) != want {
		t.Errorf("cluster YAML:\n%s\nwant:\n%s", got, want)
	}
	if strings.Count(string(got), "identityForwarding") != 1 {
		t.Errorf("identityForwarding not replaced:\n%s", got)
	}
}

package abi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// InValidationMode is what `envoy --mode validate` says it is: the test
// module's config fails unless Envoy only validates, so validation passes
// and serving the same bootstrap fails. This pins the callback's presence
// and meaning (a wrong declaration would flip or crash one of the two).
func TestInValidationMode(t *testing.T) {
	first, second, p := newFixtureParts(t)
	o := bootOpts{module: testModule(t), filterName: "frontdoor-test", filterConfig: `{"failUnlessValidating":true}`,
		pki: p, first: first, second: second, port: testenv.MustFreePort(t)}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(cfg, o.bootstrap(""), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(envoyBinary(t), "--mode", "validate", "-c", cfg, "--use-dynamic-base-id").CombinedOutput()
	if err != nil {
		t.Fatalf("envoy --mode validate rejected the config (InValidationMode false while validating): %v\n%s", err, out)
	}

	e := newEnvoy(t, o, "")
	if _, exited := e.waitExit(30 * time.Second); !exited {
		t.Fatal("Envoy serves a config that fails unless validating (InValidationMode true while serving)")
	}
	if !strings.Contains(e.logText(), "testmodule: not validating") {
		t.Errorf("Envoy failed for another reason:\n%s", e.logTail(15))
	}
}

// Package testenv finds the repository and the real binaries tests run
// (bin/envoy, bin/etcd, bin/kube-apiserver, bin/frontdoor, ...), for tests
// only: the product module's unit tests and the tests module both use it,
// so they agree on where bin/ is whatever directory `go test` runs in.
//
// It imports only the standard library, and no product package imports it
// outside _test.go files.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// modulePath is the product module's path, as its go.mod declares it.
const modulePath = "github.com/kubefrontdoor/frontdoor"

// RepoRoot finds the product module's root by walking up from the working
// directory, past tests/go.mod and any other nested module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the frontdoor repository root (go.mod of " + modulePath + ") above the working directory")
		}
		dir = parent
	}
}

// Binary is the path of bin/<name>; an error, saying how to get it, if it
// is missing. envoy, etcd, kube-apiserver and kubectl come from `make tools`,
// frontdoor and libfrontdoor.so from `make build`.
func Binary(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "bin", name)
	if _, err := os.Stat(path); err != nil {
		how := "make tools"
		if name == "frontdoor" || name == "libfrontdoor.so" {
			how = "make build"
		}
		return "", fmt.Errorf("%s not found: run %s", path, how)
	}
	return path, nil
}

// RunEnvoy starts bin/envoy on the bootstrap file with --use-dynamic-base-id,
// --log-level warn and args, its output in envoy.log beside the bootstrap,
// and stops that process (and only it) when tb ends, printing its log if tb
// failed. It returns the log's path; see WaitEnvoyReady.
func RunEnvoy(tb testing.TB, bootstrap string, args ...string) string {
	tb.Helper()
	bin, err := Binary("envoy")
	if err != nil {
		tb.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(bootstrap), "envoy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"-c", bootstrap, "--use-dynamic-base-id", "--log-level", "warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if tb.Failed() {
			out, _ := os.ReadFile(logPath)
			tb.Logf("envoy log (%s):\n%s", logPath, out)
		}
	})
	return logPath
}

// RunEnvoyConfig writes config (an Envoy bootstrap as JSON) to a temporary
// file, runs Envoy on it with one worker (RunEnvoy) and waits until its
// admin interface on 127.0.0.1:adminPort is ready (WaitEnvoyReady).
func RunEnvoyConfig(tb testing.TB, config []byte, adminPort int) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "envoy.json")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		tb.Fatal(err)
	}
	logPath := RunEnvoy(tb, path, "--concurrency", "1")
	WaitEnvoyReady(tb, "http://127.0.0.1:"+strconv.Itoa(adminPort), logPath)
}

// WaitEnvoyReady waits up to 30 s until the Envoy whose admin interface is
// at adminURL (http://host:port) answers /ready with 200; it fails tb with
// the log at logPath otherwise.
func WaitEnvoyReady(tb testing.TB, adminURL, logPath string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			out, _ := os.ReadFile(logPath)
			tb.Fatalf("envoy not ready at %s/ready:\n%s", adminURL, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

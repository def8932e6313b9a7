package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// The objects `frontdoor import kubegateway` makes of KubeGateway's
// documented examples (importer/kubegateway/testdata/in, all but our own
// quirks.yaml, which leaves placeholders unfilled on purpose) pass
// `frontdoor check`: every UpstreamCluster accepted, every Secret resolved.
func TestImportKubeGatewayExamplesPassCheck(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("..", "..", "importer", "kubegateway", "testdata", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		if filepath.Base(in) == "quirks.yaml" {
			continue
		}
		t.Run(filepath.Base(in), func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			if err := runImport([]string{"kubegateway", "-f", in, "-o", dir}, nil, &stdout, &stderr); err != nil {
				t.Fatalf("import: %v\n%s", err, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("with -o, stdout should be empty, got %q", stdout.String())
			}
			var out bytes.Buffer
			if err := runCheck([]string{"--config-dir", dir}, &out); err != nil {
				t.Fatalf("check: %v\n%s\nimport report:\n%s", err, out.String(), stderr.String())
			}
			if strings.Contains(out.String(), "REJECTED") || !strings.Contains(out.String(), "accepted") {
				t.Fatalf("check output:\n%s", out.String())
			}
		})
	}
}

// The stream goes to stdout (Secrets first), the report to stderr; input
// that is not YAML or cannot be read fails, fields that cannot be carried
// do not.
func TestImportKubeGatewayStreamAndErrors(t *testing.T) {
	testdata := filepath.Join("..", "..", "importer", "kubegateway", "testdata", "in")
	var stdout, stderr bytes.Buffer
	if err := runImport([]string{"kubegateway", "-f", filepath.Join(testdata, "read-write-separation.yaml")}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "apiVersion: v1\n") || !strings.Contains(stdout.String(), "\n---\napiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\n") {
		t.Errorf("stdout is not Secrets then UpstreamClusters:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "upsteamSubset: converted") {
		t.Errorf("report on stderr lacks the misspelled subset:\n%s", stderr.String())
	}
	in := filepath.Join(testdata, "quirks.yaml")
	stdout.Reset()
	stderr.Reset()
	if err := runImport([]string{"kubegateway", "-f", in}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("uncarried fields must be warnings, not an error: %v", err)
	}
	if !strings.Contains(stderr.String(), "spec.clientConfig.bearerToken: not carried") {
		t.Errorf("report on stderr lacks the bearer token:\n%s", stderr.String())
	}

	var stdin bytes.Buffer
	stdin.WriteString("apiVersion: proxy.kubegateway.io/v1alpha1\nkind: UpstreamCluster\nmetadata: {name: a}\nspec: {servers: [{endpoint: https://10.0.0.1:6443}]\n")
	if err := runImport([]string{"kubegateway", "-f", "-"}, &stdin, &stdout, &stderr); err == nil {
		t.Error("unterminated YAML flow mapping: want an error")
	}
	if err := runImport([]string{"kubegateway", "-f", filepath.Join(t.TempDir(), "missing.yaml")}, nil, &stdout, &stderr); err == nil {
		t.Error("missing file: want an error")
	}
	if err := runImport([]string{"istio", "-f", in}, nil, &stdout, &stderr); err == nil {
		t.Error("unknown source: want an error")
	}
	if err := runImport([]string{"kubegateway", "-f", in, "--request-service", "Lua"}, nil, &stdout, &stderr); err == nil {
		t.Error("bad --request-service: want an error")
	}
}

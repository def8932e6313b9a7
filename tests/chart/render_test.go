// Package chart tests the Helm chart (charts/frontdoor): helm lint --strict,
// the raw manifests being exactly its rendering (the drift check of make
// verify), what each value set renders (the Pod's hardening in every mode,
// images, mode switches, optional objects), the values it refuses, and,
// against a sandbox apiserver, that every value set's objects pass
// kubectl apply --dry-run=server. Only the last needs the sandbox; the rest
// run under -short too (they need bin/helm: make tools).
package chart

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// releaseNamespace is where the tests install (render) the chart.
const releaseNamespace = "frontdoor-system"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "charts", "frontdoor") }

// helmBin is bin/helm; a missing one is a failure (make tools installs it),
// not a skip.
func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run make tools)", p, err)
	}
	return p
}

// helm runs bin/helm and returns stdout; the error carries stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmBin(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valueSets are the chart's ci/*-values.yaml files: the value sets lint,
// render checks and the dry-run cover.
func valueSets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no value sets in %s/ci (%v)", chartDir(t), err)
	}
	return files
}

// template renders the chart as release "frontdoor" in releaseNamespace
// with extra helm flags (-f, --set, --include-crds).
func template(t *testing.T, flags ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", "frontdoor", chartDir(t), "--namespace", releaseNamespace}, flags...)
	return helm(t, args...)
}

// objects is a rendering split into objects.
type objects []*unstructured.Unstructured

func parse(t *testing.T, manifest string) objects {
	t.Helper()
	var out objects
	for _, doc := range strings.Split(manifest, "\n---\n") {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// find returns the object of kind and name, or nil.
func (o objects) find(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

func (o objects) kinds() map[string]int {
	n := map[string]int{}
	for _, u := range o {
		n[u.GetKind()]++
	}
	return n
}

// deployment converts the one Deployment of o.
func (o objects) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	u := o.find("Deployment", "frontdoor")
	if u == nil {
		t.Fatalf("no Deployment frontdoor among %v", o.kinds())
	}
	data, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := yaml.Unmarshal(data, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestChartLint: helm lint --strict passes with the defaults and with every
// value set of ci/.
func TestChartLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir(t)); err != nil {
		t.Errorf("defaults: %v\n%s", err, out)
	}
	for _, f := range valueSets(t) {
		if out, err := helm(t, "lint", "--strict", chartDir(t), "-f", f); err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}

// TestManifestsRenderedFromChart: manifests/deploy,
// manifests/rbac/control-plane.yaml and the chart's copies of the CRDs and
// the dashboard are exactly what tools/manifests.sh (make manifests)
// produces, and the check really fails on drift: with one chart default
// changed in a copy of the tree, --check exits non-zero and shows the
// difference.
func TestManifestsRenderedFromChart(t *testing.T) {
	root := repoRoot(t)
	helmBin(t)
	check := func(dir string) (string, error) {
		cmd := exec.Command("bash", filepath.Join(dir, "tools", "manifests.sh"), "--check")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(root); err != nil {
		t.Fatalf("the tree's manifests are not the chart's rendering: %v\n%s", err, out)
	}

	// A copy of what the script reads, with replicaCount changed in the
	// chart but not re-rendered.
	tmp := t.TempDir()
	for _, p := range []string{"tools/manifests.sh", "charts", "manifests", "bin/helm"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(root, p), filepath.Join(tmp, p)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", p, err, out)
		}
	}
	if out, err := check(tmp); err != nil {
		t.Fatalf("the copy fails the check before any edit: %v\n%s", err, out)
	}
	values := filepath.Join(tmp, "charts", "frontdoor", "values.yaml")
	data, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(data, []byte("\nreplicaCount: 2\n"), []byte("\nreplicaCount: 3\n"), 1)
	if bytes.Equal(edited, data) {
		t.Fatal("values.yaml has no line replicaCount: 2 to edit")
	}
	if err := os.WriteFile(values, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := check(tmp)
	if err == nil {
		t.Fatalf("--check passed with the chart changed and the manifests not:\n%s", out)
	}
	if !strings.Contains(out, "+  replicas: 3") || !strings.Contains(out, "make manifests") {
		t.Errorf("--check failed without showing the drift (replicas: 3) and the fix:\n%s", out)
	}
}

package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

const clusterDoc = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata: {name: NAME}
spec:
  servers: [{endpoint: "https://10.0.0.1:6443"}]
  clientConfig: {secretRef: {namespace: ns, name: upstream}}
  secureServing: {secretRef: {namespace: ns, name: serving}}
`

const secretDoc = `---
# a comment-only document and separators are fine
---
apiVersion: v1
kind: Secret
metadata: {namespace: ns, name: serving}
stringData: {tls.crt: abc}
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func clusterNames(t *testing.T, d *Dir) (names []string, changed bool) {
	t.Helper()
	in, changed, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	for _, uc := range in.UpstreamClusters {
		names = append(names, uc.Name)
	}
	return names, changed
}

// TestDirSourceFollowsEveryKindOfChange: create, edit, atomic rename and
// delete are all seen; an unchanged directory reports no change.
func TestDirSourceFollowsEveryKindOfChange(t *testing.T) {
	dir := t.TempDir()
	d := &Dir{Path: dir}
	writeFile(t, filepath.Join(dir, "a.yaml"), strings.ReplaceAll(clusterDoc, "NAME", "a"))
	writeFile(t, filepath.Join(dir, "secrets.yaml"), secretDoc)
	writeFile(t, filepath.Join(dir, "notes.txt"), "not config")

	names, changed := clusterNames(t, d)
	if !changed || strings.Join(names, ",") != "a" {
		t.Fatalf("first load: names %v changed %v, want [a] true", names, changed)
	}
	in, _ := d.Load()
	if len(in.Secrets) != 1 || string(in.Secrets[0].Data["tls.crt"]) != "abc" {
		t.Fatalf("stringData must fold into data, got %+v", in.Secrets)
	}
	if _, changed := clusterNames(t, d); changed {
		t.Fatal("an unchanged directory must not report a change")
	}

	// Atomic rename over the file, as editors and kubectl cp do.
	tmp := filepath.Join(dir, ".a.yaml.tmp")
	writeFile(t, tmp, strings.ReplaceAll(clusterDoc, "NAME", "a2"))
	if err := os.Rename(tmp, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if names, changed := clusterNames(t, d); !changed || strings.Join(names, ",") != "a2" {
		t.Fatalf("after rename: %v %v, want [a2] true", names, changed)
	}

	writeFile(t, filepath.Join(dir, "b.yml"), strings.ReplaceAll(clusterDoc, "NAME", "b"))
	if names, _ := clusterNames(t, d); strings.Join(names, ",") != "a2,b" {
		t.Fatalf("after create: %v, want [a2 b]", names)
	}
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if names, _ := clusterNames(t, d); strings.Join(names, ",") != "b" {
		t.Fatalf("after delete: %v, want [b]", names)
	}
}

// TestDirSourceKeepsLastGoodObjectsOfABrokenFile: a half-saved or mistyped
// file reports an error and its previous objects keep serving.
func TestDirSourceKeepsLastGoodObjectsOfABrokenFile(t *testing.T) {
	dir := t.TempDir()
	var errs []string
	d := &Dir{Path: dir, OnFileError: func(path string, err error) { errs = append(errs, err.Error()) }}
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, strings.ReplaceAll(clusterDoc, "NAME", "a"))
	if names, _ := clusterNames(t, d); strings.Join(names, ",") != "a" {
		t.Fatalf("got %v", names)
	}
	for _, bad := range []string{
		"apiVersion: frontdoor.dev/v1alpha1\nkind: UpstreamCluster\nspec: {servers: [",               // truncated
		strings.ReplaceAll(clusterDoc, "servers:", "serverz:"),                                       // unknown field
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",                                     // unsupported kind
		strings.ReplaceAll(clusterDoc, "NAME", "a") + "---\napiVersion: v1\nkind: Secret\ndata: 1\n", // one bad doc spoils the file
	} {
		errs = nil
		writeFile(t, path, bad)
		names, _ := clusterNames(t, d)
		if strings.Join(names, ",") != "a" {
			t.Errorf("broken file %q: clusters %v, want the last good [a]", bad, names)
		}
		if len(errs) != 1 {
			t.Errorf("broken file %q: %d errors reported, want 1", bad, len(errs))
		}
	}
}

// recorder is a Publisher that keeps every Update.
type recorder struct {
	mu      sync.Mutex
	updates []translator.Inputs
}

func (r *recorder) Update(_ context.Context, in translator.Inputs) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, in)
	return nil
}
func (r *recorder) LastGood() []*v1alpha1.UpstreamCluster { return nil }
func (r *recorder) Statuses() []translator.Status         { return nil }
func (r *recorder) AcksChanged() <-chan struct{}          { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

// TestDirSourcePublishesOnChange: Run publishes at start (EndpointSlices
// included) and again only when a file changes.
func TestDirSourcePublishesOnChange(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), strings.ReplaceAll(clusterDoc, "NAME", "a"))
	writeFile(t, filepath.Join(dir, "slice.yaml"), `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {namespace: default, name: kubernetes, labels: {kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &recorder{}
	done := make(chan error)
	go func() { done <- (&Dir{Path: dir, Interval: 10 * time.Millisecond}).Run(ctx, p) }()
	waitFor := func(n int) {
		t.Helper()
		for p.count() < n {
			if ctx.Err() != nil {
				t.Fatalf("%d updates, want %d", p.count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(1)
	time.Sleep(100 * time.Millisecond) // ten polls of an unchanged directory
	if n := p.count(); n != 1 {
		t.Fatalf("%d updates of an unchanged directory, want 1", n)
	}
	p.mu.Lock()
	first := p.updates[0]
	p.mu.Unlock()
	if len(first.UpstreamClusters) != 1 || len(first.EndpointSlices) != 1 {
		t.Fatalf("first update: %d clusters, %d slices; want 1, 1", len(first.UpstreamClusters), len(first.EndpointSlices))
	}
	writeFile(t, filepath.Join(dir, "b.yaml"), strings.ReplaceAll(clusterDoc, "NAME", "b"))
	waitFor(2)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

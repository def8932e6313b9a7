package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func clusterNames(t *testing.T, d *DirSource) (names []string, changed bool) {
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
	d := &DirSource{Dir: dir}
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
	d := &DirSource{Dir: dir, OnFileError: func(path string, err error) { errs = append(errs, err.Error()) }}
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

package kubegateway

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current conversion")

// TestGolden converts every KubeGateway input under testdata/in (its
// documented examples, and quirks.yaml) and compares the YAML stream
// (testdata/out/<name>.yaml) and the report (<name>.report.txt) with the
// golden files; -update rewrites them and deletes orphans.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	want := map[string]bool{}
	for _, in := range inputs {
		base := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Convert(data, Options{})
			if err != nil {
				t.Fatal(err)
			}
			stream, err := res.Stream()
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string][]byte{base + ".yaml": stream, base + ".report.txt": []byte(res.Report())} {
				want[name] = true
				path := filepath.Join("testdata", "out", name)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				golden, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./importer/kubegateway -update)", err)
				}
				if d := cmp.Diff(string(golden), string(got)); d != "" {
					t.Errorf("%s differs (-golden +got):\n%s", path, d)
				}
			}
		})
	}
	if *update {
		outs, _ := filepath.Glob(filepath.Join("testdata", "out", "*"))
		for _, o := range outs {
			if !want[filepath.Base(o)] {
				if err := os.Remove(o); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// FuzzConvert: nothing an input file holds makes the conversion panic.
func FuzzConvert(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("apiVersion: proxy.kubegateway.io/v1alpha1\nkind: UpstreamCluster\nspec: {flowControl: 3, dispatchPolicies: [{rules: [{verbs: 1}]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Convert(data, Options{})
		if err != nil {
			return
		}
		if _, err := res.Stream(); err != nil && !bytes.Contains(data, []byte("\x00")) {
			t.Logf("stream: %v", err)
		}
	})
}

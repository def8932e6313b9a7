package translator_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
)

var update = flag.Bool("update", false, "rewrite translator/testdata/out from the current output")

const (
	inDir  = "testdata/in"
	outDir = "testdata/out"
)

// loadCase reads the golden case testdata/in/<name>.yaml through
// translatortest, as every other package's tests do.
func loadCase(t testing.TB, name string) translator.Inputs {
	t.Helper()
	return translatortest.MustLoad(t, os.DirFS(inDir), name)
}

// goldenFiles renders an Output as the golden files, by name.
func goldenFiles(t testing.TB, out *translator.Output) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for file, typeURL := range map[string]string{
		"listeners.yaml": resourcev3.ListenerType,
		"routes.yaml":    resourcev3.RouteType,
		"clusters.yaml":  resourcev3.ClusterType,
		"endpoints.yaml": resourcev3.EndpointType,
		"secrets.yaml":   resourcev3.SecretType,
	} {
		files[file] = resourcesYAML(t, out.Resources[typeURL])
	}
	// Only a gateway with Global token buckets serves the ratelimit
	// service's config; the other cases have no such file.
	if rls := out.Resources[resourcev3.RateLimitConfigType]; len(rls) > 0 {
		files["ratelimitconfigs.yaml"] = resourcesYAML(t, rls)
	}

	// The policy view is derived from the table's whole encoding: PEM
	// fields become digests, private keys never appear.
	pv, err := out.Policy.View(func(field string, b []byte) any {
		if strings.HasSuffix(field, "KeyPEM") {
			return "[redacted]"
		}
		return digest(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	files["policy.yaml"] = mustYAML(t, pv)
	files["statuses.yaml"] = mustYAML(t, statusesView(out.Statuses))
	files["probes.yaml"] = mustYAML(t, probesView(out.Probes))
	return files
}

// probesView renders the control plane's probe targets with PEM fields as
// digests and the key redacted.
func probesView(probes []translator.ProbeTarget) []map[string]any {
	out := []map[string]any{}
	for _, p := range probes {
		v := map[string]any{
			"cluster": p.Cluster, "address": p.Address, "serverName": p.ServerName, "host": p.Host,
			"path": p.Path, "interval": p.Interval.String(), "timeout": p.Timeout.String(),
			"unhealthyThreshold": p.UnhealthyThreshold, "healthyThreshold": p.HealthyThreshold,
			"clientCert": digest(p.ClientCertPEM), "clientKey": "[redacted]", "sans": p.SANs,
		}
		if p.CAPEM != nil {
			v["ca"] = digest(p.CAPEM)
		}
		out = append(out, v)
	}
	return out
}

// resourcesYAML renders resources as a YAML list via protojson, with every
// inline_bytes replaced by its digest so golden secrets stay readable.
func resourcesYAML(t testing.TB, rs []types.Resource) []byte {
	t.Helper()
	list := []any{}
	for _, r := range rs {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		list = append(list, redactInlineBytes(v))
	}
	return mustYAML(t, list)
}

func redactInlineBytes(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "inlineBytes" {
				b, err := base64.StdEncoding.DecodeString(s)
				if err == nil {
					v[k] = digest(b)
				}
				continue
			}
			v[k] = redactInlineBytes(e)
		}
	case []any:
		for i := range v {
			v[i] = redactInlineBytes(v[i])
		}
	}
	return v
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustYAML(t testing.TB, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inputCases(t testing.TB) []string {
	t.Helper()
	cases, err := translatortest.Cases(os.DirFS(inDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no golden inputs")
	}
	return cases
}

// TestGolden translates every testdata/in/<case>.yaml and compares the
// output with testdata/out/<case>/. With -update it rewrites the outputs
// and removes those whose input is gone.
func TestGolden(t *testing.T) {
	cases := inputCases(t)
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			out := translator.Translate(loadCase(t, name))
			dir := filepath.Join(outDir, name)
			files := goldenFiles(t, out)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for f, b := range files {
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			for f, want := range files {
				got, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatalf("%v (run go test ./translator -update)", err)
				}
				if diff := cmp.Diff(string(got), string(want)); diff != "" {
					t.Errorf("%s/%s differs from the translator output (-golden +got); run go test ./translator -update if intended:\n%s", dir, f, diff)
				}
			}
			extra, _ := os.ReadDir(dir)
			for _, e := range extra {
				if _, ok := files[e.Name()]; !ok {
					t.Errorf("%s/%s is not produced by the translator; run -update", dir, e.Name())
				}
			}
		})
	}

	// Orphans: output directories without an input.
	dirs, _ := os.ReadDir(outDir)
	for _, d := range dirs {
		if slices.Contains(cases, d.Name()) {
			continue
		}
		if *update {
			if err := os.RemoveAll(filepath.Join(outDir, d.Name())); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s/%s has no input %s/%s.yaml; run -update to delete it", outDir, d.Name(), inDir, d.Name())
	}
}

// statusesView renders statuses with API field names and without
// lastTransitionTime, which the translator leaves for status.Merge to set.
func statusesView(sts []translator.Status) any {
	type conditionView struct {
		Type               string `json:"type"`
		Status             string `json:"status"`
		Reason             string `json:"reason"`
		Message            string `json:"message"`
		ObservedGeneration int64  `json:"observedGeneration"`
	}
	type statusView struct {
		Name               string          `json:"name"`
		ObservedGeneration int64           `json:"observedGeneration"`
		ServerCount        int32           `json:"serverCount"`
		Conditions         []conditionView `json:"conditions"`
	}
	out := []statusView{}
	for _, st := range sts {
		v := statusView{Name: st.Name, ObservedGeneration: st.ObservedGeneration, ServerCount: st.ServerCount}
		for _, c := range st.Conditions {
			v.Conditions = append(v.Conditions, conditionView{
				Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, ObservedGeneration: c.ObservedGeneration,
			})
		}
		out = append(out, v)
	}
	return out
}

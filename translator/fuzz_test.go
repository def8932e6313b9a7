package translator_test

import (
	"os"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
)

// FuzzTranslate feeds arbitrary UpstreamCluster specs (as YAML) next to a
// valid one and the test Secrets. Whatever the spec, Translate must not
// panic, and its output must stay valid and consistent: one bad object can
// never take the gateway down.
func FuzzTranslate(f *testing.F) {
	base := loadCase(f, "sni-clusters")
	// EndpointSlices for specs with endpointsFrom (default/kubernetes and others).
	base.EndpointSlices = loadCase(f, "endpointslice-servers").EndpointSlices
	cases, err := translatortest.Cases(os.DirFS(inDir))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range cases {
		for _, uc := range loadCase(f, name).UpstreamClusters {
			spec, err := yaml.Marshal(uc.Spec)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(spec)
		}
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		uc := &v1alpha1.UpstreamCluster{}
		uc.Name = "fuzzed"
		if err := yaml.Unmarshal(spec, &uc.Spec); err != nil {
			return
		}
		in := base
		in.UpstreamClusters = append([]*v1alpha1.UpstreamCluster{uc}, base.UpstreamClusters...)
		out := translator.Translate(in)
		if len(out.Statuses) != len(in.UpstreamClusters) {
			t.Fatalf("%d statuses for %d inputs", len(out.Statuses), len(in.UpstreamClusters))
		}
		snap, err := cachev3.NewSnapshot(out.Version, out.Resources)
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Consistent(); err != nil {
			t.Fatal(err)
		}
		if len(out.Resources[resourcev3.ListenerType]) != 1 {
			t.Fatal("the valid clusters lost their listener")
		}
	})
}

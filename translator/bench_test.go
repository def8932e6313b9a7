package translator_test

import (
	"fmt"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
)

// BenchmarkTranslate measures one full translation (validation, Secret
// checks, protos, ValidateAll, version hash) for growing configs:
//
//   - clusters=N: N UpstreamClusters on one listener, each with its own
//     server name and three static servers (the multi-cluster case);
//   - servers=N: one UpstreamCluster with N static servers;
//   - slices=N: one UpstreamCluster whose N servers come from N
//     EndpointSlices (endpointsFrom).
//
// BenchmarkTranslateDispatchRules measures dispatch rules.
func BenchmarkTranslate(b *testing.B) {
	base := loadCase(b, "one-cluster")
	tmpl := base.UpstreamClusters[0]
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			in := base
			in.UpstreamClusters = nil
			for i := range n {
				uc := tmpl.DeepCopy()
				uc.Name = fmt.Sprintf("cluster-%04d", i)
				uc.Spec.SecureServing.ServerNames = []string{uc.Name + ".example.com"}
				uc.Spec.Servers = []v1alpha1.Server{
					{Endpoint: fmt.Sprintf("https://10.%d.%d.1:6443", i/250, i%250)},
					{Endpoint: fmt.Sprintf("https://10.%d.%d.2:6443", i/250, i%250)},
					{Endpoint: fmt.Sprintf("https://10.%d.%d.3:6443", i/250, i%250)},
				}
				in.UpstreamClusters = append(in.UpstreamClusters, uc)
			}
			benchTranslate(b, in, n)
		})
	}
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			in := base
			uc := tmpl.DeepCopy()
			uc.Spec.Servers = nil
			for i := range n {
				uc.Spec.Servers = append(uc.Spec.Servers, v1alpha1.Server{Endpoint: fmt.Sprintf("https://10.0.%d.%d:6443", i/250, i%250+1)})
			}
			in.UpstreamClusters = []*v1alpha1.UpstreamCluster{uc}
			benchTranslate(b, in, 1)
		})
	}
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("slices=%d", n), func(b *testing.B) {
			in := base
			uc := tmpl.DeepCopy()
			uc.Spec.Servers = nil
			uc.Spec.EndpointsFrom = &v1alpha1.EndpointsFrom{Service: v1alpha1.ServiceEndpoints{Namespace: "default", Name: "kubernetes"}}
			in.UpstreamClusters = []*v1alpha1.UpstreamCluster{uc}
			for i := range n {
				s := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4,
					Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(6443 + i%7))}},
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}}},
				}
				s.Namespace, s.Name = "default", fmt.Sprintf("kubernetes-%04d", i)
				s.Labels = map[string]string{discoveryv1.LabelServiceName: "kubernetes"}
				in.EndpointSlices = append(in.EndpointSlices, s)
			}
			benchTranslate(b, in, 1)
		})
	}
}

func benchTranslate(b *testing.B, in translator.Inputs, wantClusters int) {
	b.Helper()
	out := translator.Translate(in)
	if got := len(out.Policy.Clusters); got != wantClusters {
		b.Fatalf("%d clusters accepted, want %d: %+v", got, wantClusters, out.Statuses[0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		translator.Translate(in)
	}
}

// withDispatchRules returns base with n dispatch rules over UpstreamClusters
// like tmpl, named cluster-NNN (translatortest.DispatchRuleClusters, which
// tests/bench's rules figures use too) in place of its own clusters.
func withDispatchRules(base translator.Inputs, tmpl *v1alpha1.UpstreamCluster, n int) translator.Inputs {
	in := base
	in.UpstreamClusters = translatortest.DispatchRuleClusters(tmpl, "cluster", n)
	return in
}

// BenchmarkTranslateDispatchRules measures one translation of 1 to 10,000
// dispatch rules (see withDispatchRules). Every policy becomes an Envoy
// route and cluster (plus its endpoints), so the cost follows the policy
// count more than the rule count.
func BenchmarkTranslateDispatchRules(b *testing.B) {
	base := loadCase(b, "one-cluster")
	tmpl := base.UpstreamClusters[0]
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			in := withDispatchRules(base, tmpl, n)
			out := translator.Translate(in)
			rules := 0
			for _, c := range out.Policy.Clusters {
				for _, d := range c.Dispatch {
					rules += len(d.Rules)
				}
			}
			if rules != n {
				b.Fatalf("%d rules in the policy table, want %d: %+v", rules, n, out.Statuses)
			}
			benchTranslate(b, in, len(in.UpstreamClusters))
		})
	}
}

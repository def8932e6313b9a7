package translator_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// A revocation edit changes the request service's policy only: every
// Envoy resource (the listener above all) stays identical, so Envoy keeps
// its listener and drains no connection when a certificate is revoked.
func TestRevocationLeavesEnvoyConfigAlone(t *testing.T) {
	in := loadCase(t, "revocation")
	var revoked *v1alpha1.UpstreamCluster
	for _, uc := range in.UpstreamClusters {
		if uc.Name == "revoked" {
			revoked = uc
		}
	}
	in.UpstreamClusters = []*v1alpha1.UpstreamCluster{revoked}
	with := translator.Translate(in)
	plain := revoked.DeepCopy()
	plain.Spec.Authentication.X509.Revocation = v1alpha1.X509Revocation{}
	in.UpstreamClusters = []*v1alpha1.UpstreamCluster{plain}
	without := translator.Translate(in)

	if with.Policy.Clusters["revoked"].Revocation == nil || without.Policy.Clusters["revoked"].Revocation != nil {
		t.Fatalf("policy revocation with=%v without=%v, want set and nil",
			with.Policy.Clusters["revoked"].Revocation, without.Policy.Clusters["revoked"].Revocation)
	}
	if with.Version == without.Version {
		t.Error("a revocation edit must change the config version (the policy feed sends it)")
	}
	if len(with.Resources) != len(without.Resources) {
		t.Fatalf("resource types: %d with revocation, %d without", len(with.Resources), len(without.Resources))
	}
	for typeURL, rs := range with.Resources {
		other := without.Resources[typeURL]
		if len(rs) != len(other) {
			t.Errorf("%s: %d resources with revocation, %d without", typeURL, len(rs), len(other))
			continue
		}
		for i := range rs {
			if !proto.Equal(rs[i], other[i]) {
				t.Errorf("%s %d differs with revocation: Envoy would rebuild it", typeURL, i)
			}
		}
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	const want = "783ce1ce75985e60c83064169682f53379df53f906671b486eec1401964d05f8"
	for in, ok := range map[string]bool{
		want: true,
		"783CE1CE75985E60C83064169682F53379DF53F906671B486EEC1401964D05F8":                                true,
		"78:3C:E1:CE:75:98:5E:60:C8:30:64:16:96:82:F5:33:79:DF:53:F9:06:67:1B:48:6E:EC:14:01:96:4D:05:F8": true,
		"78:3c:e1:ce:75:98:5e:60:c8:30:64:16:96:82:f5:33:79:df:53:f9:06:67:1b:48:6e:ec:14:01:96:4d:05:f8": true,
		"":                    false,
		"78:3C":               false,
		want[:62]:             false,
		want + "00":           false,
		"zz" + want[2:]:       false,
		"783:ce1" + want[7:]:  false,
		":" + want[:62] + ":": false,
		"78:3ce1" + want[6:]:  false,
		" " + want[:63]:       false,
	} {
		got, gotOK := translator.NormalizeFingerprint(in)
		if gotOK != ok || (ok && got != want) {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want ok=%v", in, got, gotOK, ok)
		}
	}
}

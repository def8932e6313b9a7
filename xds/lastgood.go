package xds

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// translateLastGood translates in; every UpstreamCluster that is rejected
// but had an accepted version before is replaced by that version, so a bad
// edit never changes what Envoy serves for it. A bad edit of a Secret is
// one too: a rejected cluster whose referenced Secret changed since it was
// last good is translated with that Secret as it was (unless a cluster
// accepted this round uses the Secret as it is now; a deleted Secret is
// never brought back). It returns the output to serve, the verdicts on the
// objects as given (what their statuses must say), and which names are
// served from their last good version.
//
// lastGood maps names to the last accepted object, lastGoodSecrets
// "namespace/name" to the Secrets those objects were served with; both are
// updated in place with this round's served objects and pruned of what no
// longer applies.
func translateLastGood(in translator.Inputs, lastGood map[string]*v1alpha1.UpstreamCluster, lastGoodSecrets map[string]*corev1.Secret) (served *translator.Output, verdicts []translator.Status, substituted map[string]int64) {
	out := translator.Translate(in)
	verdicts = out.Statuses

	present := map[string]bool{}
	for _, uc := range in.UpstreamClusters {
		if uc != nil {
			present[uc.Name] = true
		}
	}
	for name := range lastGood {
		if !present[name] {
			delete(lastGood, name) // deleted objects are not resurrected
		}
	}

	rejected := map[string]bool{}
	for _, st := range verdicts {
		if ok, _ := status.AllTrue(st.Conditions); !ok {
			rejected[st.Name] = true
		}
	}
	substituted = map[string]int64{}
	used := in
	if len(rejected) > 0 {
		used.UpstreamClusters = make([]*v1alpha1.UpstreamCluster, 0, len(in.UpstreamClusters))
		secrets := secretsByKey(in.Secrets)
		inUse := acceptedSecretKeys(in.UpstreamClusters, rejected)
		restored := map[string]*corev1.Secret{}
		for _, uc := range in.UpstreamClusters {
			if uc == nil {
				continue
			}
			prev, ok := lastGood[uc.Name]
			if ok && rejected[uc.Name] {
				if !equality.Semantic.DeepEqual(prev.Spec, uc.Spec) {
					substituted[uc.Name] = prev.Generation
					uc = prev
				}
				for _, k := range secretKeys(uc) {
					old, now := lastGoodSecrets[k], secrets[k]
					if old != nil && now != nil && !inUse[k] && !sameSecretContent(old, now) {
						restored[k] = old
						substituted[uc.Name] = prev.Generation
					}
				}
			}
			used.UpstreamClusters = append(used.UpstreamClusters, uc)
		}
		if len(restored) > 0 {
			used.Secrets = make([]*corev1.Secret, len(in.Secrets))
			for i, s := range in.Secrets {
				if old := restored[secretKey(s)]; old != nil {
					s = old
				}
				used.Secrets[i] = s
			}
		}
	}
	served = out
	if len(substituted) > 0 {
		served = translator.Translate(used)
	}

	tried := map[string]bool{} // names whose last good version was put in their place
	for name := range substituted {
		tried[name] = true
	}
	servedOK := map[string]bool{}
	for _, st := range served.Statuses {
		if ok, _ := status.AllTrue(st.Conditions); ok {
			servedOK[st.Name] = true
		}
	}
	for name := range substituted {
		if !servedOK[name] {
			delete(substituted, name) // the old version no longer works either (e.g. its Secret is gone)
		}
	}
	usedSecrets := secretsByKey(used.Secrets)
	for _, uc := range used.UpstreamClusters {
		if servedOK[uc.Name] {
			lastGood[uc.Name] = uc
			for _, k := range secretKeys(uc) {
				if s := usedSecrets[k]; s != nil {
					lastGoodSecrets[k] = s
				}
			}
		} else if rejected[uc.Name] {
			if _, sub := substituted[uc.Name]; !sub {
				delete(lastGood, uc.Name)
			}
		}
	}
	keep := map[string]bool{}
	for _, uc := range lastGood {
		for _, k := range secretKeys(uc) {
			keep[k] = true
		}
	}
	for k := range lastGoodSecrets {
		if !keep[k] {
			delete(lastGoodSecrets, k)
		}
	}
	// Objects served as given take their verdict from the served output (a
	// substitute may have claimed a server name first); objects replaced by
	// their last good version keep the verdict on their new version, with
	// the served server count.
	// Both lists have one entry per input in the same (name) order.
	if len(served.Statuses) == len(verdicts) {
		for i := range verdicts {
			if verdicts[i].Name != served.Statuses[i].Name {
				continue
			}
			if tried[verdicts[i].Name] {
				verdicts[i].ServerCount = served.Statuses[i].ServerCount // 0 unless the substitute is served
			} else {
				verdicts[i] = served.Statuses[i]
			}
		}
	}
	return served, verdicts, substituted
}

func secretKey(s *corev1.Secret) string { return s.Namespace + "/" + s.Name }

// secretKeys are the "namespace/name" keys of the Secrets uc references.
func secretKeys(uc *v1alpha1.UpstreamCluster) []string {
	refs := uc.Spec.SecretRefs()
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Namespace + "/" + r.Name
	}
	return out
}

// secretsByKey indexes secrets; of two with one key the first wins, as in
// the translator.
func secretsByKey(secrets []*corev1.Secret) map[string]*corev1.Secret {
	out := make(map[string]*corev1.Secret, len(secrets))
	for _, s := range secrets {
		if s == nil {
			continue
		}
		if _, dup := out[secretKey(s)]; !dup {
			out[secretKey(s)] = s
		}
	}
	return out
}

// acceptedSecretKeys are the Secrets the clusters not rejected reference:
// those are served as they are now, so none of them is restored.
func acceptedSecretKeys(ucs []*v1alpha1.UpstreamCluster, rejected map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, uc := range ucs {
		if uc != nil && !rejected[uc.Name] {
			for _, k := range secretKeys(uc) {
				out[k] = true
			}
		}
	}
	return out
}

// sameSecretContent compares what the translator reads of a Secret.
func sameSecretContent(a, b *corev1.Secret) bool {
	return a.Type == b.Type && equality.Semantic.DeepEqual(a.Data, b.Data) && equality.Semantic.DeepEqual(a.StringData, b.StringData)
}

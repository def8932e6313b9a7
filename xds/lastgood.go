package xds

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// translateLastGood translates in; every UpstreamCluster that is rejected
// but had an accepted version before is replaced by that version, so a bad
// edit never changes what Envoy serves for it. It returns the output to
// serve, the verdicts on the objects as given (what their statuses must
// say), and which names are served from their last good version.
//
// lastGood maps names to the last accepted object; it is updated in place
// with this round's accepted objects and pruned of deleted names.
func translateLastGood(in translator.Inputs, lastGood map[string]*v1alpha1.UpstreamCluster) (served *translator.Output, verdicts []translator.Status, substituted map[string]int64) {
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
		for _, uc := range in.UpstreamClusters {
			if uc == nil {
				continue
			}
			if prev, ok := lastGood[uc.Name]; ok && rejected[uc.Name] && !equality.Semantic.DeepEqual(prev.Spec, uc.Spec) {
				substituted[uc.Name] = prev.Generation
				uc = prev
			}
			used.UpstreamClusters = append(used.UpstreamClusters, uc)
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
	for _, uc := range used.UpstreamClusters {
		if servedOK[uc.Name] {
			lastGood[uc.Name] = uc
		} else if rejected[uc.Name] {
			if _, sub := substituted[uc.Name]; !sub {
				delete(lastGood, uc.Name)
			}
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

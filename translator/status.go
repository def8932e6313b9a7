package translator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// statusBuilder records the verdict on one input while it moves through the
// stages. Each stage may reject; the first rejection wins so the message
// names the root cause, not a consequence.
type statusBuilder struct {
	uc *v1alpha1.UpstreamCluster

	refsReason, refsMessage         string // empty reason = resolved
	acceptedReason, acceptedMessage string // empty reason = accepted
	serverCount                     int32
}

func (s *statusBuilder) rejected() bool { return s.acceptedReason != "" }

// reject marks the cluster not accepted, keeping the first reason.
func (s *statusBuilder) reject(reason, message string) {
	if s.acceptedReason == "" {
		s.acceptedReason, s.acceptedMessage = reason, message
		s.serverCount = 0
	}
}

// unresolved marks a reference failure; the cluster is then not accepted
// either, because it was skipped.
func (s *statusBuilder) unresolved(err *refError) {
	if s.refsReason == "" {
		s.refsReason, s.refsMessage = err.reason, err.msg
	}
	s.reject(v1alpha1.ReasonUnresolvedRefs, "not translated: "+err.msg)
}

// status renders the conditions. LastTransitionTime stays zero: the
// translator has no clock; status.Merge sets it when a condition actually
// changes.
func (s *statusBuilder) status() Status {
	gen := s.uc.Generation
	accepted := metav1.Condition{
		Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: v1alpha1.ReasonAccepted, Message: "translated",
	}
	if s.acceptedReason != "" {
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, s.acceptedReason, s.acceptedMessage
	}
	refs := metav1.Condition{
		Type: v1alpha1.ConditionResolvedRefs, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: v1alpha1.ReasonResolvedRefs, Message: "all referenced Secrets are valid",
	}
	if s.refsReason != "" {
		refs.Status, refs.Reason, refs.Message = metav1.ConditionFalse, s.refsReason, s.refsMessage
	}
	return Status{
		Name:               s.uc.Name,
		ObservedGeneration: gen,
		Conditions:         []metav1.Condition{accepted, refs},
		ServerCount:        s.serverCount,
	}
}

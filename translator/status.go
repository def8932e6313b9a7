package translator

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

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

// invalid rejects the cluster for errs, if any, as kube-apiserver rejects
// an object: the message lists every error with its field path. The reason
// is the first error's (reasonOf), so validators list the errors that
// matter most first.
func (s *statusBuilder) invalid(errs field.ErrorList) {
	if len(errs) > 0 {
		s.reject(reasonOf(errs[0]), errs.ToAggregate().Error())
	}
}

// fieldReasons give the Accepted reason of an error by the top-level spec
// field it is about. The reasons are API (conditions.go); the paths are
// what validation and building report on.
var fieldReasons = map[string]string{
	"servers":          v1alpha1.ReasonInvalidServer,
	"endpointsFrom":    v1alpha1.ReasonNoServers,
	"secureServing":    v1alpha1.ReasonInvalidServerName, // only its serverNames are validated
	"healthCheck":      v1alpha1.ReasonInvalidHealthCheck,
	"outlierDetection": v1alpha1.ReasonInvalidHealthCheck,
	"loadBalancing":    v1alpha1.ReasonInvalidLoadBalancing,
	"requestService":   v1alpha1.ReasonInvalidRequestService,
	"authentication":   v1alpha1.ReasonInvalidAuthentication,
	"clientConfig":     v1alpha1.ReasonInvalidClientConfig,
	"flowControl":      v1alpha1.ReasonInvalidFlowControl,
	"dispatchPolicies": v1alpha1.ReasonInvalidDispatchPolicy,
}

// reasonOf is the Accepted reason of e. spec.servers itself (not one of
// its entries) is only ever required: the cluster has no server at all.
func reasonOf(e *field.Error) string {
	if e.Field == "spec.servers" && e.Type == field.ErrorTypeRequired {
		return v1alpha1.ReasonNoServers
	}
	rest, _ := strings.CutPrefix(e.Field, "spec.")
	top, _, _ := strings.Cut(strings.SplitN(rest, "[", 2)[0], ".")
	if r, ok := fieldReasons[top]; ok {
		return r
	}
	return v1alpha1.ReasonInvalidConfig
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

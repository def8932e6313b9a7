// Package status computes what an UpstreamCluster's status says, from
// what the rest of the control plane knows: the translator's verdict
// (Accepted, ResolvedRefs, server count), whether the object is served
// from its last good version, which snapshot is served and how many Envoys
// acknowledged it (Programmed), and Envoy's view of the servers' health.
//
// It is computation only: no I/O, no clock (callers pass the time), no
// goroutines. Writing a status to the apiserver is the Kubernetes source's
// job (source/). It must not import client-go, gRPC, net/http or os, nor
// xds, source or health, which all build on it.
package status

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// AllTrue reports whether every condition is True and, if not, the first
// that is not: an UpstreamCluster is served as given only when all of its
// conditions are True.
func AllTrue(conds []metav1.Condition) (bool, metav1.Condition) {
	for _, cond := range conds {
		if cond.Status != metav1.ConditionTrue {
			return false, cond
		}
	}
	return true, metav1.Condition{}
}

// Served is what the control plane serves after one update.
type Served struct {
	// Version is the snapshot version being served ("nothing" before the
	// first).
	Version string
	// Err is why the update's snapshot could not be set (nil when it was).
	Err error
	// Substituted names the objects served from their last good version,
	// with that version's generation.
	Substituted map[string]int64
	// Acked of Open connected Envoys have acknowledged Version.
	Acked, Open int
}

// WithProgrammed returns each verdict with the Programmed condition
// appended: True when the snapshot that holds this generation was set,
// False with LastGoodServed when the generation was rejected but its last
// good version is served, NotServed when nothing of it is, SnapshotFailed
// when the snapshot could not be set. verdicts is not modified.
func WithProgrammed(verdicts []translator.Status, s Served) []translator.Status {
	out := make([]translator.Status, len(verdicts))
	for i, st := range verdicts {
		st.Conditions = append(append([]metav1.Condition(nil), st.Conditions...), programmed(st, s))
		out[i] = st
	}
	return out
}

func programmed(st translator.Status, s Served) metav1.Condition {
	cond := metav1.Condition{
		Type: v1alpha1.ConditionProgrammed, Status: metav1.ConditionTrue, ObservedGeneration: st.ObservedGeneration,
		Reason:  v1alpha1.ReasonProgrammed,
		Message: fmt.Sprintf("served in xDS snapshot %s; acknowledged by %d of %d connected Envoys", s.Version, s.Acked, s.Open),
	}
	ok, bad := AllTrue(st.Conditions)
	switch gen, sub := s.Substituted[st.Name]; {
	case !ok && sub:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonLastGoodServed
		cond.Message = fmt.Sprintf("generation %d is not served (%s: %s); the last accepted version (generation %d) keeps serving",
			st.ObservedGeneration, bad.Type, bad.Reason, gen)
	case !ok:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonNotServed
		cond.Message = fmt.Sprintf("not served (%s: %s)", bad.Type, bad.Reason)
	case s.Err != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonSnapshotFailed
		cond.Message = s.Err.Error()
	}
	return cond
}

// ServerHealth is one server of an UpstreamCluster as Envoy sees it.
type ServerHealth struct {
	// Address is host:port as Envoy connects to it (the resolved IP for a
	// server named by DNS).
	Address string
	// Healthy: Envoy sends it traffic (active health check passing, not
	// ejected by outlier detection).
	Healthy bool
	// Reason names Envoy's failure flags of an unhealthy server
	// (failed_active_health_check, failed_outlier_check, ...).
	Reason string
}

// Health is Envoy's view of one UpstreamCluster's servers.
type Health struct {
	// Known is false when Envoy's health is not followed or Envoy did not
	// report the cluster: the health fields are then left as they are.
	Known   bool
	Servers []ServerHealth
}

// Merge returns the status cur becomes with verdict (which carries every
// condition, Programmed included) and health. Conditions are merged as
// meta.SetStatusCondition does, so lastTransitionTime moves to now only
// when a condition's status changes; conditions the verdict does not name
// stay. cur is not modified.
func Merge(cur v1alpha1.UpstreamClusterStatus, verdict translator.Status, health Health, now metav1.Time) v1alpha1.UpstreamClusterStatus {
	want := *cur.DeepCopy()
	want.ObservedGeneration = verdict.ObservedGeneration
	want.ServerCount = verdict.ServerCount
	for _, c := range verdict.Conditions {
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		meta.SetStatusCondition(&want.Conditions, c)
	}
	if health.Known {
		want.HealthyServerCount, want.UnhealthyServers = 0, nil
		for _, s := range health.Servers {
			if s.Healthy {
				want.HealthyServerCount++
			} else {
				want.UnhealthyServers = append(want.UnhealthyServers, s.Address+": "+s.Reason)
			}
		}
	}
	return want
}

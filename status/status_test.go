package status

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

func verdict(name string, gen int64, conds ...metav1.Condition) translator.Status {
	return translator.Status{Name: name, ObservedGeneration: gen, ServerCount: 3, Conditions: conds}
}

func cond(typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: st, Reason: reason}
}

var (
	accepted = cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	resolved = cond(v1alpha1.ConditionResolvedRefs, metav1.ConditionTrue, v1alpha1.ReasonResolvedRefs)
	missing  = cond(v1alpha1.ConditionResolvedRefs, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
)

func TestAllTrue(t *testing.T) {
	if ok, _ := AllTrue(nil); !ok {
		t.Error("no conditions must be all True")
	}
	if ok, bad := AllTrue([]metav1.Condition{accepted, missing}); ok || bad.Reason != v1alpha1.ReasonSecretNotFound {
		t.Errorf("AllTrue = %v, %+v; want false with the SecretNotFound condition", ok, bad)
	}
}

// TestWithProgrammed: one Programmed condition per verdict, by case, and
// the verdicts given stay as they were.
func TestWithProgrammed(t *testing.T) {
	verdicts := []translator.Status{
		verdict("served", 1, accepted, resolved),
		verdict("lastgood", 4, accepted, missing),
		verdict("notserved", 2, accepted, missing),
	}
	got := WithProgrammed(verdicts, Served{Version: "v7", Substituted: map[string]int64{"lastgood": 3}, Acked: 1, Open: 2})
	for i, want := range []struct {
		status          metav1.ConditionStatus
		reason, message string
	}{
		{metav1.ConditionTrue, v1alpha1.ReasonProgrammed, "served in xDS snapshot v7; acknowledged by 1 of 2 connected Envoys"},
		{metav1.ConditionFalse, v1alpha1.ReasonLastGoodServed, "generation 4 is not served (ResolvedRefs: SecretNotFound); the last accepted version (generation 3) keeps serving"},
		{metav1.ConditionFalse, v1alpha1.ReasonNotServed, "not served (ResolvedRefs: SecretNotFound)"},
	} {
		c := got[i].Conditions[len(got[i].Conditions)-1]
		if c.Type != v1alpha1.ConditionProgrammed || c.Status != want.status || c.Reason != want.reason || c.Message != want.message ||
			c.ObservedGeneration != verdicts[i].ObservedGeneration {
			t.Errorf("%s: Programmed = %+v, want %s %s %q", got[i].Name, c, want.status, want.reason, want.message)
		}
		if len(verdicts[i].Conditions) != 2 {
			t.Errorf("%s: the verdict given was modified", verdicts[i].Name)
		}
	}
	failed := WithProgrammed(verdicts[:1], Served{Version: "v7", Err: errors.New("snapshot v8 is not consistent")})
	if c := failed[0].Conditions[2]; c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonSnapshotFailed || !strings.Contains(c.Message, "v8") {
		t.Errorf("failed snapshot: Programmed = %+v, want False/SnapshotFailed with the error", c)
	}
}

// TestMerge: lastTransitionTime moves only when a condition's status does;
// health fills the counts only when known.
func TestMerge(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	cur := Merge(v1alpha1.UpstreamClusterStatus{}, verdict("a", 1, accepted, resolved), Health{}, t0)
	if cur.ObservedGeneration != 1 || cur.ServerCount != 3 || len(cur.Conditions) != 2 || !cur.Conditions[0].LastTransitionTime.Equal(&t0) {
		t.Fatalf("first status = %+v", cur)
	}
	cur.HealthyServerCount, cur.UnhealthyServers = 9, []string{"kept"}

	next := Merge(cur, verdict("a", 2, accepted, missing), Health{}, t1)
	if next.HealthyServerCount != 9 || len(next.UnhealthyServers) != 1 {
		t.Errorf("unknown health changed the counts: %+v", next)
	}
	if a := next.Conditions[0]; !a.LastTransitionTime.Equal(&t0) {
		t.Errorf("Accepted = %+v: its status did not change, so its lastTransitionTime must not", a)
	}
	if r := next.Conditions[1]; r.Status != metav1.ConditionFalse || !r.LastTransitionTime.Equal(&t1) {
		t.Errorf("ResolvedRefs = %+v, want False since %v", r, t1)
	}
	if cur.Conditions[1].Status != metav1.ConditionTrue || cur.ObservedGeneration != 1 {
		t.Error("Merge modified the status given")
	}

	healthy := Merge(cur, verdict("a", 1, accepted, resolved), Health{Known: true, Servers: []ServerHealth{
		{Address: "10.0.0.1:6443", Healthy: true},
		{Address: "10.0.0.2:6443", Reason: "failed_active_health_check"},
	}}, t1)
	if healthy.HealthyServerCount != 1 || len(healthy.UnhealthyServers) != 1 || healthy.UnhealthyServers[0] != "10.0.0.2:6443: failed_active_health_check" {
		t.Errorf("health = %d healthy, unhealthy %q", healthy.HealthyServerCount, healthy.UnhealthyServers)
	}
}

// TestImports: status is computation only, so it stays a leaf the I/O
// packages build on.
func TestImports(t *testing.T) {
	direct, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range strings.Fields(string(direct)) {
		if imp == "os" || imp == "net/http" || imp == "time" {
			t.Errorf("status imports %s", imp)
		}
	}
	deps, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range strings.Fields(string(deps)) {
		if jwtValidationDep[d] {
			continue
		}
		for _, banned := range []string{"k8s.io/client-go", "google.golang.org/grpc", modulePath + "/xds", modulePath + "/source", modulePath + "/health"} {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("status depends on %s", d)
			}
		}
	}
}

// jwtValidationDep are the client-go packages kube-apiserver's own
// AuthenticationConfiguration validation brings in through the
// translator (translator/jwt.go): PEM parsing only, no client, no I/O.
var jwtValidationDep = map[string]bool{"k8s.io/client-go/util/cert": true, "k8s.io/client-go/util/keyutil": true}

const modulePath = "github.com/kubefrontdoor/frontdoor"

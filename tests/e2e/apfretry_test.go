package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// A 429 an apiserver replica sends before executing a request (API
// Priority and Fairness or max-inflight rejection, a replica shutting
// down) is retried once by the gateway on another replica, so the client
// sees the answer of a replica that had room; a 429 the request earned by
// executing (an Eviction a PodDisruptionBudget refuses) reaches the client
// as it was sent, never retried (README: "Retries").

// upstreamVerdictHeader is the gateway's internal response header the
// retry policy reads (translator/retry.go); no client may ever see it.
const upstreamVerdictHeader = "x-frontdoor-upstream-verdict"

// apfVictim is the replica the APF test makes tiny.
const apfVictim = 3

// TestAPFRejectionRetriedOnAnotherReplica makes one replica refuse a user
// by APF: its server concurrency is 2 (--max-requests-inflight 1,
// --max-mutating-requests-inflight 1), which gives the user's priority level
// (reject when full, nothing lent or borrowed) 1 seat there and about 170 on
// the others. Concurrent LISTs of that user through the gateway all answer
// 200, while the victim's rejected-requests counter and Envoy's retry
// counter both rise, and each rejected request was answered by another
// replica (audit logs).
func TestAPFRejectionRetriedOnAnotherReplica(t *testing.T) {
	ctx := setup(t, 5*time.Minute)
	name := "apf-retry-" + uniq()
	u := newUser(name)
	grantListConfigMaps(t, ctx, name)
	tinyPriorityLevel(t, ctx, name)

	victimHostPort := strings.TrimPrefix(sb.ReplicaURLs[apfVictim-1], "https://")
	restartVictim := func(extra []string) {
		t.Helper()
		if err := sb.SetReplicaArgs(apfVictim, extra); err != nil {
			t.Fatal(err)
		}
		restartReplica(t, ctx, apfVictim, victimHostPort)
	}
	t.Cleanup(func() { restartVictim(nil) }) // later tests find the replica as it was
	restartVictim([]string{"--max-requests-inflight", "1", "--max-mutating-requests-inflight", "1"})
	if t.Failed() {
		t.FailNow()
	}

	// The configuration is the same on every replica; only the seats differ.
	seats := func(i int) float64 {
		return replicaMetric(t, ctx, i, "apiserver_flowcontrol_nominal_limit_seats", map[string]string{"priority_level": name})
	}
	if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		return seats(apfVictim) == 1 && seats(1) > 10, nil
	}); err != nil {
		t.Fatalf("priority level %s: %v seats on replica %d, %v on replica 1; want 1 and > 10", name, seats(apfVictim), apfVictim, seats(1))
	}

	rejected := func() float64 {
		return replicaMetric(t, ctx, apfVictim, "apiserver_flowcontrol_rejected_requests_total", map[string]string{"priority_level": name})
	}
	retries := series{"envoy retries", envoyStats, "envoy_cluster_upstream_rq_retry", map[string]string{"envoy_cluster_name": gatewayCluster}}
	retriesBefore, _ := retries.read(t, ctx)

	// Waves of concurrent LISTs, each marked in its URI, until the victim
	// has rejected some (a round robin sends it a third of them).
	client := httpClient(t, "", u.certPEM, u.keyPEM)
	var answers []apfAnswer
	for wave := 0; wave < 20 && rejected() < 3; wave++ {
		answers = append(answers, listWave(ctx, client, name, wave, 30)...)
	}
	n := rejected()
	if n < 1 {
		t.Fatalf("replica %d rejected none of %d requests of priority level %s; the test cannot show a retry", apfVictim, len(answers), name)
	}
	bad := 0
	for _, a := range answers {
		if a.err != nil || a.code != http.StatusOK || a.verdict != "" {
			bad++
			if bad <= 5 {
				t.Errorf("request %s: %d, %v (verdict header %q, body %q); want 200 without the internal header", a.marker, a.code, a.err, a.verdict, a.body)
			}
		}
	}
	t.Logf("%d requests through the gateway, %d not 200; replica %d rejected %v by APF", len(answers), bad, apfVictim, n)

	// Envoy counts the retries; the audit logs show where each went.
	if grew, text := retries.growth(t, ctx, retriesBefore, n); grew < n {
		t.Errorf("envoy_cluster_upstream_rq_retry{%s} grew by %v; want ≥ %v (the victim's rejections)\n%s", gatewayCluster, grew, n, grepLines(text, "upstream_rq_retry"))
	}
	refused, unserved := 0, 0
	for _, a := range answers {
		events := auditEvents(t, a.marker)
		var refusedOnVictim, servedElsewhere bool
		for _, e := range events {
			code := 0
			if e.ResponseStatus != nil {
				code = int(e.ResponseStatus.Code)
			}
			refusedOnVictim = refusedOnVictim || (e.Replica == apfVictim && code == http.StatusTooManyRequests)
			servedElsewhere = servedElsewhere || (e.Replica != apfVictim && code == http.StatusOK)
		}
		if !refusedOnVictim {
			continue
		}
		refused++
		if servedElsewhere && len(events) == 2 {
			continue
		}
		if unserved++; unserved <= 3 {
			t.Errorf("request %s: refused by replica %d, then %d audit events in all (served by another replica: %v); want the refusal and one retry that another replica served",
				a.marker, apfVictim, len(events), servedElsewhere)
		}
	}
	if refused == 0 {
		t.Errorf("no audit event of replica %d shows a 429 for the test's requests", apfVictim)
	}
}

// TestEvictionRefusedByPDBNotRetried: an Eviction a PodDisruptionBudget
// refuses is a 429 Status the client must see (kubectl drain waits and
// tries again); the gateway passes it through after exactly one attempt.
func TestEvictionRefusedByPDBNotRetried(t *testing.T) {
	ctx := setup(t, time.Minute)
	cs := sandbox.Clientset(t, adminUser().direct())
	name := "evict-" + uniq()
	sa := serviceAccount(t, ctx, name)

	pod := podFor(t, ctx, name, sa.Name)
	// A Pending pod may always be evicted: make it Running and Ready, as a
	// kubelet would.
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod status: %v", err)
	}

	one := intstr.FromInt32(1)
	pdb, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating PDB: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.PolicyV1().PodDisruptionBudgets("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// What the disruption controller (not running in the sandbox) would
	// write: one healthy pod of one desired, no disruption allowed.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation, DisruptionsAllowed: 0,
		CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1,
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("PDB status: %v", err)
	}

	retries := series{"envoy retries", envoyStats, "envoy_cluster_upstream_rq_retry", map[string]string{"envoy_cluster_name": gatewayCluster}}
	retriesBefore, _ := retries.read(t, ctx)

	admin := adminUser()
	client := httpClient(t, "", admin.certPEM, admin.keyPEM)
	body, _ := json.Marshal(policyv1.Eviction{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "Eviction"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
	})
	path := "/api/v1/namespaces/default/pods/" + name + "/eviction"
	code, h, out := do(t, ctx, client, http.MethodPost, sb.GatewayURL+path, nil, body)
	if code != http.StatusTooManyRequests {
		t.Fatalf("eviction through the gateway: %d %s; want 429 (the PDB allows no disruption)", code, out)
	}
	var st metav1.Status
	if err := json.Unmarshal(out, &st); err != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonTooManyRequests ||
		st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Type != policyv1.DisruptionBudgetCause {
		t.Errorf("eviction answer %q (%v); want the apiserver's Status with reason TooManyRequests and cause %s", out, err, policyv1.DisruptionBudgetCause)
	}
	if v := h.Get(upstreamVerdictHeader); v != "" {
		t.Errorf("the client saw the internal header %s: %q", upstreamVerdictHeader, v)
	}

	events := auditEvents(t, path)
	if len(events) != 1 {
		t.Errorf("the eviction reached the apiservers %d times (audit: %+v); want exactly once", len(events), events)
	}
	// Envoy counts a retry just after the response; give it the time
	// growth gives, then require none.
	if grew, text := retries.growth(t, ctx, retriesBefore, 1); grew != 0 {
		t.Errorf("envoy_cluster_upstream_rq_retry{%s} grew by %v; want 0\n%s", gatewayCluster, grew, grepLines(text, "upstream_rq_retry"))
	}
}

// apfAnswer is what one marked LIST got back through the gateway.
type apfAnswer struct {
	marker  string
	code    int
	verdict string
	body    string
	err     error
}

// listWave sends n concurrent LISTs of config maps as the client's user,
// each marked in its label selector so the audit logs can find it.
func listWave(ctx context.Context, client *http.Client, name string, wave, n int) []apfAnswer {
	out := make([]apfAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := &out[i]
			a.marker = fmt.Sprintf("%s-w%02d-r%02d", name, wave, i) // fixed width: no marker contains another
			u := sb.GatewayURL + "/api/v1/namespaces/default/configmaps?labelSelector=" + url.QueryEscape("apf-marker="+a.marker)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				a.err = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				a.err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			a.code, a.verdict, a.body = resp.StatusCode, resp.Header.Get(upstreamVerdictHeader), string(b)
		})
	}
	wg.Wait()
	return out
}

// grantListConfigMaps lets user list config maps in namespace default.
func grantListConfigMaps(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	rbac := sandbox.Clientset(t, adminUser().direct()).RbacV1()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: "default"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}},
	}
	if _, err := rbac.Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := rbac.RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("role binding: %v", err)
	}
	t.Cleanup(func() {
		_ = rbac.RoleBindings("default").Delete(context.Background(), user, metav1.DeleteOptions{})
		_ = rbac.Roles("default").Delete(context.Background(), user, metav1.DeleteOptions{})
	})
}

// tinyPriorityLevel classifies every request of user into a priority level
// of its own, also named user: 100 nominal shares, nothing lent or
// borrowed, requests beyond its seats rejected at once (no queue).
func tinyPriorityLevel(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	fc := sandbox.Clientset(t, adminUser().direct()).FlowcontrolV1()
	shares, zero := int32(100), int32(0)
	plc := &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: &shares,
				LendablePercent:          &zero,
				BorrowingLimitPercent:    &zero,
				LimitResponse:            flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
			},
		},
	}
	if _, err := fc.PriorityLevelConfigurations().Create(ctx, plc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("priority level: %v", err)
	}
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: user},
			MatchingPrecedence:         500,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: user}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
					ClusterScope: true, Namespaces: []string{"*"},
				}},
			}},
		},
	}
	if _, err := fc.FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("flow schema: %v", err)
	}
	t.Cleanup(func() {
		_ = fc.FlowSchemas().Delete(context.Background(), user, metav1.DeleteOptions{})
		_ = fc.PriorityLevelConfigurations().Delete(context.Background(), user, metav1.DeleteOptions{})
	})
}

// replicaMetric sums a series of replica i's /metrics (read as admin).
func replicaMetric(t *testing.T, ctx context.Context, i int, name string, labels map[string]string) float64 {
	t.Helper()
	client, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	text, err := sandbox.Get(ctx, client, sb.ReplicaURLs[i-1]+"/metrics")
	if err != nil {
		t.Fatalf("replica %d metrics: %v", i, err)
	}
	v, err := sandbox.SumMetric(text, name, labels)
	if err != nil {
		t.Fatalf("replica %d %s: %v", i, name, err)
	}
	return v
}

// grepLines keeps the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

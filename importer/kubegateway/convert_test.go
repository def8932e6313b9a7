package kubegateway

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// convertOne converts one KubeGateway UpstreamCluster with the given spec
// lines (two-space indented under spec:) and annotations.
func convertOne(t *testing.T, annotations, spec string) (*Result, v1alpha1.UpstreamCluster) {
	t.Helper()
	doc := "apiVersion: proxy.kubegateway.io/v1alpha1\nkind: UpstreamCluster\nmetadata:\n  name: c.example.com\n" + annotations +
		"spec:\n  servers:\n  - endpoint: https://10.0.0.1:6443\n  - endpoint: https://10.0.0.2:6443\n" + spec
	res, err := Convert([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 1 {
		t.Fatalf("want 1 cluster, got %d; report:\n%s", len(res.Clusters), res.Report())
	}
	return res, res.Clusters[0]
}

func hasFinding(res *Result, field string, kind FindingKind, detail string) bool {
	for _, f := range res.Findings {
		if f.Field == field && f.Kind == kind && strings.Contains(f.Detail, detail) {
			return true
		}
	}
	return false
}

func policy(t *testing.T, uc v1alpha1.UpstreamCluster, name string) v1alpha1.DispatchPolicy {
	t.Helper()
	for _, p := range uc.Spec.DispatchPolicies {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no policy %s in %+v", name, uc.Spec.DispatchPolicies)
	return v1alpha1.DispatchPolicy{}
}

// Negation follows KubeGateway's matcher: one negated verb is spelled out;
// several different negated values match everything; negated entries
// beside plain ones are ignored; one negated value of an open set cannot
// be carried and its rule is dropped (the policy with it, when nothing is
// left).
func TestConvertNegation(t *testing.T) {
	res, uc := convertOne(t, "", `  dispatchPolicies:
  - rules:
    - {verbs: ["-create"], apiGroups: ["*"], resources: ["*"]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["-pods", "-deployments"]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["-pods", "deployments"]}
  - rules:
    - {verbs: ["*"], apiGroups: ["-apps"], resources: ["*"]}
  - rules:
    - {verbs: ["-get"], nonResourceURLs: ["/version"]}
`)
	want := []string{"get", "list", "watch", "update", "patch", "delete", "deletecollection", "proxy"}
	if d := cmp.Diff(want, policy(t, uc, "policy-0").Rules[0].Verbs); d != "" {
		t.Errorf("-create (-want +got):\n%s", d)
	}
	if got := policy(t, uc, "policy-1").Rules[0].Resources; !cmp.Equal(got, []string{"*"}) {
		t.Errorf("two negated resources: got %v, want [*] (KubeGateway matches every resource)", got)
	}
	if got := policy(t, uc, "policy-2").Rules[0].Resources; !cmp.Equal(got, []string{"deployments"}) {
		t.Errorf("mixed: got %v, want [deployments]", got)
	}
	for _, p := range uc.Spec.DispatchPolicies {
		if p.Name == "policy-3" {
			t.Errorf("apiGroups [-apps] cannot be carried exactly, yet policy-3 is %+v", p)
		}
	}
	if !hasFinding(res, "spec.dispatchPolicies[3].rules[0].apiGroups", NotCarried, "no negation") {
		t.Errorf("no finding for -apps:\n%s", res.Report())
	}
	if got := policy(t, uc, "policy-4").Rules[0].Verbs; !cmp.Equal(got, []string{"post", "put", "patch", "delete", "head", "options"}) {
		t.Errorf("non-resource -get: got %v", got)
	}
}

// KubeGateway requires (users or serviceAccounts) and userGroups; Frontdoor
// ORs its subject fields. Only the forms where both agree are carried.
func TestConvertSubjects(t *testing.T) {
	res, uc := convertOne(t, "", `  dispatchPolicies:
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [alice], userGroups: [admins]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: ["*"], serviceAccounts: [{namespace: a, name: b}], userGroups: [admins]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: [alice], userGroups: ["*"]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: ["system:serviceaccount:ns:*"]}
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], users: ["-bob"]}
`)
	if !hasFinding(res, "spec.dispatchPolicies[0].rules[0]", NotCarried, "requires one of each") {
		t.Errorf("users AND userGroups not reported:\n%s", res.Report())
	}
	p1 := policy(t, uc, "policy-1").Rules[0]
	if len(p1.Users) != 0 || len(p1.ServiceAccounts) != 0 || !cmp.Equal(p1.UserGroups, []string{"admins"}) {
		t.Errorf("users * with a group: got %+v, want the group only", p1)
	}
	p2 := policy(t, uc, "policy-2").Rules[0]
	if !cmp.Equal(p2.Users, []string{"alice"}) || len(p2.UserGroups) != 0 {
		t.Errorf("userGroups * with a user: got %+v, want the user only (userGroups [*] would match everyone)", p2)
	}
	for _, p := range uc.Spec.DispatchPolicies {
		if p.Name == "policy-0" || p.Name == "policy-3" || p.Name == "policy-4" {
			t.Errorf("%s must be dropped, got %+v", p.Name, p)
		}
	}
	if !hasFinding(res, "spec.dispatchPolicies[3].rules[0].users", NotCarried, "userGroups [system:serviceaccounts:ns]") {
		t.Errorf("prefix user not reported with its hint:\n%s", res.Report())
	}
}

// A request no policy matches gets KubeGateway's 500 through an added last
// policy; none is added when policies already take everything.
func TestConvertUnmatchedIsRejected(t *testing.T) {
	_, uc := convertOne(t, "", `  dispatchPolicies:
  - rules:
    - {verbs: [list], apiGroups: ["*"], resources: [pods]}
`)
	last := uc.Spec.DispatchPolicies[len(uc.Spec.DispatchPolicies)-1]
	want := v1alpha1.DispatchPolicy{Name: unmatchedPolicy, Rules: matchAll(true, true), Reject: &v1alpha1.RejectAction{Code: 500, Message: "no router rule matches this request"}}
	if d := cmp.Diff(want, last); d != "" {
		t.Errorf("last policy (-want +got):\n%s", d)
	}
	_, uc = convertOne(t, "", `  dispatchPolicies:
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"]}
    - {verbs: ["*"], nonResourceURLs: ["*"]}
`)
	if n := len(uc.Spec.DispatchPolicies); n != 1 {
		t.Errorf("catch-all policies: want no added policy, got %d policies", n)
	}
}

// DenyAllRequests (KubeGateway's degradation switch) answers everything
// 503 before any policy.
func TestConvertDenyAllRequests(t *testing.T) {
	_, uc := convertOne(t, "  annotations: {proxy.kubegateway.io/feature-gates: \"DenyAllRequests=true\"}\n", `  dispatchPolicies:
  - rules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"]}
    - {verbs: ["*"], nonResourceURLs: ["*"]}
`)
	first := uc.Spec.DispatchPolicies[0]
	if first.Name != denyAllPolicy || first.Reject == nil || first.Reject.Code != 503 || !cmp.Equal(first.Rules, matchAll(true, true)) {
		t.Errorf("first policy: %+v", first)
	}
	if n := len(uc.Spec.DispatchPolicies); n != 2 {
		t.Errorf("catch-all policies behind the switch: want deny-all-requests and policy-0, got %d policies", n)
	}
	// Deleting the switch must leave KubeGateway's answer to unmatched
	// requests in place.
	_, uc = convertOne(t, "  annotations: {proxy.kubegateway.io/feature-gates: \"DenyAllRequests=true\"}\n", `  dispatchPolicies:
  - rules: [{verbs: [get], apiGroups: ["*"], resources: ["*"]}]
`)
	if last := uc.Spec.DispatchPolicies[len(uc.Spec.DispatchPolicies)-1]; last.Name != unmatchedPolicy {
		t.Errorf("last policy %q, want %s behind the switch", last.Name, unmatchedPolicy)
	}
	_, uc = convertOne(t, "  annotations: {proxy.kubegateway.io/feature-gates: \"DenyAllRequests=false\"}\n", "")
	if len(uc.Spec.DispatchPolicies) > 0 && uc.Spec.DispatchPolicies[0].Name == denyAllPolicy {
		t.Error("DenyAllRequests=false must not deny")
	}
}

// upsteamSubset (the docs' spelling) is read as upstreamSubset; the right
// spelling wins when both are given; a subset of unknown servers answers
// 503 as KubeGateway finds no endpoint.
func TestConvertSubset(t *testing.T) {
	res, uc := convertOne(t, "", `  dispatchPolicies:
  - rules: [{verbs: [get], apiGroups: ["*"], resources: ["*"]}]
    upsteamSubset: ["https://10.0.0.2:6443"]
  - rules: [{verbs: [list], apiGroups: ["*"], resources: ["*"]}]
    upstreamSubset: ["https://10.0.0.1:6443"]
    upsteamSubset: ["https://10.0.0.2:6443"]
  - rules: [{verbs: [watch], apiGroups: ["*"], resources: ["*"]}]
    upstreamSubset: ["https://10.9.9.9:6443"]
`)
	if got := policy(t, uc, "policy-0").UpstreamSubset; !cmp.Equal(got, []string{"https://10.0.0.2:6443"}) {
		t.Errorf("upsteamSubset: got %v", got)
	}
	if got := policy(t, uc, "policy-1").UpstreamSubset; !cmp.Equal(got, []string{"https://10.0.0.1:6443"}) {
		t.Errorf("both spellings: got %v, want upstreamSubset's", got)
	}
	if !hasFinding(res, "spec.dispatchPolicies[1].upsteamSubset", NotCarried, "upstreamSubset is given too") {
		t.Errorf("both spellings not reported:\n%s", res.Report())
	}
	if p := policy(t, uc, "policy-2"); p.Reject == nil || p.Reject.Code != 503 || len(p.UpstreamSubset) != 0 {
		t.Errorf("unknown subset: got %+v, want reject 503", p)
	}
}

// Flow control: schemas placed directly under flowControl are read; a
// global schema keeps its local limit; a schema used by two policies is
// reported (KubeGateway shares its limiter).
func TestConvertFlowControl(t *testing.T) {
	res, uc := convertOne(t, "", `  flowControl:
  - {name: bucket, tokenBucket: {qps: 10, burst: 20}}
  - {name: capped, maxRequestsInflight: {max: 5}, globalMaxRequestsInflight: {max: 50}}
  dispatchPolicies:
  - rules: [{verbs: [get], apiGroups: ["*"], resources: ["*"]}]
    flowControlSchemaName: bucket
  - rules: [{verbs: [list], apiGroups: ["*"], resources: ["*"]}]
    flowControlSchemaName: bucket
  - rules: [{verbs: [watch], apiGroups: ["*"], resources: ["*"]}]
    flowControlSchemaName: capped
`)
	want := []v1alpha1.FlowControlSchema{
		{Name: "bucket", TokenBucket: &v1alpha1.TokenBucket{QPS: 10, Burst: 20}},
		{Name: "capped", MaxRequestsInflight: &v1alpha1.MaxRequestsInflight{Max: 5}},
	}
	if d := cmp.Diff(want, uc.Spec.FlowControl.FlowControlSchemas); d != "" {
		t.Errorf("schemas (-want +got):\n%s", d)
	}
	for field, detail := range map[string]string{
		"spec.flowControl":                                           "read as flowControl.flowControlSchemas",
		"spec.flowControl.flowControlSchemas[1]":                     "global",
		"spec.flowControl.flowControlSchemas[bucket]":                "used by 2 policies",
		"spec.flowControl.flowControlSchemas[1].maxRequestsInflight": "long-running",
	} {
		if !hasFinding(res, field, Converted, detail) && !hasFinding(res, field, NotCarried, detail) {
			t.Errorf("no finding %s: %s\n%s", field, detail, res.Report())
		}
	}
}

// Inline PEM data becomes Secrets with the keys Frontdoor reads; a
// placeholder left in is reported, not written.
func TestConvertSecrets(t *testing.T) {
	pki := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "translator", "testdata", "in", "pki", name))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	res, uc := convertOne(t, "", "  clientConfig: {certData: "+pki("client.crt")+", keyData: "+pki("client.key")+", caData: \"<base64 encode ca PEM data>\"}\n"+
		"  secureServing: {certData: "+pki("serving.crt")+", keyData: "+pki("serving.key")+", clientCAData: "+pki("ca.crt")+"}\n")
	got := map[string][]string{}
	for _, s := range res.Secrets {
		var keys []string
		for k := range s.Data {
			keys = append(keys, k)
		}
		got[s.Name+" "+string(s.Type)] = sortedCopy(keys)
		if s.Namespace != DefaultNamespace {
			t.Errorf("%s in namespace %q", s.Name, s.Namespace)
		}
	}
	want := map[string][]string{
		"c.example.com-upstream " + string(corev1.SecretTypeTLS):     {"tls.crt", "tls.key"},
		"c.example.com-serving " + string(corev1.SecretTypeTLS):      {"tls.crt", "tls.key"},
		"c.example.com-client-ca " + string(corev1.SecretTypeOpaque): {"ca.crt"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("secrets (-want +got):\n%s", d)
	}
	if !hasFinding(res, "spec.clientConfig.caData", NotCarried, "not base64") {
		t.Errorf("placeholder not reported:\n%s", res.Report())
	}
	if uc.Spec.SecureServing.ClientCASecretRef == nil || uc.Spec.SecureServing.ClientCASecretRef.Name != "c.example.com-client-ca" ||
		!cmp.Equal(uc.Spec.SecureServing.ServerNames, []string{"c.example.com"}) {
		t.Errorf("secureServing: %+v", uc.Spec.SecureServing)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Only input that is not YAML fails; other kinds and unknown fields are
// findings.
func TestConvertInputErrors(t *testing.T) {
	if _, err := Convert([]byte("a: [b\n"), Options{}); err == nil {
		t.Error("broken YAML: want an error")
	}
	res, err := Convert([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: proxy.kubegateway.io/v1alpha1\nkind: UpstreamCluster\nmetadata: {name: kg}\nspec: {sevrers: []}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 1 || !hasFinding(res, "kind", NotCarried, "ConfigMap") || !hasFinding(res, "spec.sevrers", NotCarried, "not a field") {
		t.Errorf("clusters %d, report:\n%s", len(res.Clusters), res.Report())
	}
	// A List (kubectl get -o yaml) is read item by item; a document that is
	// not an object is skipped.
	res, err = Convert([]byte("- just\n- a list\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: proxy.kubegateway.io/v1alpha1, kind: UpstreamCluster, metadata: {name: one}}\n- {apiVersion: proxy.kubegateway.io/v1alpha1, kind: UpstreamCluster, metadata: {name: two}}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 2 || res.Clusters[0].Name != "one" || res.Clusters[1].Name != "two" || !hasFinding(res, "document", NotCarried, "not an object") {
		t.Errorf("clusters %d, report:\n%s", len(res.Clusters), res.Report())
	}
}

package authz

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/policy"
)

func TestRuleMatches(t *testing.T) {
	alice := &user.DefaultInfo{Name: "alice", Groups: []string{"devs", "system:authenticated"}}
	sa := &user.DefaultInfo{Name: "system:serviceaccount:kube-system:ctrl", Groups: []string{"system:serviceaccounts"}}
	listPods := policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	all := policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}

	tests := []struct {
		name   string
		rule   policy.Rule
		method string
		target string
		user   user.Info
		want   bool
	}{
		{"list pods all namespaces", listPods, "GET", "/api/v1/pods", alice, true},
		{"list pods in a namespace", listPods, "GET", "/api/v1/namespaces/a/pods", alice, true},
		{"get pod is not list", listPods, "GET", "/api/v1/namespaces/a/pods/p", alice, false},
		{"watch param is not list", listPods, "GET", "/api/v1/pods?watch=true", alice, false},
		{"watch path is not list", listPods, "GET", "/api/v1/watch/pods", alice, false},
		{"watch rule matches watch param", policy.Rule{Verbs: []string{"watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}, "GET", "/api/v1/namespaces/a/pods?watch=1", alice, true},
		{"pod log subresource not matched by pods", listPods, "GET", "/api/v1/namespaces/a/pods/p/log", alice, false},
		{"pods/log matches log", policy.Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/log"}}, "GET", "/api/v1/namespaces/a/pods/p/log", alice, true},
		{"*/status matches pods/status", policy.Rule{Verbs: []string{"update"}, APIGroups: []string{""}, Resources: []string{"*/status"}}, "PUT", "/api/v1/namespaces/a/pods/p/status", alice, true},
		{"*/status not a resource", policy.Rule{Verbs: []string{"update"}, APIGroups: []string{""}, Resources: []string{"*/status"}}, "PUT", "/api/v1/namespaces/a/pods/p", alice, false},
		{"* matches subresources", all, "POST", "/api/v1/namespaces/a/pods/p/exec", alice, true},
		{"core group is not apps", listPods, "GET", "/apis/apps/v1/pods", alice, false},
		{"apps group", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}}, "GET", "/apis/apps/v1/deployments", alice, true},
		{"cluster-scoped list", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"nodes"}}, "GET", "/api/v1/nodes", alice, true},
		{"namespaces restrict", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}, Namespaces: []string{"a"}}, "GET", "/api/v1/namespaces/b/pods", alice, false},
		{"namespaces exclude cluster-wide list", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}, Namespaces: []string{"a"}}, "GET", "/api/v1/pods", alice, false},
		{"namespaces match", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}, Namespaces: []string{"a"}}, "GET", "/api/v1/namespaces/a/pods", alice, true},
		{"resourceNames match", policy.Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"x"}}, "GET", "/api/v1/namespaces/a/configmaps/x", alice, true},
		{"resourceNames exclude list", policy.Rule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"x"}}, "GET", "/api/v1/namespaces/a/configmaps", alice, false},
		{"resource rule never matches non-resource", all, "GET", "/healthz", alice, false},
		{"nonResourceURL exact", policy.Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}, "GET", "/healthz", alice, true},
		{"nonResourceURL exact is not prefix", policy.Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}, "GET", "/healthz/etcd", alice, false},
		{"nonResourceURL star suffix", policy.Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz*"}}, "GET", "/healthz/etcd", alice, true},
		{"nonResourceURL verb", policy.Rule{Verbs: []string{"post"}, NonResourceURLs: []string{"*"}}, "GET", "/version", alice, false},
		{"nonResourceURL rule never matches resources", policy.Rule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}, "GET", "/api/v1/pods", alice, false},
		{"discovery /api is non-resource", policy.Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/api*"}}, "GET", "/apis", alice, true},
		{"user matches", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Users: []string{"alice"}}, "GET", "/api/v1/pods", alice, true},
		{"other user", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Users: []string{"bob"}}, "GET", "/api/v1/pods", alice, false},
		{"group matches", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, UserGroups: []string{"devs"}}, "GET", "/api/v1/pods", alice, true},
		{"users or groups", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Users: []string{"bob"}, UserGroups: []string{"devs"}}, "GET", "/api/v1/pods", alice, true},
		{"service account", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ServiceAccounts: []string{"system:serviceaccount:kube-system:ctrl"}}, "GET", "/api/v1/pods", sa, true},
		{"service account is not a user wildcard", policy.Rule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ServiceAccounts: []string{"system:serviceaccount:kube-system:ctrl"}}, "GET", "/api/v1/pods", alice, false},
		{"no verbs matches nothing", policy.Rule{APIGroups: []string{"*"}, Resources: []string{"*"}}, "GET", "/api/v1/pods", alice, false},
		{"create", policy.Rule{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}, "POST", "/api/v1/namespaces/a/pods", alice, true},
		{"deletecollection", policy.Rule{Verbs: []string{"deletecollection"}, APIGroups: []string{""}, Resources: []string{"pods"}}, "DELETE", "/api/v1/namespaces/a/pods", alice, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parseRequestInfo(tt.method, tt.target)
			if info == nil {
				t.Fatalf("parse %s %s: %v", tt.method, tt.target, err)
			}
			if got := ruleMatches(&tt.rule, info, tt.user); got != tt.want {
				t.Errorf("ruleMatches = %v, want %v (info %+v)", got, tt.want, *info)
			}
		})
	}
}

func TestMatchPolicyFirstWins(t *testing.T) {
	ps := compileDispatch([]policy.Dispatch{
		{Name: "alice", Rules: []policy.Rule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Users: []string{"alice"}}}},
		{Name: "shed-list-pods", Rules: []policy.Rule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
			Reject: &policy.Reject{Code: http.StatusTooManyRequests, RetryAfterSeconds: 5, Message: "shedding"}},
	})
	info, _ := parseRequestInfo("GET", "/api/v1/pods")
	if got := matchPolicy(ps, info, &user.DefaultInfo{Name: "alice"}); got == nil || got.name != "alice" {
		t.Fatalf("alice matched %v, want policy alice", got)
	}
	got := matchPolicy(ps, info, &user.DefaultInfo{Name: "bob"})
	if got == nil || got.reject == nil {
		t.Fatalf("bob matched %v, want the shedding policy", got)
	}
	d := got.reject
	if d.Code != 429 || d.Outcome != Rejected || !strings.Contains(string(d.Body), `"reason":"TooManyRequests"`) ||
		!strings.Contains(string(d.Body), `"retryAfterSeconds":5`) || !strings.Contains(string(d.Body), "shedding") {
		t.Errorf("reject decision %d %s %s", d.Code, d.Outcome, d.Body)
	}
	var retry string
	for _, h := range d.ResponseHeaders {
		if h.Name == "retry-after" {
			retry = h.Value
		}
	}
	if retry != "5" {
		t.Errorf("retry-after = %q, want 5", retry)
	}
	info, _ = parseRequestInfo("GET", "/api/v1/namespaces/a/pods/p")
	if got := matchPolicy(ps, info, &user.DefaultInfo{Name: "bob"}); got != nil {
		t.Errorf("get pod by bob matched %q, want none (default)", got.name)
	}
}

func TestPolicyRuleLongRunning(t *testing.T) {
	ps := compileDispatch([]policy.Dispatch{{
		Name: "capped", LongRunningRule: "capped.long-running",
		Rules: []policy.Rule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
	}})
	tests := []struct {
		method, target, want string
	}{
		{"GET", "/api/v1/pods", "capped"},
		{"GET", "/api/v1/namespaces/a/pods/p", "capped"},
		{"GET", "/api/v1/pods?watch=true", "capped.long-running"},
		{"GET", "/api/v1/watch/namespaces/a/pods", "capped.long-running"},
		{"GET", "/api/v1/namespaces/a/pods/p/log", "capped.long-running"},
		{"GET", "/api/v1/namespaces/a/pods/p/log?follow=true", "capped.long-running"},
		{"POST", "/api/v1/namespaces/a/pods/p/exec", "capped.long-running"},
		{"POST", "/api/v1/namespaces/a/pods/p/portforward", "capped.long-running"},
		{"GET", "/api/v1/namespaces/a/services/s/proxy/x", "capped.long-running"},
		{"GET", "/api/v1/namespaces/a/pods/p/status", "capped"},
		{"GET", "/debug/pprof/profile", "capped.long-running"},
		{"GET", "/healthz", "capped"},
	}
	for _, tt := range tests {
		info, _ := parseRequestInfo(tt.method, tt.target)
		p := matchPolicy(ps, info, &user.DefaultInfo{Name: "u"})
		if p == nil {
			t.Fatalf("%s %s: no policy", tt.method, tt.target)
		}
		if got := p.rule(info); got != tt.want {
			t.Errorf("%s %s: rule %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}

// The pipeline answers the matched policy's name as the rule, matching on
// the authenticated identity, and a shedding policy's denial.
func TestPipelineDispatch(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	tab := testTable(ca.CertPEM)
	tab.Clusters["a"].Dispatch = []policy.Dispatch{
		{Name: "jane", Rules: []policy.Rule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Users: []string{"jane"}}}},
		{Name: "shed", Rules: []policy.Rule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
			Reject: &policy.Reject{Code: 503, RetryAfterSeconds: 2}},
	}
	tp.SetPolicy(tab)
	check := func(cn, path string) Decision {
		_, cert := ca.issue(t, clientCert{cn: cn})
		return tp.Check(context.Background(), &Request{Cluster: "a", Method: "GET", Path: path, PeerCertificate: cert})
	}
	// A policy's requests carry the user key its route's per-user buckets
	// read; the default route has none, so its requests carry no key.
	userKeys := func(d Decision) (keys []string) {
		for _, h := range d.SetHeaders {
			if h.Name == envoy.HeaderUser {
				keys = append(keys, h.Value)
			}
		}
		return keys
	}
	if d := check("jane", "/api/v1/pods"); !d.Allowed() || d.Rule != "jane" {
		t.Errorf("jane list pods: %s rule %q, want allowed by jane", d.Outcome, d.Rule)
	} else if got := userKeys(d); !slices.Equal(got, []string{userKey("jane")}) {
		t.Errorf("jane list pods: %s = %q, want jane's key", envoy.HeaderUser, got)
	}
	if d := check("bob", "/api/v1/pods"); d.Outcome != Rejected || d.Code != 503 || d.User != "bob" {
		t.Errorf("bob list pods: %s %d user %q, want rejected 503", d.Outcome, d.Code, d.User)
	}
	if d := check("bob", "/api/v1/namespaces/x/pods/p"); !d.Allowed() || d.Rule != "default" {
		t.Errorf("bob get pod: %s rule %q, want default", d.Outcome, d.Rule)
	} else if got := userKeys(d); got != nil {
		t.Errorf("bob get pod (default rule): %s = %q, want none", envoy.HeaderUser, got)
	}
	for _, c := range []struct{ rule, verb, resource, decision string }{
		{"jane", "list", "pods", "allowed"}, {"shed", "list", "pods", "rejected"}, {"default", "get", "pods", "allowed"},
	} {
		if got := testutil.ToFloat64(tp.reqMetrics.requests.WithLabelValues("a", c.rule, c.verb, c.resource, c.decision)); got != 1 {
			t.Errorf("frontdoor_requests_total{rule=%q,verb=%q,resource=%q,decision=%q} = %v, want 1", c.rule, c.verb, c.resource, c.decision, got)
		}
	}
	// Per user only for users a rule names: jane, not bob.
	if got := testutil.ToFloat64(tp.reqMetrics.userRequests.WithLabelValues("a", "jane", "jane", "allowed")); got != 1 {
		t.Errorf(`frontdoor_user_requests_total{user="jane"} = %v, want 1`, got)
	}
	if n := testutil.CollectAndCount(tp.reqMetrics.userRequests); n != 1 {
		t.Errorf("frontdoor_user_requests_total has %d series, want 1 (bob is named by no rule)", n)
	}
}

// BenchmarkPipelineDispatchRules is a cached x509 GET through 1 to 1,000
// dispatch rules of which only the last matches (the worst case: every
// rule is tried), so the matcher's share of the hot path is visible.
func BenchmarkPipelineDispatchRules(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ca := newTestCA(b, "client-ca")
			_, cert := ca.issue(b, clientCert{cn: "target", orgs: []string{"ops"}})
			p, err := NewPipeline(Options{Registry: prometheus.NewRegistry(), Now: (&fakeClock{now: testNow}).Now})
			if err != nil {
				b.Fatal(err)
			}
			tab := testTable(ca.CertPEM)
			for i := range n {
				name := fmt.Sprintf("p%d", i/20)
				if len(tab.Clusters["a"].Dispatch) == 0 || tab.Clusters["a"].Dispatch[len(tab.Clusters["a"].Dispatch)-1].Name != name {
					tab.Clusters["a"].Dispatch = append(tab.Clusters["a"].Dispatch, policy.Dispatch{Name: name})
				}
				user := fmt.Sprintf("user-%d", i)
				if i == n-1 {
					user = "target"
				}
				d := &tab.Clusters["a"].Dispatch[len(tab.Clusters["a"].Dispatch)-1]
				d.Rules = append(d.Rules, policy.Rule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "configmaps"}, Users: []string{user}})
			}
			p.SetPolicy(tab)
			path := "/api/v1/namespaces/default/pods/web-0"
			req := &Request{Cluster: "a", Method: "GET", Path: path, PeerCertificate: cert,
				Headers: map[string]string{":authority": "cluster-a.example.com", ":method": "GET", ":path": path, "accept": "application/json"}}
			ctx := context.Background()
			want := fmt.Sprintf("p%d", (n-1)/20)
			if d := p.Check(ctx, req); !d.Allowed() || d.Rule != want {
				b.Fatalf("decision = %s rule %q, want allowed by %s", d.Outcome, d.Rule, want)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p.Check(ctx, req)
			}
		})
	}
}

// TestEquivalentRequestsMatch: a policy on list, create or a namespace is
// not sidestepped by a request that gets the same data under another verb
// or namespace (equivalentRequests); requests that do not stay unmatched.
func TestEquivalentRequestsMatch(t *testing.T) {
	ps := compileDispatch([]policy.Dispatch{
		{Name: "list-pods", Rules: []policy.Rule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		{Name: "get-cm", Rules: []policy.Rule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}},
		{Name: "create-cm", Rules: []policy.Rule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}},
		{Name: "ns-a", Rules: []policy.Rule{{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"secrets"}, Namespaces: []string{"a"}}}},
		{Name: "list-ns-b", Rules: []policy.Rule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"services"}, Namespaces: []string{"b"}}}},
	})
	apply := map[string]string{"content-type": "application/apply-patch+yaml"}
	merge := map[string]string{"content-type": "application/merge-patch+json"}
	tests := []struct {
		method, target string
		headers        map[string]string
		want           string // "" = no policy
	}{
		{"GET", "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", nil, "list-pods"},
		{"GET", "/api/v1/namespaces/x/pods?watch=1&sendInitialEvents=true&resourceVersion=42&resourceVersionMatch=NotOlderThan", nil, "list-pods"},
		{"GET", "/api/v1/pods?watch=true", nil, "list-pods"},                                                 // no resourceVersion: synthetic ADDED for all
		{"GET", "/api/v1/pods?watch=true&resourceVersion=0", nil, "list-pods"},                               // from any version, state first
		{"GET", "/api/v1/watch/namespaces/x/pods", nil, "list-pods"},                                         // the legacy watch path
		{"GET", "/api/v1/pods?watch=true&resourceVersion=42", nil, ""},                                       // only changes after 42
		{"GET", "/api/v1/pods?watch=true&sendInitialEvents=false", nil, ""},                                  // explicitly no state
		{"GET", "/api/v1/namespaces/x/configmaps?watch=true&fieldSelector=metadata.name%3Dc", nil, "get-cm"}, // one object's state
		{"GET", "/api/v1/namespaces/x/configmaps?watch=true&fieldSelector=metadata.name%3Dc&resourceVersion=9", nil, ""},
		{"PATCH", "/api/v1/namespaces/x/configmaps/c?fieldManager=m", apply, "create-cm"},
		{"PATCH", "/api/v1/namespaces/x/configmaps/c", map[string]string{"Content-Type": "Application/Apply-Patch+CBOR"}, "create-cm"},
		{"PATCH", "/api/v1/namespaces/x/configmaps/c", merge, ""},
		{"PUT", "/api/v1/namespaces/x/configmaps/c", apply, ""}, // an update is not an apply
		{"GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3Da", nil, "ns-a"},
		{"GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3D%3Da,type%3Dx", nil, "ns-a"},
		{"GET", "/api/v1/secrets?watch=true&fieldSelector=metadata.namespace%3Da", nil, "ns-a"},
		{"GET", "/api/v1/secrets?fieldSelector=metadata.namespace%21%3Da", nil, ""}, // not a requirement of a
		{"GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3Dz", nil, ""},
		{"GET", "/api/v1/secrets", nil, ""},
		{"GET", "/api/v1/namespaces/z/secrets?fieldSelector=metadata.namespace%3Da", nil, ""},         // the path's namespace rules
		{"GET", "/api/v1/services?watch=true&fieldSelector=metadata.namespace%3Db", nil, "list-ns-b"}, // both views at once
		{"GET", "/api/v1/services?watch=true&resourceVersion=5&fieldSelector=metadata.namespace%3Db", nil, ""},
	}
	for _, tt := range tests {
		info, _ := parseRequestInfo(tt.method, tt.target)
		p := matchPolicy(ps, info, &user.DefaultInfo{Name: "u"}, equivalentRequests(info, tt.target, tt.headers)...)
		got := ""
		if p != nil {
			got = p.name
		}
		if got != tt.want {
			t.Errorf("%s %s %v: policy %q, want %q", tt.method, tt.target, tt.headers, got, tt.want)
		}
		if p != nil && p.rule(info) != p.name && !isLongRunning(info) {
			t.Errorf("%s %s: rule %q", tt.method, tt.target, p.rule(info))
		}
	}
}

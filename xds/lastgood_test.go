package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

func findStatus(t *testing.T, sts []translator.Status, name string) translator.Status {
	t.Helper()
	for _, st := range sts {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %q", name)
	return translator.Status{}
}

func condition(st translator.Status, typ string) metav1.Condition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// edit returns in with the named cluster replaced by a copy changed by fn,
// one generation later, as the apiserver would hand it to an informer.
func edit(in translator.Inputs, name string, fn func(*v1alpha1.UpstreamCluster)) translator.Inputs {
	out := in
	out.UpstreamClusters = nil
	for _, uc := range in.UpstreamClusters {
		if uc.Name == name {
			uc = uc.DeepCopy()
			uc.Generation++
			fn(uc)
		}
		out.UpstreamClusters = append(out.UpstreamClusters, uc)
	}
	return out
}

// TestInvalidEditKeepsLastGoodVersion: a bad edit (a Secret that does not
// exist, then a semantically wrong field) turns Accepted and Programmed
// False with reasons, while the served config stays exactly the same; a
// good edit replaces it; deleting the object removes it for good.
func TestInvalidEditKeepsLastGoodVersion(t *testing.T) {
	ctx := context.Background()
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "sni-clusters")
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	good := c.Current().Version
	if p := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionProgrammed); p.Status != metav1.ConditionTrue {
		t.Fatalf("beta Programmed = %+v, want True", p)
	}

	badRef := edit(in, "beta", func(uc *v1alpha1.UpstreamCluster) {
		uc.Spec.ClientConfig.SecretRef.Name = "does-not-exist"
	})
	if err := c.Update(ctx, badRef); err != nil {
		t.Fatal(err)
	}
	st := findStatus(t, c.Statuses(), "beta")
	if got := condition(st, v1alpha1.ConditionResolvedRefs); got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonSecretNotFound {
		t.Fatalf("ResolvedRefs = %+v, want False/SecretNotFound", got)
	}
	if got := condition(st, v1alpha1.ConditionProgrammed); got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonLastGoodServed || got.ObservedGeneration != 3 {
		t.Fatalf("Programmed = %+v, want False/LastGoodServed for generation 3", got)
	}
	if c.Current().Version != good {
		t.Fatalf("a bad edit changed the served config: %s → %s", good, c.Current().Version)
	}
	if st.ServerCount == 0 {
		t.Fatal("serverCount must report the servers still served")
	}

	badField := edit(badRef, "beta", func(uc *v1alpha1.UpstreamCluster) {
		uc.Spec.ClientConfig.SecretRef.Name = "upstream"
		uc.Spec.Servers = []v1alpha1.Server{{Endpoint: "https://10.0.0.1:6443/path"}}
	})
	if err := c.Update(ctx, badField); err != nil {
		t.Fatal(err)
	}
	if got := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionAccepted); got.Reason != v1alpha1.ReasonInvalidServer {
		t.Fatalf("Accepted = %+v, want InvalidServer", got)
	}
	if c.Current().Version != good {
		t.Fatal("a semantically wrong edit changed the served config")
	}

	fixed := edit(badField, "beta", func(uc *v1alpha1.UpstreamCluster) {
		uc.Spec.Servers = []v1alpha1.Server{{Endpoint: "https://10.0.0.99:6443"}}
	})
	if err := c.Update(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	if p := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionProgrammed); p.Status != metav1.ConditionTrue || p.ObservedGeneration != 5 {
		t.Fatalf("after a good edit Programmed = %+v, want True for generation 5", p)
	}
	if c.Current().Version == good {
		t.Fatal("a good edit must change the served config")
	}

	// Deleted, then re-created broken: nothing of the old version returns.
	without := fixed
	without.UpstreamClusters = nil
	for _, uc := range fixed.UpstreamClusters {
		if uc.Name != "beta" {
			without.UpstreamClusters = append(without.UpstreamClusters, uc)
		}
	}
	if err := c.Update(ctx, without); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, badRef); err != nil {
		t.Fatal(err)
	}
	if got := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionProgrammed); got.Reason != v1alpha1.ReasonNotServed {
		t.Fatalf("re-created broken object: Programmed = %+v, want NotServed", got)
	}
	if _, ok := c.Current().Policy.Clusters["beta"]; ok {
		t.Fatal("a deleted object's last good version came back")
	}
}

// TestLastGoodKeepsItsServerName: when A's edit is rejected, its last good
// version keeps its server name, so B (later in name order) cannot take it
// over; B's status must then say it is not served, not Accepted.
func TestLastGoodKeepsItsServerName(t *testing.T) {
	ctx := context.Background()
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "sni-clusters") // alpha and beta have server names
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	alphaNames := findSpec(in, "alpha").SecureServing.ServerNames
	// alpha breaks and gives up its names; beta claims them in the same round.
	next := edit(in, "alpha", func(uc *v1alpha1.UpstreamCluster) {
		uc.Spec.SecureServing.ServerNames = []string{"elsewhere.example.com"}
		uc.Spec.ClientConfig.SecretRef.Name = "missing"
	})
	next = edit(next, "beta", func(uc *v1alpha1.UpstreamCluster) {
		uc.Spec.SecureServing.ServerNames = alphaNames
	})
	if err := c.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := condition(findStatus(t, c.Statuses(), "alpha"), v1alpha1.ConditionProgrammed).Reason; got != v1alpha1.ReasonLastGoodServed {
		t.Fatalf("alpha Programmed reason %q, want LastGoodServed", got)
	}
	if got := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionAccepted); got.Reason != v1alpha1.ReasonConflictingServerNames {
		t.Fatalf("beta Accepted = %+v, want ConflictingServerNames (alpha's last good version holds the names)", got)
	}
}

func findSpec(in translator.Inputs, name string) v1alpha1.UpstreamClusterSpec {
	for _, uc := range in.UpstreamClusters {
		if uc.Name == name {
			return uc.Spec
		}
	}
	return v1alpha1.UpstreamClusterSpec{}
}

// TestNewerObjectCannotTakeOverServerNames: a new UpstreamCluster whose name
// sorts first and which copies a serving cluster's server names does not
// take them over. The older object keeps serving, with its spec unchanged
// (it is not replaced by a last good version, it simply wins), and the
// newer is not accepted, with ConflictingServerNames naming the holder.
func TestNewerObjectCannotTakeOverServerNames(t *testing.T) {
	ctx := context.Background()
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "sni-clusters")
	created := metav1.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, uc := range in.UpstreamClusters {
		uc = uc.DeepCopy()
		uc.CreationTimestamp = created
		in.UpstreamClusters[i] = uc
	}
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Current().Policy.Clusters["beta"]; !ok {
		t.Fatal("beta is not served before the takeover attempt")
	}
	thief := findUC(t, in, "beta").DeepCopy()
	thief.Name = "aaa-takeover"
	thief.Generation = 1
	thief.CreationTimestamp = metav1.NewTime(created.Add(time.Hour))
	next := in
	next.UpstreamClusters = append([]*v1alpha1.UpstreamCluster{thief}, in.UpstreamClusters...)
	if err := c.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	beta := findStatus(t, c.Statuses(), "beta")
	for _, typ := range []string{v1alpha1.ConditionAccepted, v1alpha1.ConditionProgrammed} {
		if got := condition(beta, typ); got.Status != metav1.ConditionTrue {
			t.Errorf("beta %s = %+v, want True (the older object keeps its names)", typ, got)
		}
	}
	if _, ok := c.Current().Policy.Clusters["beta"]; !ok {
		t.Error("beta is no longer served after a newer object claimed its server names")
	}
	if _, ok := c.Current().Policy.Clusters["aaa-takeover"]; ok {
		t.Error("the newer object is served")
	}
	got := condition(findStatus(t, c.Statuses(), "aaa-takeover"), v1alpha1.ConditionAccepted)
	if got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonConflictingServerNames || !strings.Contains(got.Message, `"beta"`) {
		t.Errorf("aaa-takeover Accepted = %+v, want False, ConflictingServerNames naming beta", got)
	}
}

func findUC(t *testing.T, in translator.Inputs, name string) *v1alpha1.UpstreamCluster {
	t.Helper()
	for _, uc := range in.UpstreamClusters {
		if uc.Name == name {
			return uc
		}
	}
	t.Fatalf("no UpstreamCluster %q", name)
	return nil
}

// withSecret returns in with the Secret ns/name's data replaced by data.
func withSecret(in translator.Inputs, name string, data map[string][]byte) translator.Inputs {
	out := in
	out.Secrets = nil
	for _, s := range in.Secrets {
		if s.Name == name {
			s = s.DeepCopy()
			s.Data, s.StringData = data, nil
		}
		out.Secrets = append(out.Secrets, s)
	}
	return out
}

// TestBadSecretEditKeepsLastGoodSecret: a referenced Secret overwritten
// in place with garbage (the clusters unchanged) rejects the clusters that
// use it, with a status condition, while they keep serving exactly as
// before with the Secret as it was; putting a good Secret back serves it.
func TestBadSecretEditKeepsLastGoodSecret(t *testing.T) {
	ctx := context.Background()
	c := NewController(ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	in := goldenInputs(t, "sni-clusters")
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	good := c.Current().Version

	bad := withSecret(in, "client-ca", map[string][]byte{"ca.crt": []byte("not a certificate")})
	if err := c.Update(ctx, bad); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpha", "fallback"} { // the two that use client-ca
		st := findStatus(t, c.Statuses(), name)
		if got := condition(st, v1alpha1.ConditionResolvedRefs); got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonInvalidSecret {
			t.Errorf("%s ResolvedRefs = %+v, want False/InvalidSecret", name, got)
		}
		if got := condition(st, v1alpha1.ConditionProgrammed); got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonLastGoodServed {
			t.Errorf("%s Programmed = %+v, want False/LastGoodServed", name, got)
		}
	}
	if p := condition(findStatus(t, c.Statuses(), "beta"), v1alpha1.ConditionProgrammed); p.Status != metav1.ConditionTrue {
		t.Errorf("beta (no client CA) Programmed = %+v, want True", p)
	}
	if c.Current().Version != good {
		t.Fatalf("a Secret overwritten with garbage changed the served config: %s -> %s", good, c.Current().Version)
	}
	for _, name := range []string{"alpha", "fallback"} {
		if _, ok := c.Current().Policy.Clusters[name]; !ok {
			t.Errorf("%s is no longer served", name)
		}
	}

	// Garbage again (another round) still serves the last good Secret.
	if err := c.Update(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if c.Current().Version != good {
		t.Fatal("the second round with the bad Secret changed the served config")
	}
	// The good Secret back: served, conditions True again.
	if err := c.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	if p := condition(findStatus(t, c.Statuses(), "alpha"), v1alpha1.ConditionProgrammed); p.Status != metav1.ConditionTrue {
		t.Errorf("alpha after the fix: Programmed = %+v, want True", p)
	}
	if c.Current().Version != good {
		t.Errorf("the good Secret back: version %s, want %s", c.Current().Version, good)
	}

	// A deleted Secret is not brought back.
	gone := in
	gone.Secrets = nil
	for _, s := range in.Secrets {
		if s.Name != "client-ca" {
			gone.Secrets = append(gone.Secrets, s)
		}
	}
	if err := c.Update(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if got := condition(findStatus(t, c.Statuses(), "alpha"), v1alpha1.ConditionResolvedRefs); got.Reason != v1alpha1.ReasonSecretNotFound {
		t.Errorf("deleted Secret: ResolvedRefs = %+v, want SecretNotFound", got)
	}
}

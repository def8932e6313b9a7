package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/translator/translatortest"
	"github.com/kubefrontdoor/frontdoor/xds"
)

// goldenInputs loads a translator golden input as the translator's own
// tests do.
func goldenInputs(t *testing.T, name string) translator.Inputs {
	t.Helper()
	return translatortest.MustLoad(t, os.DirFS(filepath.Join("..", "translator", "testdata", "in")), name)
}

// fakeHealth is Envoy's view of the servers, set by the test.
type fakeHealth struct {
	mu      sync.Mutex
	servers map[string][]status.ServerHealth
	changed chan struct{}
}

func (h *fakeHealth) Servers(name string) ([]status.ServerHealth, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.servers[name]
	return s, ok
}

func (h *fakeHealth) Changed() <-chan struct{} { return h.changed }

func (h *fakeHealth) set(name string, servers []status.ServerHealth) {
	h.mu.Lock()
	h.servers = map[string][]status.ServerHealth{name: servers}
	h.mu.Unlock()
	h.changed <- struct{}{}
}

// TestKubeSourceFollowsObjects runs the Kubernetes source against fake
// clients: the UpstreamCluster and its Secrets become a served config, the
// status is written with Accepted, ResolvedRefs and Programmed for the
// object's generation, and with Envoy's view of the servers once it has
// one; an invalid edit keeps the last good version served;
// a deleted Secret that every version needs takes the cluster out, and the
// status says why.
func TestKubeSourceFollowsObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := goldenInputs(t, "one-cluster")
	uc := in.UpstreamClusters[0].DeepCopy()
	uc.APIVersion, uc.Kind = v1alpha1.GroupVersion.String(), "UpstreamCluster"
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(uc)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{v1alpha1.UpstreamClusterResource: "UpstreamClusterList"}, &unstructured.Unstructured{Object: u})
	// The fake replaces the whole object on UpdateStatus; the apiserver
	// takes only the status and rejects a stale resourceVersion. Do the same.
	dyn.PrependReactor("update", "upstreamclusters", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ua, ok := a.(k8stesting.UpdateAction)
		if !ok || ua.GetSubresource() != "status" {
			return false, nil, nil
		}
		in := ua.GetObject().(*unstructured.Unstructured)
		cur, err := dyn.Tracker().Get(v1alpha1.UpstreamClusterResource, "", in.GetName())
		if err != nil {
			return true, nil, err
		}
		stored := cur.(*unstructured.Unstructured).DeepCopy()
		if stored.GetResourceVersion() != in.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(v1alpha1.UpstreamClusterResource.GroupResource(), in.GetName(), fmt.Errorf("stale resourceVersion"))
		}
		stored.Object["status"] = in.Object["status"]
		return true, stored, dyn.Tracker().Update(v1alpha1.UpstreamClusterResource, stored, "")
	})
	var objs []runtime.Object
	for _, s := range in.Secrets {
		objs = append(objs, s.DeepCopy())
	}
	kube := kubefake.NewClientset(objs...)

	c := xds.NewController(xds.ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	health := &fakeHealth{changed: make(chan struct{}, 1)}
	src := NewKube(dyn, kube, KubeOptions{Debounce: 10 * time.Millisecond, Health: health})
	go func() { _ = src.Run(ctx, c) }()

	getStatus := func() v1alpha1.UpstreamClusterStatus {
		got, err := dyn.Resource(v1alpha1.UpstreamClusterResource).Get(ctx, uc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out v1alpha1.UpstreamCluster
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &out); err != nil {
			t.Fatal(err)
		}
		return out.Status
	}
	waitStatus := func(what string, ok func(v1alpha1.UpstreamClusterStatus) bool) v1alpha1.UpstreamClusterStatus {
		t.Helper()
		for {
			st := getStatus()
			if ok(st) {
				return st
			}
			if ctx.Err() != nil {
				t.Fatalf("status never became %s: %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := waitStatus("Programmed", func(st v1alpha1.UpstreamClusterStatus) bool {
		return len(st.Conditions) == 3 && st.ObservedGeneration == uc.Generation && st.ServerCount == 3
	})
	for _, cond := range st.Conditions {
		if cond.Status != metav1.ConditionTrue || cond.LastTransitionTime.IsZero() {
			t.Fatalf("condition %+v, want True with a lastTransitionTime", cond)
		}
	}
	if st.HealthyServerCount != 0 || st.UnhealthyServers != nil {
		t.Fatalf("health written before Envoy reported any: %+v", st)
	}
	served := c.Current().Version

	// Envoy's view of the servers reaches the status without a rebuild.
	health.set(uc.Name, []status.ServerHealth{
		{Address: "10.0.0.1:6443", Healthy: true}, {Address: "10.0.0.2:6443", Healthy: true},
		{Address: "10.0.0.3:6443", Reason: "failed_outlier_check"},
	})
	waitStatus("2 healthy servers", func(st v1alpha1.UpstreamClusterStatus) bool {
		return st.HealthyServerCount == 2 && len(st.UnhealthyServers) == 1 && st.UnhealthyServers[0] == "10.0.0.3:6443: failed_outlier_check"
	})
	if c.Current().Version != served {
		t.Fatal("a health change changed the served config")
	}

	// An invalid edit (the fake does not bump generations: done by hand).
	bad := uc.DeepCopy()
	bad.Generation++
	bad.Spec.ClientConfig.SecretRef.Name = "missing"
	got, err := dyn.Resource(v1alpha1.UpstreamClusterResource).Get(ctx, uc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad.ResourceVersion = got.GetResourceVersion()
	bu, err := runtime.DefaultUnstructuredConverter.ToUnstructured(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(v1alpha1.UpstreamClusterResource).Update(ctx, &unstructured.Unstructured{Object: bu}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus("Programmed False/LastGoodServed", func(st v1alpha1.UpstreamClusterStatus) bool {
		for _, cond := range st.Conditions {
			if cond.Type == v1alpha1.ConditionProgrammed && cond.Reason == v1alpha1.ReasonLastGoodServed {
				return st.ObservedGeneration == bad.Generation
			}
		}
		return false
	})
	if c.Current().Version != served {
		t.Fatalf("an invalid edit changed the served config")
	}

	if err := kube.CoreV1().Secrets("frontdoor-system").Delete(ctx, "serving", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus("Programmed False/NotServed", func(st v1alpha1.UpstreamClusterStatus) bool {
		for _, cond := range st.Conditions {
			if cond.Type == v1alpha1.ConditionProgrammed && cond.Reason == v1alpha1.ReasonNotServed {
				return true
			}
		}
		return false
	})
	// Every version of the object needs the deleted Secret: nothing of it
	// can be served without its serving certificate.
	if _, ok := c.Current().Policy.Clusters[uc.Name]; ok {
		t.Fatalf("cluster still served without its serving Secret (version %s, was %s)", c.Current().Version, served)
	}
}

// TestKubeSourceWatchesOnlySecretNamespaces: with SecretNamespaces set,
// Secrets are listed and watched in those namespaces only (never cluster
// wide), so frontdoor neither caches nor needs RBAC for any other
// namespace's Secrets, and the config still gets its Secrets.
func TestKubeSourceWatchesOnlySecretNamespaces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := goldenInputs(t, "one-cluster")
	uc := in.UpstreamClusters[0].DeepCopy()
	uc.APIVersion, uc.Kind = v1alpha1.GroupVersion.String(), "UpstreamCluster"
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(uc)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.UpstreamClusterResource: "UpstreamClusterList"}, &unstructured.Unstructured{Object: u})
	var objs []runtime.Object
	for _, s := range in.Secrets {
		objs = append(objs, s.DeepCopy())
	}
	kube := kubefake.NewClientset(objs...)
	c := xds.NewController(xds.ControllerOptions{Translator: translator.Options{ListenerAddress: "127.0.0.1", ListenerPort: 6443}, Registry: prometheus.NewRegistry()})
	src := NewKube(dyn, kube, KubeOptions{Debounce: 10 * time.Millisecond, SecretNamespaces: []string{"frontdoor-system"}})
	go func() { _ = src.Run(ctx, c) }()
	for !c.Ready() {
		if ctx.Err() != nil {
			t.Fatal("no config published")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := c.Current().Policy.Clusters[uc.Name]; !ok {
		t.Fatalf("cluster %s not served: its Secrets in frontdoor-system were not read", uc.Name)
	}
	n := 0
	for _, a := range kube.Actions() {
		if a.GetResource().Resource != "secrets" || (a.GetVerb() != "list" && a.GetVerb() != "watch") {
			continue
		}
		n++
		if a.GetNamespace() != "frontdoor-system" {
			t.Errorf("Secrets %s in namespace %q, want frontdoor-system only", a.GetVerb(), a.GetNamespace())
		}
	}
	if n == 0 {
		t.Fatal("no Secrets list or watch recorded")
	}
}

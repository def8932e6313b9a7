package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// DefaultDebounce is how long a change waits for more changes before the
// config is rebuilt (counted from the first change of a burst, so a steady
// stream of changes still reaches Envoy every interval): a `kubectl apply`
// of several objects becomes one snapshot, and a flapping EndpointSlice one
// push per interval.
const DefaultDebounce = 100 * time.Millisecond

// KubeSource reads UpstreamClusters, the Secrets they reference and the
// EndpointSlices they select from one Kubernetes cluster through client-go
// informers, rebuilds the config (debounced) on every relevant change, and
// writes each UpstreamCluster's status back through the status subresource.
type KubeSource struct {
	Config   *rest.Config
	Debounce time.Duration
	Log      *slog.Logger
	// Health, if set, reports healthy servers per UpstreamCluster name (from
	// Envoy's admin API); status.healthyServerCount is left unset otherwise.
	Health *EnvoyHealth
	// Dynamic and Kube replace the clients built from Config (tests).
	Dynamic dynamic.Interface
	Kube    kubernetes.Interface

	dyn     dynamic.Interface
	ucs     cache.SharedIndexInformer
	secrets cache.SharedIndexInformer
	slices  cache.SharedIndexInformer
	trigger chan struct{}
	statusq chan struct{} // coalesced: write the controller's latest statuses

	mu   sync.Mutex
	refs map[string]bool // "secret:ns/name" and "service:ns/name" the config reads
}

// Run syncs the informers, publishes the first config and then follows
// every change until ctx is done. It returns an error only if the caches
// cannot sync (e.g. the CRD is not installed or RBAC forbids a list).
func (k *KubeSource) Run(ctx context.Context, ctrl *Controller) error {
	if k.Debounce <= 0 {
		k.Debounce = DefaultDebounce
	}
	k.dyn = k.Dynamic
	if k.dyn == nil {
		d, err := dynamic.NewForConfig(k.Config)
		if err != nil {
			return err
		}
		k.dyn = d
	}
	var cs kubernetes.Interface = k.Kube
	if cs == nil {
		c, err := kubernetes.NewForConfig(k.Config)
		if err != nil {
			return err
		}
		cs = c
	}
	k.trigger = make(chan struct{}, 1)
	k.statusq = make(chan struct{}, 1)
	k.refs = map[string]bool{}

	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(k.dyn, 0)
	k.ucs = dynFactory.ForResource(v1alpha1.UpstreamClusterResource).Informer()
	factory := informers.NewSharedInformerFactory(cs, 0)
	k.secrets = factory.Core().V1().Secrets().Informer()
	k.slices = factory.Discovery().V1().EndpointSlices().Informer()

	// Status writes change an UpstreamCluster but not its generation: they
	// must not cause a rebuild (or a loop).
	if _, err := k.ucs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { k.poke() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(metav1.Object)
			n, ok2 := newObj.(metav1.Object)
			if !ok1 || !ok2 || o.GetGeneration() != n.GetGeneration() {
				k.poke()
			}
		},
		DeleteFunc: func(any) { k.poke() },
	}); err != nil {
		return err
	}
	for _, s := range []struct {
		inf    cache.SharedIndexInformer
		refKey func(obj any) string
	}{
		{k.secrets, func(obj any) string {
			if s, ok := obj.(*corev1.Secret); ok {
				return "secret:" + s.Namespace + "/" + s.Name
			}
			return ""
		}},
		{k.slices, func(obj any) string {
			if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
				return "service:" + s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
			}
			return ""
		}},
	} {
		if _, err := s.inf.AddEventHandler(k.refHandler(s.refKey)); err != nil {
			return err
		}
	}

	dynFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), k.ucs.HasSynced, k.secrets.HasSynced, k.slices.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kubernetes caches did not sync in 2m (is the UpstreamCluster CRD installed, and may frontdoor list UpstreamClusters, Secrets and EndpointSlices?)")
	}
	k.log().Info("kubernetes caches synced", "upstreamclusters", len(k.ucs.GetStore().ListKeys()))

	var healthChanged <-chan struct{}
	if k.Health != nil {
		healthChanged = k.Health.Changed()
		go k.Health.Run(ctx)
	}
	// Status writes are API round trips; they run beside the rebuild loop
	// so that the next change reaches Envoy without waiting for them.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-healthChanged:
			case <-ctrl.AcksChanged():
			case <-k.statusq:
			}
			k.writeStatuses(ctx, ctrl.Statuses())
		}
	}()
	k.rebuild(ctx, ctrl)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.trigger:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.Debounce):
		}
		select { // changes during the wait are part of this rebuild
		case <-k.trigger:
		default:
		}
		k.rebuild(ctx, ctrl)
	}
}

func (k *KubeSource) log() *slog.Logger {
	if k.Log == nil {
		return slog.Default()
	}
	return k.Log
}

func (k *KubeSource) poke() {
	select {
	case k.trigger <- struct{}{}:
	default:
	}
}

// refHandler pokes only for objects the config references, so unrelated
// Secrets and EndpointSlices in a busy cluster cause no rebuilds.
func (k *KubeSource) refHandler(key func(any) string) cache.ResourceEventHandler {
	check := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		k.mu.Lock()
		ref := k.refs[key(obj)]
		k.mu.Unlock()
		if ref {
			k.poke()
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    check,
		UpdateFunc: func(_, n any) { check(n) },
		DeleteFunc: check,
	}
}

// rebuild reads the caches, publishes through ctrl and writes statuses.
func (k *KubeSource) rebuild(ctx context.Context, ctrl *Controller) {
	in := translator.Inputs{}
	for _, obj := range k.ucs.GetStore().List() {
		uc, err := toUpstreamCluster(obj)
		if err != nil {
			k.log().Error("upstreamcluster cannot be decoded; skipped", "error", err)
			continue
		}
		in.UpstreamClusters = append(in.UpstreamClusters, uc)
	}
	slices.SortFunc(in.UpstreamClusters, func(a, b *v1alpha1.UpstreamCluster) int { return strings.Compare(a.Name, b.Name) })

	// Read only what is referenced by the objects or by their last good
	// versions (which may still be served).
	refs := map[string]bool{}
	for _, uc := range append(slices.Clone(in.UpstreamClusters), ctrl.LastGood()...) {
		for _, r := range referencedSecrets(uc) {
			refs["secret:"+r] = true
		}
		if ef := uc.Spec.EndpointsFrom; ef != nil {
			refs["service:"+ef.Service.Namespace+"/"+ef.Service.Name] = true
		}
	}
	k.mu.Lock()
	k.refs = refs
	k.mu.Unlock()
	for _, obj := range k.secrets.GetStore().List() {
		if s, ok := obj.(*corev1.Secret); ok && refs["secret:"+s.Namespace+"/"+s.Name] {
			in.Secrets = append(in.Secrets, s)
		}
	}
	for _, obj := range k.slices.GetStore().List() {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok && refs["service:"+s.Namespace+"/"+s.Labels[discoveryv1.LabelServiceName]] {
			in.EndpointSlices = append(in.EndpointSlices, s)
		}
	}
	// Store order is map order; the translator sorts what it emits, but the
	// "first of two Secrets with one name" rule wants a stable input.
	slices.SortFunc(in.Secrets, func(a, b *corev1.Secret) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})

	if err := ctrl.Update(ctx, in); err != nil {
		k.log().Error("config not published; the previous one keeps serving", "error", err)
	}
	select {
	case k.statusq <- struct{}{}:
	default:
	}
}

func referencedSecrets(uc *v1alpha1.UpstreamCluster) []string {
	s := uc.Spec
	out := []string{
		s.ClientConfig.SecretRef.Namespace + "/" + s.ClientConfig.SecretRef.Name,
		s.SecureServing.SecretRef.Namespace + "/" + s.SecureServing.SecretRef.Name,
	}
	if r := s.SecureServing.ClientCASecretRef; r != nil {
		out = append(out, r.Namespace+"/"+r.Name)
	}
	return out
}

func toUpstreamCluster(obj any) (*v1alpha1.UpstreamCluster, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	uc := &v1alpha1.UpstreamCluster{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, uc); err != nil {
		return nil, fmt.Errorf("upstreamcluster %s: %w", u.GetName(), err)
	}
	return uc, nil
}

// writeStatuses writes each status that differs from the cached one.
// Conditions are merged with meta.SetStatusCondition, so lastTransitionTime
// changes only when a condition's status does. A conflict (the object
// changed since the cache saw it) is left to the rebuild that change causes.
func (k *KubeSource) writeStatuses(ctx context.Context, statuses []translator.Status) {
	for _, st := range statuses {
		obj, exists, err := k.ucs.GetStore().GetByKey(st.Name)
		if err != nil || !exists {
			continue
		}
		uc, err := toUpstreamCluster(obj)
		if err != nil || uc.Generation != st.ObservedGeneration {
			continue // a newer generation is on its way through a rebuild
		}
		want := *uc.Status.DeepCopy()
		want.ObservedGeneration = st.ObservedGeneration
		want.ServerCount = st.ServerCount
		for _, c := range st.Conditions {
			meta.SetStatusCondition(&want.Conditions, c)
		}
		if k.Health != nil {
			if servers, ok := k.Health.Servers(st.Name); ok {
				want.HealthyServerCount, want.UnhealthyServers = 0, nil
				for _, s := range servers {
					if s.Healthy {
						want.HealthyServerCount++
					} else {
						want.UnhealthyServers = append(want.UnhealthyServers, s.Address+": "+s.Reason)
					}
				}
			}
		}
		if equality.Semantic.DeepEqual(uc.Status, want) {
			continue
		}
		uc.Status = want
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(uc)
		if err != nil {
			k.log().Error("status not written", "name", st.Name, "error", err)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = k.dyn.Resource(v1alpha1.UpstreamClusterResource).UpdateStatus(wctx, &unstructured.Unstructured{Object: u}, metav1.UpdateOptions{})
		cancel()
		switch {
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			k.log().Debug("status write raced with a change; the next rebuild writes it", "name", st.Name)
			k.poke()
		case err != nil:
			k.log().Error("status not written", "name", st.Name, "error", err)
		}
	}
}

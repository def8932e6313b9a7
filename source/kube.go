package source

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

// syncTimeout bounds the informers' first list.
const syncTimeout = 2 * time.Minute

// KubeOptions configure a Kube source.
type KubeOptions struct {
	Debounce time.Duration // DefaultDebounce if 0
	Log      *slog.Logger
	// Health, if set, reports healthy servers per UpstreamCluster name;
	// status.healthyServerCount and status.unhealthyServers are left
	// unset otherwise. The caller runs it.
	Health Health
	// SecretNamespaces are the namespaces whose Secrets are watched (the
	// gateway's, plus any it was widened to); empty watches every
	// namespace. The translator may reference no other, so caching other
	// namespaces' Secrets would only hold keys frontdoor has no use for.
	SecretNamespaces []string
}

// Kube reads UpstreamClusters, the Secrets they reference and the
// EndpointSlices they select from one Kubernetes cluster through client-go
// informers, rebuilds the config (debounced) on every relevant change, and
// writes each UpstreamCluster's status back through the status subresource.
type Kube struct {
	dyn  dynamic.Interface
	kube kubernetes.Interface
	opts KubeOptions

	ucs     cache.SharedIndexInformer
	secrets []cache.SharedIndexInformer // one per watched namespace, or one for all
	slices  cache.SharedIndexInformer
	trigger chan struct{}
	statusq chan struct{} // coalesced: write the publisher's latest statuses

	mu   sync.Mutex
	refs map[string]bool // "secret:ns/name" and "service:ns/name" the config reads
}

// NewKube returns a source reading through the given clients: dyn for
// UpstreamClusters (and their status), kube for Secrets and EndpointSlices.
func NewKube(dyn dynamic.Interface, kube kubernetes.Interface, o KubeOptions) *Kube {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Kube{dyn: dyn, kube: kube, opts: o}
}

// NewKubeForConfig returns a source reading the cluster of cfg.
func NewKubeForConfig(cfg *rest.Config, o KubeOptions) (*Kube, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewKube(dyn, kube, o), nil
}

// Run syncs the informers, publishes the first config and then follows
// every change until ctx is done. It returns an error only if the caches
// cannot sync (e.g. the CRD is not installed or RBAC forbids a list).
// A Kube runs once.
func (k *Kube) Run(ctx context.Context, p Publisher) error {
	if err := k.startInformers(ctx); err != nil {
		return err
	}
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	synced := []cache.InformerSynced{k.ucs.HasSynced, k.slices.HasSynced}
	for _, inf := range k.secrets {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kubernetes caches did not sync in 2m (is the UpstreamCluster CRD installed, and may frontdoor list UpstreamClusters, Secrets and EndpointSlices?)")
	}
	k.opts.Log.Info("kubernetes caches synced", "upstreamclusters", len(k.ucs.GetStore().ListKeys()))

	go k.writeStatusesOnChange(ctx, p)
	k.rebuild(ctx, p)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.trigger:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.opts.Debounce):
		}
		select { // changes during the wait are part of this rebuild
		case <-k.trigger:
		default:
		}
		k.rebuild(ctx, p)
	}
}

// startInformers builds and starts the three informers; each relevant
// change pokes the rebuild loop.
func (k *Kube) startInformers(ctx context.Context) error {
	k.trigger = make(chan struct{}, 1)
	k.statusq = make(chan struct{}, 1)
	k.refs = map[string]bool{}

	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(k.dyn, 0)
	k.ucs = dynFactory.ForResource(v1alpha1.UpstreamClusterResource).Informer()
	factory := informers.NewSharedInformerFactory(k.kube, 0)
	k.slices = factory.Discovery().V1().EndpointSlices().Informer()
	secretFactories := []informers.SharedInformerFactory{factory}
	if len(k.opts.SecretNamespaces) > 0 {
		secretFactories = nil
		for _, ns := range k.opts.SecretNamespaces {
			secretFactories = append(secretFactories, informers.NewSharedInformerFactoryWithOptions(k.kube, 0, informers.WithNamespace(ns)))
		}
	}
	for _, f := range secretFactories {
		k.secrets = append(k.secrets, f.Core().V1().Secrets().Informer())
	}

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
	for _, inf := range k.secrets {
		if _, err := inf.AddEventHandler(k.refHandler(secretRefKey)); err != nil {
			return err
		}
	}
	if _, err := k.slices.AddEventHandler(k.refHandler(sliceRefKey)); err != nil {
		return err
	}
	dynFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	for _, f := range secretFactories {
		f.Start(ctx.Done()) // factory again when it is the only one: a no-op
	}
	return nil
}

func secretRefKey(obj any) string {
	if s, ok := obj.(*corev1.Secret); ok {
		return "secret:" + s.Namespace + "/" + s.Name
	}
	return ""
}

func sliceRefKey(obj any) string {
	if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
		return "service:" + s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
	}
	return ""
}

func (k *Kube) poke() {
	select {
	case k.trigger <- struct{}{}:
	default:
	}
}

// refHandler pokes only for objects the config references, so unrelated
// Secrets and EndpointSlices in a busy cluster cause no rebuilds.
func (k *Kube) refHandler(key func(any) string) cache.ResourceEventHandler {
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

// rebuild reads the caches, publishes through p and queues a status write.
func (k *Kube) rebuild(ctx context.Context, p Publisher) {
	in := translator.Inputs{}
	for _, obj := range k.ucs.GetStore().List() {
		uc, err := toUpstreamCluster(obj)
		if err != nil {
			k.opts.Log.Error("upstreamcluster cannot be decoded; skipped", "error", err)
			continue
		}
		in.UpstreamClusters = append(in.UpstreamClusters, uc)
	}
	slices.SortFunc(in.UpstreamClusters, func(a, b *v1alpha1.UpstreamCluster) int { return strings.Compare(a.Name, b.Name) })

	// Read only what is referenced by the objects or by their last good
	// versions (which may still be served).
	refs := map[string]bool{}
	for _, uc := range append(slices.Clone(in.UpstreamClusters), p.LastGood()...) {
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
	for _, inf := range k.secrets {
		for _, obj := range inf.GetStore().List() {
			if s, ok := obj.(*corev1.Secret); ok && refs[secretRefKey(s)] {
				in.Secrets = append(in.Secrets, s)
			}
		}
	}
	for _, obj := range k.slices.GetStore().List() {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok && refs[sliceRefKey(s)] {
			in.EndpointSlices = append(in.EndpointSlices, s)
		}
	}
	// Store order is map order; the translator sorts what it emits, but the
	// "first of two Secrets with one name" rule wants a stable input.
	slices.SortFunc(in.Secrets, func(a, b *corev1.Secret) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})

	if err := p.Update(ctx, in); err != nil {
		k.opts.Log.Error("config not published; the previous one keeps serving", "error", err)
	}
	select {
	case k.statusq <- struct{}{}:
	default:
	}
}

func referencedSecrets(uc *v1alpha1.UpstreamCluster) []string {
	refs := uc.Spec.SecretRefs()
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Namespace + "/" + r.Name
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

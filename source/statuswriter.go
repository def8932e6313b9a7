package source

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// statusWriteTimeout bounds one UpdateStatus call.
const statusWriteTimeout = 10 * time.Second

// writeStatusesOnChange writes the publisher's statuses after every
// rebuild, Envoy acknowledgement and health change, until ctx is done.
// Status writes are API round trips; they run beside the rebuild loop so
// that the next change reaches Envoy without waiting for them.
func (k *Kube) writeStatusesOnChange(ctx context.Context, p Publisher) {
	var healthChanged <-chan struct{}
	if k.opts.Health != nil {
		healthChanged = k.opts.Health.Changed()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-healthChanged:
		case <-p.AcksChanged():
		case <-k.statusq:
		}
		k.writeStatuses(ctx, p.Statuses())
	}
}

// writeStatuses writes each status that differs from the cached object's
// (status.Merge decides what it becomes). A conflict or a vanished object
// (the object changed since the cache saw it) is left to the rebuild that
// change causes; the source is poked so that one comes.
func (k *Kube) writeStatuses(ctx context.Context, statuses []translator.Status) {
	for _, st := range statuses {
		obj, exists, err := k.ucs.GetStore().GetByKey(st.Name)
		if err != nil || !exists {
			continue
		}
		uc, err := toUpstreamCluster(obj)
		if err != nil || uc.Generation != st.ObservedGeneration {
			continue // a newer generation is on its way through a rebuild
		}
		want := status.Merge(uc.Status, st, k.health(st.Name), metav1.Now())
		if equality.Semantic.DeepEqual(uc.Status, want) {
			continue
		}
		uc.Status = want
		k.updateStatus(ctx, uc)
	}
}

// health is Envoy's view of the named UpstreamCluster's servers, if known.
func (k *Kube) health(name string) status.Health {
	if k.opts.Health == nil {
		return status.Health{}
	}
	servers, ok := k.opts.Health.Servers(name)
	return status.Health{Known: ok, Servers: servers}
}

// updateStatus writes uc's status through the status subresource.
func (k *Kube) updateStatus(ctx context.Context, uc *v1alpha1.UpstreamCluster) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(uc)
	if err != nil {
		k.opts.Log.Error("status not written", "name", uc.Name, "error", err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, statusWriteTimeout)
	_, err = k.dyn.Resource(v1alpha1.UpstreamClusterResource).UpdateStatus(wctx, &unstructured.Unstructured{Object: u}, metav1.UpdateOptions{})
	cancel()
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		k.opts.Log.Debug("status write raced with a change; the next rebuild writes it", "name", uc.Name)
		k.poke()
	case err != nil:
		k.opts.Log.Error("status not written", "name", uc.Name, "error", err)
	}
}

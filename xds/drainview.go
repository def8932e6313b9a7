package xds

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// Paced drain. Envoy's own drain asks every connection to go away and
// then, when the process exits, closes every watch that is left at once:
// each client relists or re-watches in the same second (the thundering
// herd). With serve --drain-buckets each client filter chain is split into
// translator.ConnectionBuckets chains by source port; `frontdoor drain
// --window` removes them from the draining Envoy's listener one step at a
// time (Drains.Set), and Envoy closes a removed chain's connections
// --drain-time-s later, so the watches of that Envoy end spread over the
// window. Only the draining node's snapshot changes: other Envoys of the
// same serve keep every chain.
//
// The drain command drives the steps and sends the whole state each time
// (buckets [0, n) removed), so a serve restarted during a drain is brought
// back to the right step by the next one.

// ErrNotBucketed is Drains.Set's answer for a node whose listener is not
// split into buckets (serve without --drain-buckets).
var ErrNotBucketed = errors.New("the listener is not split into drain buckets (frontdoor serve --drain-buckets)")

// ErrUnknownNode is Drains.Set's answer for a node ID that has no stream
// to this serve.
var ErrUnknownNode = errors.New("no Envoy with this node ID is connected to this control plane")

// Drains holds the drain step of every node being drained.
type Drains struct {
	mu       sync.Mutex
	removed  map[string]int // node ID → buckets [0, n) removed
	ctrl     *Controller
	bucketed bool
}

// NewDrains returns the drain state of a serve whose listener is split
// into buckets (bucketed) or not.
func NewDrains(bucketed bool) *Drains {
	return &Drains{removed: map[string]int{}, bucketed: bucketed}
}

// Attach names the controller whose nodes are drained (its NodeViews
// include d.View).
func (d *Drains) Attach(c *Controller) { d.ctrl = c }

// Set removes buckets [0, n) from node id's listener, n in [0,
// translator.ConnectionBuckets), and publishes that node's snapshot.
func (d *Drains) Set(ctx context.Context, id string, n int) error {
	if !d.bucketed {
		return ErrNotBucketed
	}
	if n < 0 || n >= translator.ConnectionBuckets {
		return fmt.Errorf("drain step %d out of [0, %d)", n, translator.ConnectionBuckets)
	}
	if d.ctrl == nil {
		return errors.New("drains not attached to a controller")
	}
	if _, ok := d.ctrl.Nodes()[id]; !ok {
		return ErrUnknownNode
	}
	d.mu.Lock()
	if n == 0 {
		delete(d.removed, id)
	} else {
		d.removed[id] = n
	}
	d.mu.Unlock()
	d.ctrl.RepublishNode(ctx, id)
	return nil
}

// Step is the number of buckets removed from node id's listener.
func (d *Drains) Step(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.removed[id]
}

// View is the NodeView of the drain: a node being drained gets its
// listeners without the buckets removed so far (tag "drain-N"); every
// other node is left alone. It runs after ListenerView, on the node's own
// listener.
func (d *Drains) View(node *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error) {
	n := d.Step(node.GetId())
	if n == 0 {
		return res, "", nil
	}
	listeners := make([]types.Resource, 0, len(res[resourcev3.ListenerType]))
	for _, r := range res[resourcev3.ListenerType] {
		l, ok := r.(*listenerv3.Listener)
		if !ok || l.GetFilterChainMatcher() == nil {
			listeners = append(listeners, r)
			continue
		}
		drained, err := translator.WithoutBuckets(l, n)
		if err != nil {
			return nil, "", err
		}
		listeners = append(listeners, drained)
	}
	out := make(map[string][]types.Resource, len(res))
	for k, v := range res {
		out[k] = v
	}
	out[resourcev3.ListenerType] = listeners
	return out, "drain-" + strconv.Itoa(n), nil
}

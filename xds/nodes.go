package xds

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// Per-node snapshots. The controller translates once (one
// translator.Output); every node (Envoy, by node ID) gets its own snapshot
// of it, specialized by the NodeViews in order. A node is known from its
// first xDS request (which carries the node) until it has been
// disconnected for nodeRetention: long enough that a reconnecting Envoy
// (control plane restart, network blip) finds its per-node state (e.g. a
// drain in progress) again, short enough that nodes that come and go do
// not pile up.

// A NodeView specializes the served resources for one node. It returns res
// itself and "" when nothing about node changes them; otherwise a new map
// (never mutating res or the resources in it: every node shares them) and
// a tag naming the specialization, which becomes part of the node's
// snapshot version (NodeVersion). An error leaves the node without config
// (logged): its metadata asks for something the control plane cannot
// serve.
//
// A view that depends on state of its own (e.g. a node being drained)
// reads it when called and asks for a new snapshot of that node with
// Controller.RepublishNode when the state changes.
type NodeView func(node *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error)

// DefaultNodeViews are the specializations every serve applies.
var DefaultNodeViews = []NodeView{ListenerView, AccessLogView}

// nodeRetention is how long a disconnected node's snapshot and state stay.
const nodeRetention = 10 * time.Minute

// versionSeparator joins the translated version and a node's tags.
const versionSeparator = "/"

// nodeState is what the controller knows of one node ID.
type nodeState struct {
	node    *corev3.Node // as sent in its first request
	streams int          // open streams of this node ID
	gone    time.Time    // when its last stream closed (streams == 0)
	version string       // of the snapshot set for it; "" when none
}

// NodeVersion is the snapshot version a node gets for the translated
// version base with its views' tags: base itself when no view changes
// anything.
func NodeVersion(base string, tags ...string) string {
	v := base
	for _, t := range tags {
		if t != "" {
			v += versionSeparator + t
		}
	}
	return v
}

// baseVersion is the translated version a node's snapshot version was
// made from.
func baseVersion(v string) string {
	base, _, _ := strings.Cut(v, versionSeparator)
	return base
}

// nodeOpened records a stream's node (the first request of a stream
// carries it) and, for a node new to the controller or one whose metadata
// changed, sets its snapshot before its first watch is created, so the
// watch is answered at once.
func (c *Controller) nodeOpened(ctx context.Context, stream int64, node *corev3.Node) {
	id := node.GetId()
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.streamNodes[stream]; ok {
		if prev == id && proto.Equal(c.nodes[id].node, node) {
			return // a later request repeating the node (no set_node_on_first_message_only)
		}
		c.nodeClosedLocked(stream)
	}
	c.streamNodes[stream] = id
	st := c.nodes[id]
	if st == nil {
		st = &nodeState{}
		c.nodes[id] = st
	}
	st.streams++
	changed := st.node == nil || !proto.Equal(st.node, node)
	st.node = node
	c.sweepNodesLocked()
	if changed || st.version == "" {
		c.publishNodeLocked(ctx, id, st)
	}
}

// nodeClosed forgets a stream; its node stays known for nodeRetention.
func (c *Controller) nodeClosed(stream int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodeClosedLocked(stream)
}

func (c *Controller) nodeClosedLocked(stream int64) {
	id, ok := c.streamNodes[stream]
	if !ok {
		return
	}
	delete(c.streamNodes, stream)
	if st := c.nodes[id]; st != nil {
		st.streams--
		if st.streams <= 0 {
			st.streams, st.gone = 0, c.now()
		}
	}
}

// sweepNodesLocked clears the nodes disconnected for nodeRetention.
func (c *Controller) sweepNodesLocked() {
	for id, st := range c.nodes {
		if st.streams == 0 && c.now().Sub(st.gone) >= nodeRetention {
			c.cache.ClearSnapshot(id)
			delete(c.nodes, id)
			c.log.Info("xds node forgotten", "node", id, "disconnectedSince", st.gone)
		}
	}
}

// RepublishNode sets node id's snapshot again from the served output, for
// a NodeView whose own state about the node changed. Unknown nodes (never
// connected, or forgotten) are skipped.
func (c *Controller) RepublishNode(ctx context.Context, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.nodes[id]; st != nil {
		c.publishNodeLocked(ctx, id, st)
	}
}

// Nodes returns the IDs of the known nodes and their snapshot versions
// ("" for a node that has none).
func (c *Controller) Nodes() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.nodes))
	for id, st := range c.nodes {
		out[id] = st.version
	}
	return out
}

// publishAllNodesLocked sets every known node's snapshot from c.current.
func (c *Controller) publishAllNodesLocked(ctx context.Context) {
	c.sweepNodesLocked()
	for id, st := range c.nodes {
		c.publishNodeLocked(ctx, id, st)
	}
}

// publishNodeLocked sets id's snapshot from c.current through the views;
// nothing before the first Update. A failure leaves the node's previous
// snapshot (if any) and is logged: it concerns that node alone.
func (c *Controller) publishNodeLocked(ctx context.Context, id string, st *nodeState) {
	if c.current == nil {
		return
	}
	snap, version, err := c.nodeSnapshot(st.node, c.current)
	if err == nil {
		if version == st.version {
			return
		}
		err = c.cache.SetSnapshot(ctx, id, snap)
	}
	if err != nil {
		c.metrics.nodeErrors.Inc()
		c.log.Error("no config for xds node", "node", id, "version", c.current.Version, "error", err)
		return
	}
	st.version = version
}

// nodeSnapshot is node's specialization of out.
func (c *Controller) nodeSnapshot(node *corev3.Node, out *translator.Output) (*cachev3.Snapshot, string, error) {
	res := withRateLimitConfigs(out.Resources)
	var tags []string
	for _, view := range c.views {
		next, tag, err := view(node, res)
		if err != nil {
			return nil, "", err
		}
		res = next
		tags = append(tags, tag)
	}
	version := NodeVersion(out.Version, tags...)
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return nil, "", fmt.Errorf("build snapshot %s: %w", version, err)
	}
	if err := referencesResolved(snap); err != nil {
		return nil, "", fmt.Errorf("snapshot %s: %w", version, err)
	}
	return snap, version, nil
}

// referencesResolved checks that every route and endpoint set a node's
// snapshot references is in it. It is weaker than Snapshot.Consistent on
// purpose: the whole translation passed Consistent before any node sees
// it, and a view may drop references (a draining node's filter chains),
// leaving routes that node simply never subscribes to (delta xDS asks by
// name).
func referencesResolved(snap *cachev3.Snapshot) error {
	for typeURL, names := range cachev3.GetAllResourceReferences(snap.Resources) {
		have := snap.GetResources(typeURL)
		for name := range names {
			if _, ok := have[name]; !ok {
				return fmt.Errorf("%s %q is referenced but missing", typeURL, name)
			}
		}
	}
	return nil
}

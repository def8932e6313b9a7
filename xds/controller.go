package xds

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
	"github.com/kubefrontdoor/frontdoor/status"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// PolicySink receives every policy table the controller publishes; the
// request service's pipeline implements it.
type PolicySink interface {
	SetPolicy(*policy.Table)
}

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	Translator translator.Options
	Sink       PolicySink
	Registry   prometheus.Registerer
	Logger     *slog.Logger
	// NodeViews specialize the snapshot per node (nodes.go); nil means
	// DefaultNodeViews.
	NodeViews []NodeView
	// Health, when set, health-checks the servers for Envoy (health.go).
	Health HealthSource
}

// Controller owns the snapshot cache: every Update translates the inputs,
// hands the policy to the request service and, when the snapshot is
// consistent, sets each known Envoy's specialization of it (nodes.go). An
// inconsistent snapshot is never served: the last good one stays.
type Controller struct {
	opts    translator.Options
	sink    PolicySink
	cache   cachev3.SnapshotCache
	metrics *metrics
	log     *slog.Logger

	mu       sync.Mutex
	current  *translator.Output
	lastGood map[string]*v1alpha1.UpstreamCluster // by name: the last accepted version
	// lastGoodSecrets are the Secrets the last good versions were served
	// with, by "namespace/name" (translateLastGood).
	lastGoodSecrets map[string]*corev1.Secret
	verdicts        []translator.Status // of the last Update, without Programmed
	substituted     map[string]int64    // names served from their last good version
	publishErr      error               // of the last Update
	acks            *ackTracker
	ready           atomic.Bool
	published       chan struct{} // closed by the first publish

	views       []NodeView
	nodes       map[string]*nodeState // by node ID
	streamNodes map[int64]string      // open stream → node ID
	now         func() time.Time
	health      HealthSource
	lastIn      *translator.Inputs // of the last Update, for health refreshes

	proxies proxyStreams // ADS streams of Envoys open now
}

// NewController returns a controller with an empty cache; Envoy gets nothing
// until the first successful Update.
func NewController(o ControllerOptions) *Controller {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	views := o.NodeViews
	if views == nil {
		views = DefaultNodeViews
	}
	return &Controller{
		opts:            o.Translator,
		sink:            o.Sink,
		cache:           newCache(log),
		metrics:         newMetrics(o.Registry),
		log:             log,
		lastGood:        map[string]*v1alpha1.UpstreamCluster{},
		lastGoodSecrets: map[string]*corev1.Secret{},
		acks:            newAckTracker(),
		published:       make(chan struct{}),
		views:           views,
		nodes:           map[string]*nodeState{},
		streamNodes:     map[int64]string{},
		now:             time.Now,
		health:          o.Health,
	}
}

// AcksChanged fires (coalesced) when an Envoy acknowledges a new snapshot
// or disconnects: the Programmed message counts acknowledgements.
func (c *Controller) AcksChanged() <-chan struct{} { return c.acks.changed }

// LastGood returns the last accepted version of every UpstreamCluster that
// is served (sources read what these reference, too).
func (c *Controller) LastGood() []*v1alpha1.UpstreamCluster {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*v1alpha1.UpstreamCluster, 0, len(c.lastGood))
	for _, uc := range c.lastGood {
		out = append(out, uc)
	}
	return out
}

// Statuses returns the verdicts of the last Update, one per input
// UpstreamCluster sorted by name, each with Accepted, ResolvedRefs and
// Programmed conditions; Programmed's message says how many connected
// Envoys have acknowledged the served snapshot.
func (c *Controller) Statuses() []translator.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	version := c.currentVersion()
	acked, open := c.acks.count(version)
	return status.WithProgrammed(c.verdicts, status.Served{
		Version: version, Err: c.publishErr, Substituted: c.substituted, Acked: acked, Open: open,
	})
}

// Published is closed once the first config has been published (Ready).
func (c *Controller) Published() <-chan struct{} { return c.published }

// Ready reports whether a config has been published.
func (c *Controller) Ready() bool { return c.ready.Load() }

// ConnectedProxies is how many ADS streams of Envoys are open now (the
// ratelimit service's stream is not one: see proxyStreams).
func (c *Controller) ConnectedProxies() int { return c.proxies.count() }

// Current returns the output being served, or nil before the first Update.
func (c *Controller) Current() *translator.Output {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Update translates in and publishes the result. It returns an error only
// when the result could not be served (the previous config stays); rejected
// objects are reported through their statuses, logs and metrics.
//
// An object whose new version is rejected keeps serving its last accepted
// version (see translateLastGood); its status says so.
func (c *Controller) Update(ctx context.Context, in translator.Inputs) error {
	in.Options = c.opts
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.update(ctx, in, false)
}

// update is Update with c.mu held; a refresh (the same inputs, new health
// verdicts) does not count or log the rejections again.
func (c *Controller) update(ctx context.Context, in translator.Inputs, refresh bool) error {
	c.lastIn = &in
	start := time.Now()
	out, verdicts, substituted := c.translate(ctx, &in)
	c.metrics.translation.Observe(time.Since(start).Seconds())
	if refresh {
		err := c.publish(ctx, out)
		c.verdicts, c.substituted, c.publishErr = verdicts, substituted, err
		return err
	}

	accepted, rejected := 0, 0
	for _, st := range verdicts {
		if ok, cond := status.AllTrue(st.Conditions); !ok {
			rejected++
			c.metrics.configErrors.WithLabelValues("UpstreamCluster", st.Name).Inc()
			_, lastGood := substituted[st.Name]
			c.log.Error("upstreamcluster rejected", "name", st.Name, "generation", st.ObservedGeneration,
				"condition", cond.Type, "reason", cond.Reason, "message", cond.Message, "lastGoodServed", lastGood)
			continue
		}
		accepted++
	}
	c.metrics.clustersAccepted.Set(float64(accepted))
	c.metrics.clustersRejected.Set(float64(rejected))

	err := c.publish(ctx, out)
	c.verdicts, c.substituted, c.publishErr = verdicts, substituted, err
	return err
}

// publish sets out as the served snapshot unless it already is: checked
// whole, then specialized for every known node. Called with c.mu held.
func (c *Controller) publish(ctx context.Context, out *translator.Output) error {
	if c.current != nil && c.current.Version == out.Version {
		return nil
	}
	snap, err := cachev3.NewSnapshot(out.Version, withRateLimitConfigs(out.Resources))
	if err != nil {
		return fmt.Errorf("build snapshot %s: %w", out.Version, err)
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("snapshot %s is not consistent, keeping %s: %w", out.Version, c.currentVersion(), err)
	}
	// The request service learns the new rules first, so a rule name it
	// answers always exists in Envoy's routes or falls to the default route.
	if c.sink != nil {
		c.sink.SetPolicy(out.Policy)
	}
	if c.current != nil {
		c.metrics.snapshotInfo.DeleteLabelValues(c.current.Version)
	}
	c.metrics.snapshotInfo.WithLabelValues(out.Version).Set(1)
	c.metrics.pushes.Inc()
	c.metrics.lastSnapshotUnixTS.SetToCurrentTime()
	c.current = out
	c.publishAllNodesLocked(ctx)
	if !c.ready.Swap(true) {
		close(c.published)
	}
	c.log.Info("config published", "version", out.Version, "upstreamclusters", len(out.Policy.Clusters))
	return nil
}

func (c *Controller) currentVersion() string {
	if c.current == nil {
		return "nothing"
	}
	return c.current.Version
}

// CountFileError records a config file that failed to parse.
func (c *Controller) CountFileError(path string) {
	c.metrics.configErrors.WithLabelValues("File", path).Inc()
}

// withRateLimitConfigs gives resources a RateLimitConfig list, empty when
// no cluster has a Global token bucket. The ratelimit service waits for its
// first config before it serves, and a type missing from a snapshot has no
// version, so go-control-plane would never answer it: an empty list does.
func withRateLimitConfigs(resources map[string][]types.Resource) map[string][]types.Resource {
	if _, ok := resources[resourcev3.RateLimitConfigType]; ok {
		return resources
	}
	out := maps.Clone(resources)
	if out == nil {
		out = map[string][]types.Resource{}
	}
	out[resourcev3.RateLimitConfigType] = []types.Resource{}
	return out
}

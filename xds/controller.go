package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/authz/policy"
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
}

// Controller owns the snapshot cache: every Update translates the inputs,
// hands the policy to the request service and, when the snapshot is
// consistent, sets it for every Envoy. An inconsistent snapshot is never
// served: the last good one stays.
type Controller struct {
	opts    translator.Options
	sink    PolicySink
	cache   cachev3.SnapshotCache
	metrics *metrics
	log     *slog.Logger

	mu      sync.Mutex
	current *translator.Output
	ready   atomic.Bool

	openStreams atomic.Int64 // ADS streams open now
}

// NewController returns a controller with an empty cache; Envoy gets nothing
// until the first successful Update.
func NewController(o ControllerOptions) *Controller {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Controller{
		opts:    o.Translator,
		sink:    o.Sink,
		cache:   newCache(log),
		metrics: newMetrics(o.Registry),
		log:     log,
	}
}

// Ready reports whether a config has been published.
func (c *Controller) Ready() bool { return c.ready.Load() }

// ConnectedProxies is how many ADS streams (Envoys) are open now.
func (c *Controller) ConnectedProxies() int { return int(c.openStreams.Load()) }

// Current returns the output being served, or nil before the first Update.
func (c *Controller) Current() *translator.Output {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Update translates in and publishes the result. It returns an error only
// when the result could not be served (the previous config stays); rejected
// objects are reported through their statuses, logs and metrics.
func (c *Controller) Update(ctx context.Context, in translator.Inputs) error {
	in.Options = c.opts
	start := time.Now()
	out := translator.Translate(in)
	c.metrics.translation.Observe(time.Since(start).Seconds())

	accepted, rejected := 0, 0
	for _, st := range out.Statuses {
		if ok, cond := allTrue(st.Conditions); !ok {
			rejected++
			c.metrics.configErrors.WithLabelValues("UpstreamCluster", st.Name).Inc()
			c.log.Error("upstreamcluster rejected; it is not served", "name", st.Name,
				"condition", cond.Type, "reason", cond.Reason, "message", cond.Message)
			continue
		}
		accepted++
	}
	c.metrics.clustersAccepted.Set(float64(accepted))
	c.metrics.clustersRejected.Set(float64(rejected))

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil && c.current.Version == out.Version {
		return nil
	}
	snap, err := cachev3.NewSnapshot(out.Version, out.Resources)
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
	if err := c.cache.SetSnapshot(ctx, snapshotGroup, snap); err != nil {
		return fmt.Errorf("set snapshot %s: %w", out.Version, err)
	}
	if c.current != nil {
		c.metrics.snapshotInfo.DeleteLabelValues(c.current.Version)
	}
	c.metrics.snapshotInfo.WithLabelValues(out.Version).Set(1)
	c.metrics.pushes.Inc()
	c.metrics.lastSnapshotUnixTS.SetToCurrentTime()
	c.current = out
	c.ready.Store(true)
	c.log.Info("config published", "version", out.Version, "upstreamclusters", accepted, "rejected", rejected)
	return nil
}

func (c *Controller) currentVersion() string {
	if c.current == nil {
		return "nothing"
	}
	return c.current.Version
}

// allTrue reports whether every condition is True, and the first that is not.
func allTrue(conds []metav1.Condition) (bool, metav1.Condition) {
	for _, cond := range conds {
		if cond.Status != metav1.ConditionTrue {
			return false, cond
		}
	}
	return true, metav1.Condition{}
}

// CountFileError records a config file that failed to parse.
func (c *Controller) CountFileError(path string) {
	c.metrics.configErrors.WithLabelValues("File", path).Inc()
}

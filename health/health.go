// Package health follows, from Envoy's admin API, which servers of each
// UpstreamCluster take traffic: Envoy, not the control plane, knows which
// pass its active health check and which outlier detection ejected. The
// Poller feeds status.healthyServerCount and status.unhealthyServers (the
// Kubernetes source reads it) and the frontdoor_upstream_server_healthy
// metric; `frontdoor serve` runs it whenever --envoy-admin-url is set.
//
// It talks to Envoy only through envoy/admin, and imports no client-go,
// gRPC or xds: it knows nothing of how config is read or served.
package health

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/envoy/admin"
	"github.com/kubefrontdoor/frontdoor/status"
)

// DefaultInterval is how often Envoy is polled.
const DefaultInterval = 2 * time.Second

// maxFailedPolls is how many polls in a row may fail before the last
// known health is dropped.
const maxFailedPolls = 3

// Poller polls Envoy's admin /clusters and records, per UpstreamCluster,
// the servers of its default Envoy cluster and whether each takes traffic.
type Poller struct {
	Admin    *admin.Client
	Interval time.Duration // DefaultInterval if 0
	Log      *slog.Logger  // nothing is logged if nil

	once    sync.Once
	changed chan struct{}
	mu      sync.Mutex
	servers map[string][]status.ServerHealth // by UpstreamCluster name
}

// Changed fires (coalesced) when a server's health changes.
func (p *Poller) Changed() <-chan struct{} {
	p.once.Do(func() { p.changed = make(chan struct{}, 1) })
	return p.changed
}

// Servers returns the servers of the named UpstreamCluster, sorted by
// address, if Envoy reported its cluster in the last polls.
func (p *Poller) Servers(name string) ([]status.ServerHealth, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.servers[name]
	return s, ok
}

// Run polls until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	p.Changed()
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failures := 0
	for {
		servers, err := p.poll(ctx)
		if err != nil {
			failures++
			if p.Log != nil && ctx.Err() == nil {
				p.Log.Debug("envoy health poll failed", "error", err)
			}
			// Stale health is worse than none: after a few failed polls
			// the metric's series go (statuses keep their last values).
			if failures == maxFailedPolls {
				if p.Log != nil && ctx.Err() == nil {
					p.Log.Warn("Envoy admin unreachable; upstream server health unknown", "url", p.Admin.URL(), "error", err)
				}
				p.mu.Lock()
				p.servers = nil
				p.mu.Unlock()
			}
		} else {
			failures = 0
			p.set(servers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// set records one poll's servers and tells Changed when they differ.
func (p *Poller) set(servers map[string][]status.ServerHealth) {
	p.mu.Lock()
	old := p.servers
	p.servers = servers
	p.mu.Unlock()
	if maps.EqualFunc(old, servers, slices.Equal) {
		return
	}
	p.logTransitions(old, servers)
	p.Changed()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *Poller) poll(ctx context.Context) (map[string][]status.ServerHealth, error) {
	clusters, err := p.Admin.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	return byUpstreamCluster(clusters), nil
}

// byUpstreamCluster keeps the hosts of every "<name>/default" Envoy
// cluster (an UpstreamCluster's full server list; its dispatch-policy
// clusters hold subsets of it), by UpstreamCluster name.
func byUpstreamCluster(clusters []admin.Cluster) map[string][]status.ServerHealth {
	out := map[string][]status.ServerHealth{}
	for _, c := range clusters {
		name, ok := envoy.UpstreamClusterOfDefault(c.Name)
		if !ok {
			continue
		}
		servers := make([]status.ServerHealth, 0, len(c.Hosts))
		for _, h := range c.Hosts {
			servers = append(servers, status.ServerHealth{Address: h.Address, Healthy: h.Failure == "", Reason: h.Failure})
		}
		out[name] = servers
	}
	return out
}

// logTransitions logs each server whose health changed, so an operator sees
// when and why a replica left and came back.
func (p *Poller) logTransitions(old, cur map[string][]status.ServerHealth) {
	if p.Log == nil {
		return
	}
	for name, servers := range cur {
		was := map[string]bool{}
		for _, s := range old[name] {
			was[s.Address] = s.Healthy
		}
		for _, s := range servers {
			if prev, ok := was[s.Address]; ok && prev != s.Healthy {
				p.Log.Info("upstream server health changed", "upstreamCluster", name, "server", s.Address, "healthy", s.Healthy, "reason", s.Reason)
			}
		}
	}
}

var serverHealthyDesc = prometheus.NewDesc("frontdoor_upstream_server_healthy",
	"1 when Envoy sends traffic to the server (health check passing: frontdoor's probe, or Envoy's own for servers named by DNS; not ejected by outlier detection), 0 otherwise; polled from Envoy's admin /clusters.",
	[]string{"cluster", "server"}, nil)

// Describe implements prometheus.Collector.
func (p *Poller) Describe(ch chan<- *prometheus.Desc) { ch <- serverHealthyDesc }

// Collect implements prometheus.Collector: one series per configured server
// of the last poll, so removed servers disappear with it.
func (p *Poller) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, servers := range p.servers {
		for _, s := range servers {
			v := 0.0
			if s.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(serverHealthyDesc, prometheus.GaugeValue, v, name, s.Address)
		}
	}
}

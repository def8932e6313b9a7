package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// EnvoyHealth polls Envoy's admin /clusters?format=json and records, per
// UpstreamCluster, which servers of its default cluster pass Envoy's active
// health check and are not ejected by outlier detection. It is how
// status.healthyServerCount and status.unhealthyServers are filled and what
// the frontdoor_upstream_server_healthy metric reports: Envoy, not the
// control plane, knows which servers are healthy.
type EnvoyHealth struct {
	AdminURL string
	Interval time.Duration
	Log      *slog.Logger

	once    sync.Once
	changed chan struct{}
	mu      sync.Mutex
	servers map[string][]ServerHealth
}

// maxFailedPolls is how many polls in a row may fail before the last
// known health is dropped.
const maxFailedPolls = 3

// ServerHealth is one server of an UpstreamCluster as Envoy sees it.
type ServerHealth struct {
	// Address is host:port as Envoy connects to it (the resolved IP for a
	// server named by DNS).
	Address string
	Healthy bool
	// Reason names Envoy's failure flags of an unhealthy server
	// (failed_active_health_check, failed_outlier_check, ...).
	Reason string
}

// Changed fires (coalesced) when a server's health changes.
func (h *EnvoyHealth) Changed() <-chan struct{} {
	h.once.Do(func() { h.changed = make(chan struct{}, 1) })
	return h.changed
}

// Healthy returns the healthy count of the named UpstreamCluster, if Envoy
// reported its cluster.
func (h *EnvoyHealth) Healthy(name string) (int32, bool) {
	servers, ok := h.Servers(name)
	n := int32(0)
	for _, s := range servers {
		if s.Healthy {
			n++
		}
	}
	return n, ok
}

// Servers returns the servers of the named UpstreamCluster, sorted by
// address, if Envoy reported its cluster.
func (h *EnvoyHealth) Servers(name string) ([]ServerHealth, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.servers[name]
	return s, ok
}

// Run polls until ctx is done.
func (h *EnvoyHealth) Run(ctx context.Context) {
	h.Changed()
	interval := h.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	failures := 0
	for {
		servers, err := h.poll(ctx, client)
		if err != nil {
			failures++
			if h.Log != nil && ctx.Err() == nil {
				h.Log.Debug("envoy health poll failed", "error", err)
			}
			// Stale health is worse than none: after a few failed polls
			// the metric's series go (statuses keep their last values).
			if failures == maxFailedPolls {
				if h.Log != nil && ctx.Err() == nil {
					h.Log.Warn("Envoy admin unreachable; upstream server health unknown", "url", h.AdminURL, "error", err)
				}
				h.mu.Lock()
				h.servers = nil
				h.mu.Unlock()
			}
		} else {
			failures = 0
			h.mu.Lock()
			old := h.servers
			h.servers = servers
			h.mu.Unlock()
			if !maps.EqualFunc(old, servers, slices.Equal) {
				h.logTransitions(old, servers)
				select {
				case h.changed <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logTransitions logs each server whose health changed, so an operator sees
// when and why a replica left and came back.
func (h *EnvoyHealth) logTransitions(old, cur map[string][]ServerHealth) {
	if h.Log == nil {
		return
	}
	for name, servers := range cur {
		was := map[string]bool{}
		for _, s := range old[name] {
			was[s.Address] = s.Healthy
		}
		for _, s := range servers {
			if prev, ok := was[s.Address]; ok && prev != s.Healthy {
				h.Log.Info("upstream server health changed", "upstreamCluster", name, "server", s.Address, "healthy", s.Healthy, "reason", s.Reason)
			}
		}
	}
}

var serverHealthyDesc = prometheus.NewDesc("frontdoor_upstream_server_healthy",
	"1 when Envoy sends traffic to the server (active health check passing, not ejected by outlier detection), 0 otherwise; polled from Envoy's admin /clusters.",
	[]string{"cluster", "server"}, nil)

// Describe implements prometheus.Collector.
func (h *EnvoyHealth) Describe(ch chan<- *prometheus.Desc) { ch <- serverHealthyDesc }

// Collect implements prometheus.Collector: one series per configured server
// of the last poll, so removed servers disappear with it.
func (h *EnvoyHealth) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, servers := range h.servers {
		for _, s := range servers {
			v := 0.0
			if s.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(serverHealthyDesc, prometheus.GaugeValue, v, name, s.Address)
		}
	}
}

type adminClusters struct {
	ClusterStatuses []struct {
		Name         string `json:"name"`
		HostStatuses []struct {
			Address struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
			HealthStatus map[string]any `json:"health_status"`
		} `json:"host_statuses"`
	} `json:"cluster_statuses"`
}

func (h *EnvoyHealth) poll(ctx context.Context, client *http.Client) (map[string][]ServerHealth, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(h.AdminURL, "/")+"/clusters?format=json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("envoy admin /clusters: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	return parseClusterHealth(body)
}

// parseClusterHealth lists the hosts of every "<name>/default" cluster.
func parseClusterHealth(body []byte) (map[string][]ServerHealth, error) {
	var ac adminClusters
	if err := json.Unmarshal(body, &ac); err != nil {
		return nil, err
	}
	out := map[string][]ServerHealth{}
	for _, c := range ac.ClusterStatuses {
		name, ok := envoy.UpstreamClusterOfDefault(c.Name)
		if !ok {
			continue
		}
		servers := make([]ServerHealth, 0, len(c.HostStatuses))
		for _, hs := range c.HostStatuses {
			sa := hs.Address.SocketAddress
			reason := hostFailure(hs.HealthStatus)
			servers = append(servers, ServerHealth{
				Address: net.JoinHostPort(sa.Address, strconv.Itoa(sa.PortValue)),
				Healthy: reason == "",
				Reason:  reason,
			})
		}
		slices.SortFunc(servers, func(a, b ServerHealth) int { return strings.Compare(a.Address, b.Address) })
		out[name] = servers
	}
	return out, nil
}

// hostFailure names why a host takes no traffic ("" when healthy): an EDS
// status other than HEALTHY, or any failure or pending flag Envoy set.
func hostFailure(st map[string]any) string {
	var why []string
	if eds, ok := st["eds_health_status"].(string); ok && eds != "HEALTHY" {
		why = append(why, "eds_"+strings.ToLower(eds))
	}
	for k, v := range st {
		if b, ok := v.(bool); ok && b && (strings.HasPrefix(k, "failed_") || k == "pending_active_hc" || k == "pending_dynamic_removal") {
			why = append(why, k)
		}
	}
	slices.Sort(why)
	return strings.Join(why, ",")
}

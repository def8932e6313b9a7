package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// EnvoyHealth polls Envoy's admin /clusters?format=json and counts, per
// UpstreamCluster, the servers of its default cluster that pass Envoy's
// active health check (and are not ejected by outlier detection). It is how
// status.healthyServerCount is filled: Envoy, not the control plane, knows
// which servers are healthy.
type EnvoyHealth struct {
	AdminURL string
	Interval time.Duration
	Log      *slog.Logger

	once    sync.Once
	changed chan struct{}
	mu      sync.Mutex
	healthy map[string]int32
}

// Changed fires (coalesced) when a count changes.
func (h *EnvoyHealth) Changed() <-chan struct{} {
	h.once.Do(func() { h.changed = make(chan struct{}, 1) })
	return h.changed
}

// Healthy returns the healthy count of the named UpstreamCluster, if Envoy
// reported its cluster.
func (h *EnvoyHealth) Healthy(name string) (int32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.healthy[name]
	return n, ok
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
	for {
		counts, err := h.poll(ctx, client)
		if err != nil {
			if h.Log != nil && ctx.Err() == nil {
				h.Log.Debug("envoy health poll failed", "error", err)
			}
		} else {
			h.mu.Lock()
			diff := !maps.Equal(counts, h.healthy)
			h.healthy = counts
			h.mu.Unlock()
			if diff {
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

type adminClusters struct {
	ClusterStatuses []struct {
		Name         string `json:"name"`
		HostStatuses []struct {
			HealthStatus map[string]any `json:"health_status"`
		} `json:"host_statuses"`
	} `json:"cluster_statuses"`
}

func (h *EnvoyHealth) poll(ctx context.Context, client *http.Client) (map[string]int32, error) {
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

// parseClusterHealth counts healthy hosts of every "<name>/default" cluster.
func parseClusterHealth(body []byte) (map[string]int32, error) {
	var ac adminClusters
	if err := json.Unmarshal(body, &ac); err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, c := range ac.ClusterStatuses {
		name, ok := strings.CutSuffix(c.Name, "/default")
		if !ok {
			continue
		}
		n := int32(0)
		for _, hs := range c.HostStatuses {
			if hostHealthy(hs.HealthStatus) {
				n++
			}
		}
		out[name] = n
	}
	return out, nil
}

// hostHealthy: EDS status HEALTHY (or unset) and no failure flag set.
func hostHealthy(st map[string]any) bool {
	if eds, ok := st["eds_health_status"].(string); ok && eds != "HEALTHY" {
		return false
	}
	for k, v := range st {
		if b, ok := v.(bool); ok && b && (strings.HasPrefix(k, "failed_") || k == "pending_active_hc" || k == "pending_dynamic_removal") {
			return false
		}
	}
	return true
}

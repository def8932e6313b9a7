// Package admin is Frontdoor's one client of Envoy's admin API: `frontdoor
// drain` posts to it and reads /stats, the upstream health poller reads
// /clusters. It owns how those answers are fetched and parsed; what they
// mean for an UpstreamCluster is its callers' business.
//
// It imports only the standard library, and never uses http.DefaultClient
// or http.DefaultTransport: every call has a timeout and never goes through
// a proxy (the admin API listens on the Envoy's own host).
package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one admin call, from dial to the end of the body.
const DefaultTimeout = 5 * time.Second

// maxBody bounds what is read of an answer: /clusters of a gateway with
// thousands of servers is a few MiB.
const maxBody = 64 << 20

// Client calls one Envoy's admin API.
type Client struct {
	base string
	http *http.Client
}

// New returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:19000"); each call times out after DefaultTimeout.
func New(baseURL string) *Client {
	return &Client{
		base: strings.TrimSuffix(baseURL, "/"),
		http: &http.Client{
			Timeout: DefaultTimeout,
			Transport: &http.Transport{
				Proxy:                 nil, // local: never through HTTP(S)_PROXY
				DialContext:           (&net.Dialer{Timeout: DefaultTimeout}).DialContext,
				ResponseHeaderTimeout: DefaultTimeout,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       30 * time.Second,
			},
		},
	}
}

// URL is the admin API's base URL.
func (c *Client) URL() string { return c.base }

// Post sends POST path (e.g. "/healthcheck/fail", "/drain_listeners?graceful",
// "/quitquitquit") and fails unless Envoy answers 200.
func (c *Client) Post(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", c.base+path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Stats returns the stats whose names match the regular expression filter
// (Envoy's /stats?filter=), by name. The filter must select counters and
// gauges only: a value that is not an integer (a histogram's quantiles) is
// an error rather than a guess.
func (c *Client) Stats(ctx context.Context, filter string) (map[string]int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/stats?filter="+url.QueryEscape(filter))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxBody))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("stat line %q: %w", sc.Text(), err)
		}
		out[name] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Cluster is one Envoy cluster of /clusters and its hosts.
type Cluster struct {
	Name string
	// Hosts are sorted by address.
	Hosts []Host
}

// Host is one host of a cluster as Envoy sees it.
type Host struct {
	// Address is host:port as Envoy connects to it (the resolved IP for a
	// host named by DNS).
	Address string
	// Failure names why Envoy sends the host no traffic, "" when it does:
	// an EDS status other than HEALTHY ("eds_unhealthy") and every failure
	// or pending flag Envoy set (failed_active_health_check,
	// failed_outlier_check, pending_active_hc, ...), sorted and
	// comma-separated.
	Failure string
}

// Clusters returns every cluster of /clusters?format=json with its hosts'
// health.
func (c *Client) Clusters(ctx context.Context) ([]Cluster, error) {
	resp, err := c.do(ctx, http.MethodGet, "/clusters?format=json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("envoy admin /clusters: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return ParseClusters(body)
}

// ParseClusters parses the body of /clusters?format=json.
func ParseClusters(body []byte) ([]Cluster, error) {
	var ac struct {
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
	if err := json.Unmarshal(body, &ac); err != nil {
		return nil, err
	}
	out := make([]Cluster, 0, len(ac.ClusterStatuses))
	for _, cs := range ac.ClusterStatuses {
		cl := Cluster{Name: cs.Name, Hosts: make([]Host, 0, len(cs.HostStatuses))}
		for _, hs := range cs.HostStatuses {
			sa := hs.Address.SocketAddress
			cl.Hosts = append(cl.Hosts, Host{
				Address: net.JoinHostPort(sa.Address, strconv.Itoa(sa.PortValue)),
				Failure: hostFailure(hs.HealthStatus),
			})
		}
		slices.SortFunc(cl.Hosts, func(a, b Host) int { return strings.Compare(a.Address, b.Address) })
		out = append(out, cl)
	}
	return out, nil
}

// hostFailure names why a host takes no traffic ("" when healthy): an EDS
// status other than HEALTHY or UNKNOWN (which Envoy treats as healthy), or
// any failure or pending flag Envoy set. EDS UNHEALTHY is frontdoor's own
// health probe failing (translator/probes.go), and says so.
func hostFailure(st map[string]any) string {
	var why []string
	switch eds, _ := st["eds_health_status"].(string); eds {
	case "", "HEALTHY", "UNKNOWN":
	case "UNHEALTHY":
		why = append(why, "failed_health_probe")
	default:
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

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

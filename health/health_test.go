package health

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
	"github.com/kubefrontdoor/frontdoor/status"
)

// TestServersOfDefaultClusters: only "<name>/default" clusters count, a
// host is healthy only without any failure or pending flag, and an
// unhealthy one says why; the collector reports one series per server.
func TestServersOfDefaultClusters(t *testing.T) {
	host := func(port int, status string) string {
		return fmt.Sprintf(`{"address": {"socket_address": {"address": "10.0.0.1", "port_value": %d}}, "health_status": %s}`, port, status)
	}
	body := []byte(`{"cluster_statuses": [
	  {"name": "a/default", "host_statuses": [` + strings.Join([]string{
		host(5, `{"eds_health_status": "HEALTHY", "failed_outlier_check": false}`),
		host(1, `{"eds_health_status": "HEALTHY"}`),
		host(2, `{"eds_health_status": "HEALTHY", "failed_active_health_check": true, "failed_outlier_check": true}`),
		host(3, `{"eds_health_status": "HEALTHY", "pending_active_hc": true}`),
		host(4, `{"eds_health_status": "UNHEALTHY"}`),
		host(6, `{"eds_health_status": "UNKNOWN"}`),
	}, ",") + `]},
	  {"name": "b/default", "host_statuses": []},
	  {"name": "b/some-rule", "host_statuses": [` + host(9, `{"eds_health_status": "HEALTHY"}`) + `]},
	  {"name": "frontdoor_grpc", "host_statuses": [` + host(9, `{"eds_health_status": "HEALTHY"}`) + `]}
	]}`)
	clusters, err := admin.ParseClusters(body)
	if err != nil {
		t.Fatal(err)
	}
	got := byUpstreamCluster(clusters)
	want := map[string][]status.ServerHealth{
		"a": {
			{Address: "10.0.0.1:1", Healthy: true},
			{Address: "10.0.0.1:2", Reason: "failed_active_health_check,failed_outlier_check"},
			{Address: "10.0.0.1:3", Reason: "pending_active_hc"},
			{Address: "10.0.0.1:4", Reason: "failed_health_probe"},
			{Address: "10.0.0.1:5", Healthy: true},
			{Address: "10.0.0.1:6", Healthy: true},
		},
		"b": {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("servers (-want +got):\n%s", diff)
	}
	if _, err := admin.ParseClusters([]byte("not json")); err == nil {
		t.Fatal("bad JSON must be an error")
	}

	p := &Poller{}
	p.set(got)
	select {
	case <-p.Changed():
	default:
		t.Error("new health did not fire Changed")
	}
	p.set(byUpstreamCluster(clusters))
	select {
	case <-p.Changed():
		t.Error("unchanged health fired Changed")
	default:
	}
	if s, ok := p.Servers("a"); !ok || len(s) != 6 {
		t.Errorf("Servers(a) = %v, %v; want 6 servers", s, ok)
	}
	if _, ok := p.Servers("c"); ok {
		t.Error("Servers(c) reported a cluster Envoy does not have")
	}
	wantMetrics := `
# HELP frontdoor_upstream_server_healthy 1 when Envoy sends traffic to the server (health check passing: frontdoor's probe, or Envoy's own for servers named by DNS; not ejected by outlier detection), 0 otherwise; polled from Envoy's admin /clusters.
# TYPE frontdoor_upstream_server_healthy gauge
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:1"} 1
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:2"} 0
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:3"} 0
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:4"} 0
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:5"} 1
frontdoor_upstream_server_healthy{cluster="a",server="10.0.0.1:6"} 1
`
	if err := testutil.CollectAndCompare(p, strings.NewReader(wantMetrics)); err != nil {
		t.Error(err)
	}
}

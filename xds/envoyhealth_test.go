package xds

import (
	"maps"
	"testing"
)

// TestParseClusterHealth: only "<name>/default" clusters count, and a host
// counts as healthy only without any failure or pending flag.
func TestParseClusterHealth(t *testing.T) {
	body := []byte(`{"cluster_statuses": [
	  {"name": "a/default", "host_statuses": [
	    {"health_status": {"eds_health_status": "HEALTHY"}},
	    {"health_status": {"eds_health_status": "HEALTHY", "failed_active_health_check": true}},
	    {"health_status": {"eds_health_status": "HEALTHY", "pending_active_hc": true}},
	    {"health_status": {"eds_health_status": "UNHEALTHY"}},
	    {"health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": false}}
	  ]},
	  {"name": "b/default", "host_statuses": []},
	  {"name": "b/some-rule", "host_statuses": [{"health_status": {"eds_health_status": "HEALTHY"}}]},
	  {"name": "frontdoor_grpc", "host_statuses": [{"health_status": {"eds_health_status": "HEALTHY"}}]}
	]}`)
	got, err := parseClusterHealth(body)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int32{"a": 2, "b": 0}; !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := parseClusterHealth([]byte("not json")); err == nil {
		t.Fatal("bad JSON must be an error")
	}
}

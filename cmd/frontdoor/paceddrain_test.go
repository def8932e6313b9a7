package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
	"github.com/kubefrontdoor/frontdoor/xds"
)

// TestDrainEndpointAnswers: the drain endpoint changes what an Envoy
// serves, so it takes POSTs from loopback only, and says why it refuses.
func TestDrainEndpointAnswers(t *testing.T) {
	ctrl := xds.NewController(xds.ControllerOptions{Registry: prometheus.NewRegistry()})
	bucketed, plain := xds.NewDrains(true), xds.NewDrains(false)
	bucketed.Attach(ctrl)
	plain.Attach(ctrl)
	for _, c := range []struct {
		name, method, remote, query string
		drains                      *xds.Drains
		want                        int
	}{
		{"remote client", http.MethodPost, "10.1.2.3:5555", "?node=a&step=1", bucketed, http.StatusForbidden},
		{"GET", http.MethodGet, "127.0.0.1:5555", "?node=a&step=1", bucketed, http.StatusMethodNotAllowed},
		{"no node", http.MethodPost, "127.0.0.1:5555", "?step=1", bucketed, http.StatusBadRequest},
		{"bad step", http.MethodPost, "[::1]:5555", "?node=a&step=x", bucketed, http.StatusBadRequest},
		{"step out of range", http.MethodPost, "[::1]:5555", "?node=a&step=99", bucketed, http.StatusBadRequest},
		{"unknown node", http.MethodPost, "127.0.0.1:5555", "?node=a&step=1", bucketed, http.StatusNotFound},
		{"no buckets", http.MethodPost, "127.0.0.1:5555", "?node=a&step=1", plain, http.StatusConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, drainStepPath+c.query, nil)
			req.RemoteAddr = c.remote
			rec := httptest.NewRecorder()
			drainStepHandler(c.drains)(rec, req)
			if rec.Code != c.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body.String(), c.want)
			}
		})
	}
}

// TestParseServerInfo reads the node ID and --drain-time-s from Envoy's
// /server_info (proto JSON field names, durations as strings).
func TestParseServerInfo(t *testing.T) {
	info, err := admin.ParseServerInfo([]byte(`{"version":"x","state":"LIVE",
		"command_line_options":{"base_id":"0","drain_time":"5s","parent_shutdown_time":"900s"},
		"node":{"id":"gateway-1","cluster":"frontdoor"}}`))
	if err != nil || info.NodeID != "gateway-1" || info.DrainTime != 5*time.Second {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := admin.ParseServerInfo([]byte(`{"node":{}}`)); err == nil {
		t.Fatal("no node id: want an error")
	}
}

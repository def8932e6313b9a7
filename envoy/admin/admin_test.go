package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClient: POST fails unless Envoy answers 200; /stats is read as
// integers and the filter reaches Envoy intact; a histogram is an error,
// not a guess.
func TestClient(t *testing.T) {
	var gotFilter string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/healthcheck/fail":
			fmt.Fprintln(w, "OK")
		case r.Method == http.MethodPost:
			http.Error(w, "invalid path", http.StatusNotFound)
		case r.URL.Path == "/stats" && r.URL.Query().Get("filter") == "hist":
			fmt.Fprintln(w, "cluster.a.upstream_rq_time: P0(nan,1) P25(nan,2)")
		case r.URL.Path == "/stats":
			gotFilter = r.URL.Query().Get("filter")
			fmt.Fprintln(w, "http.a.downstream_rq_active: 2\nhttp.b.downstream_rq_active: 0")
		}
	}))
	defer srv.Close()
	c := New(srv.URL + "/")
	ctx := context.Background()

	if err := c.Post(ctx, "/healthcheck/fail"); err != nil {
		t.Errorf("Post: %v", err)
	}
	if err := c.Post(ctx, "/nope"); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "invalid path") {
		t.Errorf("Post of a 404: %v, want the status and Envoy's answer", err)
	}
	stats, err := c.Stats(ctx, `^http\..*\.downstream_rq_active$`)
	if err != nil || len(stats) != 2 || stats["http.a.downstream_rq_active"] != 2 {
		t.Errorf("Stats = %v, %v", stats, err)
	}
	if gotFilter != `^http\..*\.downstream_rq_active$` {
		t.Errorf("Envoy got filter %q", gotFilter)
	}
	if _, err := c.Stats(ctx, "hist"); err == nil {
		t.Error("a histogram value must be an error")
	}
	if _, err := New("http://127.0.0.1:1").Clusters(ctx); err == nil {
		t.Error("an unreachable admin must be an error")
	}
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

// fakeAdmin is the part of Envoy's admin API `frontdoor drain` uses: the
// active request count drops by one per stats read until it reaches zero.
func fakeAdmin(t *testing.T, active int64) (*httptest.Server, func() []string) {
	t.Helper()
	var (
		mu    sync.Mutex
		calls []string
		left  atomic.Int64
	)
	left.Store(active)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case r.Method == http.MethodPost:
			fmt.Fprintln(w, "OK")
		case r.URL.Path == "/stats":
			n := left.Load()
			if n > 0 {
				left.Add(-1)
			}
			// Two connection managers; the admin's own counts this request.
			fmt.Fprintf(w, "http.admin.downstream_rq_active: 1\nhttp.a.downstream_rq_active: %d\nhttp.b.downstream_rq_active: 0\n", n)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), calls...)
	}
}

func TestActiveRequestsSkipsAdmin(t *testing.T) {
	srv, _ := fakeAdmin(t, 3)
	n, err := activeRequests(context.Background(), admin.New(srv.URL))
	if err != nil || n != 3 {
		t.Fatalf("activeRequests = %d, %v; want 3 (the admin's own request excluded)", n, err)
	}
}

func TestDrainFailsHealthDrainsWaitsAndQuits(t *testing.T) {
	srv, calls := fakeAdmin(t, 2)
	if err := runDrain([]string{"--admin-address", srv.Listener.Addr().String(), "--timeout", "10s", "--quit"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /healthcheck/fail", "POST /drain_listeners", "GET /stats", "GET /stats", "GET /stats", "POST /quitquitquit"}
	if got := calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("admin calls %q, want %q", got, want)
	}
}

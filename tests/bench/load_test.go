package bench

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOfferAgainstFake runs both loops of every workload against an HTTP/2
// test server and checks that requests, errors and paths add up.
func TestOfferAgainstFake(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method]++
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		if strings.Contains(r.URL.Path, "cm-13") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := Client{URL: srv.URL, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}

	for _, w := range []Workload{WorkloadGet, WorkloadList, WorkloadCreate, WorkloadMixed} {
		res, err := Offer(context.Background(), c, LoadSpec{Workload: w, Mode: Closed, Concurrency: 4, Connections: 2,
			Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Latencies) == 0 || res.QPS() <= 0 || res.Requests != len(res.Latencies)+res.Errors {
			t.Errorf("%s closed: %d requests, %d ok, %d errors", w, res.Requests, len(res.Latencies), res.Errors)
		}
		if res.Errors > 0 && !strings.Contains(res.FirstErr, "500") {
			t.Errorf("%s: unexpected error %s", w, res.FirstErr)
		}
	}
	res, err := Offer(context.Background(), c, LoadSpec{Workload: WorkloadGet, Mode: Open, QPS: 200, Connections: 8,
		Duration: 500 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 50 || res.Requests > 200 {
		t.Errorf("open loop at 200/s for 0.5s sent %d requests", res.Requests)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch} {
		if seen[m] == 0 {
			t.Errorf("no %s request reached the server: %v", m, seen)
		}
	}
}

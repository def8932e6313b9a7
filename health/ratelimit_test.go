package health

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kubefrontdoor/frontdoor/envoy/admin"
)

// TestRateLimitWatcherLogs: a rise of failure_mode_allowed is logged as
// failing open, errors beyond it as failing closed; the first poll is a
// baseline and unchanged counters log nothing.
func TestRateLimitWatcherLogs(t *testing.T) {
	var mu sync.Mutex
	stats := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats" || r.URL.Query().Get("filter") != rateLimitStats {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(w, stats)
	}))
	defer srv.Close()
	set := func(openErr, openAllowed, closedErr int) {
		mu.Lock()
		defer mu.Unlock()
		stats = fmt.Sprintf("cluster.gov/open.ratelimit.error: %d\ncluster.gov/open.ratelimit.failure_mode_allowed: %d\n"+
			"cluster.gov/strict.ratelimit.error: %d\ncluster.gov/strict.ratelimit.failure_mode_allowed: 0\n", openErr, openAllowed, closedErr)
	}
	var logs bytes.Buffer
	w := &RateLimitWatcher{Admin: admin.New(srv.URL), Log: slog.New(slog.NewTextHandler(&logs, nil))}
	poll := func() {
		st, err := w.Admin.Stats(context.Background(), rateLimitStats)
		if err != nil {
			t.Fatal(err)
		}
		w.observe(st)
	}

	set(5, 5, 3)
	poll() // baseline
	poll() // unchanged
	if logs.Len() != 0 {
		t.Fatalf("logged without a rise:\n%s", &logs)
	}
	set(12, 12, 7)
	poll()
	out := logs.String()
	if !strings.Contains(out, "failing open") || !strings.Contains(out, "policy=gov/open admitted=7") {
		t.Errorf("no fail-open line for gov/open admitting 7:\n%s", out)
	}
	if !strings.Contains(out, "failing closed") || !strings.Contains(out, "policy=gov/strict refused=4") {
		t.Errorf("no fail-closed line for gov/strict refusing 4:\n%s", out)
	}
	if strings.Contains(out, "policy=gov/open refused") || strings.Count(out, "\n") != 2 {
		t.Errorf("want exactly two lines:\n%s", out)
	}
}

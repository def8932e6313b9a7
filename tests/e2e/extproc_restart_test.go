package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// An ext_proc stream lives as long as its request: after deciding on the
// request headers, the service waits for the response headers to observe
// them. When frontdoor serve goes away (a restart, a crash), those streams
// break while their requests are at the apiserver. The requests must not
// break with them: they were decided, forwarded, and may be writes the
// apiserver has already executed. What serve's absence may refuse is only
// what it never decided on, before it is forwarded, with the 503 that
// client-go retries.
//
// The apiserver here is a holding server (startHoldingServer), the only
// server of an UpstreamCluster in ExtProc mode whatever the mode under
// test, so the requests are provably in flight when serve is killed.

const cutCluster = "cut"

var cutSNI = cutCluster + "." + sandbox.TestDomain

func TestExtProcRequestsOutliveTheirStream(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	url, held, release := startHoldingServer(t)
	serveExtProcCluster(t, ctx, cutCluster, cutSNI, url)
	admin := adminUser()
	client := httpClient(t, cutSNI, admin.certPEM, admin.keyPEM)
	defer client.CloseIdleConnections()

	// GETs of single objects: not long-running, so each keeps its ext_proc
	// stream open for the response headers.
	const inFlight = 5
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, inFlight)
	for i := range inFlight {
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/default/configmaps/held-%d", sb.GatewayURL, i), nil)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			answers <- answer{code: resp.StatusCode, body: string(body), err: err}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := poll(wctx, 50*time.Millisecond, func() (bool, error) { return held.Load() >= inFlight, nil })
	cancel()
	if err != nil {
		t.Fatalf("the holding server got %d of %d requests", held.Load(), inFlight)
	}

	// Envoy counts what passed its ext_proc filter undecided: the stat
	// operators watch for serve being away (README, ext_proc mode).
	failOpenStat := "http." + cutCluster + ".ext_proc.failure_mode_allowed"
	failOpenBefore := counterStat(t, ctx, failOpenStat)

	sb.StopFrontdoor() // SIGKILL: every stream breaks at once
	restarted := false
	defer func() {
		if !restarted {
			if err := sb.StartFrontdoor(context.Background()); err != nil {
				t.Errorf("restarting frontdoor: %v", err)
			}
		}
	}()

	// While serve is down, a new request is refused before it is forwarded:
	// 503, Retry-After and the gateway's own Status.
	code, hdr, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps/new", nil, nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" || !strings.Contains(string(body), "request service is unavailable") {
		t.Errorf("with serve down: %d Retry-After %q %s; want 503, Retry-After 1 and the request-service-unavailable Status", code, hdr.Get("Retry-After"), body)
	}
	if n := held.Load(); n != inFlight {
		t.Errorf("the holding server got %d requests, want the %d decided before serve went away", n, inFlight)
	}
	if got := counterStat(t, ctx, failOpenStat) - failOpenBefore; got < 1 {
		t.Errorf("%s rose by %d with serve down, want at least the refused request", failOpenStat, got)
	}
	// The requests in flight lost their streams but are still at the
	// apiserver: nothing answers them yet.
	select {
	case a := <-answers:
		t.Fatalf("a request in flight was answered when its ext_proc stream broke: %d %q %v", a.code, a.body, a.err)
	case <-time.After(2 * time.Second):
	}

	if err := sb.StartFrontdoor(ctx); err != nil {
		t.Fatalf("restarting frontdoor: %v", err)
	}
	restarted = true
	release()
	for range inFlight {
		select {
		case a := <-answers:
			if a.err != nil || a.code != http.StatusOK || a.body != "released" {
				t.Errorf("a request in flight across the serve restart: %d %q %v; want the apiserver's 200", a.code, a.body, a.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a request in flight was not answered 30 s after the apiserver answered it")
		}
	}
	// And the restarted serve decides again.
	if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		code, _, _ := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/readyz", nil, nil)
		return code == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("no request decided after serve restarted: %v", err)
	}
}

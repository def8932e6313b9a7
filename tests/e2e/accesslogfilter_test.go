package e2e

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// TestAccessLogFailuresOnly: a gateway started with
// --access-log-failures-only --access-log-slower-than 1s logs a denial, an
// apiserver's 404 and a watch that lasted 2 s, and not a quick successful
// request sent before them.
func TestAccessLogFailuresOnly(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox with --access-log-failures-only", 3*time.Minute)
	s, admin := startGatewaySandbox(t, ctx, "--access-log-failures-only", "--access-log-slower-than", "1s")
	anonymous, err := s.HTTPClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	marker := randomHex(t, 6)
	const cms = "/api/v1/namespaces/default/configmaps"
	okPath := cms + "?labelSelector=ok-" + marker
	missingPath := cms + "/missing-" + marker
	deniedPath := cms + "/denied-" + marker
	watchPath := cms + "?watch=1&timeoutSeconds=2&labelSelector=watch-" + marker
	for _, r := range []struct {
		c    *http.Client
		path string
		code int
	}{
		{admin, okPath, http.StatusOK},
		{admin, missingPath, http.StatusNotFound},
		{anonymous, deniedPath, http.StatusUnauthorized},
		{admin, watchPath, http.StatusOK}, // answers at once, streams for 2 s
	} {
		if code, _, _ := do(t, ctx, r.c, http.MethodGet, s.GatewayURL+r.path, nil, nil); code != r.code {
			t.Fatalf("GET %s: %d, want %d", r.path, code, r.code)
		}
	}

	// The log is written in completion order: once the watch's line is
	// there, the quick request's would be too.
	var raw []byte
	if err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		raw, _ = os.ReadFile(s.AccessLogPath) // not there until the first line
		return len(logLines(t, raw, watchPath)) > 0, nil
	}); err != nil {
		t.Fatalf("the 2 s watch was not logged: %v\n%s", err, raw)
	}
	for _, w := range []struct {
		path     string
		code     float64
		decision string
	}{{missingPath, 404, "allowed"}, {deniedPath, 401, "unauthenticated"}, {watchPath, 200, "allowed"}} {
		lines := logLines(t, raw, w.path)
		if len(lines) != 1 || lines[0]["code"] != w.code || lines[0]["decision"] != w.decision {
			t.Errorf("%s: logged %v; want one line, code %v, decision %s", w.path, lines, w.code, w.decision)
		}
	}
	if lines := logLines(t, raw, okPath); len(lines) != 0 {
		t.Errorf("a quick 200 was logged: %v", lines)
	}
}

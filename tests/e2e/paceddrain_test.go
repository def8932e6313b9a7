package e2e

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// pacedWatch is one watch on its own client connection.
type pacedWatch struct {
	bucket int           // the listener's drain bucket of its source port
	ended  time.Time     // when its response body ended (EOF or error)
	done   chan struct{} // closed when ended is set
}

// openPacedWatch opens a watch of ConfigMaps through gatewayURL on a new
// connection and reads it until it ends.
func openPacedWatch(t *testing.T, ctx context.Context, fs *sandbox.Sandbox, gatewayURL string) *pacedWatch {
	t.Helper()
	c, err := fs.HTTPClient(fs.AdminCertPEM, fs.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 0 // a watch
	w := &pacedWatch{bucket: -1, done: make(chan struct{})}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if a, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
			w.bucket = translator.PortBucket(uint16(a.Port)) //nolint:gosec // a TCP port
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet,
		gatewayURL+"/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=600", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("opening a watch: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("opening a watch: %s", resp.Status)
	}
	go func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		w.ended = time.Now()
		resp.Body.Close()
		c.CloseIdleConnections()
		close(w.done)
	}()
	return w
}

// A paced drain (serve --drain-buckets, `frontdoor drain --window`) of one
// Envoy of a fleet closes its watches spread over the window — no more
// than 20% of them in any one second — each bucket no earlier than its
// step, while the other Envoy's watch keeps running.
func TestPacedDrainSpreadsWatchCloses(t *testing.T) {
	const (
		watches = 150
		window  = 10 * time.Second
	)
	ctx := setup(t, 5*time.Minute)
	fs := startFleetSandbox(t, ctx, "paced", sandbox.Options{FrontdoorArgs: []string{"--drain-buckets"}})
	drained, other := fs.Gateways[1], fs.Gateways[0]

	ws := make([]*pacedWatch, watches)
	var wg sync.WaitGroup
	for i := range ws {
		wg.Go(func() { ws[i] = openPacedWatch(t, ctx, fs, drained.URL) })
	}
	wg.Wait()
	survivor := openPacedWatch(t, ctx, fs, other.URL)

	controlPlane := strings.TrimSuffix(fs.FrontdoorMetricsURL, "/metrics")
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(fs.BinDir, "frontdoor"), "drain",
		"--admin-address", strings.TrimPrefix(drained.AdminURL, "http://"),
		"--control-plane-url", controlPlane, "--window", window.String(), "--quit")
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("frontdoor drain: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "paced") {
		t.Fatalf("the drain was not paced:\n%s", out.String())
	}
	deadline := time.After(window + 10*time.Second)
	for i, w := range ws {
		select {
		case <-w.done:
		case <-deadline:
			t.Fatalf("watch %d (bucket %d) still open %s after the drain started", i, w.bucket, time.Since(start))
		}
	}

	step := window / time.Duration(translator.ConnectionBuckets)
	perSecond := map[int]int{}
	perBucket := map[int][]string{}
	for _, w := range ws {
		at := w.ended.Sub(start)
		perSecond[int(at/time.Second)]++
		perBucket[w.bucket] = append(perBucket[w.bucket], at.Round(10*time.Millisecond).String())
		// Bucket k is removed at step k; the last one goes with the listener.
		if earliest := time.Duration(w.bucket) * step; at < earliest-100*time.Millisecond {
			t.Errorf("a watch of bucket %d ended at %s, before its step (%s)", w.bucket, at, earliest)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(perBucket)) {
		t.Logf("bucket %d: %d watches ended at %s", k, len(perBucket[k]), strings.Join(perBucket[k], " "))
	}
	for sec, n := range perSecond {
		if n*5 > watches {
			t.Errorf("%d of %d watches ended in second %d of the drain (bar: at most 20%%); per second: %v", n, watches, sec, perSecond)
		}
	}
	if len(perSecond) < 5 {
		t.Errorf("the watches ended within %d distinct seconds, want the window's spread: %v", len(perSecond), perSecond)
	}

	select {
	case <-survivor.done:
		t.Errorf("the other Envoy's watch ended during this Envoy's drain")
	default:
	}
	admin, err := fs.HTTPClient(fs.AdminCertPEM, fs.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := sandbox.ExpectStatus(ctx, admin, other.URL+"/api/v1/namespaces/default", http.StatusOK); err != nil {
		t.Errorf("the other Envoy after the drain: %v", err)
	}
}

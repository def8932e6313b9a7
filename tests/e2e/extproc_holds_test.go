package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// An ext_proc stream per request is one request of Envoy's circuit breaker
// on the request service's cluster (1024 by default, shared with every
// ext_authz check). Long-running requests must not hold theirs until the
// upstream answers: a user with pods/proxy rights and a pod that never
// answers could otherwise take them all and fail every other request.
//
// The pod that never answers is a black hole: a test-owned HTTP/2 server
// that answers its health checks and holds every other request until the
// test ends, the only server of an UpstreamCluster "hole" in ExtProc mode
// (whatever the mode under test: the streams are the point).

const (
	holeCluster = "hole"
	// batch is how many hung requests go at once.
	batch = 50
)

var holeSNI = holeCluster + "." + sandbox.TestDomain

// startBlackHole serves TLS (a certificate of the sandbox CA for 127.0.0.1)
// and HTTP/2; health paths answer "hole", everything else is counted and
// then held until the test ends. It returns the server's URL and the count.
func startBlackHole(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	url, held, _ := startHoldingServer(t)
	return url, held
}

// startHoldingServer is startBlackHole whose held requests are answered
// 200 "released" once release is called (or end with the test).
func startHoldingServer(t *testing.T) (url string, held *atomic.Int64, release func()) {
	t.Helper()
	certPEM, keyPEM, err := sb.CA.ServingCert("hole", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	release = sync.OnceFunc(func() { close(released) })
	held = &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range []string{"/readyz", "/healthz", "/livez"} {
			if strings.HasPrefix(r.URL.Path, p) {
				_, _ = w.Write([]byte("hole"))
				return
			}
		}
		held.Add(1)
		select {
		case <-released:
			_, _ = w.Write([]byte("released"))
		case <-r.Context().Done():
		}
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1 << 16}
	srv.StartTLS()
	t.Cleanup(func() {
		release()
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL, held, release
}

// serveExtProcCluster writes UpstreamCluster name (SNI sni) in ExtProc
// mode, whatever the mode under test, over the one server at url (a
// startHoldingServer), and waits until it serves.
func serveExtProcCluster(t *testing.T, ctx context.Context, name, sni, url string) {
	t.Helper()
	uc := altClusterYAML(name, sni, sandbox.ServersYAML([]string{url}))
	uc = strings.TrimSuffix(uc, sb.RequestServiceField()) + "  requestService: ExtProc\n"
	path := filepath.Join(sb.Dir, "config", "upstreamcluster-"+name+".yaml")
	if err := os.WriteFile(path, []byte(uc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	admin := adminUser()
	// Serving once a health path answers "hole" through it (before, its SNI
	// falls to the sandbox's own cluster).
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
		c := httpClient(t, sni, admin.certPEM, admin.keyPEM)
		defer c.CloseIdleConnections()
		code, _, body := do(t, wctx, c, http.MethodGet, sb.GatewayURL+"/readyz", nil, nil)
		return code == http.StatusOK && string(body) == "hole", nil
	})
	if err != nil {
		t.Fatalf("UpstreamCluster %q not serving: %v", name, err)
	}
}

// requestServiceCap is max_requests of the circuit breaker on Envoy's
// cluster of the request service, as Envoy's admin /clusters reports it.
func requestServiceCap(t *testing.T, ctx context.Context) int {
	t.Helper()
	text, err := sb.EnvoyAdmin(ctx, "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	prefix := envoy.ControlPlaneCluster + "::default_priority::max_requests::"
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("Envoy's /clusters has no %s line", prefix)
	return 0
}

// requestServiceActive is upstream_rq_active of Envoy's cluster of the
// request service: its open gRPC streams and calls.
func requestServiceActive(t *testing.T, ctx context.Context) int {
	t.Helper()
	return counterStat(t, ctx, "cluster."+envoy.ControlPlaneCluster+".upstream_rq_active")
}

func TestExtProcLongRunningHoldsNoStream(t *testing.T) {
	ctx := setup(t, 4*time.Minute)
	holeURL, held := startBlackHole(t)
	// More hung requests than Envoy's default cap of 1024 (or the
	// bootstrap's, if lower), in whole batches. The bootstrap raises the
	// cap far above what a test can hold, so the streams still open on the
	// request service's cluster are checked too (below).
	holeRequests := (min(requestServiceCap(t, ctx), 1024)/batch + 2) * batch
	t.Logf("%d hung requests", holeRequests)

	serveExtProcCluster(t, ctx, holeCluster, holeSNI, holeURL)
	admin := adminUser()

	// More hung pods/proxy requests than the cap, all in flight together,
	// sent in batches so that a burst on a busy host does not time out the
	// request service's answers: each batch must reach the black hole
	// before the next goes.
	hung := httpClient(t, holeSNI, admin.certPEM, admin.keyPEM)
	hctx, stop := context.WithCancel(ctx)
	t.Cleanup(func() { stop(); hung.CloseIdleConnections() })
	var (
		mu     sync.Mutex
		failed = map[int]int{} // status -> count
	)
	for sent := 0; sent < holeRequests; sent += batch {
		for i := sent; i < sent+batch; i++ {
			go func() {
				req, err := http.NewRequestWithContext(hctx, http.MethodGet, fmt.Sprintf("%s/api/v1/namespaces/default/pods/p/proxy/hang/%d", sb.GatewayURL, i), nil)
				if err != nil {
					return
				}
				resp, err := hung.Do(req)
				if err == nil {
					mu.Lock()
					failed[resp.StatusCode]++
					mu.Unlock()
					resp.Body.Close()
				}
			}()
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := poll(wctx, 100*time.Millisecond, func() (bool, error) { return held.Load() >= int64(sent+batch), nil })
		cancel()
		if err != nil {
			mu.Lock()
			t.Fatalf("the black hole holds %d of %d proxied requests sent (answered: %v): long-running requests hold ext_proc streams",
				held.Load(), sent+batch, failed)
		}
	}

	// None of them holds a request to the request service: what is open
	// there is the ADS stream and checks in flight, far below one batch.
	active := requestServiceActive(t, ctx)
	t.Logf("%d requests open on the request service's cluster", active)
	if active >= batch {
		t.Errorf("%d requests open on the request service's cluster beside %d hung proxied requests: long-running requests hold ext_proc streams", active, holeRequests)
	}

	// Every other request still goes through, on the sandbox's own cluster
	// (its request service shares the cap) and through ExtProc on hole.
	client := httpClient(t, "", admin.certPEM, admin.keyPEM)
	defer client.CloseIdleConnections()
	for i := range 20 {
		if code, _, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps", nil, nil); code != http.StatusOK {
			t.Fatalf("request %d beside %d hung proxied requests: %d %s", i, holeRequests, code, body)
		}
	}
	other := httpClient(t, holeSNI, admin.certPEM, admin.keyPEM)
	defer other.CloseIdleConnections()
	if code, _, body := do(t, ctx, other, http.MethodGet, sb.GatewayURL+"/readyz", nil, nil); code != http.StatusOK || string(body) != "hole" {
		t.Errorf("a request through ExtProc beside the hung ones: %d %s", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 0 {
		t.Errorf("hung proxied requests were answered: %v (status: count)", failed)
	}
}

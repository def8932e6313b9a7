package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// blackHole is the server of the abuse benchmark's hung-request target: an
// HTTP/2 server over TLS on loopback that answers the health paths (so
// Envoy's active health check passes and the server stays in rotation:
// Frontdoor's clusters have no switch to turn health checks off and never
// route in panic mode) and holds every other request, unanswered, until the
// client gives up or the black hole stops. It stands in for a pod that
// never answers (kube-apiserver refuses pods/proxy to loopback pod IPs).
type blackHole struct {
	URL string // https://127.0.0.1:P

	srv        *http.Server
	held, peak atomic.Int64
	stop       chan struct{}
}

// healthPaths are answered 200 at once; /version is what the benchmark
// probes through the gateway to know the cluster serves.
var healthPaths = map[string]bool{"/readyz": true, "/livez": true, "/healthz": true, "/version": true}

// startBlackHole serves TLS with certPEM/keyPEM on a free loopback port.
func startBlackHole(certPEM, keyPEM []byte) (*blackHole, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &blackHole{URL: "https://" + ln.Addr().String(), stop: make(chan struct{})}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.serve),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		Protocols:         &protos,
		// Envoy spreads its streams by the server's limit; a high one
		// keeps the upstream side from being what caps the attack.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 4096},
	}
	go func() { _ = b.srv.ServeTLS(ln, "", "") }()
	return b, nil
}

func (b *blackHole) serve(w http.ResponseWriter, r *http.Request) {
	if healthPaths[r.URL.Path] {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
		return
	}
	now := b.held.Add(1)
	defer b.held.Add(-1)
	for p := b.peak.Load(); now > p && !b.peak.CompareAndSwap(p, now); p = b.peak.Load() {
	}
	select {
	case <-r.Context().Done():
	case <-b.stop:
	}
}

// Held is how many requests the black hole holds now; Peak the most at once.
func (b *blackHole) Held() int64 { return b.held.Load() }
func (b *blackHole) Peak() int64 { return b.peak.Load() }

// resetPeak starts a new peak from the requests held now.
func (b *blackHole) resetPeak() { b.peak.Store(b.held.Load()) }

// Close releases every held request and stops the server.
func (b *blackHole) Close() error {
	close(b.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

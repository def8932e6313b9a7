package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
)

// These tests run each attack generator against a local listener (no
// sandbox, fine with -short) and check it does what the benchmark reports:
// holds its connections, trickles or stalls, re-dials what is closed, sends
// a fresh token per request, and keeps its requests hung.

// localTLS is a CA and a 127.0.0.1 serving certificate from it.
func localTLS(t *testing.T) (caPEM []byte, srv *tls.Config) {
	t.Helper()
	ca, err := testpki.NewCA("abuse-test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServingCert("localhost", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
}

// waitFor polls cond every 20 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowLorisHoldsTricklesAndRedials: every connection completes TLS,
// sends a request line that never ends, trickles header bytes, and one the
// server closes is dialled again and counted as closed by the gateway.
func TestSlowLorisHoldsTricklesAndRedials(t *testing.T) {
	caPEM, srvCfg := localTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var (
		accepted, completed atomic.Int64
		mu                  sync.Mutex
		received            []string
		conns               []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			i := len(received)
			received = append(received, "")
			mu.Unlock()
			go func() {
				r := bufio.NewReader(c)
				for {
					b, err := r.ReadByte()
					if err != nil {
						return
					}
					mu.Lock()
					received[i] += string(b)
					if strings.Contains(received[i], "\r\n\r\n") {
						completed.Add(1)
					}
					mu.Unlock()
				}
			}()
		}
	}()

	const n = 6
	s, err := newSlowLoris(Client{URL: "https://" + ln.Addr().String(), CAPEM: caPEM, ServerName: "localhost"}, n, 30*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "all connections held", func() bool { return s.open.Load() == n })
	waitFor(t, 5*time.Second, "trickled header bytes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range received {
			if !strings.Contains(r, "X-Slow: ab") {
				return false
			}
		}
		return len(received) >= n
	})
	mu.Lock()
	first := received[0]
	conns[0].Close() // the gateway sheds one
	mu.Unlock()
	if !strings.HasPrefix(first, "GET /api/v1/namespaces/"+ListNamespace+"/configmaps HTTP/1.1\r\nHost: localhost\r\n") {
		t.Errorf("opening bytes: %q", first)
	}
	waitFor(t, 5*time.Second, "the closed connection dialled again", func() bool {
		return s.closedByPeer.Load() == 1 && accepted.Load() == n+1 && s.open.Load() == n
	})
	cancel()
	<-done
	if completed.Load() != 0 {
		t.Errorf("%d requests ended their headers; slow-loris must never finish one", completed.Load())
	}
	v := s.volume(time.Second)
	if v.Figures["peak_held"] != n || v.Figures["opened"] != n+1 || v.Figures["closed_by_gateway"] != 1 {
		t.Errorf("volume figures: %v", v.Figures)
	}
	if !strings.Contains(v.Summary, "6/6 TLS conns held") || !strings.Contains(v.Summary, "1 closed by the gateway") {
		t.Errorf("volume summary: %q", v.Summary)
	}
}

// TestHalfOpenStallsHandshakes: a third of the connections send nothing, a
// third half a ClientHello (a TLS handshake record shorter than its header
// says), a third a whole one, and then nothing more; closes by the server
// are counted per kind.
func TestHalfOpenStallsHandshakes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var (
		mu    sync.Mutex
		got   = map[int][]byte{}
		conns = map[int]net.Conn{}
	)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[i] = c
			mu.Unlock()
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					k, err := c.Read(buf)
					mu.Lock()
					got[i] = append(got[i], buf[:k]...)
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	const n = 9
	h, err := newHalfOpen(Client{URL: "https://" + ln.Addr().String(), ServerName: "gw.example"}, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "all connections held", func() bool { return h.open.Load() == n })
	waitFor(t, 5*time.Second, "the ClientHellos", func() bool {
		mu.Lock()
		defer mu.Unlock()
		sent := 0
		for _, b := range got {
			if len(b) > 0 {
				sent++
			}
		}
		return sent == 2*n/3
	})
	time.Sleep(100 * time.Millisecond) // nothing more arrives
	mu.Lock()
	silent, partial, whole := 0, 0, 0
	var closeOne net.Conn
	for i, b := range got {
		switch {
		case len(b) == 0:
			silent++
		case b[0] != 0x16 || len(b) < 6 || b[5] != 0x01:
			t.Errorf("not the start of a ClientHello: %x", b)
		case len(b)-5 < int(b[3])<<8|int(b[4]):
			partial++
		case len(b)-5 == int(b[3])<<8|int(b[4]):
			whole++
			closeOne = conns[i]
			if !strings.Contains(string(b), "gw.example") {
				t.Errorf("the ClientHello does not carry the SNI (%d bytes)", len(b))
			}
		default:
			t.Errorf("more than one record: %d bytes", len(b))
		}
	}
	silent += n - len(got) // a silent connection the server has not read from yet
	mu.Unlock()
	if silent != n/3 || partial != n/3 || whole != n/3 {
		t.Errorf("silent %d, partial %d, whole %d; want %d each", silent, partial, whole, n/3)
	}
	if closeOne == nil {
		t.Fatal("no whole ClientHello arrived")
	}
	closeOne.Close() // the gateway ends one stalled handshake
	waitFor(t, 5*time.Second, "the closed one dialled again", func() bool { return h.closedByPeer.Load() == 1 && h.open.Load() == n })
	cancel()
	<-done
	v := h.volume(time.Second)
	if v.Figures["peak_held"] != n || v.Figures["closed_by_gateway_hello"] != 1 || v.Figures["closed_by_gateway_silent"] != 0 {
		t.Errorf("volume: %+v", v)
	}
	if !strings.Contains(v.Summary, "closed by the gateway: silent none, partial none, hello 1 (median after") {
		t.Errorf("summary: %q", v.Summary)
	}
}

// TestTokenFloodSendsFreshTokens: every request carries a JWT-shaped bearer
// token never sent before, over HTTP/2, and the answers are counted by
// status.
func TestTokenFloodSendsFreshTokens(t *testing.T) {
	caPEM, srvCfg := localTLS(t)
	var (
		mu     sync.Mutex
		tokens = map[string]int{}
		protos = map[string]int{}
	)
	srv := &http.Server{TLSConfig: srvCfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		tokens[tok]++
		protos[r.Proto]++
		mu.Unlock()
		if !ok || strings.Count(tok, ".") != 2 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	f := newTokenFlood(Client{URL: "https://" + ln.Addr().String(), CAPEM: caPEM, ServerName: "localhost", Token: "the-valid-one"}, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	f.run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) < 10 {
		t.Fatalf("only %d requests", len(tokens))
	}
	for tok, n := range tokens {
		if n != 1 {
			t.Errorf("token sent %d times: %.20s...", n, tok)
		}
		if tok == "the-valid-one" {
			t.Error("the flood sent the valid client's token")
		}
	}
	if protos["HTTP/2.0"] != len(tokens) {
		t.Errorf("protocols %v; want HTTP/2.0 only", protos)
	}
	v := f.volume(time.Second)
	if v.Figures["status_401"] == 0 || v.Figures["status_400"] != 0 || v.Figures["tokens_per_s"] < 10 {
		t.Errorf("volume figures: %v", v.Figures)
	}
	if !strings.Contains(v.Summary, "401×") {
		t.Errorf("volume summary: %q", v.Summary)
	}
}

// TestHungRequestsStayHeldAtTheBlackHole: the black hole answers health
// paths at once and holds every other request; the attacker keeps n of
// them in flight until its context ends, and the black hole then holds none.
func TestHungRequestsStayHeldAtTheBlackHole(t *testing.T) {
	ca, err := testpki.NewCA("abuse-test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServingCert("blackhole", nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	hole, err := startBlackHole(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	c := Client{URL: hole.URL, CAPEM: ca.CertPEM}
	for _, p := range []string{"/readyz", "/version"} {
		if code, err := probeStatus(context.Background(), c, p); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", p, code, err)
		}
	}
	const n = 40
	h := newHungRequests(c, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "every request held", func() bool { return hole.Held() == n && h.inFlight.Load() == n })
	cancel()
	<-done
	waitFor(t, 5*time.Second, "the black hole released them", func() bool { return hole.Held() == 0 })
	v := h.volume(time.Second)
	if v.Figures["peak_in_flight"] != n || v.Figures["ended_before_phase_end"] != 0 || hole.Peak() != n {
		t.Errorf("volume %v, black hole peak %d", v.Figures, hole.Peak())
	}
}

// TestClientHelloIsOneWholeRecord: the captured ClientHello is exactly
// one handshake record, as long as its header says.
func TestClientHelloIsOneWholeRecord(t *testing.T) {
	b, err := clientHello("x.example")
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x16 || b[5] != 0x01 {
		t.Fatalf("not a ClientHello record: %x", b[:6])
	}
	if announced := int(b[3])<<8 | int(b[4]); len(b)-5 != announced {
		t.Errorf("record of %d bytes announces %d", len(b)-5, announced)
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// Rebalancing long-lived clients (issue 16, item 4): with
// --max-connection-age, Envoy sends every client connection a GOAWAY once
// it is that old plus a random jitter, so an HTTP/2 client opens a new
// connection (through the load balancer, possibly to another replica) for
// its next requests, while the watches it has open on the old connection
// keep streaming. The sandbox here has one Envoy: the test proves the
// GOAWAY and the reconnect on it; which replica the new connection reaches
// is the load balancer's choice, and ClientsMoveToANewGateway plays a
// scale-out with a balancer that sends new connections to a second Envoy.

const (
	// testMaxAge and testJitter are this sandbox's --max-connection-age and
	// --max-connection-age-jitter: connections get their GOAWAY between
	// 3 s and 6 s of age.
	testMaxAge = 3 * time.Second
	testJitter = 100
	// envoyDrainTimeout is the HCM's drain_timeout (Envoy's default, which
	// the translator keeps): the time between the first GOAWAY and the
	// final one.
	envoyDrainTimeout = 5 * time.Second
)

// maxAgeWithJitter is the latest a connection may get its GOAWAY.
var maxAgeWithJitter = testMaxAge + testMaxAge*testJitter/100

func startAgeSandbox(t *testing.T, ctx context.Context) *sandbox.Sandbox {
	t.Helper()
	s, err := sandbox.Start(ctx, sandbox.Options{
		Dir: t.TempDir(), Replicas: 1, Gateways: 2, Progress: os.Stderr,
		RequestService: sandbox.RequestServiceFromEnv(),
		FrontdoorArgs: []string{
			"--max-connection-age", testMaxAge.String(),
			"--max-connection-age-jitter", fmt.Sprint(testJitter),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	sandbox.TestContext(t, s, time.Minute, func(name string) int {
		if name == "envoy" || name == "frontdoor" {
			return 30
		}
		return 0
	})
	return s
}

// TestConnectionAge: a client's requests move to a new connection once the
// old one is testMaxAge to maxAgeWithJitter old; a watch opened on the old
// connection keeps delivering events past the final GOAWAY; connections
// opened together get their GOAWAY at spread-out times.
func TestConnectionAge(t *testing.T) {
	ctx := sandbox.SlowTest(t, "a sandbox with --max-connection-age", 6*time.Minute)
	s := startAgeSandbox(t, ctx)
	t.Run("RequestsMoveAndWatchesStay", func(t *testing.T) { requestsMoveAndWatchesStay(t, ctx, s) })
	t.Run("AgesAreJittered", func(t *testing.T) { agesAreJittered(t, ctx, s) })
	t.Run("ClientsMoveToANewGateway", func(t *testing.T) { clientsMoveToANewGateway(t, ctx, s) })
}

// requestsMoveAndWatchesStay uses one HTTP/2 client, as client-go does:
// it opens a watch and then sends a request every 100 ms, noting the
// connection (local address) each one used.
func requestsMoveAndWatchesStay(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	client, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 0 // the watch
	defer client.CloseIdleConnections()
	cs := sandbox.Clientset(t, s.DirectConfig(1, s.AdminCertPEM, s.AdminKeyPEM))
	ns := "age-" + uniq()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// connOf sends one request and returns the connection it used.
	var dialed sync.Map // local address → dial time
	tr := client.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			dialed.Store(c.LocalAddr().String(), time.Now())
		}
		return c, err
	}
	connOf := func(url string) (string, *http.Response) {
		var local string
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr().String() }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s: %s %s %s", url, resp.Proto, resp.Status, b)
		}
		return local, resp
	}

	base := s.GatewayURL + "/api/v1/namespaces/" + ns + "/configmaps"
	watchConn, watch := connOf(base + "?watch=1")
	defer watch.Body.Close()
	events := watchEvents(watch.Body)
	v, _ := dialed.Load(watchConn)
	dialTime := v.(time.Time)

	// Requests every 100 ms until one takes another connection.
	var movedAt time.Time
	for time.Since(dialTime) < maxAgeWithJitter+2*time.Second {
		c, resp := connOf(base + "?limit=1")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if c != watchConn {
			movedAt = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if movedAt.IsZero() {
		t.Fatalf("requests still on the first connection %s after %v (max age %v, jitter %d%%)", watchConn, time.Since(dialTime), testMaxAge, testJitter)
	}
	age := movedAt.Sub(dialTime)
	t.Logf("requests moved to a new connection after %v (first connection %s)", age.Round(time.Millisecond), watchConn)
	if age < testMaxAge {
		t.Errorf("requests moved after %v, before the max age %v", age, testMaxAge)
	}
	if age > maxAgeWithJitter+500*time.Millisecond {
		t.Errorf("requests moved after %v, later than max age + jitter %v", age, maxAgeWithJitter)
	}

	// Past the final GOAWAY (drain_timeout after the first), the watch on
	// the old connection still delivers a new event.
	time.Sleep(time.Until(movedAt.Add(envoyDrainTimeout + time.Second)))
	name := "after-goaway-" + uniq()
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitWatchEvent(ctx, events, "ADDED "+name, 10*time.Second); err != nil {
		t.Errorf("the watch opened on the aged connection, %v after it was dialed: %v", time.Since(dialTime).Round(time.Millisecond), err)
	}
}

// watchEvents decodes a watch response body into "TYPE name" lines; the
// channel closes when the body ends (with an "END <error>" line).
func watchEvents(body io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		dec := json.NewDecoder(body)
		for {
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				ch <- "END " + err.Error()
				return
			}
			ch <- ev.Type + " " + ev.Object.Metadata.Name
		}
	}()
	return ch
}

// waitWatchEvent waits for want on events; an ended watch or the timeout is an
// error.
func waitWatchEvent(ctx context.Context, events <-chan string, want string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok || strings.HasPrefix(ev, "END ") {
				return fmt.Errorf("watch ended before %q: %s", want, ev)
			}
			if ev == want {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no %q within %v", want, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// agesAreJittered opens connections together and notes when each gets
// its GOAWAY: every time is within [max age, max age + jitter], and they
// do not all fall together.
func agesAreJittered(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	const n = 8
	goaways := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		cc := dialH2(t, ctx, s, 0)
		wg.Go(func() {
			d, err := untilGoAway(ctx, cc, maxAgeWithJitter+3*time.Second)
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
			}
			goaways[i] = d // relative to its own dial
		})
	}
	wg.Wait()
	slices.Sort(goaways)
	t.Logf("GOAWAY after %v", goaways)
	for _, d := range goaways {
		if d < testMaxAge-100*time.Millisecond || d > maxAgeWithJitter+500*time.Millisecond {
			t.Errorf("a GOAWAY after %v, want within [%v, %v]", d, testMaxAge, maxAgeWithJitter)
		}
	}
	if spread := goaways[n-1] - goaways[0]; spread < 300*time.Millisecond {
		t.Errorf("%d connections opened together got their GOAWAYs within %v of each other: no jitter", n, spread)
	}
	// Envoy counts each as a connection that reached its maximum duration.
	stats, err := s.EnvoyAdmin(ctx, "/stats?filter=downstream_cx_max_duration_reached")
	if err != nil {
		t.Fatal(err)
	}
	var reached int
	for line := range strings.Lines(stats) {
		if _, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && strings.HasPrefix(line, "http.") {
			k, _ := strconv.Atoi(v)
			reached += k
		}
	}
	if reached < n {
		t.Errorf("Envoy's downstream_cx_max_duration_reached totals %d, want at least %d:\n%s", reached, n, stats)
	}
}

// dialH2 opens one HTTP/2 connection to s's gateway as the admin, from
// localPort (0: any).
func dialH2(t *testing.T, ctx context.Context, s *sandbox.Sandbox, localPort int) *h2Conn {
	t.Helper()
	cc, err := dialH2From(ctx, s, s.GatewayURL, localPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// h2Conn is one client HTTP/2 connection and when it was dialed.
type h2Conn struct {
	*http2.ClientConn
	dialed time.Time
	local  string
}

func dialH2From(ctx context.Context, s *sandbox.Sandbox, gatewayURL string, localPort int) (*h2Conn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	pair, err := tls.X509KeyPair(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: localPort}}
	raw, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(gatewayURL, "https://"))
	if err != nil {
		return nil, err
	}
	dialed := time.Now()
	tc := tls.Client(raw, &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1",
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		tc.Close()
		return nil, err
	}
	return &h2Conn{ClientConn: cc, dialed: dialed, local: raw.LocalAddr().String()}, nil
}

// untilGoAway polls cc until the server has sent a GOAWAY (the connection
// takes no new requests) and returns how long after the dial that was.
func untilGoAway(ctx context.Context, cc *h2Conn, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st := cc.State(); st.Closing || st.Closed {
			return time.Since(cc.dialed), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no GOAWAY within %v of the dial", timeout)
}

// switchingBalancer is an L4 load balancer for a test: it forwards each
// new connection to the target of the moment, so setting a new target is a
// scale-out whose new replica gets every new connection.
type switchingBalancer struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
}

func newSwitchingBalancer(t *testing.T, target string) *switchingBalancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &switchingBalancer{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			target := b.target
			b.mu.Unlock()
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return b
}

func (b *switchingBalancer) setTarget(target string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.target = target
}

// envoyRequests is how many requests an Envoy's client listener received
// (downstream_rq_total of its connection managers, the admin's left out).
func envoyRequests(t *testing.T, ctx context.Context, adminURL string) int {
	t.Helper()
	body, err := sandbox.Get(ctx, &http.Client{Timeout: 5 * time.Second}, adminURL+"/stats?filter="+url.QueryEscape(`^http\..*\.downstream_rq_total$`))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(body, "\n") {
		name, v, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(name, "http.admin.") {
			continue
		}
		k, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			t.Fatalf("stat %q: %v", line, err)
		}
		n += k
	}
	return n
}

// clientsMoveToANewGateway: a client with one long-lived HTTP/2
// connection through an L4 balancer to gateway 0 keeps sending requests;
// the balancer then sends new connections to gateway 1 (a scale-out).
// Within the maximum age plus its jitter the client's requests arrive at
// gateway 1 and no longer at gateway 0, and none fails.
func clientsMoveToANewGateway(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	g0, g1 := s.Gateways[0], s.Gateways[1]
	lb := newSwitchingBalancer(t, strings.TrimPrefix(g0.URL, "https://"))
	client, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	url := "https://" + lb.ln.Addr().String() + "/api/v1/namespaces/default"
	failed := 0
	send := func() {
		code, _, body := get(ctx, client, url)
		if code != http.StatusOK {
			failed++
			t.Errorf("request through the balancer: %d %s", code, body)
		}
	}
	send()
	lb.setTarget(strings.TrimPrefix(g1.URL, "https://"))
	switched := time.Now()
	before0, before1 := envoyRequests(t, ctx, g0.AdminURL), envoyRequests(t, ctx, g1.AdminURL)
	deadline := switched.Add(maxAgeWithJitter + envoyDrainTimeout + 2*time.Second)
	moved := time.Duration(0)
	for time.Now().Before(deadline) && moved == 0 {
		send()
		if envoyRequests(t, ctx, g1.AdminURL) > before1 {
			moved = time.Since(switched)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if moved == 0 {
		t.Fatalf("no request reached gateway 1 within %s of the scale-out (gateway 0 served %d more)",
			time.Since(switched).Round(time.Millisecond), envoyRequests(t, ctx, g0.AdminURL)-before0)
	}
	t.Logf("the client's requests reached the new gateway %s after the scale-out", moved.Round(time.Millisecond))
	// From now on every request goes to the new gateway.
	after0 := envoyRequests(t, ctx, g0.AdminURL)
	for range 10 {
		send()
	}
	if n := envoyRequests(t, ctx, g0.AdminURL) - after0; n != 0 {
		t.Errorf("gateway 0 still served %d requests after the client moved", n)
	}
	if failed != 0 {
		t.Errorf("%d requests failed across the move", failed)
	}
}

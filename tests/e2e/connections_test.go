package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

// The public listener's edge: slow clients are cut off, and what reaches an
// upstream carries the gateway's forwarding headers, never the client's,
// and none of Frontdoor's internal ones.

// edgeGrace is how long past the sandbox's edge timeout a test waits for
// Envoy to act (a busy machine's timer and scheduling slack).
const edgeGrace = 4 * time.Second

// A client that sends its ClientHello and then stalls the handshake is
// disconnected within the TLS handshake timeout: the tls_inspector only
// bounds the wait for the ClientHello, so without
// transport_socket_connect_timeout such a connection (and its fd) is held
// forever.
func TestTLSHandshakeStallIsClosed(t *testing.T) {
	ctx := setup(t, time.Minute)
	hello := clientHello(t)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(sb.GatewayURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	// Read the server's handshake flight and never answer it.
	waitClosed(t, conn, start, "a stalled TLS handshake")
}

// A connection that never sends its ClientHello is closed within the TLS
// handshake timeout too (the tls_inspector's listener filter timeout,
// otherwise Envoy's default of 15 s).
func TestSilentConnectionIsClosed(t *testing.T) {
	ctx := setup(t, time.Minute)
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(sb.GatewayURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitClosed(t, conn, start, "a connection that sends nothing")
}

// A request whose headers never finish (a slowloris) ends within the
// request-headers timeout: 408 or a closed connection, never a connection
// held open.
func TestRequestHeadersTimeout(t *testing.T) {
	ctx := setup(t, time.Minute)
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(sb.GatewayURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /version HTTP/1.1\r\nHost: gw\r\nX-Slow: a")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(start.Add(sandbox.EdgeTimeout + edgeGrace))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	switch {
	case err == nil:
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("unfinished request headers answered %d, want 408", resp.StatusCode)
		}
	case isTimeout(err):
		t.Fatalf("connection with unfinished request headers still open after %v (request-headers timeout %v)", time.Since(start), sandbox.EdgeTimeout)
	}
	t.Logf("unfinished request headers ended after %v", time.Since(start).Round(time.Millisecond))
}

// waitClosed reads conn until Envoy closes it, failing t if that takes
// longer than the sandbox's edge timeout (plus grace) from start.
func waitClosed(t *testing.T, conn net.Conn, start time.Time, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(start.Add(sandbox.EdgeTimeout + edgeGrace))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		if isTimeout(err) {
			t.Fatalf("%s: connection still open after %v (timeout %v)", what, time.Since(start), sandbox.EdgeTimeout)
		}
		t.Logf("%s: closed after %v (%v)", what, time.Since(start).Round(time.Millisecond), err)
		return
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientHello is the first TLS record a real Go client sends: its
// ClientHello, captured from a handshake over an in-memory pipe.
func clientHello(t *testing.T) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}).Handshake() //nolint:gosec // never completes
	}()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// recorder is an upstream that plays kube-apiserver for client-certificate
// users: it answers every request 200 and keeps each request's headers, so
// a test sees exactly what the gateway sends upstream (kube-apiserver's
// audit log does not record headers).
type recorder struct {
	mu   sync.Mutex
	seen map[string]http.Header // by request URI
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen[req.URL.RequestURI()] = req.Header.Clone()
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Success","code":200}`)
}

func (r *recorder) headers(marker string) (http.Header, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for uri, h := range r.seen {
		if strings.Contains(uri, marker) {
			return h, true
		}
	}
	return nil, false
}

const recorderCluster = "recorder"

var (
	recorderOnce, recorderServerOnce struct {
		sync.Once
		err error
	}
	theRecorder = &recorder{seen: map[string]http.Header{}}
	recorderURL string
)

// ensureRecorderCluster starts the recorder (once per package) on a TLS
// certificate of the sandbox CA (the CA the sandbox's UpstreamClusters
// trust) and points an UpstreamCluster, chosen by SNI
// recorder.sandbox.test, at it.
func ensureRecorderCluster(t *testing.T, ctx context.Context) {
	t.Helper()
	recorderServerOnce.Do(func() {
		cert, err := sb.CA.Issue(&x509.Certificate{
			Subject:     pkix.Name{CommonName: "recorder"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			recorderServerOnce.err = err
			return
		}
		pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			recorderServerOnce.err = err
			return
		}
		srv := httptest.NewUnstartedServer(theRecorder)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		srv.EnableHTTP2 = true
		srv.StartTLS() // lives as long as the test binary, like the sandbox
		recorderURL = srv.URL
	})
	if recorderServerOnce.err != nil {
		t.Fatal(recorderServerOnce.err)
	}
	recorderOnce.Do(func() {
		sni := recorderCluster + "." + sandbox.TestDomain
		uc := altClusterYAML(recorderCluster, sni, sandbox.ServersYAML([]string{recorderURL}))
		if recorderOnce.err = os.WriteFile(filepath.Join(sb.Dir, "config", "upstreamcluster-"+recorderCluster+".yaml"), []byte(uc), 0o644); recorderOnce.err != nil {
			return
		}
		// Only the recorder answers 200 to this path (an apiserver says
		// 403 or 404), so a 200 means the cluster serves.
		u := newUser("recorder-probe")
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		recorderOnce.err = poll(wctx, 200*time.Millisecond, func() (bool, error) {
			client := httpClient(t, sni, u.certPEM, u.keyPEM) // a new connection each time
			defer client.CloseIdleConnections()
			code, _, _ := do(t, wctx, client, http.MethodGet, sb.GatewayURL+"/recorder-probe", nil, nil)
			return code == http.StatusOK, nil
		})
	})
	if recorderOnce.err != nil {
		t.Fatalf("UpstreamCluster %q not serving: %v", recorderCluster, recorderOnce.err)
	}
}

// What reaches an upstream: the identity the gateway decided, the gateway's
// request ID as Audit-ID, the client's real address as the only
// X-Forwarded-For entry, and none of the client's forwarding headers or
// Frontdoor's internal ones (kube-apiserver's proxy subresources would copy
// those to workloads).
func TestUpstreamSeesOnlyGatewayHeaders(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	ensureRecorderCluster(t, ctx)
	alice := newUser("alice-edge", "edge-group")
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			client := httpClient(t, recorderCluster+"."+sandbox.TestDomain, alice.certPEM, alice.keyPEM)
			if proto == "HTTP/1.1" {
				tr := client.Transport.(*http.Transport)
				tr.ForceAttemptHTTP2 = false
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			marker := strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			code, respHeaders, body := do(t, ctx, client, http.MethodGet, sb.GatewayURL+"/api/v1/namespaces/default/configmaps?m="+marker, http.Header{
				"X-Forwarded-For":  {"203.0.113.7"},
				"X-Real-Ip":        {"203.0.113.8"},
				"Forwarded":        {"for=203.0.113.9"},
				"Audit-Id":         {"client-chosen-" + marker},
				"X-Frontdoor-Rule": {"spoofed"},
			}, nil)
			if code != http.StatusOK {
				t.Fatalf("GET through the recorder cluster: %d %s", code, body)
			}
			got, ok := theRecorder.headers(marker)
			if !ok {
				t.Fatal("the request never reached the recorder")
			}
			if u := got.Get("Impersonate-User"); u != alice.name {
				t.Errorf("Impersonate-User = %q, want %q (headers: %v)", u, alice.name, got)
			}
			for _, name := range []string{"X-Frontdoor-Rule", "X-Frontdoor-User", "X-Real-Ip", "Forwarded"} {
				if v, ok := got[name]; ok {
					t.Errorf("upstream got %s: %q", name, v)
				}
			}
			if xff := got.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
				t.Errorf("upstream X-Forwarded-For = %q, want exactly the client address [127.0.0.1]", xff)
			}
			reqID := respHeaders.Get("X-Request-Id")
			if reqID == "" {
				t.Fatalf("no x-request-id in the response (headers %v)", respHeaders)
			}
			if a := got.Values("Audit-Id"); len(a) != 1 || a[0] != reqID {
				t.Errorf("upstream Audit-Id = %q, want the gateway request ID %q", a, reqID)
			}
		})
	}
}

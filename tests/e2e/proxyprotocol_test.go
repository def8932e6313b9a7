package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// PROXY protocol (issue 17, item 5): behind an L4 load balancer, the
// gateway sees the balancer's address; a balancer that speaks the PROXY
// protocol tells it the client's. The sandbox listener serves a second
// port that expects the header (--extra-listen-ports,
// --proxy-protocol-ports); these tests put a PROXY-speaking balancer in
// front of it and check that the client's own address is what the access
// log and every replica's audit log (sourceIPs, from X-Forwarded-For) show.

// lbClientAddress is the loopback address the test's clients connect to the
// balancer from (Linux routes all of 127/8 to lo): distinct from the
// balancer's own 127.0.0.1, so the test can tell them apart.
const lbClientAddress = "127.0.0.77"

func TestProxyProtocolCarriesClientAddress(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			lb := startProxyProtocolLB(t, sb.ProxyProtocolAddress, version)
			client := fromAddress(t, httpClient(t, "", sb.AdminCertPEM, sb.AdminKeyPEM), lbClientAddress)
			defer client.CloseIdleConnections()
			marker := "pp-v" + fmt.Sprint(version) + "-" + uniq()
			// Enough requests that every replica serves some (the balancing
			// is per request): each replica's audit log is checked.
			const requests = 12
			for range requests {
				code, _, body := do(t, ctx, client, http.MethodGet, "https://"+lb+"/api/v1/namespaces/default/configmaps?limit=1&m="+marker, nil, nil)
				if code != http.StatusOK {
					t.Fatalf("through the balancer: %d %s", code, body)
				}
			}
			events := waitAuditEvents(t, marker, requests)
			replicas := map[int]bool{}
			for _, e := range events {
				replicas[e.Replica] = true
				if len(e.SourceIPs) == 0 || e.SourceIPs[0] != lbClientAddress {
					t.Errorf("replica %d audit sourceIPs %v, want the client's %s first (not the balancer's 127.0.0.1)", e.Replica, e.SourceIPs, lbClientAddress)
				}
			}
			if len(replicas) != len(sb.ReplicaURLs) {
				t.Errorf("audit events on replicas %v, want every one of %d", replicas, len(sb.ReplicaURLs))
			}
			if got := accessLogClient(t, ctx, marker); !strings.HasPrefix(got, lbClientAddress+":") {
				t.Errorf("access log client %q, want %s:<port>", got, lbClientAddress)
			}
		})
	}
}

// The PROXY protocol port takes nothing else: a client that connects to it
// directly (no header) gets no TLS session. And the main port never reads
// a header: a client that sends one there to claim another address gets
// no session either.
func TestProxyProtocolOnlyWhereConfigured(t *testing.T) {
	setup(t, time.Minute)
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1", RootCAs: pool}
	d := &net.Dialer{Timeout: 5 * time.Second}

	conn, err := tls.DialWithDialer(d, "tcp", sb.ProxyProtocolAddress, cfg)
	if err == nil {
		conn.Close()
		t.Error("a TLS session without a PROXY header on the PROXY protocol port")
	}

	main := strings.TrimPrefix(sb.GatewayURL, "https://")
	raw, err := d.Dial("tcp", main)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(proxyHeader(1, netip.MustParseAddrPort(spoofedIP+":4000"), netip.MustParseAddrPort(main))); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, cfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Error("the main port took a PROXY header and then a TLS session: a client could claim any address")
	}
}

// startProxyProtocolLB is an L4 balancer on 127.0.0.1 that sends target a
// PROXY protocol header (version 1 or 2) naming each client's address, then
// copies bytes both ways. It stops with the test.
func startProxyProtocolLB(t *testing.T, target string, version int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { proxyOne(t, c, target, version) })
		}
	})
	return l.Addr().String()
}

func proxyOne(t *testing.T, c net.Conn, target string, version int) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		t.Errorf("balancer: %v", err)
		return
	}
	defer up.Close()
	src := netip.MustParseAddrPort(c.RemoteAddr().String())
	dst := netip.MustParseAddrPort(c.LocalAddr().String())
	if _, err := up.Write(proxyHeader(version, src, dst)); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// proxyHeader is a PROXY protocol header for a TCP over IPv4 connection
// from src to dst (haproxy's proxy-protocol.txt, sections 2.1 and 2.2).
func proxyHeader(version int, src, dst netip.AddrPort) []byte {
	if version == 1 {
		return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", src.Addr(), dst.Addr(), src.Port(), dst.Port())
	}
	var b bytes.Buffer
	b.WriteString("\r\n\r\n\x00\r\nQUIT\n")
	b.WriteByte(0x21) // version 2, command PROXY
	b.WriteByte(0x11) // AF_INET, STREAM
	_ = binary.Write(&b, binary.BigEndian, uint16(12))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b.Write(s4[:])
	b.Write(d4[:])
	_ = binary.Write(&b, binary.BigEndian, src.Port())
	_ = binary.Write(&b, binary.BigEndian, dst.Port())
	return b.Bytes()
}

// accessLogClient is the client field of the access-log line of marker.
func accessLogClient(t *testing.T, ctx context.Context, marker string) string {
	t.Helper()
	waitAccessLogged(t, ctx, []string{marker})
	f, err := os.Open(sb.AccessLogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte(marker)) {
			continue
		}
		var line struct {
			Client string `json:"client"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("access log line %s: %v", sc.Bytes(), err)
		}
		return line.Client
	}
	t.Fatalf("no access log line for %s", marker)
	return ""
}

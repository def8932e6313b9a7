package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Upgraded requests (exec, port-forward) of a dispatch policy are governed
// by it like any other: rejected by a rejecting policy, limited by its
// token bucket, and sent only to its upstreamSubset. Each upgrade is a real
// SPDY/3.1 upgrade through the gov cluster to the fake kubelet (via the
// apiserver's proxy), answered 101 when it went through.

// govUpgrade sends one upgrade request for target (SPDY/3.1, with
// protocol as X-Stream-Protocol-Version) over HTTP/1.1 to the gov cluster
// as u and returns the status of the answer; the connection is closed at
// once (a 101 ends the session right away).
func govUpgrade(t *testing.T, ctx context.Context, u user, target, protocol string) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	pair, err := tls.X509KeyPair(u.certPEM, u.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: govSNI, NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(sb.GatewayURL, "https://"))
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	defer conn.Close()
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\nContent-Length: 0\r\n\r\n",
		target, govSNI, protocol)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("writing: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitAccessLogged waits (up to 10 s) until Envoy's access log, which the
// sandbox's Envoys flush every 200 ms, names every marker: the streaming tests
// count exec lines in it, and late ones of this test would land in theirs.
func waitAccessLogged(t *testing.T, ctx context.Context, markers []string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := poll(wctx, 200*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(sb.AccessLogPath)
		if err != nil {
			return false, err
		}
		for _, m := range markers {
			if !bytes.Contains(b, []byte(m)) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the access log does not name all of this test's %d requests: %v", len(markers), err)
	}
}

// execTarget is an exec of "echo marker" in the streaming pod.
func execTarget(marker string) string {
	return fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/exec?container=%s&command=echo&command=%s&stdout=true", streamNamespace, streamPod, streamContainer, marker)
}

// govAuditEvents waits (up to 10 s) for the audit events of the request
// marked marker; an upgraded request's ResponseComplete comes when its
// session ends.
func govAuditEvents(t *testing.T, marker string) []auditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if events := auditEvents(t, marker); len(events) > 0 || time.Now().After(deadline) {
			return events
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestDispatchPolicyGovernsUpgrades(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	streamingPod(t, ctx)
	ensureGovCluster(t, ctx)
	const execProtocol = "v4.channel.k8s.io"
	var (
		mu      sync.Mutex
		markers []string
	)
	mark := func() string {
		m := "gup" + uniq()
		mu.Lock()
		defer mu.Unlock()
		markers = append(markers, m)
		return m
	}
	defer func() { waitAccessLogged(t, ctx, markers) }()

	t.Run("reject", func(t *testing.T) {
		u := newUser("gov-no-exec", "system:masters")
		for _, tc := range []struct{ sub, protocol string }{{"exec", execProtocol}, {"portforward", "portforward.k8s.io"}} {
			marker := mark()
			target := execTarget(marker)
			if tc.sub == "portforward" {
				target = fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward?ports=80&m=%s", streamNamespace, streamPod, marker)
			}
			if code := govUpgrade(t, ctx, u, target, tc.protocol); code != http.StatusTooManyRequests {
				t.Errorf("%s by a rejected user: %d, want the policy's 429", tc.sub, code)
			}
			time.Sleep(500 * time.Millisecond)
			if events := auditEvents(t, marker); len(events) != 0 {
				t.Errorf("%s by a rejected user reached replica %d", tc.sub, events[0].Replica)
			}
		}
	})

	t.Run("tokenBucket", func(t *testing.T) {
		// qps 1, burst 3: of 6 execs sent at once, 3 pass (4 if the bucket
		// refills meanwhile) and the rest are throttled.
		u := newUser("gov-exec-limited", "system:masters")
		const n = 6
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { codes[i] = govUpgrade(t, ctx, u, execTarget(mark()), execProtocol) })
		}
		wg.Wait()
		var ok, throttled int
		for _, c := range codes {
			switch c {
			case http.StatusSwitchingProtocols:
				ok++
			case http.StatusTooManyRequests:
				throttled++
			default:
				t.Errorf("exec answered %d, want 101 or 429", c)
			}
		}
		t.Logf("execs: %v", codes)
		if ok < 3 || ok > 4 || throttled != n-ok {
			t.Errorf("%d execs upgraded and %d throttled, want 3 (or 4) upgraded and the rest throttled by the policy's bucket of 3", ok, throttled)
		}
	})

	t.Run("upstreamSubset", func(t *testing.T) {
		// The pinned policy's subset is replica 2 only.
		u := newUser("gov-pinned", "system:masters")
		for range 4 {
			marker := mark()
			if code := govUpgrade(t, ctx, u, execTarget(marker), execProtocol); code != http.StatusSwitchingProtocols {
				t.Errorf("exec by the pinned user: %d, want 101", code)
				continue
			}
			events := govAuditEvents(t, marker)
			if len(events) == 0 {
				t.Errorf("exec %s: no audit event on any replica", marker)
			}
			for _, e := range events {
				if e.Replica != 2 {
					t.Errorf("exec %s of the pinned user was served by replica %d, want only its subset, replica 2", marker, e.Replica)
				}
			}
		}
	})
}

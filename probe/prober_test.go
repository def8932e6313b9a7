package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// apiserver is a TLS server that wants a client certificate from ca and
// answers the health path with a status the test sets (0: hang).
type apiserver struct {
	*httptest.Server
	status   atomic.Int32
	lastHost atomic.Value
	lastPath atomic.Value
	lastUA   atomic.Value
}

func newAPIServer(t *testing.T, ca *testpki.CA, ips []net.IP) *apiserver {
	t.Helper()
	s := &apiserver{}
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.lastHost.Store(r.Host)
		s.lastPath.Store(r.URL.RequestURI())
		s.lastUA.Store(r.UserAgent())
		code := int(s.status.Load())
		if code == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
	}))
	certPEM, keyPEM, err := ca.ServingCert("apiserver", nil, ips)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func newTarget(t *testing.T, ca *testpki.CA, s *apiserver, sans ...translator.SANIR) translator.ProbeTarget {
	t.Helper()
	certPEM, keyPEM, err := ca.ClientCert("frontdoor-gateway")
	if err != nil {
		t.Fatal(err)
	}
	if sans == nil {
		sans = []translator.SANIR{{Name: "127.0.0.1", IsIP: true}}
	}
	return translator.ProbeTarget{
		Cluster: "a", Address: strings.TrimPrefix(s.URL, "https://"), Host: "a.example.com",
		Path: "/readyz?probe=a", Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond,
		UnhealthyThreshold: 2, HealthyThreshold: 2,
		ClientCertPEM: certPEM, ClientKeyPEM: keyPEM, CAPEM: ca.CertPEM, SANs: sans,
	}
}

func newCA(t *testing.T) *testpki.CA {
	t.Helper()
	ca, err := testpki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// waitVerdict waits until the target's verdict is want (known).
func waitVerdict(t *testing.T, p *Prober, tg translator.ProbeTarget, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := p.Verdicts()[tg.Cluster][tg.Address]; ok && v == want {
			return
		}
		select {
		case <-p.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("verdict on %s: %v, want healthy=%v", tg.Address, p.Verdicts(), want)
}

// The prober follows a real TLS server through every transition: healthy
// at its first pass, out at once on a 503, back after healthyThreshold
// passes, out after unhealthyThreshold timeouts (hung) and connection
// refusals (stopped). It sends the target's path and Host with the
// gateway's client certificate, and counts probes by result.
func TestProberFollowsServer(t *testing.T) {
	ca := newCA(t)
	s := newAPIServer(t, ca, []net.IP{net.ParseIP("127.0.0.1")})
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := New(ctx, reg, nil)
	tg := newTarget(t, ca, s)

	first := p.SetTargets([]translator.ProbeTarget{tg})
	if first == nil {
		t.Fatal("SetTargets with a new target returned no first-verdict channel")
	}
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("no first verdict")
	}
	if v, ok := p.Verdicts()["a"][tg.Address]; !ok || !v {
		t.Fatalf("after the first pass: %v, want healthy", p.Verdicts())
	}
	if got := s.lastPath.Load(); got != "/readyz?probe=a" {
		t.Errorf("path %v, want /readyz?probe=a", got)
	}
	if got := s.lastHost.Load(); got != "a.example.com" {
		t.Errorf("Host %v, want a.example.com", got)
	}
	if got := s.lastUA.Load(); got != userAgent {
		t.Errorf("User-Agent %v, want %s", got, userAgent)
	}
	if p.SetTargets([]translator.ProbeTarget{tg}) != nil {
		t.Error("SetTargets with the same targets reported new ones")
	}

	s.status.Store(http.StatusServiceUnavailable)
	waitVerdict(t, p, tg, false)
	s.status.Store(http.StatusOK)
	waitVerdict(t, p, tg, true)
	s.status.Store(0) // hung
	waitVerdict(t, p, tg, false)
	s.status.Store(http.StatusOK)
	waitVerdict(t, p, tg, true)
	s.CloseClientConnections()
	s.Listener.Close() // stopped: connections refused
	waitVerdict(t, p, tg, false)

	for _, r := range []string{"success", "refused", "unreachable"} {
		if n := testutil.ToFloat64(p.probes.WithLabelValues("a", tg.Address, r)); n == 0 {
			t.Errorf("frontdoor_upstream_health_probes_total{result=%q} = 0", r)
		}
	}
	if v := testutil.ToFloat64(p.verdict.WithLabelValues("a", tg.Address)); v != 0 {
		t.Errorf("frontdoor_upstream_health_verdict = %v, want 0", v)
	}
}

// A server whose certificate does not chain to the cluster's CA, or names
// none of its servers, is never healthy: the probe verifies it as Envoy
// would before sending the gateway's credentials' request.
func TestProberVerifiesServer(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, tc := range map[string]struct {
		serverCA *testpki.CA
		sans     []translator.SANIR
	}{
		"another CA":           {other, nil},
		"SAN names no server":  {ca, []translator.SANIR{{Name: "10.0.0.1", IsIP: true}}},
		"DNS SAN not the IP's": {ca, []translator.SANIR{{Name: "apiserver.example.com"}}},
	} {
		t.Run(name, func(t *testing.T) {
			s := newAPIServer(t, tc.serverCA, []net.IP{net.ParseIP("127.0.0.1")})
			p := New(ctx, nil, nil)
			tg := newTarget(t, ca, s, tc.sans...)
			<-p.SetTargets([]translator.ProbeTarget{tg})
			if v, ok := p.Verdicts()["a"][tg.Address]; !ok || v {
				t.Errorf("verdict %v (known %v), want unhealthy", v, ok)
			}
			if s.lastPath.Load() != nil {
				t.Error("the request reached a server that failed verification")
			}
		})
	}
}

// Removing a target drops its verdict and its metric series; changing one
// keeps its verdict while it restarts with the new settings.
func TestSetTargetsRemovesAndKeeps(t *testing.T) {
	ca := newCA(t)
	s := newAPIServer(t, ca, []net.IP{net.ParseIP("127.0.0.1")})
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := New(ctx, reg, nil)
	tg := newTarget(t, ca, s)
	<-p.SetTargets([]translator.ProbeTarget{tg})

	changed := tg
	changed.Path = "/readyz?probe=b"
	if p.SetTargets([]translator.ProbeTarget{changed}) != nil {
		t.Error("a changed target was treated as new (its verdict must be kept)")
	}
	if v, ok := p.Verdicts()["a"][tg.Address]; !ok || !v {
		t.Errorf("verdict after a change: %v, want kept healthy", p.Verdicts())
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.lastPath.Load() != "/readyz?probe=b" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.lastPath.Load(); got != "/readyz?probe=b" {
		t.Errorf("path after the change: %v", got)
	}

	p.SetTargets(nil)
	if len(p.Verdicts()) != 0 {
		t.Errorf("verdicts after removing every target: %v", p.Verdicts())
	}
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Errorf("%d series left after removing every target", n)
	}
}

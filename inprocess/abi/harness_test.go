package abi

// Test harness: the real bin/envoy, the test module built as a c-shared
// library, Go upstreams that echo what they receive, and test PKI. Every
// process started here runs in its own process group, dies with the test
// binary (Pdeathsig) and is stopped by PID/process group in cleanups.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// repoRoot is the repository root (internal/testenv).
func repoRoot() (string, error) { return testenv.RepoRoot() }

// envoyBinary is bin/envoy; its absence fails the test (the ABI cannot be
// verified without it).
func envoyBinary(t testing.TB) string {
	t.Helper()
	p, err := testenv.Binary("envoy")
	if err != nil {
		t.Fatalf("%v: the dynamic-module ABI binding can only be verified against the real Envoy %s", err, EnvoyVersion)
	}
	return p
}

// scratchDir holds what outlives one test: the built module and the shared
// Envoy's files. Created and removed by TestMain.
var scratchDir string

var (
	moduleOnce sync.Once
	modulePath string
	moduleErr  error
)

// testModule builds internal/testmodule with -buildmode=c-shared, once per
// test binary.
func testModule(t testing.TB) string {
	t.Helper()
	moduleOnce.Do(func() {
		out := filepath.Join(scratchDir, "libfrontdoortest.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./internal/testmodule")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			moduleErr = fmt.Errorf("building the test module: %w\n%s", err, b)
			return
		}
		modulePath = out
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return modulePath
}

// ---- upstreams ---------------------------------------------------------

// echoReply is what an upstream answers: what it received.
type echoReply struct {
	Upstream string              `json:"upstream"`
	Path     string              `json:"path"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
}

// upstream is an HTTP/1.1 server recording every path it served.
type upstream struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int
}

func newUpstream(name string) *upstream {
	u := &upstream{name: name, seen: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen[r.URL.Path]++
		u.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(echoReply{Upstream: name, Path: r.URL.Path, Headers: r.Header, Body: string(body)})
	}))
	return u
}

func (u *upstream) port() int { return u.srv.Listener.Addr().(*net.TCPAddr).Port }

func (u *upstream) saw(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[path]
}

// ---- PKI ------------------------------------------------------------------

type pki struct {
	dir                        string
	caPool                     *x509.CertPool
	caFile, certFile, keyFile  string
	client                     tls.Certificate
	clientDER                  []byte
	clientDNSSAN, clientURISAN string
}

func newPKI(dir string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "frontdoor-abi-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return der, key, err
	}
	serverDER, serverKey, err := issue(2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, clientDNSSAN: "client.frontdoor.test", clientURISAN: "spiffe://frontdoor.test/client"}
	uri, _ := url.Parse(p.clientURISAN)
	clientDER, clientKey, err := issue(3, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "frontdoor-test-client", Organization: []string{"frontdoor-testers"}},
		DNSNames: []string{p.clientDNSSAN}, URIs: []*url.URL{uri},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	p.caFile, p.certFile, p.keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	serverKeyDER, _ := x509.MarshalECPrivateKey(serverKey)
	for path, block := range map[string]*pem.Block{
		p.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		p.certFile: {Type: "CERTIFICATE", Bytes: serverDER},
		p.keyFile:  {Type: "EC PRIVATE KEY", Bytes: serverKeyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	p.clientDER = clientDER
	p.client = tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}
	return p, nil
}

// httpClient talks TLS to Envoy; withCert presents the client certificate,
// h2 negotiates HTTP/2 through ALPN (HTTP/1.1 otherwise).
func (p *pki) httpClient(withCert, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: p.caPool, ServerName: "localhost"}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2, MaxIdleConnsPerHost: 256}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// ---- Envoy configuration -------------------------------------------------

type m = map[string]any

// bootOpts describes one Envoy: which module and filter config the
// "filtered" listener loads, the PKI, and the upstreams.
type bootOpts struct {
	module       string // module.local.filename
	filterName   string
	filterConfig string // passed as google.protobuf.StringValue
	pki          *pki
	first        *upstream
	second       *upstream
	accessLog    string
	port         int  // the filtered listener's port; 0 lets Envoy pick
	plain        bool // add listeners "plain" (same routes, no module), "minimal" (a filter without Go state) and "nilfilter" (NewFilter returns nil)
	// Extra parts of the filtered listener: access logs (in place of the
	// text log at accessLog), HTTP filters after the module, routes before
	// the catch-alls.
	accessLogs   []any
	extraFilters []any
	extraRoutes  []any
}

func sockaddr(port int) m {
	return m{"socket_address": m{"address": "127.0.0.1", "port_value": port}}
}

func (o bootOpts) listener(name string, port int, withModule bool) m {
	var filters []any
	if withModule {
		filters = append(filters, m{"name": "frontdoor-test", "typed_config": m{
			"@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
			"dynamic_module_config": m{
				"module":       m{"local": m{"filename": o.module}},
				"do_not_close": true,
			},
			"filter_name":   o.filterName,
			"filter_config": m{"@type": "type.googleapis.com/google.protobuf.StringValue", "value": o.filterConfig},
		}})
	}
	filters = append(filters, o.extraFilters...)
	filters = append(filters, m{"name": "envoy.filters.http.router",
		"typed_config": m{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
	hcm := m{
		"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix": name,
		"codec_type":  "AUTO",
		"route_config": m{"name": "routes", "virtual_hosts": []any{m{
			"name": "all", "domains": []any{"*"},
			// Read back what the module put in dynamic metadata and filter
			// state, with Envoy's own formatter.
			"request_headers_to_add": []any{
				m{"header": m{"key": "x-test-tag", "value": "%FILTER_STATE(frontdoor.test.tag:PLAIN)%"}},
				m{"header": m{"key": "x-test-md-num", "value": "%DYNAMIC_METADATA(frontdoor.test:n)%"}},
				m{"header": m{"key": "x-test-fs-elapsed", "value": "%FILTER_STATE(frontdoor.test.elapsed:PLAIN)%"}},
				m{"header": m{"key": "x-test-fs", "value": "%FILTER_STATE(frontdoor.test.fs-a:PLAIN)%,%FILTER_STATE(frontdoor.test.fs-empty:PLAIN)%,%FILTER_STATE(frontdoor.test.fs-none:PLAIN)%"}},
			},
			"routes": append(append([]any{}, o.extraRoutes...),
				m{"match": m{"prefix": "/", "headers": []any{m{"name": "x-test-rule", "string_match": m{"exact": "second"}}}},
					"route": m{"cluster": "second"}},
				m{"match": m{"prefix": "/"}, "route": m{"cluster": "first"}},
			),
		}}},
		"http_filters": filters,
	}
	if o.accessLogs != nil {
		hcm["access_log"] = o.accessLogs
	} else if o.accessLog != "" {
		hcm["access_log"] = []any{m{"name": "envoy.access_loggers.file", "typed_config": m{
			"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
			"path":  o.accessLog,
			"log_format": m{"text_format_source": m{
				"inline_string": "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n"}},
		}}}
	}
	return m{
		"name":    name,
		"address": sockaddr(port),
		"filter_chains": []any{m{
			"filters": []any{m{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}},
			"transport_socket": m{"name": "envoy.transport_sockets.tls", "typed_config": m{
				"@type":                      "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
				"require_client_certificate": false,
				"common_tls_context": m{
					"alpn_protocols": []any{"h2", "http/1.1"},
					"tls_certificates": []any{m{
						"certificate_chain": m{"filename": o.pki.certFile},
						"private_key":       m{"filename": o.pki.keyFile},
					}},
					"validation_context": m{"trusted_ca": m{"filename": o.pki.caFile}},
				},
			}},
		}},
	}
}

func cluster(name string, port int) m {
	return m{"name": name, "type": "STATIC", "connect_timeout": "2s",
		"load_assignment": m{"cluster_name": name, "endpoints": []any{m{"lb_endpoints": []any{
			m{"endpoint": m{"address": sockaddr(port)}}}}}}}
}

// bootstrap renders a static bootstrap (JSON, which Envoy reads as YAML).
// With lds set, listeners come from that file instead (watched for updates).
func (o bootOpts) bootstrap(lds string) []byte {
	b := m{
		"node":  m{"id": "frontdoor-abi-test", "cluster": "frontdoor-abi-test"},
		"admin": m{"address": sockaddr(0)},
	}
	static := m{"clusters": []any{cluster("first", o.first.port()), cluster("second", o.second.port())}}
	if lds == "" {
		listeners := []any{o.listener("filtered", o.port, true)}
		if o.plain {
			minimal, nilFilter := o, o
			minimal.filterConfig = `{"tag":"minimal","minimal":true}`
			nilFilter.filterConfig = `{"tag":"nil","nilFilter":true}`
			listeners = append(listeners, o.listener("plain", 0, false), minimal.listener("minimal", 0, true),
				nilFilter.listener("nilfilter", 0, true))
		}
		static["listeners"] = listeners
	} else {
		b["dynamic_resources"] = m{"lds_config": m{
			"resource_api_version": "V3",
			"path_config_source": m{
				"path":              lds,
				"watched_directory": m{"path": filepath.Dir(lds)},
			},
		}}
	}
	b["static_resources"] = static
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		panic(err)
	}
	return out
}

// ldsFile renders a LDS discovery response holding the filtered listener.
func (o bootOpts) ldsFile(version string) []byte {
	l := o.listener("filtered", o.port, true)
	l["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
	out, err := json.MarshalIndent(m{"version_info": version, "resources": []any{l}}, "", "  ")
	if err != nil {
		panic(err)
	}
	return out
}

// ---- Envoy process -------------------------------------------------------

type envoyProc struct {
	dir, logPath, adminPath string
	cmd                     *exec.Cmd
	done                    chan struct{}
	waitErr                 error
	admin                   string // host:port, once ready
}

// startEnvoy runs bin/envoy on the bootstrap in dir (2 workers, like the
// machine's cores). The caller stops it with stop.
func startEnvoy(envoyBin, dir string, bootstrap []byte) (*envoyProc, error) {
	e := &envoyProc{dir: dir, logPath: filepath.Join(dir, "envoy.log"), adminPath: filepath.Join(dir, "admin-address")}
	cfg := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(cfg, bootstrap, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(e.logPath)
	if err != nil {
		return nil, err
	}
	e.cmd = exec.Command(envoyBin, "-c", cfg, "--use-dynamic-base-id", "--concurrency", "2",
		"--log-level", "info", "--admin-address-path", e.adminPath, "--drain-time-s", "1",
		"--file-flush-interval-msec", "100")
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	e.cmd.Dir = dir // a crash's core file, if any, stays in the temp dir
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	e.done = make(chan struct{})
	go func() {
		e.waitErr = e.cmd.Wait()
		logFile.Close()
		close(e.done)
	}()
	return e, nil
}

// newEnvoy starts an Envoy that the test's cleanup stops.
func newEnvoy(t *testing.T, o bootOpts, lds string) *envoyProc {
	t.Helper()
	dir := t.TempDir()
	e, err := startEnvoy(envoyBinary(t), dir, o.bootstrap(lds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stop(syscall.SIGTERM, 5*time.Second)
		if t.Failed() {
			t.Logf("envoy log tail (%s):\n%s", e.logPath, e.logTail(40))
		}
	})
	return e
}

func (e *envoyProc) exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// stop signals the process group, then SIGKILLs it after grace.
func (e *envoyProc) stop(sig syscall.Signal, grace time.Duration) {
	if e.exited() {
		return
	}
	pgid := e.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-e.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-e.done
}

// waitExit waits for the process to exit by itself.
func (e *envoyProc) waitExit(timeout time.Duration) (error, bool) {
	select {
	case <-e.done:
		return e.waitErr, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (e *envoyProc) logText() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

func (e *envoyProc) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(e.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for the admin /ready endpoint to say LIVE.
func (e *envoyProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if e.exited() {
			return fmt.Errorf("envoy exited (%w) before it was ready:\n%s", e.waitErr, e.logTail(30))
		}
		if b, err := os.ReadFile(e.adminPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
			e.admin = string(bytes.TrimSpace(b))
			if body, code, err := e.adminGet("/ready"); err == nil && code == 200 && strings.Contains(body, "LIVE") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("envoy not ready after %v:\n%s", timeout, e.logTail(30))
}

func (e *envoyProc) adminGet(path string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.admin+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// listenerPort reads the port Envoy bound for a listener from /listeners.
func (e *envoyProc) listenerPort(name string) (int, error) {
	body, _, err := e.adminGet("/listeners?format=json")
	if err != nil {
		return 0, err
	}
	var ls struct {
		ListenerStatuses []struct {
			Name         string `json:"name"`
			LocalAddress struct {
				SocketAddress struct {
					PortValue int `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	if err := json.Unmarshal([]byte(body), &ls); err != nil {
		return 0, fmt.Errorf("%w: %s", err, body)
	}
	for _, l := range ls.ListenerStatuses {
		if l.Name == name {
			return l.LocalAddress.SocketAddress.PortValue, nil
		}
	}
	return 0, fmt.Errorf("no listener %q in %s", name, body)
}

// stat returns one stat's value from /stats?filter=.
func (e *envoyProc) stat(name string) (string, error) {
	body, _, err := e.adminGet("/stats?filter=^" + url.QueryEscape(name) + "$")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && k == name {
			return v, nil
		}
	}
	return "", fmt.Errorf("stat %s not found in %q", name, body)
}

// httpGet builds a GET with header pairs.
func httpGet(url string, kv ...string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	return req, nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

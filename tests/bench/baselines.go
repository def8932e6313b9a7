package bench

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

// child is a process the benchmark starts itself (static Envoys, HAProxy,
// variant gateways): its own process group, killed with us, log in the bench dir.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has been reaped
}

func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(c.done) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop signals the child's process group (only the group we started).
func (c *child) stop() {
	if c == nil {
		return
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.done
}

// waitTLS waits until addr completes a TLS handshake (the proxy listens and
// reaches something that speaks TLS).
func waitTLS(ctx context.Context, c *child, addr string) error {
	for {
		d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // readiness probe only
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited; see %s", c.name, c.log)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready on %s: %w; see %s", c.name, addr, err, c.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func hostPorts(urls []string) ([]string, error) {
	out := make([]string, len(urls))
	for i, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		out[i] = p.Host
	}
	return out, nil
}

// staticEnvoyConfig is the cost floor of an Envoy design: the same TLS
// termination (the gateway's serving cert), the same HTTP/2 upstream with the
// gateway's client certificate (by default), round robin over the same replicas and the
// same pool limits as Frontdoor's generated config, but no ext_authz, no
// identity filter and no control plane. Requests reach the apiservers as the
// gateway's own identity, as the client itself (envoy-as-client: the
// client's certificate presented upstream), or (envoy-impersonating)
// impersonate a fixed user with route request_headers_to_add.
//
// It has two listeners: the measured one writes no access log (the floor);
// the timed one writes the timing fields of Frontdoor's access log
// (durationUs, upstreamUs) for the where-the-time-goes table.
const staticEnvoyConfig = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
%[2]s  clusters:
  - name: apiservers
    type: STATIC
    connect_timeout: 5s
    lb_policy: ROUND_ROBIN
    circuit_breakers:
      thresholds: [{max_connections: 1048576, max_pending_requests: 1048576, max_requests: 1048576, max_retries: 1048576}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {max_concurrent_streams: 250}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: {filename: %[3]q}
            private_key: {filename: %[4]q}
          validation_context:
            trusted_ca: {filename: %[5]q}
    load_assignment:
      cluster_name: apiservers
      endpoints:
      - lb_endpoints:
%[6]s`

// staticListenerConfig is one listener of staticEnvoyConfig: name, port,
// serving cert and key, the route's extra lines, the HCM's extra lines.
const staticListenerConfig = `  - name: %[1]s
    address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: %[3]q}
              private_key: {filename: %[4]q}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %[1]s
          use_remote_address: true
          http2_protocol_options: {max_concurrent_streams: 1000}
%[6]s          route_config:
            virtual_hosts:
            - name: %[1]s
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: apiservers, timeout: 0s, idle_timeout: 0s}
%[5]s          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`

// timingAccessLog is the timed listener's access log: the timing fields of
// Frontdoor's own access log (translator/accesslog.go), same names.
const timingAccessLog = `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
              log_format:
                json_format:
                  time: "%%START_TIME%%"
                  code: "%%RESPONSE_CODE%%"
                  durationUs: "%%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%%"
                  upstreamUs: "%%COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)%%"
`

// staticEnvoy is a running static Envoy: its measured URL, and the URL and
// access log of its timed listener.
type staticEnvoy struct {
	*child
	url, timedURL, accessLog string
}

// upstreamCert is the client certificate and key files a static Envoy
// presents to the apiservers: the identity its requests run as.
type upstreamCert struct{ cert, key string }

// gatewayUpstream is the gateway's own client certificate (CN
// frontdoor-gateway), the one Frontdoor's Envoy presents.
func gatewayUpstream(sbDir string) upstreamCert {
	return upstreamCert{filepath.Join(sbDir, "pki", "gateway-client.crt"), filepath.Join(sbDir, "pki", "gateway-client.key")}
}

// clientUpstream writes the client's own certificate and key into outDir
// for the static Envoy name to present upstream (envoy-as-client): its
// requests then reach the apiservers as the client, authenticated by their
// x509 authenticator, as direct requests are.
func clientUpstream(outDir, name string, certPEM, keyPEM []byte) (upstreamCert, error) {
	u := upstreamCert{filepath.Join(outDir, name+"-upstream.crt"), filepath.Join(outDir, name+"-upstream.key")}
	if err := os.WriteFile(u.cert, certPEM, 0o600); err != nil {
		return u, err
	}
	return u, os.WriteFile(u.key, keyPEM, 0o600)
}

// renderStaticEnvoy renders staticEnvoyConfig for the sandbox in sbDir:
// admin, measured and timed listener ports, the replicas as endpoints,
// headers set on every request (request_headers_to_add, replacing what the
// client sent) and up as the upstream client certificate.
func renderStaticEnvoy(name, sbDir, outDir string, replicas []string, headers []header, up upstreamCert, ports [3]int) (string, error) {
	hps, err := hostPorts(replicas)
	if err != nil {
		return "", err
	}
	var eps strings.Builder
	for _, hp := range hps {
		host, port, _ := net.SplitHostPort(hp)
		fmt.Fprintf(&eps, "        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}\n", host, port)
	}
	var route strings.Builder
	if len(headers) > 0 {
		route.WriteString("                request_headers_to_add:\n")
		for _, h := range headers {
			fmt.Fprintf(&route, "                - header: {key: %q, value: %q}\n                  append_action: OVERWRITE_IF_EXISTS_OR_ADD\n",
				h.name, strings.ReplaceAll(h.value, "%", "%%"))
		}
	}
	pki := func(name string) string { return filepath.Join(sbDir, "pki", name) }
	logPath := filepath.Join(outDir, name+"-access.log")
	listeners := fmt.Sprintf(staticListenerConfig, "measured", ports[1], pki("gateway-serving.crt"), pki("gateway-serving.key"), route.String(), "") +
		fmt.Sprintf(staticListenerConfig, "timed", ports[2], pki("gateway-serving.crt"), pki("gateway-serving.key"), route.String(),
			fmt.Sprintf(timingAccessLog, logPath))
	return fmt.Sprintf(staticEnvoyConfig, ports[0], listeners, up.cert, up.key, filepath.Join(sbDir, "ca.crt"), eps.String()), nil
}

// startStaticEnvoy renders staticEnvoyConfig (renderStaticEnvoy) and starts
// bin/envoy with it as name.
func startStaticEnvoy(ctx context.Context, name, envoyBin, sbDir, outDir string, replicas []string, headers []header, up upstreamCert) (*staticEnvoy, error) {
	var ports [3]int // admin, measured, timed
	for i := range ports {
		var err error
		if ports[i], err = testenv.FreePort(); err != nil {
			return nil, err
		}
	}
	cfg, err := renderStaticEnvoy(name, sbDir, outDir, replicas, headers, up, ports)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(outDir, name+"-access.log")
	cfgPath := filepath.Join(outDir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	c, err := startChild(name, filepath.Join(outDir, name+".log"), nil, envoyBin,
		"-c", cfgPath, "--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "2",
		"--file-flush-interval-msec", "200")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range ports[1:] {
		if err := waitTLS(wctx, c, fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			c.stop()
			return nil, err
		}
	}
	return &staticEnvoy{child: c, accessLog: logPath,
		url: fmt.Sprintf("https://127.0.0.1:%d", ports[1]), timedURL: fmt.Sprintf("https://127.0.0.1:%d", ports[2])}, nil
}

// header is one request header field a static Envoy sets.
type header struct{ name, value string }

// impersonationHeaders are the header fields Frontdoor forwards for a client
// certificate: the user (CN), one Impersonate-Group per O, and the
// credential-id extra exactly as kube-apiserver's x509 authenticator derives
// it, so envoy-impersonating costs the apiservers what frontdoor-x509's
// requests cost them.
func impersonationHeaders(certPEM []byte) ([]header, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, fmt.Errorf("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	hs := []header{{"Impersonate-User", cert.Subject.CommonName}}
	for _, o := range cert.Subject.Organization {
		hs = append(hs, header{"Impersonate-Group", o})
	}
	fp := sha256.Sum256(cert.Raw)
	hs = append(hs, header{"Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", "X509SHA256=" + hex.EncodeToString(fp[:])})
	return hs, nil
}

// haproxyConfig is the traditional L4 setup: TCP passthrough, round robin
// per connection, clients' TLS (and certificates) end at the apiservers.
const haproxyConfig = `global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend apiservers
  bind 127.0.0.1:%d
  default_backend apiservers
backend apiservers
  balance roundrobin
%s`

// findHAProxy returns the haproxy binary (Debian installs it in /usr/sbin,
// which is not always on PATH), or "" if it is not installed.
func findHAProxy() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/haproxy"); err == nil && !st.IsDir() {
		return "/usr/sbin/haproxy"
	}
	return ""
}

func startHAProxy(ctx context.Context, bin, outDir string, replicas []string) (*child, string, error) {
	hps, err := hostPorts(replicas)
	if err != nil {
		return nil, "", err
	}
	var servers strings.Builder
	for i, hp := range hps {
		fmt.Fprintf(&servers, "  server apiserver-%d %s\n", i+1, hp)
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(outDir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(haproxyConfig, port, servers.String())), 0o644); err != nil {
		return nil, "", err
	}
	// -db: stay in the foreground, so the PID we hold is the worker's.
	c, err := startChild("haproxy", filepath.Join(outDir, "haproxy.log"), nil, bin, "-db", "-f", cfgPath)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitTLS(wctx, c, addr); err != nil {
		c.stop()
		return nil, "", err
	}
	return c, "https://" + addr, nil
}

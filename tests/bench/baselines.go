package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is a baseline proxy the benchmark starts itself (plain Envoy,
// HAProxy): its own process group, killed with us, log in the bench dir.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has been reaped
}

func startChild(name, logPath, bin string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
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
			return fmt.Errorf("%s not ready on %s: %v; see %s", c.name, addr, err, c.log)
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// plainEnvoyConfig is the cost floor of an Envoy design: the same TLS
// termination (the gateway's serving cert), the same HTTP/2 upstream with the
// gateway's client certificate, round robin over the same replicas and the
// same pool limits as Frontdoor's generated config, but no ext_authz, no
// identity filter and no control plane. Requests reach the apiservers as the
// gateway's own identity.
const plainEnvoyConfig = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
  - name: plain
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
          stat_prefix: plain
          use_remote_address: true
          http2_protocol_options: {max_concurrent_streams: 1000}
          route_config:
            virtual_hosts:
            - name: plain
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: apiservers, timeout: 0s, idle_timeout: 0s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
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
          - certificate_chain: {filename: %[5]q}
            private_key: {filename: %[6]q}
          validation_context:
            trusted_ca: {filename: %[7]q}
    load_assignment:
      cluster_name: apiservers
      endpoints:
      - lb_endpoints:
%[8]s`

// startPlainEnvoy renders plainEnvoyConfig for the sandbox in sbDir and
// starts bin/envoy with it. It returns the child and its client URL.
func startPlainEnvoy(ctx context.Context, envoyBin, sbDir, outDir string, replicas []string) (*child, string, error) {
	hps, err := hostPorts(replicas)
	if err != nil {
		return nil, "", err
	}
	var eps strings.Builder
	for _, hp := range hps {
		host, port, _ := net.SplitHostPort(hp)
		fmt.Fprintf(&eps, "        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}\n", host, port)
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	pki := func(name string) string { return filepath.Join(sbDir, "pki", name) }
	cfg := fmt.Sprintf(plainEnvoyConfig, adminPort, port,
		pki("gateway-serving.crt"), pki("gateway-serving.key"),
		pki("gateway-client.crt"), pki("gateway-client.key"), filepath.Join(sbDir, "ca.crt"), eps.String())
	cfgPath := filepath.Join(outDir, "envoy-plain.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, "", err
	}
	c, err := startChild("envoy-plain", filepath.Join(outDir, "envoy-plain.log"), envoyBin,
		"-c", cfgPath, "--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "2")
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
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(outDir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(haproxyConfig, port, servers.String())), 0o644); err != nil {
		return nil, "", err
	}
	// -db: stay in the foreground, so the PID we hold is the worker's.
	c, err := startChild("haproxy", filepath.Join(outDir, "haproxy.log"), bin, "-db", "-f", cfgPath)
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

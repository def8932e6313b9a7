package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// A fleet: Options.Gateways Envoys on the one frontdoor serve, as several
// Envoys beside one control plane on one host. Gateway 0 is the sandbox's
// original Envoy (serve's --listen-port, GatewayURL, EnvoyAdminURL,
// AccessLogPath, node sandbox-envoy), so every test written for one Envoy
// sees no difference. Every other gateway asks for its own listener port,
// PROXY protocol port and access log in its bootstrap (node metadata,
// which the control plane applies to that node alone) under its own node
// ID, and has its own admin port.

// Gateway is one Envoy of the sandbox.
type Gateway struct {
	// NodeID is the Envoy's xDS node ID (frontdoor bootstrap --node-id).
	NodeID string
	// URL is https://127.0.0.1:P, the Envoy's client listener.
	URL string
	// ProxyProtocolAddress is its listener port expecting a PROXY
	// protocol header.
	ProxyProtocolAddress string
	// AdminURL is http://127.0.0.1:P, the Envoy's admin interface.
	AdminURL string
	// AccessLogPath is the Envoy's JSON access log.
	AccessLogPath string
	// BootstrapPath is the bootstrap the Envoy was started with.
	BootstrapPath string

	envoy *process
}

// portsPerExtraGateway are listener, PROXY protocol and admin ports.
const portsPerExtraGateway = 3

// EnvoyArgs are the flags of every sandbox Envoy (and of the bench's
// variant gateways, measured like the sandbox's).
func EnvoyArgs(bootstrap string) []string {
	return []string{"-c", bootstrap, "--use-dynamic-base-id", "--log-level", "warn", "--drain-time-s", "1",
		// Flush the access log every 200ms (default 10s) so tests read it promptly.
		"--file-flush-interval-msec", "200"}
}

// addGateway renders the bootstrap of gateway i (listener, PROXY protocol
// and admin ports given; listenPort empty for gateway 0, which takes
// serve's) and returns it, not started.
func (s *Sandbox) addGateway(ctx context.Context, i int, listenPort, proxyPort, adminPort int) (*Gateway, error) {
	g := &Gateway{
		NodeID:               "sandbox-envoy",
		URL:                  "https://127.0.0.1:" + strconv.Itoa(listenPort),
		ProxyProtocolAddress: "127.0.0.1:" + strconv.Itoa(proxyPort),
		AdminURL:             "http://127.0.0.1:" + strconv.Itoa(adminPort),
		AccessLogPath:        s.logPath("access"),
		BootstrapPath:        s.path("envoy.yaml"),
	}
	name := "envoy"
	args := []string{"bootstrap", "--xds-address", s.GRPCAddress, "--admin-address", "127.0.0.1:" + strconv.Itoa(adminPort)}
	if i > 0 {
		n := strconv.Itoa(i + 1)
		name = "envoy-" + n
		g.NodeID = "sandbox-envoy-" + n
		g.AccessLogPath = s.logPath("access-" + n)
		g.BootstrapPath = s.path("envoy-" + n + ".yaml")
		args = append(args, "--listen-port", strconv.Itoa(listenPort),
			"--extra-listen-ports", strconv.Itoa(proxyPort), "--access-log", g.AccessLogPath)
	}
	args = append(args, "--node-id", g.NodeID)
	args = append(args, s.grpcTLSBootstrapArgs()...)
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(bctx, s.bin("frontdoor"), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("frontdoor bootstrap: %w: %s", err, stderr.String())
	}
	if err := os.WriteFile(g.BootstrapPath, stdout.Bytes(), 0o644); err != nil {
		return nil, err
	}
	g.envoy = newProcess(name, s.bin("envoy"), s.logPath(name), EnvoyArgs(g.BootstrapPath)...)
	return g, nil
}

// startGatewayEnvoy starts g's Envoy and waits until a request through it
// reaches an apiserver.
func (s *Sandbox) startGatewayEnvoy(ctx context.Context, g *Gateway) error {
	s.progress("%s: gateway %s (PROXY protocol on %s), admin %s (node %s, bootstrap: %s, log: %s, access log: %s)",
		g.envoy.name, g.URL, g.ProxyProtocolAddress, g.AdminURL, g.NodeID, g.BootstrapPath, g.envoy.logPath, g.AccessLogPath)
	if err := g.envoy.start(); err != nil {
		return err
	}
	gctx, cancel := waitCtx(ctx, gatewayTimeout)
	defer cancel()
	admin, err := s.HTTPClient(s.AdminCertPEM, s.AdminKeyPEM)
	if err != nil {
		return err
	}
	url := g.URL + "/readyz"
	err = g.envoy.waitFor(gctx, "to serve "+url+" with 200", 300*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, admin, url, http.StatusOK)
	})
	if err != nil {
		return fmt.Errorf("%w\nfrontdoor log (%s):\n%s", err, s.frontdoor.logPath, tail(s.frontdoor.logPath, 20))
	}
	return nil
}

// StopGateway stops gateway i's Envoy (by its PID's process group): sig
// first (SIGKILL for a crash), SIGKILL after stopGrace.
func (s *Sandbox) StopGateway(i int, sig syscall.Signal) error {
	if i < 0 || i >= len(s.Gateways) {
		return fmt.Errorf("no gateway %d (the sandbox has %d)", i, len(s.Gateways))
	}
	s.Gateways[i].envoy.stop(sig, stopGrace)
	return nil
}

// StartGateway starts gateway i's Envoy again with the same bootstrap and
// ports, and waits until it serves.
func (s *Sandbox) StartGateway(ctx context.Context, i int) error {
	if i < 0 || i >= len(s.Gateways) {
		return fmt.Errorf("no gateway %d (the sandbox has %d)", i, len(s.Gateways))
	}
	return s.startGatewayEnvoy(ctx, s.Gateways[i])
}

// RestartFrontdoor stops frontdoor serve (by its PID's process group) with
// sig, SIGKILL after grace, and starts it again with the same arguments
// (ports, config), waiting until it is healthy. The Envoys stay up and
// reconnect on their own.
func (s *Sandbox) RestartFrontdoor(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	s.progress("frontdoor: stopping with %v", sig)
	s.frontdoor.stop(sig, grace)
	return s.StartFrontdoor(ctx)
}

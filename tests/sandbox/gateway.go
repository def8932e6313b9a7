package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// SecretNamespace is where the sandbox's referenced Secrets live.
const SecretNamespace = "frontdoor-system"

const (
	frontdoorTimeout = 60 * time.Second
	gatewayTimeout   = 60 * time.Second
)

// upstreamClusterTemplate is an UpstreamCluster on the sandbox's Secrets
// (UpstreamClusterYAML fills it in).
const upstreamClusterTemplate = `apiVersion: frontdoor.dev/v1alpha1
kind: UpstreamCluster
metadata:
  name: %[1]s
spec:
  servers:
%[2]s  clientConfig:
    secretRef: {namespace: %[3]s, name: upstream}
%[7]s  secureServing:
    secretRef: {namespace: %[3]s, name: serving}
    clientCASecretRef: {namespace: %[3]s, name: client-ca}
%[4]s%[5]s%[6]s`

// sandboxClusterSpec is the rest of the sandbox's own UpstreamCluster's
// spec: a 1s health check lets tests see a killed replica leave the
// rotation quickly.
const sandboxClusterSpec = "  healthCheck: {interval: 1s, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1}\n"

// UpstreamClusterYAML is an UpstreamCluster named name on the sandbox's
// Secrets (upstream, serving, client-ca) and the given servers
// (ServersYAML), in the mode under test (RequestServiceField): the
// sandbox's own, and the ones tests add beside it. serverNames (none: the
// default filter chain) are its secureServing.serverNames; spec holds more
// spec fields, two-space indented lines with their newlines.
func (s *Sandbox) UpstreamClusterYAML(name, servers string, serverNames []string, spec string) string {
	names := ""
	if len(serverNames) > 0 {
		names = "    serverNames: [" + strings.Join(serverNames, ", ") + "]\n"
	}
	return fmt.Sprintf(upstreamClusterTemplate, name, servers, SecretNamespace, names, spec, s.RequestServiceField(), s.identityForwardingField())
}

// identityForwardingField is the spec.clientConfig.identityForwarding line
// (four-space indented, with its newline); empty for the default.
func (s *Sandbox) identityForwardingField() string {
	if s.opts.IdentityForwarding == "" {
		return ""
	}
	return "    identityForwarding: " + s.opts.IdentityForwarding + "\n"
}

// writeConfigDir writes what `frontdoor serve --config-dir` reads: the
// Secrets (plain v1 manifests, as they would be in a cluster) and the
// UpstreamCluster that references them.
func (s *Sandbox) writeConfigDir() error {
	read := func(name string) string {
		data, err := os.ReadFile(s.path(name))
		if err != nil {
			panic(err) // written by writePKI moments ago
		}
		return string(data)
	}
	secrets := map[string]map[string]string{
		// The gateway's identity towards the apiservers, and the CA of
		// their serving certs.
		"upstream": {"tls.crt": read("pki/gateway-client.crt"), "tls.key": read("pki/gateway-client.key"), "ca.crt": read("ca.crt")},
		// What clients see when they connect to the gateway.
		"serving": {"tls.crt": read("pki/gateway-serving.crt"), "tls.key": read("pki/gateway-serving.key")},
		// Whose client certificates the gateway accepts.
		"client-ca": {"ca.crt": read("ca.crt")},
	}
	for name, data := range secrets {
		typ := corev1.SecretTypeTLS
		if _, ok := data["tls.crt"]; !ok {
			typ = corev1.SecretTypeOpaque
		}
		secret := corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: SecretNamespace, Name: name},
			Type:       typ,
			StringData: data,
		}
		out, err := yaml.Marshal(secret)
		if err != nil {
			return err
		}
		if err := os.WriteFile(s.path("config", "secret-"+name+".yaml"), out, 0o600); err != nil {
			return err
		}
	}
	uc := s.UpstreamClusterYAML(ClusterName, ServersYAML(s.ReplicaURLs), nil, sandboxClusterSpec)
	return os.WriteFile(s.path("config", "upstreamcluster-"+ClusterName+".yaml"), []byte(uc), 0o644)
}

// startGateway starts frontdoor, renders each Envoy's bootstrap with
// frontdoor itself (so the sandbox exercises the real bootstrap), starts
// the Envoys (fleet.go; extra holds portsPerExtraGateway ports for each
// gateway beyond the first), and waits until a request makes it through
// each to an apiserver.
func (s *Sandbox) startGateway(ctx context.Context, listenPort, adminPort, grpcPort, httpPort, moduleMetricsPort int, extra []int) error {
	if err := s.writeConfigDir(); err != nil {
		return fmt.Errorf("writing config dir: %w", err)
	}
	grpcAddr := s.grpcAddress("127.0.0.1:"+strconv.Itoa(grpcPort), "grpc.sock")
	httpAddr := "127.0.0.1:" + strconv.Itoa(httpPort)
	s.FrontdoorMetricsURL = "http://" + httpAddr + "/metrics"
	s.FrontdoorHealthURL = "http://" + httpAddr + "/healthz"
	moduleMetricsAddr := "127.0.0.1:" + strconv.Itoa(moduleMetricsPort)
	s.ModuleMetricsURL = "http://" + moduleMetricsAddr + "/metrics"
	s.EnvoyAdminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
	s.AccessLogPath = s.logPath("access")

	config := []string{"--config-dir", s.path("config"), "--envoy-admin-url", s.EnvoyAdminURL}
	if s.opts.Mode == ModeKubernetes {
		kubeconfig, err := s.installControlPlane(ctx)
		if err != nil {
			return fmt.Errorf("kubernetes mode: %w", err)
		}
		config = []string{"--kubeconfig", kubeconfig, "--envoy-admin-url", s.EnvoyAdminURL}
	}
	args := s.serveArgs(config, grpcAddr, httpAddr, strconv.Itoa(listenPort), moduleMetricsAddr)
	tlsArgs, err := s.grpcTLSServeArgs()
	if err != nil {
		return err
	}
	args = append(args, tlsArgs...)
	s.GRPCAddress = grpcAddr
	s.frontdoor = newProcess("frontdoor", s.bin("frontdoor"), s.logPath("frontdoor"), args...)
	s.progress("frontdoor: xDS + ext_authz on %s, metrics on %s (log: %s)", grpcAddr, httpAddr, s.frontdoor.logPath)
	if err := s.frontdoor.start(); err != nil {
		return err
	}
	fctx, cancel := waitCtx(ctx, frontdoorTimeout)
	defer cancel()
	plain := &http.Client{}
	if err := s.frontdoor.waitFor(fctx, "to become healthy ("+s.FrontdoorHealthURL+")", 200*time.Millisecond, func(ctx context.Context) error {
		return ExpectStatus(ctx, plain, s.FrontdoorHealthURL, http.StatusOK)
	}); err != nil {
		return err
	}
	if s.opts.GlobalRateLimit {
		if err := s.StartRateLimit(ctx); err != nil {
			return err
		}
	}

	s.GatewayURL = "https://127.0.0.1:" + strconv.Itoa(listenPort)
	for i := range s.opts.Gateways {
		listen, proxy, admin := listenPort, 0, adminPort
		if _, p, ok := strings.Cut(s.ProxyProtocolAddress, ":"); ok {
			proxy, _ = strconv.Atoi(p)
		}
		if i > 0 {
			ports := extra[(i-1)*portsPerExtraGateway:]
			listen, proxy, admin = ports[0], ports[1], ports[2]
		}
		g, err := s.addGateway(ctx, i, listen, proxy, admin)
		if err != nil {
			return err
		}
		s.Gateways = append(s.Gateways, g)
		if i == 0 {
			s.envoy = g.envoy
		}
		if err := s.startGatewayEnvoy(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// serveArgs are the flags of every `frontdoor serve` the sandbox starts:
// config source, addresses, the module for InProcess clusters, and the
// test's extra flags.
func (s *Sandbox) serveArgs(config []string, grpcAddr, httpAddr, listenPort, moduleMetricsAddr string) []string {
	args := append([]string{"serve"}, config...)
	args = append(args,
		"--grpc-address", grpcAddr,
		"--http-address", httpAddr,
		"--listen-address", "127.0.0.1",
		"--listen-port", listenPort,
		"--access-log", s.AccessLogPath,
		// Every cluster may choose InProcess: give serve the module.
		"--inprocess-module", absPath(s.bin(ModuleFile)),
		"--inprocess-metrics-address", moduleMetricsAddr,
		// Short edge timeouts, so tests of slow clients finish quickly.
		"--tls-handshake-timeout", EdgeTimeout.String(),
		"--request-headers-timeout", EdgeTimeout.String(),
	)
	if _, port, ok := strings.Cut(s.ProxyProtocolAddress, ":"); ok {
		args = append(args, "--extra-listen-ports", port, "--proxy-protocol-ports", port)
	}
	if s.opts.LogRequests {
		args = append(args, "--log-requests")
	}
	if s.RateLimitAddress != "" {
		args = append(args, "--ratelimit-address", s.RateLimitAddress)
	}
	return append(args, s.opts.FrontdoorArgs...)
}

// EdgeTimeout is the sandbox gateway's TLS handshake and request-headers
// timeout (the product defaults are 10s): long enough for any client of a
// busy test machine, short enough for a test to wait it out.
const EdgeTimeout = 4 * time.Second

// ModuleFile is the in-process request service (make build), in BinDir.
const ModuleFile = "libfrontdoor.so"

// grpcAddress is frontdoor's --grpc-address: tcp (host:port), or with
// GRPCUnixSocket, unix://DIR/<socket>.
func (s *Sandbox) grpcAddress(tcp, socket string) string {
	if s.opts.GRPCUnixSocket {
		return "unix://" + s.path(socket)
	}
	return tcp
}

// RequestServiceEnv names the environment variable that selects the
// sandbox UpstreamCluster's spec.requestService for a test run: `make test`
// runs the identity suite once per mode.
const RequestServiceEnv = "FRONTDOOR_E2E_REQUEST_SERVICE"

// RequestServiceFromEnv returns $FRONTDOOR_E2E_REQUEST_SERVICE (empty:
// the default, ExtAuthz).
func RequestServiceFromEnv() string { return os.Getenv(RequestServiceEnv) }

// ServersYAML is the items of an UpstreamCluster's spec.servers list for
// the given endpoint URLs, one "  - endpoint: URL" line each (the indentation
// of a list under "  servers:").
func ServersYAML(urls []string) string {
	var b strings.Builder
	for _, u := range urls {
		fmt.Fprintf(&b, "  - endpoint: %q\n", u)
	}
	return b.String()
}

// RequestServiceField is the spec.requestService line (two-space indented,
// with its newline) for UpstreamClusters the tests write, so every cluster of
// a run uses the mode under test; empty for the default.
func (s *Sandbox) RequestServiceField() string {
	if s.opts.RequestService == "" {
		return ""
	}
	return "  requestService: " + s.opts.RequestService + "\n"
}

// absPath is p made absolute (Envoy loads the module from its own working
// directory).
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

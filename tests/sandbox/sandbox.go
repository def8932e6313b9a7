// Package sandbox runs a complete, real Frontdoor installation on loopback:
// one etcd, N kube-apiserver replicas sharing it, the frontdoor control plane
// and request service, and Envoy in front. End-to-end tests start one per
// package; `make up` (tests/sandbox/up) starts one for humans.
//
// Everything is a real binary from bin/ (never a mock), every child runs in
// its own process group with its output in DIR/logs, and Stop always leaves
// nothing behind.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/internal/testpki"
)

// ClusterName is the name of the sandbox's UpstreamCluster.
const ClusterName = "sandbox"

// TestDomain is the DNS suffix the gateway's serving certificate covers
// with a wildcard, for UpstreamClusters that tests add (chosen by SNI).
const TestDomain = "sandbox.test"

// Options configure Start.
type Options struct {
	// Dir is the work directory (PKI, data, logs, kubeconfigs). It is created
	// if missing. Tests use a temp dir; `make up` uses _sandbox/.
	Dir string
	// Replicas is the number of kube-apiservers; 3 if zero.
	Replicas int
	// BinDir holds envoy, etcd, kube-apiserver, kubectl and frontdoor;
	// <repo>/bin if empty.
	BinDir string
	// Progress, if set, receives one line per step as it starts.
	Progress io.Writer
	// LogRequests passes --log-requests to frontdoor serve.
	LogRequests bool
	// RequestService is the UpstreamCluster's spec.requestService
	// (ExtAuthz, ExtProc or InProcess); empty leaves the default (ExtAuthz). Tests read
	// it from FRONTDOOR_E2E_REQUEST_SERVICE (see RequestServiceFromEnv), so
	// one suite runs in both modes.
	RequestService string
	// IdentityForwarding is the sandbox UpstreamCluster's
	// spec.clientConfig.identityForwarding (Impersonation or
	// RequestHeader); empty leaves the default (Impersonation).
	IdentityForwarding string
	// Mode is ModeFiles (the default) or ModeKubernetes.
	Mode string
	// SkipGateway starts only etcd and the apiservers (admin.kubeconfig then
	// points at replica 1). For working on the harness without frontdoor.
	SkipGateway bool
	// FrontdoorArgs are extra flags for `frontdoor serve` (e.g. --pprof).
	FrontdoorArgs []string
	// GRPCUnixSocket puts frontdoor's gRPC server (ADS and the request
	// service) on a Unix socket in Dir instead of a loopback TCP port:
	// serve --grpc-address unix://DIR/grpc.sock, and Envoy's bootstrap
	// reaches it as a pipe.
	GRPCUnixSocket bool
	// Gateways is the number of Envoys on the one frontdoor serve (fleet.go);
	// 1 if zero.
	Gateways int
	// GRPCMutualTLS serves frontdoor's gRPC port with mutual TLS
	// (serve --grpc-tls-*), and Envoy's bootstrap presents a client
	// certificate from the sandbox CA (bootstrap --xds-tls-*).
	GRPCMutualTLS bool
	// ReplicaArgs are extra kube-apiserver flags per replica (1-based),
	// after the sandbox's own (a repeated flag's last value wins), e.g. a
	// tiny --max-requests-inflight on one replica. SetReplicaArgs changes
	// them for a replica's next StartReplica.
	ReplicaArgs map[int][]string
	// GlobalRateLimit starts Redis and the ratelimit service (bin/redis-server,
	// bin/ratelimit) on loopback ports and gives frontdoor serve
	// --ratelimit-address, so UpstreamClusters may use Global token
	// buckets. The service takes its config over xDS from frontdoor's gRPC
	// port, so it needs a plain TCP port (no GRPCUnixSocket or GRPCMutualTLS).
	GlobalRateLimit bool
}

// Sandbox is a running sandbox. URLs are exported so tests and users can
// reach every component directly.
type Sandbox struct {
	Dir    string
	BinDir string
	// GRPCAddress is frontdoor serve's --grpc-address (ADS and the request
	// service).
	GRPCAddress string
	// EnvoyClientCertPEM and EnvoyClientKeyPEM are the certificate Envoy
	// presents to the gRPC port with Options.GRPCMutualTLS.
	EnvoyClientCertPEM, EnvoyClientKeyPEM []byte
	// CA signs every certificate in the sandbox; DIR/ca.crt and DIR/ca.key.
	// One CA for everything (apiserver serving certs, client certs, the
	// gateway's serving cert) means a user of `make up` needs only these two
	// files to trust the sandbox and to mint more users; tests make a second,
	// foreign CA (testpki.NewCA) to check that anyone else's certs are
	// rejected.
	CA *testpki.CA
	// AdminCertPEM/AdminKeyPEM: CN sandbox-admin, O system:masters.
	AdminCertPEM, AdminKeyPEM []byte

	GatewayURL string // https://127.0.0.1:P, Envoy's client listener (gateway 0's)
	// Gateways are the Envoys (Options.Gateways); Gateways[0] is the one
	// GatewayURL, EnvoyAdminURL and AccessLogPath name.
	Gateways []*Gateway
	// ProxyProtocolAddress is the same listener's second port, which
	// expects a PROXY protocol header before TLS (--proxy-protocol-ports),
	// as behind an L4 load balancer.
	ProxyProtocolAddress string
	ReplicaURLs          []string // ReplicaURLs[0] is replica 1
	EnvoyAdminURL        string   // http://127.0.0.1:P
	FrontdoorMetricsURL  string   // http://127.0.0.1:P/metrics
	// ModuleMetricsURL is where the in-process module inside Envoy serves
	// the request pipeline's metrics (once a cluster runs InProcess).
	ModuleMetricsURL   string // http://127.0.0.1:P/metrics
	FrontdoorHealthURL string // http://127.0.0.1:P/healthz
	ETCDURL            string // http://127.0.0.1:P
	// AccessLogPath is Envoy's JSON access log (one line per request).
	AccessLogPath string

	AdminKubeconfig  string // admin user through the gateway
	DirectKubeconfig string // admin user straight to replica 1
	EndpointsEnv     string // shell variables with all URLs

	opts       Options
	logDir     string
	etcd       *process
	apiservers []*process
	frontdoor  *process
	envoy      *process
	redis      *process
	ratelimit  *process

	// RateLimitAddress is the ratelimit service's gRPC address (serve's
	// --ratelimit-address) and RedisAddress its Redis, with
	// Options.GlobalRateLimit.
	RateLimitAddress, RedisAddress string
	// rateLimitHealthURL is the service's /healthcheck.
	rateLimitHealthURL string
	// rateLimitConfigURL is its debug port's /rlconfig.
	rateLimitConfigURL string
	stopOnce           sync.Once
}

// Start brings the whole sandbox up and returns once a request through the
// gateway succeeds. On error everything already started is stopped again.
func Start(ctx context.Context, opts Options) (s *Sandbox, err error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Gateways <= 0 {
		opts.Gateways = 1
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.BinDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		opts.BinDir = filepath.Join(root, "bin")
	}
	if opts.Dir == "" {
		return nil, errors.New("sandbox: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	s = &Sandbox{Dir: dir, BinDir: opts.BinDir, opts: opts, logDir: filepath.Join(dir, "logs")}
	if err := s.checkBinaries(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	for _, d := range []string{s.logDir, s.path("pki"), s.path("config")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return s, err
		}
	}

	s.progress("PKI in %s (CA: %s)", s.path("pki"), s.path("ca.crt"))
	if err := s.writePKI(); err != nil {
		return s, fmt.Errorf("PKI: %w", err)
	}
	// etcd client+peer, one per replica, envoy listener+admin, frontdoor
	// grpc+http, the in-process module's metrics, the listener's PROXY
	// protocol port; Redis and the ratelimit service's gRPC, HTTP and debug
	// ports; then listener, PROXY protocol and admin ports of each further
	// gateway.
	ports, err := testenv.FreePorts(2 + opts.Replicas + 6 + 4 + portsPerExtraGateway*(opts.Gateways-1))
	if err != nil {
		return s, err
	}
	if err := s.startEtcd(ctx, ports[0], ports[1]); err != nil {
		return s, err
	}
	if err := s.startAPIServers(ctx, ports[2:2+opts.Replicas]); err != nil {
		return s, err
	}
	if err := s.applyRBAC(ctx); err != nil {
		return s, fmt.Errorf("applying gateway RBAC: %w", err)
	}
	gw := ports[2+opts.Replicas:]
	s.GatewayURL = s.ReplicaURLs[0]
	if !opts.SkipGateway {
		s.ProxyProtocolAddress = "127.0.0.1:" + strconv.Itoa(gw[5])
		if opts.GlobalRateLimit {
			if err := s.startRedis(ctx, gw[6]); err != nil {
				return s, err
			}
			s.planRateLimit(gw[7], gw[8], gw[9])
		}
		if err := s.startGateway(ctx, gw[0], gw[1], gw[2], gw[3], gw[4], gw[10:]); err != nil {
			return s, err
		}
	}
	if err := s.writeClientFiles(); err != nil {
		return s, err
	}
	return s, nil
}

// Stop stops every child: Envoy and frontdoor first (so nothing reaches a
// dying apiserver), then the apiservers, then etcd. Each gets SIGTERM and,
// after a grace period, SIGKILL to its whole process group. Safe to call
// more than once and on a partially started sandbox.
func (s *Sandbox) Stop() {
	if s == nil {
		return
	}
	s.stopOnce.Do(func() {
		// The ratelimit service first: its xDS stream would hold
		// frontdoor's drain open.
		for _, p := range append(append([]*process{s.ratelimit, s.redis}, s.extraEnvoys()...), s.envoy, s.frontdoor) {
			if p != nil {
				p.stop(syscall.SIGTERM, stopGrace)
			}
		}
		var wg sync.WaitGroup
		for _, p := range s.apiservers {
			wg.Go(func() { p.stop(syscall.SIGTERM, stopGrace) })
		}
		wg.Wait()
		if s.etcd != nil {
			s.etcd.stop(syscall.SIGTERM, stopGrace)
		}
	})
}

// LogFiles returns every child's log file, by component name
// (etcd, apiserver-1.., frontdoor, envoy).
func (s *Sandbox) LogFiles() map[string]string {
	files := map[string]string{}
	for _, p := range s.all() {
		files[p.name] = p.logPath
	}
	return files
}

// LogTail returns the last n lines of the named component's log.
func (s *Sandbox) LogTail(name string, n int) string {
	for _, p := range s.all() {
		if p.name == name {
			return tail(p.logPath, n)
		}
	}
	return fmt.Sprintf("(no component %q)", name)
}

func (s *Sandbox) all() []*process {
	var ps []*process
	for _, p := range append(append([]*process{s.etcd, s.frontdoor, s.envoy, s.redis, s.ratelimit}, s.extraEnvoys()...), s.apiservers...) {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// extraEnvoys are the Envoys of gateways beyond the first.
func (s *Sandbox) extraEnvoys() []*process {
	var ps []*process
	for i, g := range s.Gateways {
		if i > 0 {
			ps = append(ps, g.envoy)
		}
	}
	return ps
}

func (s *Sandbox) checkBinaries() error {
	need := []string{"etcd", "kube-apiserver", "kubectl"}
	if !s.opts.SkipGateway {
		need = append(need, "frontdoor", ModuleFile, "envoy")
	}
	if s.opts.GlobalRateLimit {
		need = append(need, "redis-server", "ratelimit")
	}
	var missing []string
	for _, b := range need {
		if st, err := os.Stat(filepath.Join(s.BinDir, b)); err != nil || st.IsDir() {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing binaries in %s: %s (run `make tools` for envoy/etcd/kube-apiserver/kubectl and `make build` for frontdoor and its module)",
			s.BinDir, strings.Join(missing, ", "))
	}
	return nil
}

func (s *Sandbox) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

func (s *Sandbox) bin(name string) string { return filepath.Join(s.BinDir, name) }

func (s *Sandbox) logPath(name string) string { return filepath.Join(s.logDir, name+".log") }

func (s *Sandbox) progress(format string, args ...any) {
	fmt.Fprintf(s.opts.Progress, ">> "+format+"\n", args...)
}

// writePKI creates the CA and every cert and key the components read from
// disk. Certs that go into frontdoor's config dir are written there as
// Secrets by writeConfigDir.
func (s *Sandbox) writePKI() error {
	ca, err := testpki.NewCA("frontdoor-sandbox-ca")
	if err != nil {
		return err
	}
	s.CA = ca
	files := map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.KeyPEM}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	// The Service names endpointsFrom servers are verified by (upstream SAN
	// verification): kube-apiserver's own, and any Service of the Secret
	// namespace, where tests put their EndpointSlices.
	local := []string{"localhost", "kubernetes.default.svc", "*." + SecretNamespace + ".svc"}
	if files["pki/apiserver.crt"], files["pki/apiserver.key"], err = ca.ServingCert("kube-apiserver", local, loopback); err != nil {
		return err
	}
	if s.AdminCertPEM, s.AdminKeyPEM, err = ca.ClientCert("sandbox-admin", "system:masters"); err != nil {
		return err
	}
	files["pki/admin.crt"], files["pki/admin.key"] = s.AdminCertPEM, s.AdminKeyPEM
	if files["pki/gateway-client.crt"], files["pki/gateway-client.key"], err = ca.ClientCert(GatewayUser); err != nil {
		return err
	}
	if files["pki/apiserver-kubelet-client.crt"], files["pki/apiserver-kubelet-client.key"], err = ca.ClientCert("kube-apiserver-kubelet-client"); err != nil {
		return err
	}
	// *.sandbox.test: tests add UpstreamClusters chosen by SNI under it.
	gatewayNames := append(slices.Clone(local), "*."+TestDomain)
	if files["pki/gateway-serving.crt"], files["pki/gateway-serving.key"], err = ca.ServingCert("frontdoor-gateway", gatewayNames, loopback); err != nil {
		return err
	}
	if files["pki/sa.key"], files["pki/sa.pub"], err = newServiceAccountKey(); err != nil {
		return err
	}
	files["pki/audit-policy.yaml"] = []byte(auditPolicy)
	for name, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(s.path(name), data, mode); err != nil {
			return err
		}
	}
	return nil
}

// ClientCert mints a client certificate from the sandbox CA: accepted by
// the gateway and by every replica as user CN with groups O.
func (s *Sandbox) ClientCert(user string, groups ...string) (certPEM, keyPEM []byte) {
	certPEM, keyPEM, err := s.CA.ClientCert(user, groups...)
	if err != nil {
		panic(err) // only fails on a broken crypto/rand
	}
	return certPEM, keyPEM
}

// ForeignClientCert mints a client certificate from a fresh CA that nothing
// in the sandbox trusts: the TLS handshake succeeds (client certs are
// optional) but authentication must fail.
func ForeignClientCert(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	ca, err := testpki.NewCA("foreign-ca")
	if err != nil {
		return nil, nil, err
	}
	return ca.ClientCert(user, groups...)
}

// waitCtx bounds one step of Start.
func waitCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/configdump"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/envoy/admin"
	"github.com/kubefrontdoor/frontdoor/extproc"
	"github.com/kubefrontdoor/frontdoor/health"
	"github.com/kubefrontdoor/frontdoor/inprocess/policyfeed"
	"github.com/kubefrontdoor/frontdoor/policy"
	"github.com/kubefrontdoor/frontdoor/probe"
	"github.com/kubefrontdoor/frontdoor/source"
	"github.com/kubefrontdoor/frontdoor/translator"
	"github.com/kubefrontdoor/frontdoor/xds"
)

type serveFlags struct {
	configDir     string
	kubeconfig    string
	envoyAdminURL string
	debounce      time.Duration
	grpcAddr      string
	httpAddr      string
	listenAddr    string
	listenPort    uint
	// extraListenPorts are more client ports on --listen-address.
	extraListenPorts []uint32
	logRequests      bool
	pprof            bool
	logLevel         string
	pollInterval     time.Duration
	shutdownGrace    time.Duration
	drainTimeout     time.Duration
	accessLog        string
	// accessLogFailuresOnly and accessLogSlowerThan filter its lines.
	accessLogFailuresOnly bool
	accessLogSlowerThan   time.Duration

	inProcessModule         string
	inProcessPolicyAddress  string
	inProcessMetricsAddress string

	rateLimitAddress string

	edge translator.EdgeOptions

	gatewayNamespace string
	secretNamespaces string

	grpcTLS grpcTLSFlags

	probeAddr string
}

func parseServeFlags(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&f.configDir, "config-dir", "", "file mode: directory of UpstreamCluster, Secret and EndpointSlice YAML files (watched for changes); without it, Kubernetes mode")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Kubernetes mode: kubeconfig of the control cluster (default: in-cluster config)")
	fs.StringVar(&f.envoyAdminURL, "envoy-admin-url", "", "Envoy admin URL polled for upstream server health: frontdoor_upstream_server_healthy, and in Kubernetes mode status.healthyServerCount and status.unhealthyServers (optional)")
	fs.DurationVar(&f.debounce, "debounce", source.DefaultDebounce, "Kubernetes mode: how long a change waits for more changes before the config is rebuilt")
	fs.StringVar(&f.grpcAddr, "grpc-address", "127.0.0.1:18000",
		"host:port for ADS (xDS) and the request service (ext_authz, ext_proc, the in-process policy feed) gRPC, or unix:///path for a Unix socket (mode 0600) when Envoy shares the host or pod")
	fs.StringVar(&f.httpAddr, "http-address", "127.0.0.1:18080", "host:port for /metrics, /healthz, /readyz, /debug/config and --pprof (unauthenticated: keep it on loopback; see --probe-address for kubelet)")
	fs.StringVar(&f.listenAddr, "listen-address", "0.0.0.0", "address Envoy serves clients on")
	fs.UintVar(&f.listenPort, "listen-port", 6443, "port Envoy serves clients on")
	fs.Func("extra-listen-ports", "more ports (comma-separated) Envoy serves the same clusters on, e.g. 443 beside 6443, or a port for a PROXY-protocol load balancer (see --proxy-protocol-ports)",
		portList(&f.extraListenPorts))
	fs.BoolVar(&f.logRequests, "log-requests", false, "log every request decision at info level (user, verb, resource, decision)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go profiles (net/http/pprof) under /debug/pprof/ on --http-address")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&f.pollInterval, "config-poll-interval", time.Second, "how often --config-dir is checked for changes")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 5*time.Second, "how long in-flight gRPC calls may finish once the drain is over")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second,
		"on SIGTERM, how long /readyz fails while ext_authz and xDS keep serving Envoy's drain; ends early once no Envoy is connected")
	fs.StringVar(&f.accessLog, "access-log", "stdout",
		`where Envoy writes one JSON line per request: "stdout" (Envoy's), "off", or a file path Envoy appends to`)
	fs.BoolVar(&f.accessLogFailuresOnly, "access-log-failures-only", false,
		"log only the requests that did not succeed (status 400 or more, no status, or an Envoy response flag) instead of every request: most of the log's CPU per request goes with the lines it skips")
	fs.DurationVar(&f.accessLogSlowerThan, "access-log-slower-than", 0,
		"with --access-log-failures-only, also log requests that took at least this long (e.g. 1s; watches and log streams always do); 0: none")
	fs.StringVar(&f.inProcessModule, "inprocess-module", "",
		"absolute path of frontdoor's Envoy dynamic module (libfrontdoor.so) on the Envoy host; UpstreamClusters with requestService InProcess need it")
	fs.StringVar(&f.inProcessPolicyAddress, "inprocess-policy-address", "",
		"where the in-process module reaches this server's gRPC port for the policy table (host:port or unix:///path; default --grpc-address)")
	fs.StringVar(&f.inProcessMetricsAddress, "inprocess-metrics-address", "",
		"host:port where the in-process module serves the request pipeline's metrics (/metrics) inside Envoy (optional)")
	fs.StringVar(&f.rateLimitAddress, "ratelimit-address", "", rateLimitAddressUsage)
	fs.StringVar(&f.gatewayNamespace, "gateway-namespace", "",
		"Kubernetes mode: the gateway's namespace, the only one UpstreamClusters may reference Secrets in (default: the pod's namespace in a cluster, else "+defaultGatewayNamespace+")")
	fs.StringVar(&f.secretNamespaces, "secret-namespaces", "",
		`Kubernetes mode: more namespaces (comma-separated) UpstreamClusters may reference Secrets in, or "*" for every namespace (a cluster-wide Secrets watch)`)
	fs.StringVar(&f.probeAddr, "probe-address", "",
		"host:port serving only /healthz and /readyz (e.g. on the pod IP for kubelet probes, with --http-address on loopback); default: the probes are served on --http-address only")
	fs.StringVar(&f.grpcTLS.certFile, "grpc-tls-cert-file", "", "serving certificate (PEM) of the gRPC port; with --grpc-tls-key-file and --grpc-client-ca-file, the port takes only mutual TLS (required unless --grpc-address is loopback or a Unix socket)")
	fs.StringVar(&f.grpcTLS.keyFile, "grpc-tls-key-file", "", "private key (PEM) of --grpc-tls-cert-file")
	fs.StringVar(&f.grpcTLS.clientCAFile, "grpc-client-ca-file", "", "CA bundle (PEM) that gRPC clients' (Envoy's) certificates must chain to")
	edgeFlags(fs, &f.edge)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.edge.TLSHandshakeTimeout <= 0 || f.edge.RequestHeadersTimeout <= 0 {
		return nil, errors.New("--tls-handshake-timeout and --request-headers-timeout must be positive")
	}
	if err := checkConnectionAge(f.edge); err != nil {
		return nil, err
	}
	if err := checkGRPCExposure(f.grpcAddr, &f.grpcTLS); err != nil {
		return nil, err
	}
	if f.accessLogSlowerThan != 0 && (!f.accessLogFailuresOnly || f.accessLogSlowerThan < time.Millisecond) {
		return nil, fmt.Errorf("--access-log-slower-than %s: needs --access-log-failures-only (every request is logged without it) and at least 1ms", f.accessLogSlowerThan)
	}
	if f.accessLogFailuresOnly && f.accessLog == "off" {
		return nil, errors.New("--access-log-failures-only with --access-log off: there is no log to filter")
	}
	if f.inProcessModule != "" && !filepath.IsAbs(f.inProcessModule) {
		return nil, fmt.Errorf("--inprocess-module %q must be an absolute path (Envoy loads it from its own working directory)", f.inProcessModule)
	}
	if f.inProcessPolicyAddress == "" {
		f.inProcessPolicyAddress = f.grpcAddr
	}
	if err := checkRateLimitAddress(f.rateLimitAddress); err != nil {
		return nil, err
	}
	if f.configDir != "" && f.kubeconfig != "" {
		return nil, errors.New("--config-dir (file mode) and --kubeconfig (Kubernetes mode) exclude each other")
	}
	if f.listenPort == 0 || f.listenPort > 65535 {
		return nil, fmt.Errorf("--listen-port %d is not a TCP port", f.listenPort)
	}
	if err := translator.ListenerPorts(uint32(f.listenPort), f.extraListenPorts, f.edge.ProxyProtocolPorts); err != nil { //nolint:gosec // checked above
		return nil, fmt.Errorf("--listen-port, --extra-listen-ports, --proxy-protocol-ports: %w", err)
	}
	return f, nil
}

func runServe(args []string) error {
	f, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	pipeline, err := authz.NewPipeline(authz.Options{Registry: reg, Logger: log, LogRequests: f.logRequests})
	if err != nil {
		return err
	}
	feed := policyfeed.NewServer(log)
	drains := xds.NewDrains(f.edge.DrainBuckets)
	// One health prober for every Envoy cluster and every Envoy: its
	// verdicts reach Envoy as EDS health status (translator/probes.go).
	probeCtx, stopProbes := context.WithCancel(context.Background())
	defer stopProbes()
	prober := probe.New(probeCtx, reg, log)
	ctrl := xds.NewController(xds.ControllerOptions{
		Translator: translatorOptions(f),
		Sink:       policySinks{pipeline, feed},
		Registry:   reg,
		Logger:     log,
		NodeViews:  slices.Concat(xds.DefaultNodeViews, []xds.NodeView{drains.View}),
		Health:     prober,
	})
	drains.Attach(ctrl)

	grpcLis, err := listenGRPC(f.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc-address: %w", err)
	}
	httpLis, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-address: %w", err)
	}
	var probeLis net.Listener
	if f.probeAddr != "" {
		if probeLis, err = net.Listen("tcp", f.probeAddr); err != nil {
			return fmt.Errorf("--probe-address: %w", err)
		}
	}

	recovery, err := newPanicRecovery(reg, log)
	if err != nil {
		return err
	}
	grpcTLSOpts, err := grpcServerOptions(&f.grpcTLS)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(append(append(grpcTLSOpts, recovery.serverOptions()...),
		grpc.MaxConcurrentStreams(1<<20), // Envoy multiplexes every Check on a few connections
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)...)
	// ADS outlives the signal: a draining Envoy keeps its stream (and
	// config) until it exits, which is how the drain below knows it is over.
	adsCtx, stopADS := context.WithCancel(context.Background())
	defer stopADS()
	ctrl.RegisterADS(adsCtx, gs)
	authv3.RegisterAuthorizationServer(gs, authz.NewExtAuthzServer(pipeline))
	extProc, err := extproc.NewServer(pipeline, reg)
	if err != nil {
		return err
	}
	extprocv3.RegisterExternalProcessorServer(gs, extProc)
	feed.Register(gs)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// The config being served and the policy table, secrets redacted.
	mux.Handle("/debug/config", configdump.Handler(ctrl.Current))
	mux.Handle(drainStepPath, drainStepHandler(drains))
	var draining atomic.Bool
	// /readyz is the readiness probe: not ready before the first config,
	// nor once SIGTERM started the drain, so no new traffic is sent here.
	// /healthz (liveness) stays true while draining.
	readyz := func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !ctrl.Ready():
			http.Error(w, "no config published yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	}
	healthz := func(w http.ResponseWriter, _ *http.Request) {
		if !ctrl.Ready() {
			http.Error(w, "no config published yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("/readyz", readyz)
	mux.HandleFunc("/healthz", healthz)
	// The probe listener serves the probes and nothing else, so kubelet can
	// reach them on the pod IP while /metrics and /debug stay on loopback.
	probeMux := http.NewServeMux()
	probeMux.HandleFunc("/readyz", readyz)
	probeMux.HandleFunc("/healthz", healthz)
	ps := &http.Server{Handler: probeMux, ReadHeaderTimeout: 10 * time.Second}
	if f.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	// Envoy's view of the upstream servers: the frontdoor_upstream_server_healthy
	// metric in both modes, and status health in Kubernetes mode.
	var poller *health.Poller
	if f.envoyAdminURL != "" {
		poller = &health.Poller{Admin: admin.New(f.envoyAdminURL), Log: log}
		if err := reg.Register(poller); err != nil {
			return err
		}
	}
	src, err := configSource(f, ctrl, poller, log)
	if err != nil {
		return err
	}

	errc := make(chan error, 4)
	// The gRPC server (ADS, ext_authz, ext_proc, the in-process policy
	// feed) accepts only once the first config is published: before it,
	// the request service has no policy and would deny every request 503.
	// Envoys that connect meanwhile wait in the listen backlog, and the
	// request service's retry policy (translator.requestServiceRetryPolicy)
	// carries a request over a restart of this process.
	go func() {
		select {
		case <-ctrl.Published():
			errc <- gs.Serve(grpcLis)
		case <-ctx.Done():
		}
	}()
	go func() { errc <- hs.Serve(httpLis) }()
	if probeLis != nil {
		go func() { errc <- ps.Serve(probeLis) }()
	}
	go ctrl.FollowHealth(probeCtx)
	go func() { errc <- src.Run(ctx, ctrl) }()
	if poller != nil {
		go poller.Run(ctx)
	}
	if f.envoyAdminURL != "" && f.rateLimitAddress != "" {
		// Global token buckets: log when their ratelimit service fails.
		go (&health.RateLimitWatcher{Admin: admin.New(f.envoyAdminURL), Log: log}).Run(ctx)
	}
	log.Info("frontdoor serving", "version", version, "grpc", grpcLis.Addr().String(),
		"http", httpLis.Addr().String(), "listener", net.JoinHostPort(f.listenAddr, strconv.Itoa(int(f.listenPort))), "extraPorts", f.extraListenPorts, "proxyProtocolPorts", f.edge.ProxyProtocolPorts,
		"configDir", f.configDir, "kubeconfig", f.kubeconfig)

	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	// The drain: Envoy (told by its preStop hook, `frontdoor drain`) is
	// closing its connections and may still ask for checks on the requests
	// it finishes, so keep answering until it has gone away (its ADS stream
	// closed) or the drain timeout passes.
	draining.Store(true)
	log.Info("draining: readiness fails; serving Envoy until it disconnects", "timeout", f.drainTimeout)
	waitForProxiesGone(ctrl, f.drainTimeout)
	log.Info("shutting down")
	stopADS()
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownGrace)
	defer cancel()
	_ = hs.Shutdown(sctx)
	_ = ps.Shutdown(sctx)
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		gs.Stop() // ADS streams never end on their own
	}
	return nil
}

// policySinks hands every published policy table to each request service:
// the pipeline behind ext_authz and ext_proc, and the feed the in-process
// modules subscribe to.
type policySinks []xds.PolicySink

func (s policySinks) SetPolicy(t *policy.Table) {
	for _, sink := range s {
		sink.SetPolicy(t)
	}
}

// listenGRPC listens on host:port (TCP) or on unix:///path, a Unix socket
// only this process's user may connect to (mode 0600: run Envoy as the
// same user). A socket file left by a process that is gone is replaced; one
// that still answers is refused.
func listenGRPC(addr string) (net.Listener, error) {
	path, ok := envoy.UnixSocketPath(addr)
	if !ok {
		return net.Listen("tcp", addr)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%q: want unix:///absolute/path", addr)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// The socket is created with the umask's mode: close it to everyone
	// else from the start, rather than chmod after others could connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// waitForProxiesGone returns once no Envoy holds an ADS stream, or after
// timeout.
func waitForProxiesGone(ctrl *xds.Controller, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for ctrl.ConnectedProxies() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// translatorOptions are the gateway-wide translator settings from flags.
// --access-log "stdout" is Envoy's stdout (the empty path), "off" none.
func translatorOptions(f *serveFlags) translator.Options {
	o := translator.Options{
		SecretNamespaces:        secretNamespaces(f),
		ListenerAddress:         f.listenAddr,
		ListenerPort:            uint32(f.listenPort), //nolint:gosec // checked to be a TCP port
		ListenerExtraPorts:      f.extraListenPorts,
		InProcessModule:         f.inProcessModule,
		InProcessPolicyAddress:  f.inProcessPolicyAddress,
		InProcessMetricsAddress: f.inProcessMetricsAddress,
		RateLimitAddress:        f.rateLimitAddress,
		Edge:                    f.edge,
	}
	o.AccessLogFailuresOnly, o.AccessLogSlowerThan = f.accessLogFailuresOnly, f.accessLogSlowerThan
	switch f.accessLog {
	case "stdout":
	case "off":
		o.DisableAccessLog = true
	default:
		o.AccessLogPath = f.accessLog
	}
	return o
}

// configSource returns the source that feeds ctrl: a watched directory
// with --config-dir, otherwise informers on the cluster of --kubeconfig (or
// the in-cluster config). The Kubernetes source writes poller's findings
// (if any) into statuses.
func configSource(f *serveFlags, ctrl *xds.Controller, poller *health.Poller, log *slog.Logger) (source.Source, error) {
	if f.configDir != "" {
		src := &source.Dir{
			Path:        f.configDir,
			Interval:    f.pollInterval,
			Log:         log,
			OnFileError: func(path string, _ error) { ctrl.CountFileError(path) },
		}
		if _, err := src.Load(); err != nil {
			return nil, fmt.Errorf("--config-dir: %w", err)
		}
		return src, nil
	}
	var cfg *rest.Config
	var err error
	if f.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes mode (no --config-dir): %w", err)
	}
	cfg.UserAgent = "frontdoor/" + version
	o := source.KubeOptions{Debounce: f.debounce, Log: log, SecretNamespaces: secretNamespaces(f)}
	if poller != nil {
		o.Health = poller // not a typed nil in the interface
	}
	return source.NewKubeForConfig(cfg, o)
}

// edgeFlags are the public listener's abuse limits and forwarding-header
// trust (translator.EdgeOptions), shared by every cluster.
func edgeFlags(fs *flag.FlagSet, e *translator.EdgeOptions) {
	fs.DurationVar(&e.TLSHandshakeTimeout, "tls-handshake-timeout", translator.DefaultTLSHandshakeTimeout,
		"Envoy closes a client connection whose TLS handshake has not finished by then")
	fs.DurationVar(&e.RequestHeadersTimeout, "request-headers-timeout", translator.DefaultRequestHeadersTimeout,
		"Envoy answers 408 and closes the connection when a request's headers have not all arrived by then (never cuts a watch: it ends before the request service is asked)")
	fs.Func("trusted-forwarding-hops", "how many proxies in front of Envoy append to X-Forwarded-For; the client address is taken that many entries from the right (default 0: the TCP peer; a client's X-Forwarded-For is never forwarded)",
		func(v string) error {
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				return fmt.Errorf("want a small non-negative number: %w", err)
			}
			e.TrustedForwardingHops = uint32(n)
			return nil
		})
	fs.Func("proxy-protocol-ports", "listener ports (comma-separated, among --listen-port and --extra-listen-ports) whose connections start with a PROXY protocol v1/v2 header from an L4 load balancer: its source address becomes the client's (access log, audit sourceIPs); a connection without the header is closed, so only the load balancer may reach these ports",
		portList(&e.ProxyProtocolPorts))
	fs.DurationVar(&e.MaxConnectionAge, "max-connection-age", 0,
		"rebalancing: Envoy sends a client connection GOAWAY once it is this old (plus the jitter), so long-lived HTTP/2 clients reconnect through the load balancer and spread over new gateway replicas; streams in flight (watches, exec) are not cut. 0 (default): off")
	fs.Float64Var(&e.MaxConnectionAgeJitter, "max-connection-age-jitter", defaultMaxConnectionAgeJitter,
		"percentage (0-100) of --max-connection-age by which each connection's age is randomly extended, so clients that connected together do not reconnect together")
	fs.BoolVar(&e.DrainBuckets, "drain-buckets", false,
		"paced drain: split each client filter chain into "+strconv.Itoa(translator.ConnectionBuckets)+" by source port, so `frontdoor drain --window` closes an Envoy's connections (watches) a bucket at a time over the window instead of all at once when Envoy stops")
}

// defaultMaxConnectionAgeJitter spreads the reconnects of clients that
// connected together (after a rollout) over a quarter of the age.
const defaultMaxConnectionAgeJitter = 25

// checkConnectionAge refuses an age Envoy could not use sensibly: below a
// second every connection would be draining all the time.
func checkConnectionAge(e translator.EdgeOptions) error {
	if e.MaxConnectionAge != 0 && e.MaxConnectionAge < time.Second {
		return fmt.Errorf("--max-connection-age %s: want 0 (off) or at least 1s", e.MaxConnectionAge)
	}
	if e.MaxConnectionAgeJitter < 0 || e.MaxConnectionAgeJitter > 100 {
		return fmt.Errorf("--max-connection-age-jitter %v: want a percentage from 0 to 100", e.MaxConnectionAgeJitter)
	}
	return nil
}

// portList parses a comma-separated list of TCP ports into *dst.
func portList(dst *[]uint32) func(string) error {
	return func(v string) error {
		*dst = nil
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				return fmt.Errorf("%q is not a TCP port", p)
			}
			*dst = append(*dst, uint32(n))
		}
		return nil
	}
}

// defaultGatewayNamespace is the gateway's namespace outside a pod: the
// one the manifests install into.
const defaultGatewayNamespace = "frontdoor-system"

// inClusterNamespaceFile is where a pod's ServiceAccount volume (or the
// projected one the manifests mount) holds the pod's namespace.
var inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// secretNamespaces are the namespaces UpstreamClusters may reference
// Secrets in, sorted: in Kubernetes mode the gateway's own plus
// --secret-namespaces; nil (any) in file mode, where the operator writes
// the Secrets and the UpstreamClusters into one directory, and with
// --secret-namespaces "*".
func secretNamespaces(f *serveFlags) []string {
	if f.configDir != "" {
		return nil
	}
	ns := f.gatewayNamespace
	if ns == "" {
		ns = defaultGatewayNamespace
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			ns = strings.TrimSpace(string(b))
		}
	}
	out := []string{ns}
	for _, n := range strings.Split(f.secretNamespaces, ",") {
		switch n = strings.TrimSpace(n); n {
		case "*":
			return nil
		case "":
		default:
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

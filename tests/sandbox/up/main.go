// Command up is `make up`: it starts a sandbox in _sandbox/ (etcd, three
// kube-apiservers, frontdoor and Envoy), prints how to use it, and stops
// everything on Ctrl-C or SIGTERM. With -mode kubernetes (the default) the
// UpstreamCluster lives in the sandbox cluster; -mode files reads
// _sandbox/config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

var mode = flag.String("mode", sandbox.ModeKubernetes, "where frontdoor reads its config: kubernetes (UpstreamClusters in the sandbox cluster) or files (--config-dir _sandbox/config)")

var identityForwarding = flag.String("identity-forwarding", "", "the sandbox UpstreamCluster's spec.clientConfig.identityForwarding: Impersonation (the default) or RequestHeader (the replicas trust the gateway's X-Remote-* headers)")

var globalRateLimit = flag.Bool("global-ratelimit", false, "also run Redis and the ratelimit service (logs in _sandbox/logs), so UpstreamClusters may use tokenBucket scope: Global")

var grpcUnix = flag.Bool("grpc-unix", false, "frontdoor serves ADS and the request service on a Unix socket in _sandbox/ (Envoy reaches it as a pipe) instead of a loopback port")

var gateways = flag.Int("gateways", 1, "Envoys on the one frontdoor serve, each with its own listener, admin port and access log (a fleet on one host)")

func run() error {
	flag.Parse()
	if *mode != sandbox.ModeKubernetes && *mode != sandbox.ModeFiles {
		return fmt.Errorf("-mode %q: want %s or %s", *mode, sandbox.ModeKubernetes, sandbox.ModeFiles)
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "_sandbox")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// One sandbox per checkout: a second `make up` would fight over
	// _sandbox/ (and its etcd data), so it must refuse rather than wipe it.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			fmt.Fprintln(os.Stderr, "a sandbox is already running (lock _sandbox/.lock held); stop it with Ctrl-C in its terminal")
			os.Exit(1)
		}
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	// Start from a clean slate: old etcd data and certs from a previous run
	// would not match the fresh PKI.
	if err := clean(dir); err != nil {
		return err
	}

	// Ctrl-C during start-up cancels it; Start then stops what it began.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: dir, Progress: os.Stdout, LogRequests: true, Mode: *mode, GRPCUnixSocket: *grpcUnix, IdentityForwarding: *identityForwarding, Gateways: *gateways, GlobalRateLimit: *globalRateLimit})
	if err != nil {
		return err
	}
	defer sb.Stop()

	fmt.Printf("\nfrontdoor sandbox ready: gateway %s — try: export KUBECONFIG=$PWD/_sandbox/admin.kubeconfig; bin/kubectl get ns\n", sb.GatewayURL)
	if len(sb.Gateways) > 1 {
		for i, g := range sb.Gateways {
			fmt.Printf("  gateway %d: %s (admin %s, node %s, access log %s)\n", i+1, g.URL, g.AdminURL, g.NodeID, g.AccessLogPath)
		}
		fmt.Printf("  each gateway serves the same config: bin/kubectl --kubeconfig _sandbox/admin.kubeconfig --server %s get ns\n", sb.Gateways[1].URL)
	}
	fmt.Println()
	fmt.Printf("endpoints (also in %s):\n%s\n", sb.EndpointsEnv, sb.Endpoints())
	fmt.Printf("mint a user: client certs signed by %s (key %s) authenticate as CN with groups O\n",
		filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if *mode == sandbox.ModeKubernetes {
		fmt.Printf("config: UpstreamCluster %q lives in the sandbox itself; frontdoor follows every edit:\n"+
			"  bin/kubectl --kubeconfig _sandbox/admin.kubeconfig get upstreamclusters\n"+
			"  bin/kubectl --kubeconfig _sandbox/admin.kubeconfig edit upstreamcluster %s\n", sandbox.ClusterName, sandbox.ClusterName)
	} else {
		fmt.Printf("config: %s (edit the files; frontdoor reloads)\n", filepath.Join(dir, "config"))
	}
	fmt.Printf("logs: %s\n\nCtrl-C stops everything.\n", filepath.Join(dir, "logs"))

	<-ctx.Done()
	fmt.Println("\nstopping the sandbox…")
	sb.Stop()
	fmt.Println("stopped")
	return nil
}

// clean removes everything in dir except the lock file.
func clean(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

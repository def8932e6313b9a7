package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// runBootstrap prints the Envoy bootstrap: a static cluster for the frontdoor
// gRPC server, ADS for everything else, and the admin listener.
func runBootstrap(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	xdsAddr := fs.String("xds-address", "127.0.0.1:18000", "frontdoor serve's --grpc-address: host:port, or unix:///path for its Unix socket")
	adminAddr := fs.String("admin-address", "127.0.0.1:19000", "host:port for Envoy's admin interface (stats, config_dump)")
	nodeID := fs.String("node-id", "frontdoor-envoy", "Envoy node ID: distinct for every Envoy on one frontdoor serve (the control plane keeps one snapshot per node ID; Envoys sharing an ID share it)")
	listenAddr := fs.String("listen-address", "", "IP address this Envoy's client listener binds (default: frontdoor serve's --listen-address); sent as node metadata")
	listenPort := fs.Uint("listen-port", 0, "this Envoy's client listener port (default: frontdoor serve's --listen-port); set it for every Envoy beside the first on one host")
	accessLog := fs.String("access-log", "", "absolute path of this Envoy's own access log file, in place of frontdoor serve's --access-log file (for several Envoys on one host); sent as node metadata")
	var extraPorts []uint32
	fs.Func("extra-listen-ports", "comma-separated ports in place of frontdoor serve's --extra-listen-ports, in the same order (PROXY protocol ports map by position); with --listen-port, serve's extra ports not named here are not bound by this Envoy",
		portList(&extraPorts))
	maxConns := fs.Uint64("max-downstream-connections", envoy.DefaultMaxDownstreamConnections,
		"client connections Envoy holds at most, over every listener but admin; beyond it a connection is closed at accept (keep Envoy's fd limit above it)")
	maxHeap := fs.Uint64("max-heap-bytes", envoy.DefaultMaxHeapBytes,
		"heap the overload manager measures against (Envoy's memory limit less ~10%): at 90% it frees memory, 92% GOAWAYs clients, 95% sheds new requests and connections")
	output := fs.String("output", "", "write the bootstrap to this file instead of stdout (e.g. from an init container)")
	var xt envoy.XDSTLS
	fs.StringVar(&xt.CertFile, "xds-tls-cert-file", "", "Envoy's client certificate (PEM file on the Envoy host) for mutual TLS to frontdoor serve's gRPC port (its --grpc-client-ca-file must trust it); required unless --xds-address is loopback or a Unix socket")
	fs.StringVar(&xt.KeyFile, "xds-tls-key-file", "", "private key (PEM file on the Envoy host) of --xds-tls-cert-file")
	fs.StringVar(&xt.CAFile, "xds-ca-file", "", "CA bundle (PEM file on the Envoy host) that frontdoor serve's --grpc-tls-cert-file must chain to")
	fs.StringVar(&xt.ServerName, "xds-server-name", "", "name frontdoor serve's gRPC certificate must carry, sent as SNI (default: the host of --xds-address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := envoy.BootstrapOptions{
		NodeID:        *nodeID,
		NodeCluster:   "frontdoor",
		XDSAddress:    *xdsAddr,
		AdminAddress:  *adminAddr,
		Overload:      envoy.OverloadOptions{MaxDownstreamConnections: *maxConns, MaxHeapBytes: *maxHeap},
		AccessLogPath: *accessLog,
	}
	if *listenPort > 65535 {
		return fmt.Errorf("--listen-port %d is not a TCP port", *listenPort)
	}
	if *listenAddr != "" || *listenPort != 0 || len(extraPorts) > 0 {
		opts.Listen = &envoy.ListenOverride{Address: *listenAddr, Port: uint32(*listenPort), ExtraPorts: extraPorts} //nolint:gosec // checked above
	}
	if xt != (envoy.XDSTLS{}) {
		opts.XDSTLS = &xt
	}
	b, err := envoy.Bootstrap(opts)
	if err != nil {
		return err
	}
	y, err := envoy.BootstrapYAML(b)
	if err != nil {
		return err
	}
	if *output != "" {
		return os.WriteFile(*output, y, 0o644) //nolint:gosec // no secret in it; Envoy may run as another user
	}
	_, err = out.Write(y)
	return err
}

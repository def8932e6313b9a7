package main

import (
	"flag"
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
	nodeID := fs.String("node-id", "frontdoor-envoy", "Envoy node ID (any value: every node gets the same config)")
	maxConns := fs.Uint64("max-downstream-connections", envoy.DefaultMaxDownstreamConnections,
		"client connections Envoy holds at most, over every listener but admin; beyond it a connection is closed at accept (keep Envoy's fd limit above it)")
	maxHeap := fs.Uint64("max-heap-bytes", envoy.DefaultMaxHeapBytes,
		"heap the overload manager measures against (Envoy's memory limit less ~10%): at 90% it frees memory, 92% GOAWAYs clients, 95% sheds new requests and connections")
	output := fs.String("output", "", "write the bootstrap to this file instead of stdout (e.g. from an init container)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := envoy.Bootstrap(envoy.BootstrapOptions{
		NodeID:       *nodeID,
		NodeCluster:  "frontdoor",
		XDSAddress:   *xdsAddr,
		AdminAddress: *adminAddr,
		Overload:     envoy.OverloadOptions{MaxDownstreamConnections: *maxConns, MaxHeapBytes: *maxHeap},
	})
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

package main

import (
	"fmt"
	"net"
	"strconv"
)

const rateLimitAddressUsage = "host:port of the ratelimit service (envoyproxy/ratelimit, gRPC) that enforces Global token buckets across gateway replicas; " +
	"it takes its config over xDS from --grpc-address; without it Global token buckets are rejected"

// checkRateLimitAddress accepts "" (no ratelimit service) or host:port:
// Envoy gets the address as a cluster endpoint, so a mistyped flag must
// stop frontdoor at start, not reject every UpstreamCluster later.
func checkRateLimitAddress(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--ratelimit-address %q: %w", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || host == "" {
		return fmt.Errorf("--ratelimit-address %q: want host:port with a TCP port", addr)
	}
	return nil
}

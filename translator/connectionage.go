package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Rebalancing long-lived clients (issue 16, item 4). A controller or a
// kubelet opens one HTTP/2 connection and keeps it for days, so gateway
// replicas added by a scale-out get no share of the existing clients. With
// a maximum connection age, Envoy starts the HTTP connection manager's
// drain sequence on every client connection once it is that old:
//
//  1. a first GOAWAY (last stream ID 2^31-1): the client opens a new
//     connection, through the load balancer, for its next requests;
//  2. after drain_timeout (Envoy's default 5 s, for requests racing the
//     first GOAWAY) a final GOAWAY naming the last stream Envoy accepted;
//  3. the connection closes once its last stream has ended. Streams in
//     flight (watches, exec, port-forward) are never cut by the age: they
//     end on their own (kube-apiserver ends every watch within its
//     --min-request-timeout, 30 to 60 minutes), and the client re-opens
//     them on the new connection.
//
// HTTP/1.1 connections get "Connection: close" on their next response.
//
// The jitter plays the part of kube-apiserver's --goaway-chance: each
// connection's age is extended by a random amount up to the jitter
// percentage (Envoy's max_connection_duration_jitter, per connection), so
// clients that connected together, after a rollout or a scale-out, do not
// all reconnect at the same instant.

// applyConnectionAge sets the maximum connection age and its jitter on one
// cluster's HTTP connection manager options. Off (nothing set) when the
// age is not positive, so the default config is unchanged.
func applyConnectionAge(e EdgeOptions, o *corev3.HttpProtocolOptions) {
	if e.MaxConnectionAge <= 0 {
		return
	}
	o.MaxConnectionDuration = duration(e.MaxConnectionAge)
	if e.MaxConnectionAgeJitter > 0 {
		o.MaxConnectionDurationJitter = &typev3.Percent{Value: e.MaxConnectionAgeJitter}
	}
}

// Package testgrpc connects a test to a gRPC service over a real socket, as
// Envoy connects to frontdoor's: the ext_authz, ext_proc and ADS tests
// all need a server on 127.0.0.1 and a plain client connection to it, and
// build it here once. It is for tests only; no product (non-test) package
// may import it.
package testgrpc

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Loopback starts a gRPC server on 127.0.0.1:0 with the services register
// adds, and returns an insecure client connection to it. The server stops
// and the connection closes when the test ends.
func Loopback(tb testing.TB, register func(*grpc.Server)) *grpc.ClientConn {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

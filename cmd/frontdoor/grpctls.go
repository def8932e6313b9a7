package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// grpcTLSFlags configure mutual TLS on the gRPC port. The port serves ADS,
// and ADS serves SDS secrets: the gateway's upstream client key, which may
// impersonate anyone upstream. Whoever can open a stream gets them, so the
// port is either reachable only from this host (loopback, a Unix socket)
// or only by clients with a certificate from the client CA (Envoy, through
// `frontdoor bootstrap --xds-tls-*`).
type grpcTLSFlags struct {
	certFile     string
	keyFile      string
	clientCAFile string
}

func (g *grpcTLSFlags) enabled() bool {
	return g.certFile != "" || g.keyFile != "" || g.clientCAFile != ""
}

// grpcTLSFlagNames name the flags in errors, so the fix is in the message.
const grpcTLSFlagNames = "--grpc-tls-cert-file, --grpc-tls-key-file and --grpc-client-ca-file"

// checkGRPCExposure refuses a gRPC address other hosts can reach unless
// mutual TLS is configured, and refuses half a TLS configuration (a server
// certificate without a client CA would encrypt the secrets for anyone).
func checkGRPCExposure(addr string, g *grpcTLSFlags) error {
	if g.enabled() && (g.certFile == "" || g.keyFile == "" || g.clientCAFile == "") {
		return fmt.Errorf("gRPC TLS needs all of %s (mutual TLS: Envoy must present a client certificate)", grpcTLSFlagNames)
	}
	if g.enabled() {
		return nil
	}
	if _, unix := envoy.UnixSocketPath(addr); unix {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--grpc-address %q: %w", addr, err)
	}
	if envoy.IsLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("--grpc-address %q is not a loopback address or a Unix socket: the gRPC port serves the gateway's private keys (SDS) "+
		"to whoever connects, so any other address needs mutual TLS (%s; Envoy's side: frontdoor bootstrap --xds-tls-cert-file, --xds-tls-key-file, --xds-ca-file)",
		addr, grpcTLSFlagNames)
}

// grpcServerOptions returns the server credentials for mutual TLS, or none
// when TLS is not configured. Client certificates must chain to the client
// CA; TLS 1.2 is the floor (Envoy's default).
func grpcServerOptions(g *grpcTLSFlags) ([]grpc.ServerOption, error) {
	if !g.enabled() {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(g.certFile, g.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--grpc-tls-cert-file/--grpc-tls-key-file: %w", err)
	}
	caPEM, err := os.ReadFile(g.clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--grpc-client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("--grpc-client-ca-file: no PEM certificate in " + g.clientCAFile)
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}))}, nil
}

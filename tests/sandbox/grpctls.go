package sandbox

import (
	"net"
	"os"
)

// GRPC mutual TLS (Options.GRPCMutualTLS): frontdoor serve's gRPC port
// takes only clients with a certificate from the sandbox CA, and Envoy's
// bootstrap (rendered by `frontdoor bootstrap --xds-tls-*`) presents one.
// The files live in DIR/pki.
const (
	grpcServerCertFile = "grpc-server.crt"
	grpcServerKeyFile  = "grpc-server.key"
	envoyClientCert    = "envoy-client.crt"
	envoyClientKey     = "envoy-client.key"
)

// writeGRPCTLS issues the gRPC server's certificate (for 127.0.0.1 and
// localhost) and Envoy's client certificate, once.
func (s *Sandbox) writeGRPCTLS() error {
	if s.EnvoyClientCertPEM != nil {
		return nil
	}
	crt, key, err := s.CA.ServingCert("frontdoor-grpc", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		return err
	}
	if s.EnvoyClientCertPEM, s.EnvoyClientKeyPEM, err = s.CA.ClientCert("frontdoor-envoy"); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		grpcServerCertFile: crt, grpcServerKeyFile: key,
		envoyClientCert: s.EnvoyClientCertPEM, envoyClientKey: s.EnvoyClientKeyPEM,
	} {
		if err := os.WriteFile(s.path("pki", name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// grpcTLSServeArgs are serve's mutual-TLS flags (none without the option).
func (s *Sandbox) grpcTLSServeArgs() ([]string, error) {
	if !s.opts.GRPCMutualTLS {
		return nil, nil
	}
	if err := s.writeGRPCTLS(); err != nil {
		return nil, err
	}
	return []string{
		"--grpc-tls-cert-file", s.path("pki", grpcServerCertFile),
		"--grpc-tls-key-file", s.path("pki", grpcServerKeyFile),
		"--grpc-client-ca-file", s.path("ca.crt"),
	}, nil
}

// grpcTLSBootstrapArgs are bootstrap's mutual-TLS flags.
func (s *Sandbox) grpcTLSBootstrapArgs() []string {
	if !s.opts.GRPCMutualTLS {
		return nil
	}
	return []string{
		"--xds-tls-cert-file", s.path("pki", envoyClientCert),
		"--xds-tls-key-file", s.path("pki", envoyClientKey),
		"--xds-ca-file", s.path("ca.crt"),
	}
}

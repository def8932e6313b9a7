// Package exposure tests what frontdoor serve exposes beyond loopback, as
// the manifests deploy it: the gRPC port on mutual TLS (serve
// --grpc-tls-*, bootstrap --xds-tls-*), where the real Envoy gets its config
// and a gRPC client without a client certificate from the CA gets nothing
// (the SDS private keys above all); and a probe listener that serves the
// probes and nothing else, while /metrics and /debug stay on loopback.
package exposure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/internal/testenv"
	"github.com/kubefrontdoor/frontdoor/tests/sandbox"
)

var sb *sandbox.Sandbox

// probeURL is frontdoor serve's --probe-address, as a URL.
var probeURL string

func TestMain(m *testing.M) {
	port, err := testenv.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	probeAddr := "127.0.0.1:" + strconv.Itoa(port)
	probeURL = "http://" + probeAddr
	os.Exit(sandbox.RunTests(m, "exposure", sandbox.Options{
		Progress: os.Stderr, GRPCMutualTLS: true, FrontdoorArgs: []string{"--probe-address", probeAddr},
	}, func(s *sandbox.Sandbox) { sb = s }))
}

func setup(t *testing.T) context.Context {
	t.Helper()
	return sandbox.TestContext(t, sb, 2*time.Minute, func(name string) int {
		if name == "frontdoor" || name == "envoy" {
			return 30
		}
		return 0
	})
}

// secretType is the xDS type URL of SDS secrets.
const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// fetchSecret opens a delta ADS stream with creds, as an Envoy would, and
// subscribes to one SDS secret. It returns the secret, or the error that
// ended the attempt.
func fetchSecret(ctx context.Context, creds credentials.TransportCredentials, name string) (*tlsv3.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(sb.GRPCAddress, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		Node:                   &corev3.Node{Id: "not-envoy", Cluster: envoy.DefaultNodeCluster},
		TypeUrl:                secretType,
		ResourceNamesSubscribe: []string{name},
	}); err != nil {
		return nil, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetResources() {
			var s tlsv3.Secret
			if r.GetName() == name && r.GetResource().UnmarshalTo(&s) == nil {
				return &s, nil
			}
		}
	}
}

func tlsCreds(t *testing.T, certPEM, keyPEM []byte) credentials.TransportCredentials {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg)
}

// TestEnvoyServesOverMutualTLS: Envoy got its config through the mutual-TLS
// gRPC port (the sandbox waits for a request through it), keeps serving,
// and its control-plane connection is TLS.
func TestEnvoyServesOverMutualTLS(t *testing.T) {
	ctx := setup(t)
	admin, err := sb.HTTPClient(sb.AdminCertPEM, sb.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := sandbox.ExpectStatus(ctx, admin, sb.GatewayURL+"/api/v1/namespaces", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	stats, err := sb.EnvoyAdmin(ctx, "/stats?filter=^cluster."+envoy.ControlPlaneCluster+".ssl.handshake$")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stats, ".ssl.handshake: ") || strings.Contains(stats, ".ssl.handshake: 0") {
		t.Errorf("Envoy's control-plane cluster made no TLS handshake: %q", stats)
	}
}

// TestADSWithoutClientCertificateGetsNoSecret: a real delta ADS attempt for
// the gateway's upstream client key (the identity that may impersonate
// anyone upstream) fails without a client certificate from the CA, and
// over plaintext; with Envoy's certificate the same request gets it (so the
// failures are the port's doing, not a wrong request).
func TestADSWithoutClientCertificateGetsNoSecret(t *testing.T) {
	ctx := setup(t)
	name := envoy.UpstreamClientSecretName(sandbox.ClusterName)
	if s, err := fetchSecret(ctx, tlsCreds(t, nil, nil), name); err == nil {
		t.Errorf("TLS client without a certificate got secret %q", s.GetName())
	}
	if s, err := fetchSecret(ctx, insecure.NewCredentials(), name); err == nil {
		t.Errorf("plaintext client got secret %q", s.GetName())
	}
	foreignCrt, foreignKey, err := sandbox.ForeignClientCert("frontdoor-envoy")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := fetchSecret(ctx, tlsCreds(t, foreignCrt, foreignKey), name); err == nil {
		t.Errorf("client with a certificate from another CA got secret %q", s.GetName())
	}
	s, err := fetchSecret(ctx, tlsCreds(t, sb.EnvoyClientCertPEM, sb.EnvoyClientKeyPEM), name)
	if err != nil {
		t.Fatalf("with Envoy's client certificate: %v", err)
	}
	if len(s.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) == 0 {
		t.Errorf("secret %q has no key; the positive control proves nothing", name)
	}
}

// TestProbeAddressServesOnlyProbes: kubelet's probe listener answers
// /readyz and /healthz, and nothing an unauthenticated pod-network client
// should read: /metrics, /debug/config and pprof answer 404 there (they are
// on --http-address, loopback in the manifests).
func TestProbeAddressServesOnlyProbes(t *testing.T) {
	ctx := setup(t)
	for path, want := range map[string]int{
		"/readyz": http.StatusOK, "/healthz": http.StatusOK,
		"/metrics": http.StatusNotFound, "/debug/config": http.StatusNotFound, "/debug/pprof/": http.StatusNotFound,
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, probeURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("probe listener %s: %d (%q), want %d", path, resp.StatusCode, body, want)
		}
	}
}

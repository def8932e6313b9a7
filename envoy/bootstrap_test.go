package envoy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/internal/testenv"
)

var testOpts = BootstrapOptions{
	NodeID:       "frontdoor-0",
	XDSAddress:   "127.0.0.1:18000",
	AdminAddress: "127.0.0.1:9901",
}

func TestBootstrapYAMLRoundTrip(t *testing.T) {
	for name, opts := range map[string]BootstrapOptions{
		"ip": testOpts,
		"dns": {NodeID: "n", NodeCluster: "c", XDSAddress: "frontdoor.frontdoor-system.svc:18000", AdminAddress: "[::1]:9901",
			XDSTLS: &XDSTLS{CertFile: "/tls/envoy.crt", KeyFile: "/tls/envoy.key", CAFile: "/tls/ca.crt"}},
		"ipv6": {NodeID: "n", XDSAddress: "[::1]:18000", AdminAddress: "127.0.0.1:9901"},
		"unix": {NodeID: "n", XDSAddress: "unix:///run/frontdoor/grpc.sock", AdminAddress: "127.0.0.1:9901"},
		"listen": {NodeID: "n", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:9901",
			Listen: &ListenOverride{Address: "127.0.0.1", Port: 7443, ExtraPorts: []uint32{7444}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Bootstrap(opts)
			if err != nil {
				t.Fatal(err)
			}
			y, err := BootstrapYAML(b)
			if err != nil {
				t.Fatal(err)
			}
			j, err := yaml.YAMLToJSON(y)
			if err != nil {
				t.Fatal(err)
			}
			back := &bootstrapv3.Bootstrap{}
			if err := protojson.Unmarshal(j, back); err != nil {
				t.Fatalf("rendered YAML does not parse back: %v\n%s", err, y)
			}
			if err := back.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, back, protocmp.Transform()); diff != "" {
				t.Errorf("round trip changed the bootstrap (-want +got):\n%s", diff)
			}
			if got := back.GetStaticResources().GetClusters()[0].GetName(); got != ControlPlaneCluster {
				t.Errorf("static cluster = %q, want %q", got, ControlPlaneCluster)
			}
		})
	}
}

func TestBootstrapClusterType(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:1":     "STATIC",
		"[::1]:1":         "STATIC",
		"frontdoor.svc:1": "LOGICAL_DNS",
		"unix:///x/g.sk":  "STATIC",
	} {
		o := BootstrapOptions{NodeID: "n", XDSAddress: addr, AdminAddress: "127.0.0.1:9901"}
		if want == "LOGICAL_DNS" {
			o.XDSTLS = &XDSTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"} // a name is not loopback
		}
		b, err := Bootstrap(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.GetStaticResources().GetClusters()[0].GetType().String(); got != want {
			t.Errorf("%s: cluster type %s, want %s", addr, got, want)
		}
	}
}

// A unix:// address puts the control-plane cluster on Envoy's pipe address.
func TestBootstrapUnixSocket(t *testing.T) {
	b, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: "unix:///run/frontdoor/grpc.sock", AdminAddress: "127.0.0.1:9901"})
	if err != nil {
		t.Fatal(err)
	}
	ep := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
	if got := ep.GetAddress().GetPipe().GetPath(); got != "/run/frontdoor/grpc.sock" {
		t.Errorf("pipe path = %q (address %v)", got, ep.GetAddress())
	}
}

func TestBootstrapErrors(t *testing.T) {
	for name, opts := range map[string]BootstrapOptions{
		"no node id":       {XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2"},
		"no xds port":      {NodeID: "n", XDSAddress: "127.0.0.1", AdminAddress: "127.0.0.1:2"},
		"xds port zero":    {NodeID: "n", XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:2"},
		"xds port too big": {NodeID: "n", XDSAddress: "127.0.0.1:65536", AdminAddress: "127.0.0.1:2"},
		"empty xds host":   {NodeID: "n", XDSAddress: ":1", AdminAddress: "127.0.0.1:2"},
		"admin not an IP":  {NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "localhost:2"},
		"admin missing":    {NodeID: "n", XDSAddress: "127.0.0.1:1"},
		"unix no path":     {NodeID: "n", XDSAddress: "unix://", AdminAddress: "127.0.0.1:2"},
		"unix relative":    {NodeID: "n", XDSAddress: "unix://grpc.sock", AdminAddress: "127.0.0.1:2"},
	} {
		if _, err := Bootstrap(opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestBootstrapEnvoyValidate runs the real Envoy in validate mode on the
// rendered bootstrap: the proto validation above cannot catch what only
// Envoy knows (extension names, cross-field rules).
func TestBootstrapEnvoyValidate(t *testing.T) {
	envoyBin := envoyBinary(t)
	for _, opts := range []BootstrapOptions{
		testOpts,
		{NodeID: "n", XDSAddress: "localhost:18000", AdminAddress: "127.0.0.1:9901"},
		{NodeID: "n", XDSAddress: "unix:///run/frontdoor/grpc.sock", AdminAddress: "127.0.0.1:9901"},
	} {
		b, err := Bootstrap(opts)
		if err != nil {
			t.Fatal(err)
		}
		y, err := BootstrapYAML(b)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "bootstrap.yaml")
		if err := os.WriteFile(path, y, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(envoyBin, "--mode", "validate", "-c", path, "--log-level", "warn").CombinedOutput()
		if err != nil {
			t.Fatalf("envoy --mode validate: %v\n%s\n--- config:\n%s", err, out, y)
		}
		if !strings.Contains(string(out), "OK") {
			t.Errorf("envoy did not report OK:\n%s", out)
		}
	}
}

// envoyBinary is bin/envoy at the module root, built by make tools.
func envoyBinary(t *testing.T) string {
	t.Helper()
	p, err := testenv.Binary("envoy")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBootstrapXDSNeedsTLSBeyondLoopback: the xDS stream carries private
// keys, so an address other than loopback or a Unix socket is refused
// without mutual TLS, naming the flags; with it, the control-plane cluster
// presents Envoy's certificate, verifies the server's against the CA and
// the name (SNI for a DNS name, an IP SAN for an IP), and speaks h2.
func TestBootstrapXDSNeedsTLSBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"10.0.0.5:18000", "frontdoor.frontdoor-system.svc:18000", "[fd00::1]:18000"} {
		_, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: addr, AdminAddress: "127.0.0.1:9901"})
		if err == nil || !strings.Contains(err.Error(), "--xds-tls-cert-file, --xds-tls-key-file, --xds-ca-file") {
			t.Errorf("%s without TLS: %v, want an error naming the TLS flags", addr, err)
		}
	}
	xt := &XDSTLS{CertFile: "/tls/envoy.crt", KeyFile: "/tls/envoy.key", CAFile: "/tls/ca.crt"}
	for addr, want := range map[string]struct{ sni, san, typ string }{
		"frontdoor.frontdoor-system.svc:18000": {"frontdoor.frontdoor-system.svc", "frontdoor.frontdoor-system.svc", "DNS"},
		"10.0.0.5:18000":                       {"", "10.0.0.5", "IP_ADDRESS"},
	} {
		b, err := Bootstrap(BootstrapOptions{NodeID: "n", XDSAddress: addr, AdminAddress: "127.0.0.1:9901", XDSTLS: xt})
		if err != nil {
			t.Fatalf("%s with TLS: %v", addr, err)
		}
		ts := b.GetStaticResources().GetClusters()[0].GetTransportSocket()
		var tc tlsv3.UpstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&tc); err != nil {
			t.Fatalf("%s: transport socket %v: %v", addr, ts, err)
		}
		ctc := tc.GetCommonTlsContext()
		san := ctc.GetValidationContext().GetMatchTypedSubjectAltNames()
		switch {
		case tc.GetSni() != want.sni:
			t.Errorf("%s: SNI %q, want %q", addr, tc.GetSni(), want.sni)
		case len(san) != 1 || san[0].GetMatcher().GetExact() != want.san || san[0].GetSanType().String() != want.typ:
			t.Errorf("%s: SAN matchers %v, want %s %s", addr, san, want.typ, want.san)
		case ctc.GetValidationContext().GetTrustedCa().GetFilename() != "/tls/ca.crt":
			t.Errorf("%s: trusted CA %v", addr, ctc.GetValidationContext().GetTrustedCa())
		case len(ctc.GetTlsCertificates()) != 1 || ctc.GetTlsCertificates()[0].GetPrivateKey().GetFilename() != "/tls/envoy.key":
			t.Errorf("%s: client certificate %v", addr, ctc.GetTlsCertificates())
		case len(ctc.GetAlpnProtocols()) != 1 || ctc.GetAlpnProtocols()[0] != "h2":
			t.Errorf("%s: ALPN %v, want h2", addr, ctc.GetAlpnProtocols())
		}
	}
}

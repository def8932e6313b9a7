package bench

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
)

// envoy-as-client presents the client's own certificate upstream, so its
// requests run as the client; envoy-plain presents the gateway's. Both
// configs differ in nothing else: the comparison of their apiserver CPU is
// the cost of the identity alone.
func TestStaticEnvoyUpstreamIdentity(t *testing.T) {
	ca, err := testpki.NewCA("bench-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ClientCert(BenchUser, "bench-group")
	if err != nil {
		t.Fatal(err)
	}
	sbDir, out := t.TempDir(), t.TempDir()
	replicas := []string{"https://127.0.0.1:6443", "https://127.0.0.1:6444"}
	ports := [3]int{19000, 19001, 19002}

	asClient, err := clientUpstream(out, PathEnvoyAsClient, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string][]byte{asClient.cert: certPEM, asClient.key: keyPEM} {
		got, err := os.ReadFile(f)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %v, content differs: %v", f, err, string(got) != string(want))
		}
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v (want 0600)", f, st.Mode().Perm(), err)
		}
	}
	block, _ := pem.Decode(mustRead(t, asClient.cert))
	if c, err := x509.ParseCertificate(block.Bytes); err != nil || c.Subject.CommonName != BenchUser {
		t.Errorf("as-client upstream certificate: %v, CN %q (want %s)", err, c.Subject.CommonName, BenchUser)
	}

	plainCfg, err := renderStaticEnvoy(PathEnvoyPlain, sbDir, out, replicas, nil, gatewayUpstream(sbDir), ports)
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := renderStaticEnvoy(PathEnvoyPlain, sbDir, out, replicas, nil, asClient, ports)
	if err != nil {
		t.Fatal(err)
	}
	upstreamCertLine := func(cfg string) string {
		_, rest, ok := strings.Cut(cfg, "UpstreamTlsContext")
		if !ok {
			t.Fatalf("no UpstreamTlsContext in:\n%s", cfg)
		}
		_, rest, _ = strings.Cut(rest, "certificate_chain: ")
		line, _, _ := strings.Cut(rest, "\n")
		return line
	}
	if got, want := upstreamCertLine(plainCfg), `{filename: "`+filepath.Join(sbDir, "pki", "gateway-client.crt")+`"}`; got != want {
		t.Errorf("envoy-plain upstream certificate %s, want %s", got, want)
	}
	if got, want := upstreamCertLine(clientCfg), `{filename: "`+asClient.cert+`"}`; got != want {
		t.Errorf("envoy-as-client upstream certificate %s, want %s", got, want)
	}
	if !strings.Contains(clientCfg, `private_key: {filename: "`+asClient.key+`"}`) {
		t.Errorf("envoy-as-client does not present the client's key:\n%s", clientCfg)
	}
	// Nothing else differs: the same listeners, pool, endpoints and no
	// forwarding headers.
	normalized := strings.NewReplacer(asClient.cert, "CERT", asClient.key, "KEY").Replace(clientCfg)
	plainNormalized := strings.NewReplacer(filepath.Join(sbDir, "pki", "gateway-client.crt"), "CERT",
		filepath.Join(sbDir, "pki", "gateway-client.key"), "KEY").Replace(plainCfg)
	if normalized != plainNormalized {
		t.Errorf("envoy-as-client differs from envoy-plain beyond the upstream certificate:\n%s\n---\n%s", clientCfg, plainCfg)
	}
	if strings.Contains(clientCfg, "request_headers_to_add") {
		t.Errorf("envoy-as-client sets headers:\n%s", clientCfg)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

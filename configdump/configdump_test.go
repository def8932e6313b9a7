package configdump

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// translated returns a real translation of one UpstreamCluster with all
// three Secrets, and every secret PEM it was made from.
func translated(t *testing.T) (*translator.Output, [][]byte) {
	t.Helper()
	ca, err := testpki.NewCA("dump-ca")
	if err != nil {
		t.Fatal(err)
	}
	servingCrt, servingKey, err := ca.ServingCert("gw", []string{"gw.example.com"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	clientCrt, clientKey, err := ca.ClientCert("frontdoor-gateway")
	if err != nil {
		t.Fatal(err)
	}
	secret := func(name string, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data}
	}
	ref := func(name string) *v1alpha1.SecretReference {
		return &v1alpha1.SecretReference{Namespace: "ns", Name: name}
	}
	uc := &v1alpha1.UpstreamCluster{ObjectMeta: metav1.ObjectMeta{Name: "alpha", Generation: 2}}
	uc.Spec.Servers = []v1alpha1.Server{{Endpoint: "https://10.0.0.1:6443"}}
	uc.Spec.ClientConfig.SecretRef = *ref("upstream")
	uc.Spec.SecureServing.SecretRef = *ref("serving")
	uc.Spec.SecureServing.ClientCASecretRef = ref("client-ca")
	out := translator.Translate(translator.Inputs{
		UpstreamClusters: []*v1alpha1.UpstreamCluster{uc},
		Secrets: []*corev1.Secret{
			secret("upstream", map[string][]byte{"tls.crt": clientCrt, "tls.key": clientKey, "ca.crt": ca.CertPEM}),
			secret("serving", map[string][]byte{"tls.crt": servingCrt, "tls.key": servingKey}),
			secret("client-ca", map[string][]byte{"ca.crt": ca.CertPEM}),
		},
	})
	return out, [][]byte{servingKey, clientKey, ca.KeyPEM, servingCrt, clientCrt, ca.CertPEM}
}

func TestDumpIsRedacted(t *testing.T) {
	out, secrets := translated(t)
	if st := out.Statuses[0]; st.Conditions[0].Status != metav1.ConditionTrue {
		t.Fatalf("test input rejected: %+v", st.Conditions)
	}
	d, err := Build(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		t.Error("dump contains a PEM private key")
	}
	// Neither keys nor certificate bytes appear, in any encoding a dump
	// could use (base64 of the PEM, base64 of the DER).
	for i, p := range secrets {
		block, _ := pem.Decode(p)
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(p)[:40],
			base64.StdEncoding.EncodeToString(block.Bytes)[8:48],
		} {
			if strings.Contains(string(b), enc) {
				t.Errorf("dump contains the bytes of secret PEM %d (%s)", i, block.Type)
			}
		}
	}

	if d.Version != out.Version || len(d.Statuses) != 1 || d.Statuses[0].Name != "alpha" {
		t.Errorf("version/statuses = %q %+v", d.Version, d.Statuses)
	}
	for _, typ := range []string{"Cluster", "Listener", "RouteConfiguration", "Secret"} {
		if len(d.Resources[typ]) == 0 {
			t.Errorf("no %s resources in the dump; have %v", typ, keys(d.Resources))
		}
	}
	var sec secretSummary
	for _, raw := range d.Resources["Secret"] {
		if err := json.Unmarshal(raw, &sec); err != nil {
			t.Fatal(err)
		}
		if sec.Kind == "tlsCertificate" {
			break
		}
	}
	if sec.PrivateKey != "[redacted]" || len(sec.Certificate) == 0 || sec.Certificate[0].Certificate == nil {
		t.Errorf("tls secret summary = %+v, want a certificate summary and a redacted key", sec)
	}
	ca, _ := d.Policy["alpha"]["clientCAPEM"].([]PEMBlock)
	if len(ca) != 1 || ca[0].Certificate == nil || ca[0].Certificate.Subject != "CN=dump-ca" {
		t.Errorf("policy client CA = %+v, want the summary of CN=dump-ca", d.Policy["alpha"]["clientCAPEM"])
	}
}

func TestHandler(t *testing.T) {
	out, _ := translated(t)
	for _, tc := range []struct {
		name    string
		current *translator.Output
		version string
	}{{"before the first config", nil, ""}, {"serving", out, out.Version}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(func() *translator.Output { return tc.current }))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var got struct {
				Version string `json:"version"`
			}
			if err := json.Unmarshal(body, &got); err != nil || got.Version != tc.version {
				t.Errorf("version = %q (%v), want %q", got.Version, err, tc.version)
			}
		})
	}
}

func TestPEMBlocksRedactsKeys(t *testing.T) {
	got := PEMBlocks([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	if len(got) != 1 || !got[0].Redacted || got[0].Certificate != nil || got[0].Type != "EC PRIVATE KEY" {
		t.Errorf("PEMBlocks(key) = %+v", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

package authz

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
)

// testNow is the fixed clock every certificate test runs at.
var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// testCA is a client CA built in-test, valid around testNow.
type testCA struct{ *testpki.CA }

func newTestCA(tb testing.TB, cn string) *testCA {
	tb.Helper()
	ca, err := testpki.NewCAFrom(&x509.Certificate{
		Subject:   pkix.Name{CommonName: cn},
		NotBefore: testNow.Add(-24 * time.Hour),
		NotAfter:  testNow.Add(10 * 365 * 24 * time.Hour),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{ca}
}

// clientCert describes a client certificate to issue; zero times are an
// hour before testNow and a day after it, a nil usage is client auth.
type clientCert struct {
	cn        string
	orgs      []string
	notBefore time.Time
	notAfter  time.Time
	usage     []x509.ExtKeyUsage
}

// issue signs a client certificate and returns its DER and the URL-encoded
// PEM Envoy would put in attributes.source.certificate.
func (ca *testCA) issue(tb testing.TB, cc clientCert) (der []byte, encoded string) {
	tb.Helper()
	if cc.notBefore.IsZero() {
		cc.notBefore = testNow.Add(-time.Hour)
	}
	if cc.notAfter.IsZero() {
		cc.notAfter = testNow.Add(24 * time.Hour)
	}
	c, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cc.cn, Organization: cc.orgs},
		NotBefore:   cc.notBefore,
		NotAfter:    cc.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: cc.usage,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c.Cert.Raw, envoyURLEncode(string(c.CertPEM))
}

// envoyURLEncode percent-encodes PEM the way Envoy's SSL connection info
// does for the ext_authz peer certificate.
func envoyURLEncode(s string) string {
	return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}

// credentialID is how kube-apiserver names an x509 credential.
func credentialID(der []byte) string {
	sum := sha256.Sum256(der)
	return "X509SHA256=" + hex.EncodeToString(sum[:])
}

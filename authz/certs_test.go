package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed clock every certificate test runs at.
var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// testCA is a client CA built in-test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newTestCA(tb testing.TB, cn string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// clientCert describes a client certificate to issue.
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if cc.notBefore.IsZero() {
		cc.notBefore = testNow.Add(-time.Hour)
	}
	if cc.notAfter.IsZero() {
		cc.notAfter = testNow.Add(24 * time.Hour)
	}
	if cc.usage == nil {
		cc.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cc.cn, Organization: cc.orgs},
		NotBefore:    cc.notBefore,
		NotAfter:     cc.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  cc.usage,
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der, envoyURLEncode(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
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

package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOnlyTestsImportIt: testpki is test scaffolding; no package of the
// product module may import it outside its _test.go files.
func TestOnlyTestsImportIt(t *testing.T) {
	const self = "github.com/kubefrontdoor/frontdoor/internal/testpki"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "github.com/kubefrontdoor/frontdoor/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if slices.Contains(f[1:], self) {
			t.Errorf("%s imports %s outside its tests", f[0], self)
		}
	}
}

func TestIssuedCertsVerifyOnlyAgainstTheirCA(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := NewCA("foreign-ca")
	if err != nil {
		t.Fatal(err)
	}
	clientPEM, clientKey, err := ca.ClientCert("jane", "dev", "ops")
	if err != nil {
		t.Fatal(err)
	}
	servingPEM, servingKey, err := ca.ServingCert("gw", []string{"gw.example.com"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("CA PEM does not parse")
	}
	foreignRoots := x509.NewCertPool()
	foreignRoots.AddCert(foreign.Cert)

	client := leaf(t, clientPEM, clientKey)
	if client.Subject.CommonName != "jane" || !slices.Equal(client.Subject.Organization, []string{"dev", "ops"}) {
		t.Errorf("client subject = %v, want CN jane, O dev ops", client.Subject)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify against its CA: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: foreignRoots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("client cert verifies against a foreign CA")
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
		t.Error("client cert verifies for server auth")
	}

	serving := leaf(t, servingPEM, servingKey)
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "gw.example.com"}); err != nil {
		t.Errorf("serving cert does not verify for gw.example.com: %v", err)
	}
	if err := serving.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("serving cert does not cover 127.0.0.1: %v", err)
	}
}

func TestIssueKeepsWhatTheTemplateSets(t *testing.T) {
	at := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	ca, err := NewCAFrom(&x509.Certificate{Subject: pkix.Name{CommonName: "fixed-clock-ca"}, NotBefore: at.Add(-time.Hour), NotAfter: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.NotAfter.Equal(at.Add(time.Hour)) {
		t.Errorf("CA: IsCA %v, NotAfter %v; want a CA until %v", ca.Cert.IsCA, ca.Cert.NotAfter, at.Add(time.Hour))
	}
	c, err := ca.Issue(&x509.Certificate{NotBefore: at.Add(-time.Minute), NotAfter: at.Add(time.Minute), ExtKeyUsage: []x509.ExtKeyUsage{}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cert.Subject.CommonName != "" || len(c.Cert.ExtKeyUsage) != 0 || !c.Cert.NotBefore.Equal(at.Add(-time.Minute)) {
		t.Errorf("issued %v, EKU %v, from %v; want no CN, no EKU, from %v", c.Cert.Subject, c.Cert.ExtKeyUsage, c.Cert.NotBefore, at.Add(-time.Minute))
	}
	if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: pool(ca), CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("issued cert does not verify at %v: %v", at, err)
	}
	d, err := ca.Issue(&x509.Certificate{NotBefore: at.Add(-time.Minute), NotAfter: at.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || d.Cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("defaults: EKU %v, key usage %v; want client auth, digital signature", d.Cert.ExtKeyUsage, d.Cert.KeyUsage)
	}
	if d.Cert.SerialNumber.Cmp(c.Cert.SerialNumber) == 0 {
		t.Error("two issued certs share a serial")
	}
}

// leaf parses a cert and key pair the way a TLS client would load it.
func leaf(t *testing.T, certPEM, keyPEM []byte) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

package authz

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// revokedTable is testTable with a revocation list.
func revokedTable(caPEM []byte, rev *policy.Revocation) *policy.Table {
	t := testTable(caPEM)
	t.Clusters["a"].Revocation = rev
	return t
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// signCRL makes a CRL of issuer listing serials, valid from an hour before
// testNow until nextUpdate.
func signCRL(tb testing.TB, issuer *x509.Certificate, key *ecdsa.PrivateKey, nextUpdate time.Time, serials ...*big.Int) []byte {
	tb.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(testNow.Unix()),
		ThisUpdate: testNow.Add(-time.Hour),
		NextUpdate: nextUpdate,
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: testNow.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// A denied fingerprint refuses the certificate from the very next request,
// although its identity was cached; other certificates keep their cached
// identities' verdict (allowed), and lifting the denial restores it.
func TestRevocationDeniedFingerprint(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	tp := newTestPipeline(t, ca)
	janeDER, jane := ca.issue(t, clientCert{cn: "jane"})
	_, bob := ca.issue(t, clientCert{cn: "bob"})
	for _, c := range []string{jane, bob} {
		if d := checkCert(tp, c); !d.Allowed() {
			t.Fatalf("before revocation: %s", d.Outcome)
		}
	}

	tp.SetPolicy(revokedTable(ca.CertPEM, &policy.Revocation{DeniedFingerprints: []string{fingerprint(janeDER)}}))
	d := checkCert(tp, jane)
	if d.Outcome != Unauthenticated || d.Code != 401 {
		t.Errorf("revoked jane: %s %d, want unauthenticated 401", d.Outcome, d.Code)
	}
	if d := checkCert(tp, bob); !d.Allowed() || d.User != "bob" {
		t.Errorf("bob after jane's revocation: %s user %q, want allowed bob", d.Outcome, d.User)
	}

	// The same list again (a new config version) keeps the cache.
	tp.SetPolicy(revokedTable(ca.CertPEM, &policy.Revocation{DeniedFingerprints: []string{fingerprint(janeDER)}}))
	hits := tp.cacheCount("hit")
	checkCert(tp, bob)
	if got := tp.cacheCount("hit"); got != hits+1 {
		t.Errorf("unchanged revocation: cache hits %v -> %v, want one more", hits, got)
	}

	tp.SetPolicy(testTable(ca.CertPEM))
	if d := checkCert(tp, jane); !d.Allowed() {
		t.Errorf("jane after the denial was lifted: %s", d.Outcome)
	}
}

// A denied fingerprint of an intermediate refuses every chain through it.
func TestRevocationDeniedIntermediate(t *testing.T) {
	root := newTestCA(t, "client-ca")
	inter := newIntermediate(t, root, "team-ca")
	_, leaf := inter.issue(t, clientCert{cn: "jane"})
	chain := leaf + envoyURLEncode(string(inter.CertPEM))
	tp := newTestPipeline(t, root)
	if d := checkCert(tp, chain); !d.Allowed() {
		t.Fatalf("chain through the intermediate: %s", d.Outcome)
	}
	tp.SetPolicy(revokedTable(root.CertPEM, &policy.Revocation{DeniedFingerprints: []string{fingerprint(inter.Cert.Raw)}}))
	if d := checkCert(tp, chain); d.Outcome != Unauthenticated {
		t.Errorf("chain through a denied intermediate: %s, want unauthenticated", d.Outcome)
	}
}

// A CRL refuses the certificates it lists, of its own issuer only: the
// root's CRL covers the leaves and intermediates the root signed, an
// intermediate's CRL the leaves it signed.
func TestRevocationCRL(t *testing.T) {
	root := newTestCA(t, "client-ca")
	inter := newIntermediate(t, root, "team-ca")
	janeDER, jane := root.issue(t, clientCert{cn: "jane"})
	_, bob := root.issue(t, clientCert{cn: "bob"})
	aliceDER, alice := inter.issue(t, clientCert{cn: "alice"})
	alice += envoyURLEncode(string(inter.CertPEM))
	_, carol := inter.issue(t, clientCert{cn: "carol"})
	carol += envoyURLEncode(string(inter.CertPEM))
	serialOf := func(der []byte) *big.Int {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber
	}
	next := testNow.Add(time.Hour)

	tp := newTestPipeline(t, root)
	for _, c := range []string{jane, bob, alice, carol} {
		if d := checkCert(tp, c); !d.Allowed() {
			t.Fatalf("before revocation: %s", d.Outcome)
		}
	}
	// The root's CRL lists jane; the intermediate's lists alice. A serial
	// listed by the wrong issuer's CRL means nothing: the root's CRL also
	// lists alice's serial, which is the intermediate's to revoke.
	rootCRL := signCRL(t, root.Cert, root.Key, next, serialOf(janeDER), serialOf(aliceDER))
	interCRL := signCRL(t, inter.Cert, inter.Key, next, serialOf(aliceDER))
	tp.SetPolicy(revokedTable(root.CertPEM, &policy.Revocation{CRLs: [][]byte{rootCRL}}))
	want := map[string]bool{"jane": false, "bob": true, "alice": true, "carol": true}
	for name, c := range map[string]string{"jane": jane, "bob": bob, "alice": alice, "carol": carol} {
		if d := checkCert(tp, c); d.Allowed() != want[name] {
			t.Errorf("root CRL: %s allowed=%v, want %v", name, d.Allowed(), want[name])
		}
	}
	tp.SetPolicy(revokedTable(root.CertPEM, &policy.Revocation{CRLs: [][]byte{rootCRL, interCRL}}))
	want["alice"] = false
	for name, c := range map[string]string{"jane": jane, "bob": bob, "alice": alice, "carol": carol} {
		if d := checkCert(tp, c); d.Allowed() != want[name] {
			t.Errorf("both CRLs: %s allowed=%v, want %v", name, d.Allowed(), want[name])
		}
	}
	// The root revoking the intermediate refuses everything it signed.
	tp.SetPolicy(revokedTable(root.CertPEM, &policy.Revocation{CRLs: [][]byte{
		signCRL(t, root.Cert, root.Key, next, inter.Cert.SerialNumber),
	}}))
	if d := checkCert(tp, carol); d.Outcome != Unauthenticated {
		t.Errorf("carol under a revoked intermediate: %s, want unauthenticated", d.Outcome)
	}
}

// Past its nextUpdate a CRL refuses every certificate of its issuer (fail
// closed), including one whose identity was cached before: the cache entry
// does not outlive the CRL.
func TestRevocationCRLExpired(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	other := newTestCA(t, "other-ca")
	_, jane := ca.issue(t, clientCert{cn: "jane"})
	_, olga := other.issue(t, clientCert{cn: "olga"})
	bundle := append(append([]byte{}, ca.CertPEM...), other.CertPEM...)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(revokedTable(bundle, &policy.Revocation{CRLs: [][]byte{
		signCRL(t, ca.Cert, ca.Key, testNow.Add(time.Minute)),
	}}))
	if d := checkCert(tp, jane); !d.Allowed() {
		t.Fatalf("fresh CRL: %s", d.Outcome)
	}
	tp.clock.Step(time.Minute + time.Second)
	if d := checkCert(tp, jane); d.Outcome != Unauthenticated {
		t.Errorf("expired CRL: %s, want unauthenticated", d.Outcome)
	}
	// Another issuer's certificates are not affected.
	if d := checkCert(tp, olga); !d.Allowed() {
		t.Errorf("certificate of an issuer without a CRL: %s", d.Outcome)
	}
}

// A revocation list the pipeline cannot compile fails closed: no
// certificate authenticates on that cluster.
func TestRevocationUnusableFailsClosed(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	_, jane := ca.issue(t, clientCert{cn: "jane"})
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(revokedTable(ca.CertPEM, &policy.Revocation{CRLs: [][]byte{[]byte("garbage")}}))
	if d := checkCert(tp, jane); d.Outcome != Unauthenticated {
		t.Errorf("garbage CRL: %s, want unauthenticated", d.Outcome)
	}
}

// newIntermediate issues an intermediate CA under parent.
func newIntermediate(tb testing.TB, parent *testCA, cn string) *testCA {
	tb.Helper()
	c, err := parent.Issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{&testpki.CA{Cert: c.Cert, Key: c.Key, CertPEM: c.CertPEM, KeyPEM: c.KeyPEM}}
}

// An ECDSA signature (r, s) is as valid as (r, n-s): the holder of a
// revoked certificate can re-encode it with a flipped s, and the twin
// verifies and authenticates, under another fingerprint. Denying the
// original's fingerprint refuses the twin too (and the other way round).
func TestRevocationDeniedFingerprintCoversECDSATwin(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	der, jane := ca.issue(t, clientCert{cn: "jane"})
	twin := flipECDSASignature(t, der)
	twinEncoded := envoyURLEncode(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: twin})))

	tp := newTestPipeline(t, ca)
	if d := checkCert(tp, twinEncoded); !d.Allowed() || d.User != "jane" {
		t.Fatalf("the twin must authenticate as jane for this test to mean anything: %s %q", d.Outcome, d.User)
	}
	for name, denied := range map[string][]byte{"original denied": der, "twin denied": twin} {
		tp.SetPolicy(revokedTable(ca.CertPEM, &policy.Revocation{DeniedFingerprints: []string{fingerprint(denied)}}))
		for what, cert := range map[string]string{"original": jane, "twin": twinEncoded} {
			if d := checkCert(tp, cert); d.Outcome != Unauthenticated {
				t.Errorf("%s: %s presented: %s, want unauthenticated", name, what, d.Outcome)
			}
		}
	}
}

// flipECDSASignature re-encodes a P-256-signed certificate with its
// signature's s replaced by n-s.
func flipECDSASignature(t *testing.T, der []byte) []byte {
	t.Helper()
	var cert struct {
		TBS, SigAlg asn1.RawValue
		Sig         asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &cert); err != nil {
		t.Fatal(err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(cert.Sig.Bytes, &sig); err != nil {
		t.Fatal(err)
	}
	sig.S.Sub(elliptic.P256().Params().N, sig.S)
	sigDER, err := asn1.Marshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	cert.Sig = asn1.BitString{Bytes: sigDER, BitLength: 8 * len(sigDER)}
	out, err := asn1.Marshal(cert)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(out, der) {
		t.Fatal("twin equals the original")
	}
	return out
}

// Each CRL's nextUpdate is a gauge an operator can alert on before the CRL
// expires and every certificate of its issuer is refused: per cluster and
// issuer, the earliest of one issuer's CRLs, replaced by every policy (a
// cluster without revocation has no series).
func TestCRLNextUpdateGauge(t *testing.T) {
	ca := newTestCA(t, "client-ca")
	other := newTestCA(t, "other-ca")
	bundle := append(append([]byte{}, ca.CertPEM...), other.CertPEM...)
	tp := newTestPipeline(t, nil)
	soon, later := testNow.Add(time.Hour), testNow.Add(48*time.Hour)
	tp.SetPolicy(revokedTable(bundle, &policy.Revocation{CRLs: [][]byte{
		signCRL(t, ca.Cert, ca.Key, later),
		signCRL(t, ca.Cert, ca.Key, soon),
		signCRL(t, other.Cert, other.Key, later),
	}}))
	gauge := func(issuer *x509.Certificate) float64 {
		return testutil.ToFloat64(tp.reqMetrics.crlNextUpdate.WithLabelValues("a", issuer.Subject.String()))
	}
	if got := gauge(ca.Cert); got != float64(soon.Unix()) {
		t.Errorf("client-ca: %v, want the earlier CRL's nextUpdate %d", got, soon.Unix())
	}
	if got := gauge(other.Cert); got != float64(later.Unix()) {
		t.Errorf("other-ca: %v, want %d", got, later.Unix())
	}
	if n := testutil.CollectAndCount(tp.reqMetrics.crlNextUpdate); n != 2 {
		t.Errorf("%d series, want one per cluster and issuer (2)", n)
	}
	tp.SetPolicy(testTable(bundle))
	if n := testutil.CollectAndCount(tp.reqMetrics.crlNextUpdate); n != 0 {
		t.Errorf("%d series after the revocation was removed, want 0", n)
	}
	// The series is served where the pipeline's metrics are.
	tp.SetPolicy(revokedTable(bundle, &policy.Revocation{CRLs: [][]byte{signCRL(t, ca.Cert, ca.Key, soon)}}))
	n, err := testutil.GatherAndCount(tp.reg, "frontdoor_x509_crl_next_update_timestamp_seconds")
	if err != nil || n != 1 {
		t.Errorf("gathered %d series (%v), want 1", n, err)
	}
}

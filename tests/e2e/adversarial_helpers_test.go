package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/internal/testpki"
)

// Helpers of the adversarial suite: hostile certificates and tokens, and
// raw HTTP/1.1 over TLS for what no well-behaved client library sends.

// mintCert mints a client certificate from the sandbox CA (or a foreign
// one) with full control over the fields a hostile client plays with;
// testpki.Issue fills only what tmpl leaves zero.
func mintCert(t *testing.T, foreign bool, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	issuer := sb.CA
	if foreign {
		var err error
		if issuer, err = testpki.NewCA("foreign-ca"); err != nil {
			t.Fatal(err)
		}
	}
	c, err := issuer.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return c.CertPEM, c.KeyPEM
}

// mintSAToken signs a service-account JWT (ES256) for default/sa with the
// cluster's own signing key (or a foreign one), valid from nbf to exp.
func mintSAToken(t *testing.T, foreignKey bool, sa string, nbf, exp time.Time) string {
	t.Helper()
	var key *ecdsa.PrivateKey
	if foreignKey {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	} else {
		raw, err := os.ReadFile(filepath.Join(sb.Dir, "pki", "sa.key"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(raw)
		if block == nil {
			t.Fatal("pki/sa.key holds no PEM")
		}
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			pk, err2 := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err2 != nil {
				t.Fatalf("parsing pki/sa.key: %v / %v", err, err2)
			}
			k = pk.(*ecdsa.PrivateKey)
		}
		key = k
	}
	const iss = "https://kubernetes.default.svc.cluster.local"
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": iss, "aud": []string{iss}, "sub": "system:serviceaccount:default:" + sa,
		"iat": nbf.Unix(), "nbf": nbf.Unix(), "exp": exp.Unix(),
		"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]string{"name": sa, "uid": "00000000-0000-0000-0000-000000000000"}},
	})
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// http1Client speaks HTTP/1.1 only, so header names go on the wire exactly
// as spelled in the request's header map (case variants survive).
func http1Client(t *testing.T, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	c := httpClient(t, "", certPEM, keyPEM)
	tr := c.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return c
}

// rawExchange writes raw bytes to the gateway over TLS (HTTP/1.1, with the
// given client certificate) and returns the status codes of every response
// read until the connection closes or goes quiet.
func rawExchange(t *testing.T, ctx context.Context, certPEM, keyPEM []byte, raw string) []int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(sb.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(sb.GatewayURL, "https://"))
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatalf("writing: %v", err)
	}
	var codes []int
	br := bufio.NewReader(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return codes
		}
		_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
		resp.Body.Close()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

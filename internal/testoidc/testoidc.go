// Package testoidc is an OIDC issuer for tests: discovery and a JWKS over
// TLS, an RS256 signing key the test can rotate while a gateway runs, and a
// signer for tokens with any claims (or none at all, alg "none"). The
// request service's unit tests (authz) and the end-to-end suites
// (tests/e2e) both point k8s.io/apiserver's JWT authenticator at it. It is
// for tests only; no product (non-test) package may import it.
//
// It imports only the standard library.
package testoidc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Issuer serves /.well-known/openid-configuration and /jwks. The JWKS
// holds only the current key: after Rotate, tokens of the old key no
// longer verify.
type Issuer struct {
	srv *httptest.Server
	mu  sync.Mutex
	key *rsa.PrivateKey
	kid string
}

// New starts an issuer whose first key is named kid; it stops when tb ends.
func New(tb testing.TB, kid string) *Issuer {
	tb.Helper()
	is := &Issuer{}
	is.Rotate(tb, kid)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		key, kid := is.Key()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	is.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(is.srv.Close)
	return is
}

// URL is the issuer URL (the iss claim of its tokens).
func (is *Issuer) URL() string { return is.srv.URL }

// CAPEM is the PEM of the issuer's serving certificate, for an
// authenticator's certificateAuthority.
func (is *Issuer) CAPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw}))
}

// Rotate replaces the published key with a new one named kid and returns it.
func (is *Issuer) Rotate(tb testing.TB, kid string) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.key, is.kid = k, kid
	return k
}

// Key is the current signing key and its kid.
func (is *Issuer) Key() (*rsa.PrivateKey, string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.key, is.kid
}

// Sign signs claims with the current key.
func (is *Issuer) Sign(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	key, kid := is.Key()
	return Sign(tb, key, kid, claims)
}

// Sign signs claims with key as kid (RS256); a nil key gives an unsigned
// token (alg none), which every verifier must refuse.
func Sign(tb testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	tb.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	if key == nil {
		return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

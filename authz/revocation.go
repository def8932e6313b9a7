package authz

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// revocation is a cluster's compiled policy.Revocation: the x509
// authenticator checks every certificate of a chain that verified against
// it. It is immutable; a changed Revocation compiles a new authenticator
// with a new cache generation (SetPolicy), so no identity cached before
// the edit is answered after it: a revoked certificate is refused from the
// first request after the policy reaches the pipeline.
type revocation struct {
	denied map[[sha256.Size]byte]struct{}
	crls   []*compiledCRL
}

// compiledCRL is one CRL, indexed by serial number.
type compiledCRL struct {
	rawIssuer      []byte
	authorityKeyID []byte
	issuer         string
	// nextUpdate is when the CRL stops being authoritative (zero: never).
	nextUpdate time.Time
	serials    map[string]struct{}
}

// errRevoked refuses a revoked certificate; the client gets 401 like for
// any certificate that does not authenticate.
var errRevoked = errors.New("x509: certificate revoked")

// compileRevocation indexes r. A CRL that does not parse is an error (the
// translator has checked it; the caller then fails closed).
func compileRevocation(r *policy.Revocation) (*revocation, error) {
	if r == nil {
		return nil, nil
	}
	out := &revocation{denied: map[[sha256.Size]byte]struct{}{}}
	for _, f := range r.DeniedFingerprints {
		b, err := hex.DecodeString(f)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("denied fingerprint %q is not SHA-256 hex", f)
		}
		out.denied[[sha256.Size]byte(b)] = struct{}{}
	}
	for i, der := range r.CRLs {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i+1, err)
		}
		c := &compiledCRL{
			rawIssuer:      crl.RawIssuer,
			authorityKeyID: crl.AuthorityKeyId,
			issuer:         crl.Issuer.String(),
			nextUpdate:     crl.NextUpdate,
			serials:        make(map[string]struct{}, len(crl.RevokedCertificateEntries)),
		}
		for _, e := range crl.RevokedCertificateEntries {
			c.serials[string(e.SerialNumber.Bytes())] = struct{}{}
		}
		out.crls = append(out.crls, c)
	}
	return out, nil
}

// check refuses chain if any of its certificates (leaf and intermediates,
// as presented) has a denied fingerprint or is listed by a CRL of its
// issuer, or if a CRL of its issuer has passed its nextUpdate (fail
// closed, as OpenSSL's X509_V_ERR_CRL_HAS_EXPIRED fails a handshake in
// Envoy). Otherwise it returns the earliest nextUpdate of the CRLs it
// consulted (zero: none), which bounds how long the identity may be cached.
func (r *revocation) check(chain []*x509.Certificate, now time.Time) (time.Time, error) {
	if r == nil {
		return time.Time{}, nil
	}
	var until time.Time
	for i, c := range chain {
		if r.isDenied(c) {
			return time.Time{}, fmt.Errorf("%w: certificate %d of the chain (%q) has a denied fingerprint", errRevoked, i, c.Subject.CommonName)
		}
		for _, crl := range r.crls {
			if !crl.covers(c) {
				continue
			}
			if !crl.nextUpdate.IsZero() {
				if !now.Before(crl.nextUpdate) {
					return time.Time{}, fmt.Errorf("%w: the CRL of %q expired at %s; no certificate of that issuer is accepted until a fresh one is published",
						errRevoked, crl.issuer, crl.nextUpdate.UTC().Format(time.RFC3339))
				}
				if until.IsZero() || crl.nextUpdate.Before(until) {
					until = crl.nextUpdate
				}
			}
			if _, ok := crl.serials[string(c.SerialNumber.Bytes())]; ok {
				return time.Time{}, fmt.Errorf("%w: certificate %d of the chain (%q, serial %s) is listed in the CRL of %q",
					errRevoked, i, c.Subject.CommonName, c.SerialNumber, crl.issuer)
			}
		}
	}
	return until, nil
}

// isDenied reports whether c, or any re-encoding of it carrying the same
// signed content, has a denied fingerprint. A fingerprint names one DER
// encoding, but an ECDSA signature (r, s) is just as valid as (r, n-s):
// whoever holds a revoked certificate (and its key, which the TLS
// handshake proves) could flip s and present a certificate that verifies
// and has another fingerprint. Every other part of the encoding is fixed:
// Go parses DER strictly and requires the outer signature algorithm to be
// byte-identical to the signed inner one.
func (r *revocation) isDenied(c *x509.Certificate) bool {
	if len(r.denied) == 0 {
		return false
	}
	if _, ok := r.denied[sha256.Sum256(c.Raw)]; ok {
		return true
	}
	for _, der := range ecdsaTwins(c) {
		if _, ok := r.denied[sha256.Sum256(der)]; ok {
			return true
		}
	}
	return false
}

// ecdsaOrders are the group orders of the curves an ECDSA certificate
// signature may use. The issuer's curve is not looked up: a twin for
// another curve is merely a certificate that verifies for nobody.
var ecdsaOrders = []*big.Int{
	elliptic.P224().Params().N, elliptic.P256().Params().N,
	elliptic.P384().Params().N, elliptic.P521().Params().N,
}

// ecdsaTwins returns c re-encoded with its ECDSA signature's s replaced by
// n-s, for each curve order n it fits; nil for other signatures.
func ecdsaTwins(c *x509.Certificate) [][]byte {
	switch c.SignatureAlgorithm {
	case x509.ECDSAWithSHA1, x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
	default:
		return nil
	}
	var cert struct {
		TBS, SigAlg asn1.RawValue
		Sig         asn1.BitString
	}
	if rest, err := asn1.Unmarshal(c.Raw, &cert); err != nil || len(rest) > 0 {
		return nil
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(c.Signature, &sig); err != nil || len(rest) > 0 || sig.S.Sign() <= 0 {
		return nil
	}
	var out [][]byte
	for _, n := range ecdsaOrders {
		if sig.S.Cmp(n) >= 0 {
			continue
		}
		twinSig, err := asn1.Marshal(struct{ R, S *big.Int }{sig.R, new(big.Int).Sub(n, sig.S)})
		if err != nil {
			continue
		}
		twin := cert
		twin.Sig = asn1.BitString{Bytes: twinSig, BitLength: 8 * len(twinSig)}
		if der, err := asn1.Marshal(twin); err == nil {
			out = append(out, der)
		}
	}
	return out
}

// covers reports whether crl is the CRL of c's issuer: the same issuer
// name and, when both say, the same issuer key.
func (crl *compiledCRL) covers(c *x509.Certificate) bool {
	if !bytes.Equal(crl.rawIssuer, c.RawIssuer) {
		return false
	}
	return len(crl.authorityKeyID) == 0 || len(c.AuthorityKeyId) == 0 || bytes.Equal(crl.authorityKeyID, c.AuthorityKeyId)
}

// sameRevocation reports whether a and b list the same revocations, so
// SetPolicy may keep an authenticator (and its cached identities).
func sameRevocation(a, b *policy.Revocation) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.DeniedFingerprints, b.DeniedFingerprints) &&
		slices.EqualFunc(a.CRLs, b.CRLs, bytes.Equal)
}

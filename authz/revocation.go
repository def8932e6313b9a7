package authz

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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
		if _, ok := r.denied[sha256.Sum256(c.Raw)]; ok {
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

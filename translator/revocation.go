package translator

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/policy"
)

// Certificate revocation (spec.authentication.x509.revocation) is part of
// the request service's x509 policy, never of Envoy's config: Envoy accepts
// any client certificate (listener.go) and the request service verifies
// the chain per request, so a revocation edit changes only the policy
// table. The listener stays byte for byte the same and no connection is
// drained; a CRL in Envoy's validation context would instead apply at the
// handshake only, leaving already-open connections of a revoked client
// working.

// keyCRL is the key of the CRL Secret, named like the CA's ca.crt.
const keyCRL = "ca.crl"

// pemCRLType is the PEM block type of a CRL (RFC 7468).
const pemCRLType = "X509 CRL"

// resolveRevocation reads spec.authentication.x509.revocation into
// c.Revocation. Fingerprints that are not SHA-256 hex are spec errors; a
// CRL that cannot be read, does not parse, or is not signed by a
// certificate of the client CA is a reference error (InvalidSecret), so the
// edit is rejected and the last good version keeps serving.
func resolveRevocation(c *ClusterIR, spec *v1alpha1.UpstreamClusterSpec, secrets secretIndex) (field.ErrorList, *refError) {
	rev := spec.Authentication.X509.Revocation
	path := field.NewPath("spec", "authentication", "x509", "revocation")
	fps, errs := normalizeFingerprints(rev.DeniedFingerprints, path.Child("deniedFingerprints"))
	var crls [][]byte
	var refErr *refError
	if ref := rev.CRLSecretRef; ref != nil {
		crls, refErr = secrets.crls(*ref, c.ClientCA)
	}
	if len(fps) > 0 || len(crls) > 0 {
		c.Revocation = &policy.Revocation{CRLs: crls, DeniedFingerprints: fps}
	}
	return errs, refErr
}

// normalizeFingerprints lower-cases and strips the colons of each
// fingerprint, then sorts and deduplicates them, so two spellings of one
// list make the same policy (and the same config version).
func normalizeFingerprints(in []string, path *field.Path) ([]string, field.ErrorList) {
	var out []string
	var errs field.ErrorList
	for i, f := range in {
		n, ok := NormalizeFingerprint(f)
		if !ok {
			errs = append(errs, field.Invalid(path.Index(i), f,
				"must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated in pairs"))
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), errs
}

// NormalizeFingerprint returns f as 64 lower-case hex digits; ok is false
// when f is not a SHA-256 fingerprint (with or without colons between
// every pair of digits).
func NormalizeFingerprint(f string) (string, bool) {
	s := f
	if strings.Contains(f, ":") {
		parts := strings.Split(f, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return "", false
			}
		}
		s = strings.Join(parts, "")
	}
	if len(s) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	return strings.ToLower(s), true
}

// crls reads and checks ca.crl: PEM X509 CRL blocks (one or more) or one
// DER CRL, each signed by a certificate of the PEM bundle ca. The CRLs are
// returned as DER, sorted, so the policy does not depend on their order.
// nextUpdate is not checked here (the translator has no clock): the
// request service enforces it per request.
func (idx secretIndex) crls(ref v1alpha1.SecretReference, ca []byte) ([][]byte, *refError) {
	data, err := idx.value(ref, keyCRL)
	if err != nil {
		return nil, err
	}
	ders, perr := splitCRLs(data)
	if perr != nil {
		return nil, invalidSecret(ref, keyCRL, perr)
	}
	if ca == nil {
		return nil, invalidSecret(ref, keyCRL, fmt.Errorf("no client CA (secureServing.clientCASecretRef) to check the CRL's signature against"))
	}
	issuers, perr := parseCertificatesPEM(ca)
	if perr != nil {
		return nil, invalidSecret(ref, keyCRL, perr) // not reached: ca is checked first
	}
	for i, der := range ders {
		crl, perr := x509.ParseRevocationList(der)
		if perr != nil {
			return nil, invalidSecret(ref, keyCRL, fmt.Errorf("CRL %d: %w", i+1, perr))
		}
		if !signedByOneOf(crl, issuers) {
			return nil, invalidSecret(ref, keyCRL, fmt.Errorf("CRL %d (issuer %q) is not signed by a certificate of the client CA", i+1, crl.Issuer.String()))
		}
	}
	slices.SortFunc(ders, bytes.Compare)
	return ders, nil
}

// splitCRLs returns the DER CRLs of data: its PEM X509 CRL blocks, or data
// itself when it holds no PEM block (DER, as openssl ca -gencrl writes with
// -outform DER).
func splitCRLs(data []byte) ([][]byte, error) {
	var out [][]byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCRLType {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", len(out)+1, block.Type, pemCRLType)
		}
		out = append(out, block.Bytes)
	}
	if len(out) == 0 {
		return [][]byte{bytes.Clone(data)}, nil
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("trailing data after CRL %d", len(out))
	}
	return out, nil
}

// parseCertificatesPEM parses a PEM bundle already checked by
// checkCertificates.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// signedByOneOf reports whether one of issuers, named as the CRL's issuer,
// signed crl.
func signedByOneOf(crl *x509.RevocationList, issuers []*x509.Certificate) bool {
	for _, c := range issuers {
		if bytes.Equal(c.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(c) == nil {
			return true
		}
	}
	return false
}

package policy

// Revocation lists a cluster's revoked client certificates. It is part of
// the x509 policy: the request service refuses a presented chain holding
// any certificate listed here, and any change to it makes the service
// re-verify every certificate it had cached (see authz/revocation.go).
type Revocation struct {
	// CRLs are certificate revocation lists, DER, each already checked by
	// the translator to be signed by a certificate of ClientCAPEM; sorted.
	CRLs [][]byte `json:"crls,omitempty"`
	// DeniedFingerprints are SHA-256 fingerprints of DER certificates, 64
	// lower-case hex digits, sorted and unique.
	DeniedFingerprints []string `json:"deniedFingerprints,omitempty"`
}

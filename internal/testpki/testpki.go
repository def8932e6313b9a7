// Package testpki mints throw-away certificate authorities and certificates.
// It is for tests only: the product's unit tests, the end-to-end harness
// (tests/sandbox, whose sandbox CA is a testpki.CA) and the adversarial
// suite's hostile certificates all build on it, so there is one copy of the
// x509 plumbing. Keys are ECDSA P-256; nothing here is fit for production
// use, and no product (non-test) package may import it.
//
// It imports only the standard library.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a throw-away certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Cert is a certificate issued by a CA, with its private key.
type Cert struct {
	// Cert is the parsed certificate; Cert.Raw is its DER.
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates a self-signed CA valid from an hour ago for a day, which
// outlives any test run or sandbox session.
func NewCA(commonName string) (*CA, error) {
	return NewCAFrom(&x509.Certificate{Subject: pkix.Name{CommonName: commonName}})
}

// NewCAFrom self-signs tmpl as a CA. It fills what tmpl leaves zero: a
// random serial, validity from an hour ago for a day, and the key usages
// cert sign, digital signature and CRL sign. A test with a fixed clock sets
// NotBefore and NotAfter around it.
func NewCAFrom(tmpl *x509.Certificate) (*CA, error) {
	fillSerialAndValidity(tmpl)
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	c, err := sign(tmpl, nil, nil)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c.Cert, Key: c.Key, CertPEM: c.CertPEM, KeyPEM: c.KeyPEM}, nil
}

// ClientCert mints a client certificate the way kube-apiserver's x509
// authenticator reads it: CN is the user name, each O is a group.
func (ca *CA) ClientCert(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	c, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, nil, err
	}
	return c.CertPEM, c.KeyPEM, nil
}

// ServingCert mints a server certificate for the given DNS names and IPs.
func (ca *CA) ServingCert(commonName string, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	c, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, nil, err
	}
	return c.CertPEM, c.KeyPEM, nil
}

// Issue signs tmpl with a fresh key. It fills what tmpl leaves zero: a
// random serial, validity from an hour ago for a day, key usage digital
// signature and, for a nil ExtKeyUsage, client auth (an empty non-nil slice
// stays empty). Everything else, hostile fields included, is signed as given.
func (ca *CA) Issue(tmpl *x509.Certificate) (*Cert, error) {
	fillSerialAndValidity(tmpl)
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return sign(tmpl, ca.Cert, ca.Key)
}

// sign creates tmpl's certificate for a fresh key, signed by parent with
// parentKey, or self-signed if parent is nil.
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Cert{Cert: cert, Key: key, CertPEM: CertPEM(der), KeyPEM: keyPEM}, nil
}

// CertPEM encodes a DER certificate as a PEM CERTIFICATE block.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM encodes an ECDSA private key as a PEM EC PRIVATE KEY block.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func fillSerialAndValidity(tmpl *x509.Certificate) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

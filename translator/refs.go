package translator

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Keys read from kubernetes.io/tls Secrets.
const (
	keyTLSCert = corev1.TLSCertKey       // tls.crt
	keyTLSKey  = corev1.TLSPrivateKeyKey // tls.key
	keyCACert  = corev1.ServiceAccountRootCAKey
)

// refError is a reference that could not be resolved; reason becomes the
// ResolvedRefs condition's reason.
type refError struct {
	reason string
	msg    string
}

func (e *refError) Error() string { return e.msg }

// secretIndex finds Secrets by namespace/name. The first of two Secrets with
// the same key wins, so the result does not depend on map order. Only
// Secrets in the allowed namespaces may be referenced (nil allows any).
type secretIndex struct {
	byKey   map[string]*corev1.Secret
	allowed map[string]bool
}

func newSecretIndex(secrets []*corev1.Secret, namespaces []string) secretIndex {
	idx := secretIndex{byKey: map[string]*corev1.Secret{}}
	if len(namespaces) > 0 {
		idx.allowed = map[string]bool{}
		for _, ns := range namespaces {
			idx.allowed[ns] = true
		}
	}
	for _, s := range secrets {
		if s == nil {
			continue
		}
		k := s.Namespace + "/" + s.Name
		if _, dup := idx.byKey[k]; !dup {
			idx.byKey[k] = s
		}
	}
	return idx
}

// value returns one key of the referenced Secret's data (the apiserver, and
// DecodeInputs for files, fold stringData into data). A reference outside
// the allowed namespaces fails as RefNotPermitted, whether or not such a
// Secret exists, so the status tells an author nothing about Secrets they
// may not use.
func (idx secretIndex) value(ref v1alpha1.SecretReference, key string) ([]byte, *refError) {
	if idx.allowed != nil && !idx.allowed[ref.Namespace] {
		return nil, &refError{v1alpha1.ReasonRefNotPermitted, fmt.Sprintf(
			"Secret %s/%s: namespace %q is not one the gateway reads Secrets from (%s)",
			ref.Namespace, ref.Name, ref.Namespace, strings.Join(slices.Sorted(maps.Keys(idx.allowed)), ", "))}
	}
	s, ok := idx.byKey[ref.Namespace+"/"+ref.Name]
	if !ok {
		return nil, &refError{v1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s not found", ref.Namespace, ref.Name)}
	}
	if v, ok := s.Data[key]; ok && len(v) > 0 {
		return v, nil
	}
	return nil, &refError{v1alpha1.ReasonInvalidSecret, fmt.Sprintf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, key)}
}

// certKey reads and checks tls.crt and tls.key: every certificate must
// parse and the key must match the leaf, so Envoy never receives a pair it
// would reject (which would NACK the whole SDS update).
func (idx secretIndex) certKey(ref v1alpha1.SecretReference) (CertKeyIR, *refError) {
	crt, err := idx.value(ref, keyTLSCert)
	if err != nil {
		return CertKeyIR{}, err
	}
	key, err := idx.value(ref, keyTLSKey)
	if err != nil {
		return CertKeyIR{}, err
	}
	if err := checkCertificates(crt); err != nil {
		return CertKeyIR{}, invalidSecret(ref, keyTLSCert, err)
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		return CertKeyIR{}, invalidSecret(ref, keyTLSKey, err)
	}
	return CertKeyIR{CertPEM: crt, KeyPEM: key}, nil
}

// caBundle reads and checks ca.crt.
func (idx secretIndex) caBundle(ref v1alpha1.SecretReference) ([]byte, *refError) {
	ca, err := idx.value(ref, keyCACert)
	if err != nil {
		return nil, err
	}
	if err := checkCertificates(ca); err != nil {
		return nil, invalidSecret(ref, keyCACert, err)
	}
	return ca, nil
}

func invalidSecret(ref v1alpha1.SecretReference, key string, err error) *refError {
	return &refError{v1alpha1.ReasonInvalidSecret, fmt.Sprintf("Secret %s/%s key %q: %v", ref.Namespace, ref.Name, key, err)}
}

// checkCertificates requires data to be one or more PEM CERTIFICATE blocks,
// each a parseable X.509 certificate, and nothing else but whitespace.
func checkCertificates(data []byte) error {
	n := 0
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n+1, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate found")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return fmt.Errorf("trailing data after certificate %d", n)
	}
	return nil
}

// resolveSecrets reads every referenced Secret into c and returns the
// first failure (the ResolvedRefs condition names one).
func resolveSecrets(c *ClusterIR, spec *v1alpha1.UpstreamClusterSpec, secrets secretIndex) *refError {
	var serving, clientCA, client, ca *refError
	c.Serving, serving = secrets.certKey(spec.SecureServing.SecretRef)
	if ref := spec.SecureServing.ClientCASecretRef; ref != nil {
		c.ClientCA, clientCA = secrets.caBundle(*ref)
	}
	c.UpstreamClient, client = secrets.certKey(spec.ClientConfig.SecretRef)
	if !spec.ClientConfig.InsecureSkipTLSVerify {
		c.UpstreamCA, ca = secrets.caBundle(spec.ClientConfig.SecretRef)
	}
	return cmp.Or(serving, clientCA, client, ca, resolveFrontProxy(c, spec, secrets))
}

// checkInsecureClientConfig rejects skipping verification of the servers
// while the client Secret holds a CA to verify them with. KubeGateway
// panics on the contradiction; here it is a condition and nothing else is
// affected.
func checkInsecureClientConfig(cc v1alpha1.ClientConfig, secrets secretIndex) field.ErrorList {
	if !cc.InsecureSkipTLSVerify {
		return nil
	}
	if _, err := secrets.value(cc.SecretRef, keyCACert); err != nil {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("spec", "clientConfig", "insecureSkipTLSVerify"), true, fmt.Sprintf(
		"Secret %s/%s has a %s: verify the servers with the CA or skip verification, not both",
		cc.SecretRef.Namespace, cc.SecretRef.Name, keyCACert))}
}

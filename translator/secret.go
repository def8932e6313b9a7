package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// secrets are the SDS resources of one cluster. Certificates travel by SDS
// rather than inline in listeners and clusters so that a rotated certificate
// updates one small resource and no listener drains.
func secrets(c *ClusterIR) []*tlsv3.Secret {
	out := []*tlsv3.Secret{
		tlsCertificateSecret(envoy.ServingSecretName(c.Name), c.Serving),
		tlsCertificateSecret(envoy.UpstreamClientSecretName(c.Name), c.UpstreamClient),
	}
	if c.UpstreamCA != nil { // nil: clientConfig.insecureSkipTLSVerify
		out = append(out, trustedCASecret(envoy.UpstreamCASecretName(c.Name), c.UpstreamCA))
	}
	if c.ClientCA != nil {
		out = append(out, trustedCASecret(envoy.ClientCASecretName(c.Name), c.ClientCA))
	}
	return out
}

func tlsCertificateSecret(name string, ck CertKeyIR) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineBytes(ck.CertPEM),
		PrivateKey:       inlineBytes(ck.KeyPEM),
	}}}
}

// trustedCASecret is a validation context with only the CA: how strictly it
// is applied (ACCEPT_UNTRUSTED downstream) is decided by the consumer, so
// the same secret shape works for both directions.
func trustedCASecret(name string, ca []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inlineBytes(ca),
	}}}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// sdsSecret references an SDS secret delivered over ADS.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsConfigSource()}
}

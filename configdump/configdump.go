// Package configdump renders the configuration frontdoor is serving (the
// translator's output: statuses, xDS resources, request-service policy) as
// JSON for people, with every secret redacted: private keys never appear,
// certificates appear only as subject, issuer, validity and fingerprint.
//
// It backs `GET /debug/config` on frontdoor's HTTP address.
//
// It reads the translator's output only; it must not import xds, source or
// the request service.
package configdump

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// Dump is the JSON document served at /debug/config.
type Dump struct {
	// Version is the config version (xDS snapshot and policy table).
	Version string `json:"version"`
	// Statuses are the UpstreamClusters' conditions as the control plane
	// sets them.
	Statuses []translator.Status `json:"statuses"`
	// Policy is the request service's table, by cluster name, as
	// policy.Table.View derives it: fields that hold PEM become certificate
	// summaries (private keys only named).
	Policy map[string]map[string]any `json:"policy"`
	// Resources are the xDS resources by short type (Cluster, Listener,
	// ...). Secrets are summarized, never dumped.
	Resources map[string][]json.RawMessage `json:"resources"`
}

// Certificate is what a dump shows of a certificate.
type Certificate struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the fingerprint of the DER certificate.
	SHA256 string `json:"sha256"`
}

// PEMBlock is one PEM block of a redacted field: a certificate summary, or
// only the block type (private keys and anything else).
type PEMBlock struct {
	Type        string       `json:"type"`
	Certificate *Certificate `json:"certificate,omitempty"`
	Redacted    bool         `json:"redacted,omitempty"`
}

// secretSummary stands in for an SDS Secret.
type secretSummary struct {
	Name string `json:"name"`
	// Kind is tlsCertificate or validationContext.
	Kind        string     `json:"kind"`
	Certificate []PEMBlock `json:"certificateChain,omitempty"`
	PrivateKey  string     `json:"privateKey,omitempty"`
	TrustedCA   []PEMBlock `json:"trustedCA,omitempty"`
}

// Build renders out; nil (nothing published yet) gives an empty dump.
func Build(out *translator.Output) (*Dump, error) {
	d := &Dump{Policy: map[string]map[string]any{}, Resources: map[string][]json.RawMessage{}, Statuses: []translator.Status{}}
	if out == nil {
		return d, nil
	}
	d.Version = out.Version
	d.Statuses = out.Statuses
	if out.Policy != nil {
		v, err := out.Policy.View(func(_ string, b []byte) any { return PEMBlocks(b) })
		if err != nil {
			return nil, err
		}
		clusters, _ := v["clusters"].(map[string]any)
		for name, c := range clusters {
			if m, ok := c.(map[string]any); ok {
				d.Policy[name] = m
			}
		}
	}
	typeURLs := make([]string, 0, len(out.Resources))
	for t := range out.Resources {
		typeURLs = append(typeURLs, t)
	}
	slices.Sort(typeURLs)
	for _, t := range typeURLs {
		short := t[strings.LastIndex(t, ".")+1:]
		for _, r := range out.Resources[t] {
			var (
				b   []byte
				err error
			)
			if t == resourcev3.SecretType {
				b, err = json.Marshal(summarizeSecret(r)) //nolint:gosec // privateKey is always "[redacted]"
			} else {
				b, err = protojson.MarshalOptions{}.Marshal(r.(proto.Message))
			}
			if err != nil {
				return nil, err
			}
			d.Resources[short] = append(d.Resources[short], b)
		}
	}
	return d, nil
}

// Handler serves Build(current()) as indented JSON.
func Handler(current func() *translator.Output) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d, err := Build(current())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d)
	})
}

// summarizeSecret never returns key bytes: a Secret's private key becomes
// "[redacted]", its certificates become summaries.
func summarizeSecret(r any) secretSummary {
	s, ok := r.(*tlsv3.Secret)
	if !ok {
		return secretSummary{Kind: "unknown"}
	}
	out := secretSummary{Name: s.GetName()}
	switch {
	case s.GetTlsCertificate() != nil:
		out.Kind = "tlsCertificate"
		out.Certificate = PEMBlocks(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
		out.PrivateKey = "[redacted]"
	case s.GetValidationContext() != nil:
		out.Kind = "validationContext"
		out.TrustedCA = PEMBlocks(s.GetValidationContext().GetTrustedCa().GetInlineBytes())
	default:
		out.Kind = "other"
	}
	return out
}

// PEMBlocks summarizes every PEM block in b: certificates by subject,
// issuer, validity and fingerprint; anything else by its type only.
func PEMBlocks(b []byte) []PEMBlock {
	out := []PEMBlock{}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		pb := PEMBlock{Type: block.Type}
		if cert, err := x509.ParseCertificate(block.Bytes); block.Type == "CERTIFICATE" && err == nil {
			sum := sha256.Sum256(cert.Raw)
			pb.Certificate = &Certificate{
				Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
				NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
				SHA256: hex.EncodeToString(sum[:]),
			}
		} else {
			pb.Redacted = true
		}
		out = append(out, pb)
	}
}

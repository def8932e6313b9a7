package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// userAgent names the prober in the apiservers' audit logs and metrics.
const userAgent = "frontdoor-health-probe"

// client sends one target's probes: HTTP/2 over mutual TLS with the
// gateway's client certificate, verifying the server as Envoy does
// (translator's upstreamTLS): by the cluster's CA and a SAN naming one of
// its servers, not by the address dialled.
type client struct {
	spec translator.ProbeTarget
	tls  *tls.Config
	url  string

	mu sync.Mutex
	tr *http.Transport
}

func newClient(spec translator.ProbeTarget) (*client, error) {
	pair, err := tls.X509KeyPair(spec.ClientCertPEM, spec.ClientKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ServerName:   spec.ServerName,
		MinVersion:   tls.VersionTLS12,
		// Verified below by CA and SAN; Go's own check would want the
		// dialled name, which is an IP address the certificate need not
		// name (Envoy does not check it either).
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection checks chain and SAN
	}
	if spec.CAPEM != nil {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(spec.CAPEM) {
			return nil, errors.New("no certificate in the upstream CA bundle")
		}
		sans := spec.SANs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyServer(cs, roots, sans) }
	}
	c := &client{spec: spec, tls: cfg, url: "https://" + spec.Address + spec.Path}
	c.tr = c.newTransport()
	return c, nil
}

func (c *client) newTransport() *http.Transport {
	return &http.Transport{
		TLSClientConfig:   c.tls.Clone(),
		ForceAttemptHTTP2: true,
		DialContext:       (&net.Dialer{}).DialContext,
		Proxy:             nil, // the servers are reached directly, as Envoy does
	}
}

// reset drops the connection, so a hung one does not carry the next probe
// (Envoy closes its health-check connection on a failure too).
func (c *client) reset() {
	c.mu.Lock()
	old := c.tr
	c.tr = c.newTransport()
	c.mu.Unlock()
	old.CloseIdleConnections()
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tr.CloseIdleConnections()
}

// send sends one probe bounded by the target's timeout.
func send(ctx context.Context, c *client) result {
	ctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return unreachable
	}
	req.Host = c.spec.Host
	req.Header.Set("User-Agent", userAgent)
	c.mu.Lock()
	tr := c.tr
	c.mu.Unlock()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return unreachable
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return unreachable
	}
	if resp.StatusCode != http.StatusOK {
		return refused
	}
	return passed
}

// verifyServer checks the server's chain against roots and that its leaf
// carries one of sans (an IP SAN for an IP, a DNS SAN for a name, a DNS
// prefix for a prefix), as Envoy's match_typed_subject_alt_names does.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, sans []translator.SANIR) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no server certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return err
	}
	for _, want := range sans {
		if want.IsIP {
			for _, ip := range leaf.IPAddresses {
				if ip.String() == want.Name {
					return nil
				}
			}
			continue
		}
		for _, name := range leaf.DNSNames {
			name = strings.ToLower(name)
			if name == want.Name || (want.Prefix && strings.HasPrefix(name, want.Name)) || wildcardMatch(name, want.Name) {
				return nil
			}
		}
	}
	return errors.New("server certificate names none of the cluster's servers")
}

// wildcardMatch reports whether SAN pattern (e.g. *.example.com) covers
// host by RFC 6125: the wildcard is the whole leftmost label.
func wildcardMatch(pattern, host string) bool {
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	_, hostRest, ok := strings.Cut(host, ".")
	return ok && hostRest == rest
}

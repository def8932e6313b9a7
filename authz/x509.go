package authz

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// maxCertificateLen bounds the URL-encoded PEM we are willing to parse; a
// real client chain is a few KB, Envoy's own header limits are far lower.
const maxCertificateLen = 64 << 10

// x509Authenticator authenticates the client certificate Envoy verified
// the TLS handshake with, re-verifying it against the cluster's client CA
// with kube-apiserver's own x509 authenticator behind its authenticated-group
// adder, as kube-apiserver chains them (so user, groups including
// system:authenticated, uid and credential-id are exactly what the apiserver
// would derive, for rule matching as for forwarding). Results are cached per
// (CA generation, certificate).
type x509Authenticator struct {
	certOutcomes
	auth k8sauthn.Request
	// revoked are the revoked certificates (revocation.go); nil: none. Part
	// of the generation: a new list is a new authenticator.
	revoked *revocation
}

func (p *Pipeline) newX509Authenticator(caPEM []byte, rev *policy.Revocation) (*x509Authenticator, error) {
	roots, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing client CA bundle: %w", err)
	}
	revoked, err := compileRevocation(rev)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	opts := x509request.DefaultVerifyOptions()
	opts.Roots = x509.NewCertPool()
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	verifyOpts := p.verifyOptions(opts)
	return &x509Authenticator{
		certOutcomes: p.newCertOutcomes(roots),
		// The group adder also decides what the apiserver does with the
		// forwarded identity: a user whose only group is
		// system:authenticated forwards it as an explicit group, so an
		// impersonated user named like a service account never gains
		// service-account groups it did not have (forwardedGroups).
		auth:    group.NewAuthenticatedGroupAdder(x509request.NewDynamic(verifyOpts, x509request.CommonNameUserConversion)),
		revoked: revoked,
	}, nil
}

func (a *x509Authenticator) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	if req.PeerCertificate == "" {
		return nil, false, nil
	}
	return a.remember(hashString(req.PeerCertificate), func() (*identity, time.Time, error) {
		id, notAfter, err := a.verify(ctx, req.PeerCertificate)
		if id == nil && err == nil {
			// What the apiserver's authenticator says for, e.g., no CN.
			err = errors.New("x509: certificate did not authenticate a user")
		}
		return id, notAfter, err
	})
}

// certOutcomes caches the outcomes of a certificate authenticator (client
// certificates, front proxies) in the pipeline's verified-identity cache.
type certOutcomes struct {
	// gen is unique per built authenticator: a new CA (or revocation or
	// allowed-name list) never sees old cache entries.
	gen   uint64
	cache *authnCache
	now   func() time.Time
	// rootsNotAfter is the earliest expiry among the CA bundle: no cached
	// identity outlives the roots it was verified against.
	rootsNotAfter time.Time
}

func (p *Pipeline) newCertOutcomes(roots []*x509.Certificate) certOutcomes {
	return certOutcomes{gen: p.gen.Add(1), cache: p.cache, now: p.now, rootsNotAfter: earliestNotAfter(roots)}
}

// remember answers the credential hashed to sum from the cache, or runs
// verify and remembers what it says: a new identity until notAfter, capped
// at the roots' expiry, which also bounds its replays (identity.until); an
// error as a negative entry. An outcome that is neither (not this
// authenticator's kind of request) is not remembered.
func (o *certOutcomes) remember(sum [sha256.Size]byte, verify func() (*identity, time.Time, error)) (*identity, bool, error) {
	key := authnCacheKey{gen: o.gen, sum: sum}
	if r, ok := o.cache.get(key); ok {
		return r.id, r.id != nil, r.err
	}
	id, notAfter, err := verify()
	if id == nil {
		if err != nil {
			o.cache.addNegative(key, err)
		}
		return nil, false, err
	}
	if o.rootsNotAfter.Before(notAfter) {
		notAfter = o.rootsNotAfter
	}
	id.until = notAfter // id is new (verify): not shared yet
	o.cache.add(key, id, notAfter.Sub(o.now()))
	return id, true, nil
}

// verify parses Envoy's URL-encoded PEM chain and runs the apiserver's x509
// authenticator on it. It returns the identity and the earliest NotAfter of
// the presented chain.
func (a *x509Authenticator) verify(ctx context.Context, encoded string) (*identity, time.Time, error) {
	id, chain, err := verifyChain(ctx, a.auth, encoded, nil)
	if id == nil {
		return nil, time.Time{}, err
	}
	// Only a chain that verified is checked for revocation: an unverified
	// one is refused anyway, and its certificates were never trusted.
	crlUntil, err := a.revoked.check(chain, a.now())
	if err != nil {
		return nil, time.Time{}, err
	}
	notAfter := earliestNotAfter(chain)
	if !crlUntil.IsZero() && crlUntil.Before(notAfter) {
		notAfter = crlUntil // re-checked once the CRL expires
	}
	return id, notAfter, nil
}

// verifyChain parses Envoy's URL-encoded PEM chain (parseCertificateChain)
// and runs a kube-apiserver request authenticator on it, with header (a
// front proxy's X-Remote-* fields; nil for a client certificate): the
// identity it derives, if any, and the chain.
func verifyChain(ctx context.Context, auth k8sauthn.Request, encoded string, header http.Header) (*identity, []*x509.Certificate, error) {
	chain, err := parseCertificateChain(encoded)
	if err != nil {
		return nil, nil, err
	}
	hr := (&http.Request{TLS: &tls.ConnectionState{PeerCertificates: chain}, Header: header}).WithContext(ctx)
	resp, ok, err := auth.AuthenticateRequest(hr)
	if err != nil || !ok {
		return nil, nil, err
	}
	id, err := newIdentity(resp.User)
	if err != nil {
		return nil, nil, err
	}
	return id, chain, nil
}

// earliestNotAfter is when the first of certs expires (certs is not
// empty: a parsed chain or CA bundle).
func earliestNotAfter(certs []*x509.Certificate) time.Time {
	notAfter := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return notAfter
}

// parseCertificateChain decodes Envoy's attributes.source.certificate: the
// peer certificate, PEM, percent-encoded. PathUnescape (not QueryUnescape)
// keeps a literal '+' of base64 intact. Every PEM block must be a
// certificate; the first is the leaf, the rest are offered as
// intermediates, as the apiserver does with a TLS peer chain.
func parseCertificateChain(encoded string) ([]*x509.Certificate, error) {
	if len(encoded) > maxCertificateLen {
		return nil, errors.New("x509: peer certificate too large")
	}
	raw, err := url.PathUnescape(encoded)
	if err != nil {
		return nil, fmt.Errorf("x509: peer certificate is not URL-encoded: %w", err)
	}
	rest := []byte(raw)
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("x509: unexpected PEM block %q in peer certificate", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("x509: parsing peer certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("x509: peer certificate holds no PEM certificate")
	}
	return chain, nil
}

// authnCacheKey identifies one credential under one authenticator
// generation. The credential is hashed so the cache holds no secrets and
// keys stay small.
type authnCacheKey struct {
	gen uint64
	sum [sha256.Size]byte
}

// hashString is sha256 of s without copying s into one large []byte on
// every request (the certificate is a couple of KB, hashed per request).
func hashString(s string) (sum [sha256.Size]byte) {
	h := sha256.New()
	var buf [512]byte
	for s != "" {
		n := copy(buf[:], s)
		_, _ = h.Write(buf[:n]) // hash.Hash.Write never fails
		s = s[n:]
	}
	h.Sum(sum[:0])
	return sum
}

// authnResult is a cached authentication outcome: an identity, or the
// error that refused the credential.
type authnResult struct {
	id  *identity
	err error
}

// authnCache remembers authentication outcomes. Positive and negative
// results live in separate LRUs so a flood of bad credentials cannot evict
// the identities of well-behaved clients.
type authnCache struct {
	pos, neg       *cache.LRUExpireCache
	maxTTL, negTTL time.Duration
	metrics        *metrics
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func newAuthnCache(size int, maxTTL, negTTL time.Duration, now func() time.Time, m *metrics) *authnCache {
	negSize := max(size/4, 16)
	return &authnCache{
		pos:     cache.NewLRUExpireCacheWithClock(size, clockFunc(now)),
		neg:     cache.NewLRUExpireCacheWithClock(negSize, clockFunc(now)),
		maxTTL:  maxTTL,
		negTTL:  negTTL,
		metrics: m,
	}
}

func (c *authnCache) get(k authnCacheKey) (authnResult, bool) {
	if v, ok := c.pos.Get(k); ok {
		c.metrics.cacheHit.Inc()
		return authnResult{id: v.(*identity)}, true
	}
	if c.negTTL > 0 {
		if v, ok := c.neg.Get(k); ok {
			c.metrics.cacheHit.Inc()
			return authnResult{err: v.(error)}, true
		}
	}
	c.metrics.cacheMiss.Inc()
	return authnResult{}, false
}

// add caches id for ttl, capped at the cache's maximum; a non-positive ttl
// (credential expiring now) is not cached.
func (c *authnCache) add(k authnCacheKey, id *identity, ttl time.Duration) {
	ttl = min(ttl, c.maxTTL)
	if ttl <= 0 {
		return
	}
	c.pos.Add(k, id, ttl)
}

func (c *authnCache) addNegative(k authnCacheKey, err error) {
	if c.negTTL > 0 {
		c.neg.Add(k, err, c.negTTL)
	}
}

// verifyOptions serves opts for every verification, with the pipeline's
// clock when a test injected one (certificate validity follows it).
func (p *Pipeline) verifyOptions(opts x509.VerifyOptions) x509request.VerifyOptionFunc {
	if !p.injectedNow {
		return x509request.StaticVerifierFn(opts)
	}
	return func() (x509.VerifyOptions, bool) {
		o := opts
		o.CurrentTime = p.now()
		return o, true
	}
}

package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// frontProxyAuthenticator accepts front-proxy clients
// (spec.authentication.requestHeader): a client whose certificate chains
// to the front-proxy CA and whose CN is an allowed name names the user in
// X-Remote-User, -Uid, -Group and -Extra-*. It is kube-apiserver's own
// requestheader authenticator (certificate verification, allowed names,
// header parsing and extra-key unescaping) behind its authenticated-group
// adder, so the user it yields is exactly the one kube-apiserver would
// derive from the same request.
//
// As in kube-apiserver it runs first, and a request without X-Remote-User
// is not its kind (the next authenticator tries): a proxy's own
// certificate then authenticates only if the cluster's client CA also
// signed it.
//
// Outcomes are cached per (generation, certificate chain and every
// X-Remote-* field), as x509Authenticator caches certificates: verifying
// the proxy's chain is most of the work (tens of µs per request, on an
// Envoy worker in process), and a front proxy sends the same few users
// again and again. A positive entry lives until the chain (or a CA root)
// expires, at most the identity cache's TTL, which also makes its
// decisions replayable in process (identity.until).
type frontProxyAuthenticator struct {
	certOutcomes
	auth k8sauthn.Request
}

// Header names a front proxy sends (lowercase, as Envoy hands them over).
var (
	frontProxyUser        = strings.ToLower(headerRemoteUser)
	frontProxyUID         = strings.ToLower(headerRemoteUID)
	frontProxyGroup       = strings.ToLower(headerRemoteGroup)
	frontProxyExtraPrefix = strings.ToLower(headerRemoteExtraPrefix)
)

func (p *Pipeline) newFrontProxyAuthenticator(fp *policy.FrontProxy) (*frontProxyAuthenticator, error) {
	if len(fp.AllowedNames) == 0 {
		// kube-apiserver would trust any certificate of the CA; the
		// translator refuses that, and so does this (fail closed).
		return nil, errors.New("front proxy has no allowed names")
	}
	roots, err := certutil.ParseCertsPEM(fp.ClientCAPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing front-proxy CA bundle: %w", err)
	}
	opts := x509request.DefaultVerifyOptions()
	opts.Roots = x509.NewCertPool()
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	verifyOpts := p.verifyOptions(opts)
	list := func(v ...string) headerrequest.StringSliceProvider { return headerrequest.StaticStringSlice(v) }
	auth := headerrequest.NewDynamicVerifyOptionsSecure(verifyOpts, headerrequest.StaticStringSlice(fp.AllowedNames),
		list(headerRemoteUser), list(headerRemoteUID), list(headerRemoteGroup), list(headerRemoteExtraPrefix))
	return &frontProxyAuthenticator{certOutcomes: p.newCertOutcomes(roots), auth: group.NewAuthenticatedGroupAdder(auth)}, nil
}

// sameFrontProxy reports whether two front-proxy policies verify alike:
// the same CA bundle and the same allowed names, in order.
func sameFrontProxy(a, b *policy.FrontProxy) bool {
	return a != nil && b != nil && bytes.Equal(a.ClientCAPEM, b.ClientCAPEM) && slices.Equal(a.AllowedNames, b.AllowedNames)
}

func (a *frontProxyAuthenticator) authenticate(ctx context.Context, req *Request) (*identity, bool, error) {
	if req.PeerCertificate == "" || header(req.Headers, frontProxyUser) == "" {
		return nil, false, nil
	}
	return a.remember(frontProxyKey(req), func() (*identity, time.Time, error) {
		id, chain, err := verifyChain(ctx, a.auth, req.PeerCertificate, frontProxyHeaders(req.Headers))
		if id == nil {
			return nil, time.Time{}, err
		}
		return id, earliestNotAfter(chain), nil
	})
}

// frontProxyKey is the cache key of a front-proxy request: sha256 of its
// certificate chain's hash (hashString) and of every X-Remote-* field in
// name order, each length-prefixed, which is all the requestheader
// authenticator reads.
func frontProxyKey(req *Request) [sha256.Size]byte {
	var names []string
	for k := range req.Headers {
		if hasPrefixFold(k, remotePrefix) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	cert := hashString(req.PeerCertificate)
	h := sha256.New()
	_, _ = h.Write(cert[:]) // hash.Hash.Write never fails
	var n [8]byte
	field := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		_, _ = h.Write(n[:])
		_, _ = h.Write([]byte(s))
	}
	for _, k := range names {
		field(k)
		field(req.Headers[k])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// frontProxyHeaders returns the client's X-Remote-* headers as the
// apiserver's HTTP server would hand them to its authenticator: canonical
// names, one value per field. Envoy (and the other adapters) join repeated
// fields with ",", so group and extra values are split there again; the
// user and uid are single-valued and taken whole (a user name may contain
// commas, as LDAP names do). A group or extra value containing a comma
// therefore reaches the apiserver as several values: a front proxy must
// not send such values (it could name those groups directly anyway).
func frontProxyHeaders(h map[string]string) http.Header {
	out := http.Header{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, remotePrefix) {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case lk == frontProxyUser, lk == frontProxyUID:
			out[name] = []string{v}
		case lk == frontProxyGroup, strings.HasPrefix(lk, frontProxyExtraPrefix):
			for part := range strings.SplitSeq(v, ",") {
				out[name] = append(out[name], strings.TrimSpace(part))
			}
		}
	}
	return out
}

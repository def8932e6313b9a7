package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// identity is an authenticated user plus the impersonation headers that
// forward it, computed once when the identity is created (and cached with
// it) so the hot path only copies them.
type identity struct {
	user user.Info
	// headers are the Impersonate-* header fields naming user, in order.
	headers []Header
}

// Impersonation header names, as kube-apiserver reads them.
const (
	headerImpersonateUser        = authenticationv1.ImpersonateUserHeader
	headerImpersonateGroup       = authenticationv1.ImpersonateGroupHeader
	headerImpersonateUID         = authenticationv1.ImpersonateUIDHeader
	headerImpersonateExtraPrefix = authenticationv1.ImpersonateUserExtraHeaderPrefix

	impersonatePrefix = "impersonate-"
	remotePrefix      = "x-remote-"
	headerAuthz       = "authorization"
)

// newIdentity precomputes the impersonation headers for u. It refuses
// identities that headers cannot carry faithfully: a control character
// would be rejected on the wire, and leading or trailing whitespace would be
// trimmed by the apiserver's HTTP parser, silently naming another user.
func newIdentity(u user.Info) (*identity, error) {
	if u.GetName() == "" {
		return nil, errors.New("identity has no user name")
	}
	id := &identity{user: u}
	add := func(name, value string) error {
		if !validHeaderValue(value) {
			return fmt.Errorf("identity field %s has a value headers cannot carry", name)
		}
		id.headers = append(id.headers, Header{Name: name, Value: value})
		return nil
	}
	if err := add(headerImpersonateUser, u.GetName()); err != nil {
		return nil, err
	}
	if uid := u.GetUID(); uid != "" {
		if err := add(headerImpersonateUID, uid); err != nil {
			return nil, err
		}
	}
	for _, g := range u.GetGroups() {
		if err := add(headerImpersonateGroup, g); err != nil {
			return nil, err
		}
	}
	extra := u.GetExtra()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := headerImpersonateExtraPrefix + escapeExtraKey(k)
		for _, v := range extra[k] {
			if err := add(name, v); err != nil {
				return nil, err
			}
		}
	}
	return id, nil
}

// anonymousIdentity is who a request without credentials is, when the
// cluster allows it: kube-apiserver's anonymous authenticator's user.
var anonymousIdentity = func() *identity {
	id, err := newIdentity(&user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}})
	if err != nil {
		panic(err)
	}
	return id
}()

// planHeaders is the header plan for forwarding id under rule: remove
// Authorization, every client-sent Impersonate-* header and any X-Remote-*
// header, so the client can neither keep its credential upstream nor add to
// its identity; then add the identity's Impersonate-* fields and the rule
// header. Removals are lowercase and sorted.
func planHeaders(id *identity, rule string, client map[string]string) (set []Header, remove []string) {
	set = make([]Header, 0, len(id.headers)+1)
	set = append(set, id.headers...)
	set = append(set, Header{Name: envoy.HeaderRule, Value: rule})

	remove = append(remove, headerAuthz)
	// A bearer token in the WebSocket subprotocols never leaves either,
	// whichever credential authenticated: the other subprotocols stay.
	if v := header(client, headerWSProtocol); v != "" {
		if filtered, found := stripBearerProtocol(v); found {
			if filtered == "" {
				remove = append(remove, headerWSProtocol)
			} else {
				set = append(set, Header{Name: headerWSProtocol, Value: filtered})
			}
		}
	}
	for k := range client {
		lk := k
		if hasUpper(k) {
			lk = strings.ToLower(k)
		}
		switch {
		case lk == headerAuthz:
			continue
		case strings.HasPrefix(lk, impersonatePrefix):
		case strings.HasPrefix(lk, remotePrefix): // user, group, extra-*, uid, and any other
		default:
			continue
		}
		if !slices.Contains(remove, lk) {
			remove = append(remove, lk)
		}
	}
	if len(remove) > 1 {
		slices.Sort(remove)
	}
	return set, remove
}

// escapeExtraKey percent-encodes an extra key for an Impersonate-Extra-*
// header name the way client-go's impersonating transport does (every byte
// that is not an HTTP token character, and '%', becomes %XX), so
// kube-apiserver's url.PathUnescape restores it. Hex digits are lowercase:
// Envoy lowercases header names anyway and the apiserver lowercases the
// name before unescaping, so this is also what reaches it on the wire.
func escapeExtraKey(key string) string {
	n := 0
	for i := 0; i < len(key); i++ {
		if shouldEscape(key[i]) {
			n++
		}
	}
	if n == 0 {
		return key
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(key) + 2*n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if shouldEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// shouldEscape mirrors client-go's transport.shouldEscape: keep RFC 7230
// token characters except '%', which url.PathUnescape would misread.
func shouldEscape(c byte) bool {
	if c == '%' {
		return true
	}
	return !isTokenChar(c)
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&'*+-.^_`|~", c) >= 0
}

// validHeaderValue accepts what Envoy and Go's HTTP server carry unchanged:
// no control characters (tab included) and no surrounding spaces.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return !strings.HasPrefix(v, " ") && !strings.HasSuffix(v, " ")
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

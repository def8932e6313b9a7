package authz

import (
	"errors"
	"slices"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// identity is an authenticated user plus the header fields that forward
// it in each forwarding mode (forwarding.go), computed once when the
// identity is created (and cached with it) so the hot path only copies them.
type identity struct {
	user user.Info
	// headers are the header fields naming user in each forwarding mode,
	// in order: Impersonate-* and X-Remote-*.
	headers [forwardingModes][]Header
	// until is how long a decision for this identity may be replayed
	// (Decision.ReplayUntil): the end of the credential's validity as the
	// authenticator checked it (a client's or a front proxy's certificate
	// chain; a TokenReview's freshness in the token cache; a JWT's time in
	// the identity cache; never, for the anonymous user, who has no
	// credential to expire). Zero (impersonated users, WebSocket tokens'
	// identities) never replays. Set before the identity is shared.
	until time.Time
}

// Header names and prefixes the pipeline reads or strips.
const (
	impersonatePrefix = "impersonate-"
	remotePrefix      = "x-remote-"
	headerAuthz       = "authorization"
)

// newIdentity precomputes the forwarding headers for u. It refuses
// identities that headers cannot carry faithfully: a control character
// would be rejected on the wire, and leading or trailing whitespace would be
// trimmed by the apiserver's HTTP parser, silently naming another user.
func newIdentity(u user.Info) (*identity, error) {
	if u.GetName() == "" {
		return nil, errors.New("identity has no user name")
	}
	id := &identity{user: u}
	for f, names := range forwardingNames {
		hs, err := forwardedFields(u, names)
		if err != nil {
			return nil, err
		}
		id.headers[f] = hs
	}
	return id, nil
}

// anonymousIdentity is who a request without credentials is, when the
// cluster allows it: kube-apiserver's anonymous authenticator's user. No
// credential stands behind it, so nothing of it expires (until is the far
// future): its decisions replay for as long as any (replayUntil).
var anonymousIdentity = func() *identity {
	id, err := newIdentity(&user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}})
	if err != nil {
		panic(err)
	}
	id.until = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)
	return id
}()

// planHeaders is the header plan for forwarding id in mode f under rule:
// remove Authorization, every client-sent Impersonate-* header and any
// X-Remote-* header (a front proxy's too: its identity is forwarded as
// ours), so the client can neither keep its credential upstream nor add to
// its identity, whichever mode forwards it; then add the identity's fields
// of mode f and the rule header. Removals are lowercase and sorted.
func planHeaders(id *identity, f forwarding, rule string, client map[string]string) (set []Header, remove []string) {
	fields := id.headers[f]
	set = make([]Header, 0, len(fields)+1)
	set = append(set, fields...)
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

package authz

import (
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/kubefrontdoor/frontdoor/policy"
)

// forwarding is how a cluster's requests tell its apiservers who the user
// is (spec.clientConfig.identityForwarding). The two modes forward the same
// fields (user, uid, each group, each extra value) under different header
// names, so a mode is nothing but its names: identities precompute the
// fields of every mode once, and the hot path picks a slice.
type forwarding uint8

const (
	// forwardImpersonation sends Impersonate-*: the apiserver authorizes
	// the gateway to impersonate each field, and audits the gateway as the
	// user and the client as impersonatedUser.
	forwardImpersonation forwarding = iota
	// forwardRequestHeader sends kube-apiserver's front-proxy headers
	// (X-Remote-*): the apiserver trusts them because the gateway's client
	// certificate is one of its requestheader client names, and audits
	// the real user as user.
	forwardRequestHeader

	forwardingModes
)

// forwardingOf is the mode a cluster policy names; anything but
// RequestHeader is impersonation (the default).
func forwardingOf(c *policy.Cluster) forwarding {
	if c.Forwarding == policy.ForwardingRequestHeader {
		return forwardRequestHeader
	}
	return forwardImpersonation
}

// identityHeaderNames are the header names that carry one identity.
type identityHeaderNames struct {
	user, uid, group, extraPrefix string
}

// Front-proxy header names: kube-apiserver's suggested
// --requestheader-username-headers, -uid-headers, -group-headers and
// -extra-headers-prefix, which the apiservers must be started with. The
// uid header needs kube-apiserver 1.32 or later (feature RemoteRequestHeaderUID,
// beta and on by default since 1.33): an apiserver without
// --requestheader-uid-headers ignores it and the forwarded user has no uid.
const (
	headerRemoteUser        = "X-Remote-User"
	headerRemoteUID         = "X-Remote-Uid"
	headerRemoteGroup       = "X-Remote-Group"
	headerRemoteExtraPrefix = "X-Remote-Extra-"
)

// forwardingNames are the header names of each mode.
var forwardingNames = [forwardingModes]identityHeaderNames{
	forwardImpersonation: {
		user:        authenticationv1.ImpersonateUserHeader,
		uid:         authenticationv1.ImpersonateUIDHeader,
		group:       authenticationv1.ImpersonateGroupHeader,
		extraPrefix: authenticationv1.ImpersonateUserExtraHeaderPrefix,
	},
	forwardRequestHeader: {
		user:        headerRemoteUser,
		uid:         headerRemoteUID,
		group:       headerRemoteGroup,
		extraPrefix: headerRemoteExtraPrefix,
	},
}

// isIdentityHeader reports whether name is a header some forwarding mode
// carries an identity in (any case): what the ext_authz adapter hands to
// the identity filter to add one field per value.
func isIdentityHeader(name string) bool {
	return hasPrefixFold(name, impersonatePrefix) || hasPrefixFold(name, remotePrefix)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// forwardedFields are the header fields naming u under names, in order:
// user, uid, groups (forwardedGroups), then extras by sorted key (each
// value its own field, the key escaped as both the impersonation filter and
// the requestheader authenticator unescape it: lowercased, then
// url.PathUnescape). It refuses a value headers cannot carry faithfully.
func forwardedFields(u user.Info, names identityHeaderNames) ([]Header, error) {
	var out []Header
	add := func(name, value string) error {
		if !validHeaderValue(value) {
			return fmt.Errorf("identity field %s has a value headers cannot carry", name)
		}
		out = append(out, Header{Name: name, Value: value})
		return nil
	}
	if err := add(names.user, u.GetName()); err != nil {
		return nil, err
	}
	if uid := u.GetUID(); uid != "" {
		if err := add(names.uid, uid); err != nil {
			return nil, err
		}
	}
	for _, g := range forwardedGroups(u) {
		if err := add(names.group, g); err != nil {
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
		name := names.extraPrefix + escapeExtraKey(k)
		for _, v := range extra[k] {
			if err := add(name, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// forwardedGroups are the groups of u to forward: all of them, but for a
// trailing system:authenticated the apiserver would add back itself. Both
// the impersonation filter (k8s.io/apiserver's impersonation mode check)
// and the authenticated-group adder around the requestheader authenticator
// append system:authenticated to a user other than system:anonymous that
// has neither it nor system:unauthenticated, so leaving it out names the
// same user, groups in the same order, for one header field and (with
// impersonation) one authorization of the gateway fewer per request. It is
// kept when it is the only group left, or the others are empty (a value a
// hop may drop): an impersonated service-account name without any group
// gets the service-account groups, which the user does not have.
func forwardedGroups(u user.Info) []string {
	gs := u.GetGroups()
	n := len(gs) - 1
	if n < 1 || gs[n] != user.AllAuthenticated || u.GetName() == user.Anonymous {
		return gs
	}
	others := gs[:n]
	if slices.Contains(others, user.AllAuthenticated) || slices.Contains(others, user.AllUnauthenticated) ||
		!slices.ContainsFunc(others, func(g string) bool { return g != "" }) {
		return gs
	}
	return others
}

package authz

import (
	"slices"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// MaxReplay bounds Decision.ReplayUntil: how long an adapter may answer a
// decision from its own memory. Nothing a replay depends on changes without
// SetPolicy (an x509 identity changes only with its cluster's CA or
// revocation list, both policy, and expires with its chain, which bounds
// the replay too), so the bound is the pipeline's own: the verified-identity
// cache's TTL (Options.AuthnCacheTTL, at most this), after which the
// pipeline would verify the certificate again. Long on purpose: each
// request the adapter does not replay enters the Go runtime from an Envoy
// worker, and the Go scheduler's monitor then polls every 20 µs for the
// next 10 ms (see README, In-process mode).
const MaxReplay = defaultAuthnCacheTTL

// replayUntil is Decision.ReplayUntil for an allowed request of identity id.
// A decision qualifies when it depends on nothing but the policy, the
// request fields an adapter keys it by and a credential that stays valid
// until a known time:
//   - decided without waiting (TryCheck): a decision that needed the
//     apiserver is not a pure function of the request;
//   - authenticated by a client certificate (a front proxy's too, with
//     the X-Remote-* fields it asserted, all of them key fields), by a
//     bearer token the TokenReview cache answered or by a JWT the identity
//     cache holds (id.until is set only by those): a token's replays end
//     when the pipeline would check it again, when its review stops being
//     fresh (the cluster's tokenReview.cacheTTL after it was sent) or its
//     JWT identity leaves the cache (jwtCacheTTL after it was verified);
//     an adapter keys the token by a keyed hash only
//     (ReplayHashedHeaders); or the anonymous user, a request with no
//     credential at all on a cluster that allows it (its key holds no
//     credential field, so a request with any credential is another key;
//     anonymousIdentity never expires);
//   - none of ReplayBypassHeaders (a WebSocket token, any Impersonate-*):
//     an adapter does not even keep such a request as a key, and this keeps
//     the two lists one.
//
// It ends at the credential's validity (certificate chain, CA, CRL; the
// token's review) or the identity cache's TTL (at most MaxReplay) from now,
// whichever comes first.
//
// Anonymous requests replay for the same reason certificates do: a
// load balancer's or a monitor's probes (/healthz, /readyz, /version)
// arrive steadily, and each one decided in Go keeps the Go scheduler's
// monitor polling on the Envoy process (see MaxReplay).
func (p *Pipeline) replayUntil(req *Request, id *identity, noWait bool) time.Time {
	if !noWait || id.until.IsZero() {
		return time.Time{}
	}
	for name := range req.Headers {
		for _, m := range ReplayBypassHeaders {
			if m.Matches(name) {
				return time.Time{}
			}
		}
	}
	until := p.now().Add(min(MaxReplay, p.cache.maxTTL))
	if id.until.Before(until) {
		until = id.until
	}
	return until
}

// CountReplays counts n replays of d, an allowed decision of cluster that an
// adapter answered from its memory (ReplayUntil), in the per-request
// metrics, as if the pipeline had decided each: frontdoor_requests_total,
// frontdoor_user_requests_total and frontdoor_authz_requests_total, plus
// frontdoor_replayed_decisions_total. The check-duration and authenticator
// metrics are left alone: no check and no authenticator ran.
func (p *Pipeline) CountReplays(cluster string, d *Decision, n uint64) {
	if n == 0 {
		return
	}
	f := float64(n)
	p.metrics.requests.WithLabelValues(cluster, string(d.Outcome)).Add(f)
	p.metrics.replayed.WithLabelValues(cluster).Add(f)
	p.reqMetrics.requestsCounter(cluster, d).Add(f)
	if cc := p.cluster(cluster); cc != nil && d.User != "" {
		if _, named := cc.namedUsers[d.User]; named {
			p.reqMetrics.userRequests.WithLabelValues(cluster, d.User, d.Rule, string(d.Outcome)).Add(f)
		}
	}
}

// ReplayKeyHeaders are the header fields a replayed decision is keyed by:
// every field the pipeline reads (ReadsHeader), the pseudo-headers
// included.
func ReplayKeyHeaders() []envoy.RequestHeaderMatch { return slices.Clone(readHeaders) }

// ReplayHashedHeaders are the key headers (ReplayKeyHeaders) that hold a
// secret, the bearer token: an adapter keys a replay by a keyed hash of
// their values (at least 128 bits under a secret random key), never by the
// values themselves.
var ReplayHashedHeaders = []envoy.RequestHeaderMatch{{Name: headerAuthz}}

// ReplayBypassHeaders are the header fields that make a request never
// replayable (replayUntil refuses such decisions): a WebSocket client's
// token (hidden among its subprotocols), or impersonation, whose
// SubjectAccessReviews are not a function of the request alone. An adapter
// must not even keep such a request as a key.
var ReplayBypassHeaders = []envoy.RequestHeaderMatch{
	{Name: headerWSProtocol},
	{Name: impersonatePrefix, Prefix: true},
}

// ReplaySeries names the metric series a replay of d for cluster counts
// in (CountReplays): decisions with equal names count alike, so an adapter
// may keep one decision per name to count replays with.
func (p *Pipeline) ReplaySeries(cluster string, d *Decision) string {
	verb, resource := "other", "other"
	if i := d.Info; i != nil {
		verb, resource = boundedVerb(i), boundedResource(i)
	}
	user := ""
	if cc := p.cluster(cluster); cc != nil {
		if _, named := cc.namedUsers[d.User]; named {
			user = d.User
		}
	}
	return strings.Join([]string{cluster, string(d.Outcome), d.Rule, verb, resource, user}, "\x00")
}

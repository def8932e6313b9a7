package authz

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/cache"
)

// Defaults of the refusal gate (see refusalGate).
const (
	// defaultRefusalBurst is how many refused TokenReviews one client
	// address may cause before the gate closes on it: far more than a
	// client with an expired token, or a NAT full of them, produces.
	defaultRefusalBurst = 32
	// defaultRefusalRate is how many refused reviews per second a client
	// address earns back; a gated address gets this many reviews of
	// unknown tokens per second, the rest are answered 429.
	defaultRefusalRate = 2.0
	// defaultRefusalTarpit holds each 429 of a gated address this long
	// before answering, so a client that ignores Retry-After and asks again
	// as soon as it is answered (a closed loop, the usual flood tool) sends
	// one request per worker per tarpit instead of one per round trip.
	// It stays below the ext_authz/ext_proc timeout (2 s).
	defaultRefusalTarpit = time.Second
	// maxTarpitted bounds the 429s one cluster holds at once; beyond it
	// they are answered at once: the tarpit never holds more streams than
	// this, however many addresses a flood comes from.
	maxTarpitted = 1024
	// refusalGateAddresses bounds the client addresses one cluster
	// remembers (least recently used first out).
	refusalGateAddresses = 65536
)

// errClientThrottled: the token was not reviewed because its client
// address caused too many refused TokenReviews recently. It is answered
// 429 with Retry-After (clientThrottled), never 401 (the token may be
// good), and not remembered.
var errClientThrottled = errors.New("too many refused bearer tokens from this client address")

// refusalGate bounds the TokenReviews a client address can cause with
// tokens that turn out bad. Every distinct token the gateway has never seen
// costs the apiserver one TokenReview, and the token cache cannot help
// against a flood of fresh random tokens; the global cap on reviews in
// flight (tokenLimits.concurrency) keeps the apiserver alive but lets the
// flood take every review slot and CPU it can. The gate is a token bucket
// per client address, spent by refused reviews only: a client whose tokens
// authenticate never spends anything, and one whose tokens were refused
// more than the burst allows gets no review for a token the gateway has
// never seen authenticated until the bucket refills. Tokens once
// authenticated (tokenCache keeps them beyond their TTL as "known") are
// always reviewed, so a legitimate client that shares an address with a
// flood keeps working.
//
// Addresses are what Envoy reports as the downstream address (after PROXY
// protocol or trusted X-Forwarded-For hops); IPv6 counts per /64, the unit
// one host usually holds. Requests without an address are not gated.
type refusalGate struct {
	burst, rate float64
	tarpit      time.Duration
	now         func() time.Time

	mu      sync.Mutex
	clients *cache.LRUExpireCache // client key -> *refusalBucket
	held    atomic.Int64

	throttled prometheus.Counter
}

// refusalBucket is one address's budget of refused reviews; guarded by
// refusalGate.mu.
type refusalBucket struct {
	tokens float64
	at     time.Time
}

// refusalLimits configure a refusalGate; zero values take the defaults, a
// negative burst disables the gate.
type refusalLimits struct {
	burst  int
	rate   float64
	tarpit time.Duration
}

func (l refusalLimits) withDefaults() refusalLimits {
	if l.burst == 0 {
		l.burst = defaultRefusalBurst
	}
	if l.rate <= 0 {
		l.rate = defaultRefusalRate
	}
	if l.tarpit == 0 {
		l.tarpit = defaultRefusalTarpit
	}
	return l
}

// newRefusalGate returns nil (no gate) for a negative burst.
func newRefusalGate(l refusalLimits, throttled prometheus.Counter) *refusalGate {
	l = l.withDefaults()
	if l.burst < 0 {
		return nil
	}
	return &refusalGate{
		burst: float64(l.burst), rate: l.rate, tarpit: max(l.tarpit, 0),
		now:       time.Now,
		clients:   cache.NewLRUExpireCache(refusalGateAddresses),
		throttled: throttled,
	}
}

// forgetAfter is how long an untouched bucket is kept: long enough to
// refill completely, after which it equals a fresh one.
func (g *refusalGate) forgetAfter() time.Duration {
	return time.Duration(g.burst/g.rate*float64(time.Second)) + time.Second
}

// admit reports whether a token of client may be reviewed.
func (g *refusalGate) admit(client string) bool {
	if g == nil || client == "" {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.clients.Get(client)
	if !ok {
		return true
	}
	return g.refill(v.(*refusalBucket)) >= 1
}

// refused spends one of client's refusals.
func (g *refusalGate) refused(client string) {
	if g == nil || client == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := &refusalBucket{tokens: g.burst, at: g.now()}
	if v, ok := g.clients.Get(client); ok {
		b = v.(*refusalBucket)
		g.refill(b)
	}
	b.tokens--
	g.clients.Add(client, b, g.forgetAfter())
}

// refill adds what b earned since it was last touched; g.mu is held.
func (g *refusalGate) refill(b *refusalBucket) float64 {
	now := g.now()
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(g.burst, b.tokens+elapsed*g.rate)
	}
	b.at = now
	return b.tokens
}

// refuse answers a gated request: it holds the answer for the tarpit
// (unless the cluster already holds maxTarpitted, or ctx ends first), then
// returns errClientThrottled.
func (g *refusalGate) refuse(ctx context.Context) error {
	g.throttled.Inc()
	if g.tarpit > 0 && g.held.Add(1) <= maxTarpitted {
		t := time.NewTimer(g.tarpit)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if g.tarpit > 0 {
		g.held.Add(-1)
	}
	return errClientThrottled
}

// clientKey reduces a downstream address ("ip", "ip:port" or "[ip]:port")
// to the unit the gate counts: the IPv4 address, or the /64 of an IPv6
// one. Unparsable or empty: "" (not gated).
func clientKey(addr string) string {
	if addr == "" {
		return ""
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, perr := netip.ParseAddrPort(addr)
		if perr != nil {
			return ""
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64) // never fails for a 128-bit address
		return p.String()
	}
	return ip.String()
}

package authz

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"
	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
)

// Bounds of one cluster's TokenReview cache (see tokenCache).
const (
	// defaultTokenCacheSize bounds the tokens remembered as authenticated.
	defaultTokenCacheSize = 8192
	// defaultTokenNegativeCacheSize bounds the tokens remembered as
	// refused: the set a flood of random tokens fills.
	defaultTokenNegativeCacheSize = 4096
	// knownTokenMemory is how long an authenticated token stays known
	// after its cacheTTL ran out: it is reviewed again like any token, but
	// the refusal gate never holds it back (see refusalGate).
	knownTokenMemory = time.Hour
)

// tokenCache is k8s.io/apiserver's token cache (authentication/token/cache)
// with a count bound. That cache is striped and unbounded: every distinct
// token stays for its TTL, so a flood of random tokens grows it by the
// flood's rate times negativeCacheTTL. This one keeps what it does: keys
// are HMAC-SHA256s of the token and audiences under a random per-cache
// key (never the token), concurrent first uses of one key share one
// review (single flight), and a review nobody answered (an error) is not
// remembered. It adds LRU bounds, one for authenticated tokens and a
// separate one for refused ones, so a flood of bad tokens evicts only
// other bad tokens, never a good token a client is using. And it gates the
// reviews of unknown tokens per client address (refusalGate): an
// authenticated token stays in the good LRU, as known, for
// knownTokenMemory after its TTL, so the gate can tell a client's
// returning token from a flood's fresh one.
type tokenCache struct {
	review      k8sauthn.Token
	ttl, negTTL time.Duration
	good, bad   *cache.LRUExpireCache
	gate        *refusalGate
	group       singleflight.Group
	hashes      sync.Pool
}

// tokenRecord is one remembered answer; resp is returned on every hit, the
// same pointer, which tokenAuthenticator.identityFor keys on. An
// authenticated record is answered until fresh, then only known; fresh is
// zero for an answer that is not remembered.
type tokenRecord struct {
	resp  *k8sauthn.Response
	ok    bool
	err   error
	fresh time.Time
}

func newTokenCache(review k8sauthn.Token, ttl, negTTL time.Duration, size, negSize int, gate *refusalGate) *tokenCache {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it crashes the program instead)
	c := &tokenCache{
		review: review,
		ttl:    ttl,
		negTTL: negTTL,
		good:   cache.NewLRUExpireCache(size),
		bad:    cache.NewLRUExpireCache(negSize),
		gate:   gate,
	}
	c.hashes.New = func() any { return hmac.New(sha256.New, key) }
	return c
}

// answer answers from the cache, or reviews the token once for every
// concurrent caller with the same key, and returns the record (nil with the
// error when there is none: the review was refused or not waited for; a
// record answered from the cache carries no error). A caller whose context
// ends first gets errReviewUnavailable: its token was not reviewed in time.
// addr is the caller's client address ("": not gated), reduced to its
// refusalGate key only on a miss: an unknown token of a gated client is not
// reviewed (errClientThrottled), and a refusal is charged to the client
// whose request sent the review.
func (c *tokenCache) answer(ctx context.Context, addr, token string) (*tokenRecord, error) {
	auds, _ := k8sauthn.AudiencesFrom(ctx)
	key := c.key(auds, token)
	r, known := c.lookup(key)
	if r != nil {
		return r, nil
	}
	client := clientKey(addr)
	if !known && !c.gate.admit(client) {
		return nil, c.gate.refuse(ctx)
	}
	// The shared review outlives a caller that gives up (the others still
	// wait for it); the reviewer bounds it with tokenReviewTimeout.
	shared := context.WithoutCancel(ctx)
	ch := c.group.DoChan(key, func() (any, error) {
		if rec, _ := c.lookup(key); rec != nil {
			return rec, nil
		}
		rec := c.fetch(shared, key, token)
		if !rec.ok && rec.err == nil {
			c.gate.refused(client)
		}
		return rec, nil
	})
	select {
	case res := <-ch:
		return res.Val.(*tokenRecord), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errReviewUnavailable, ctx.Err())
	}
}

// fetch reviews token and remembers the answer. A panic in the review
// (client libraries) becomes an unanswered review, as in the k8s cache.
func (c *tokenCache) fetch(ctx context.Context, key, token string) (r *tokenRecord) {
	r = &tokenRecord{}
	defer func() {
		if p := recover(); p != nil {
			r = &tokenRecord{err: fmt.Errorf("%w: review panicked: %v", errReviewUnavailable, p)}
		}
	}()
	r.resp, r.ok, r.err = c.review.AuthenticateToken(ctx, token)
	switch {
	case r.err != nil:
		// Nobody answered: not remembered, the next request asks again.
	case r.ok && c.ttl > 0:
		r.fresh = time.Now().Add(c.ttl)
		c.good.Add(key, r, max(c.ttl, knownTokenMemory))
	case !r.ok:
		// Refused now: no longer known (a revoked token is gated again).
		c.good.Remove(key)
		if c.negTTL > 0 {
			c.bad.Add(key, r, c.negTTL)
		}
	}
	return r
}

// tokenResult is answer's outcome in the shape of k8sauthn.Token.
func tokenResult(r *tokenRecord, err error) (*k8sauthn.Response, bool, error) {
	if r == nil {
		return nil, false, err
	}
	return r.resp, r.ok, r.err
}

// lookup returns the answer remembered for key (nil: none), and whether
// the key is known: remembered as authenticated, fresh or not.
func (c *tokenCache) lookup(key string) (r *tokenRecord, known bool) {
	if v, ok := c.good.Get(key); ok {
		r := v.(*tokenRecord)
		if time.Now().Before(r.fresh) {
			return r, true
		}
		known = true
	}
	if v, ok := c.bad.Get(key); ok {
		return v.(*tokenRecord), false
	}
	return nil, known
}

// authenticated reports whether token (with audiences auds) is remembered
// as authenticated: answer returns it without a review.
func (c *tokenCache) authenticated(auds []string, token string) bool {
	r, _ := c.lookup(c.key(auds, token))
	return r != nil && r.ok
}

// key is the k8s cache's key: HMAC over the length-prefixed token and
// audiences.
func (c *tokenCache) key(auds []string, token string) string {
	h := c.hashes.Get().(hash.Hash)
	defer c.hashes.Put(h)
	h.Reset()
	var n [4]byte
	writeLen := func(l int) {
		binary.BigEndian.PutUint32(n[:], uint32(l)) //nolint:gosec // lengths of HTTP header values
		h.Write(n[:])
	}
	writeLen(len(token))
	h.Write([]byte(token))
	writeLen(len(auds))
	for _, a := range auds {
		writeLen(len(a))
		h.Write([]byte(a))
	}
	return string(h.Sum(nil))
}

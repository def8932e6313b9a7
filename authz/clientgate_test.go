package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"":                            "",
		"garbage":                     "",
		"10.1.2.3":                    "10.1.2.3",
		"10.1.2.3:52344":              "10.1.2.3",
		"[::ffff:10.1.2.3]:443":       "10.1.2.3",
		"2001:db8:1:2:3:4:5:6":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:8443":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":            "fe80::/64",
		"2001:db8:1:3::1":             "2001:db8:1:3::/64",
		"[2001:db8:1:2:3:4:5:6]:1234": "2001:db8:1:2::/64",
	} {
		if got := clientKey(addr); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

// gatedCache is a token cache over countingToken (tokens starting "good"
// authenticate) behind a gate of burst 3, 1 refusal per second earned
// back, on a clock the test moves.
func gatedCache(t *testing.T, ttl time.Duration) (*tokenCache, *countingToken, *fakeClock, prometheus.Counter) {
	t.Helper()
	throttled := prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})
	g := newRefusalGate(refusalLimits{burst: 3, rate: 1, tarpit: -1}, throttled)
	clock := &fakeClock{now: testNow}
	g.now = clock.Now
	var rev countingToken
	return newTokenCache(&rev, ttl, time.Minute, 16, 16, g), &rev, clock, throttled
}

// A client address whose tokens were refused more than the burst allows
// gets no TokenReview for a token the gateway never saw authenticated,
// until its budget refills; other addresses, tokens already known, and
// bad tokens already remembered are not affected.
func TestRefusalGateStopsReviewsOfUnknownTokens(t *testing.T) {
	c, rev, clock, throttled := gatedCache(t, time.Minute)
	ctx := context.Background()
	const attacker, other = "10.0.0.9", "10.0.0.1"

	if _, ok, err := c.AuthenticateToken(ctx, attacker, "good-known"); !ok || err != nil {
		t.Fatalf("good token: %v %v", ok, err)
	}
	for i := range 3 {
		if _, ok, err := c.AuthenticateToken(ctx, attacker, fmt.Sprintf("bad-%d", i)); ok || err != nil {
			t.Fatalf("bad token %d within the burst: ok=%v err=%v, want a plain refusal", i, ok, err)
		}
	}
	reviews := rev.calls.Load()
	for _, tok := range []string{"bad-3", "good-new"} {
		if _, _, err := c.AuthenticateToken(ctx, attacker, tok); !errors.Is(err, errClientThrottled) {
			t.Errorf("%s from the gated address: err %v, want errClientThrottled", tok, err)
		}
	}
	if got := rev.calls.Load(); got != reviews {
		t.Errorf("the gated address caused %d more TokenReviews, want 0", got-reviews)
	}
	if got := testutil.ToFloat64(throttled); got != 2 {
		t.Errorf("throttled counter %v, want 2", got)
	}
	// A refused token already remembered is answered from the cache (no
	// review, no 429), and so is a known good one.
	if _, ok, err := c.AuthenticateToken(ctx, attacker, "bad-0"); ok || err != nil {
		t.Errorf("remembered bad token: ok=%v err=%v, want a plain refusal", ok, err)
	}
	if _, ok, err := c.AuthenticateToken(ctx, attacker, "good-known"); !ok || err != nil {
		t.Errorf("known good token from the gated address: %v %v", ok, err)
	}
	// Another address is reviewed as before.
	if _, ok, err := c.AuthenticateToken(ctx, other, "bad-other"); ok || err != nil {
		t.Errorf("other address: ok=%v err=%v, want a plain refusal", ok, err)
	}
	if _, ok, err := c.AuthenticateToken(ctx, "", "bad-anonymous"); ok || err != nil {
		t.Errorf("no address (not gated): ok=%v err=%v, want a plain refusal", ok, err)
	}
	// One second earns one review back.
	clock.Step(time.Second)
	if _, ok, err := c.AuthenticateToken(ctx, attacker, "good-new"); !ok || err != nil {
		t.Errorf("after the refill: %v %v, want the new good token reviewed", ok, err)
	}
}

// A token authenticated once stays known after its cacheTTL: it is
// reviewed again (the cache no longer answers it), but never gated, so a
// legitimate client that shares its address with a flood keeps working.
// Refused on that review, it is no longer known.
func TestKnownTokenPassesTheGateAfterItsTTL(t *testing.T) {
	c, rev, _, _ := gatedCache(t, 50*time.Millisecond)
	ctx := context.Background()
	const addr = "192.0.2.7"
	if _, ok, _ := c.AuthenticateToken(ctx, addr, "good-1"); !ok {
		t.Fatal("good-1 not authenticated")
	}
	for i := range 3 {
		_, _, _ = c.AuthenticateToken(ctx, addr, fmt.Sprintf("bad-%d", i))
	}
	time.Sleep(60 * time.Millisecond) // good-1's cacheTTL runs out
	if c.authenticated(nil, "good-1") {
		t.Fatal("good-1 still answered from the cache after its TTL")
	}
	before := rev.calls.Load()
	if _, ok, err := c.AuthenticateToken(ctx, addr, "good-1"); !ok || err != nil {
		t.Fatalf("known token from a gated address: %v %v, want reviewed and authenticated", ok, err)
	}
	if rev.calls.Load() != before+1 {
		t.Errorf("known token after its TTL: %d reviews, want 1", rev.calls.Load()-before)
	}
}

// The pipeline answers a gated token 429 with Retry-After and the Status
// kube-apiserver would send, after the tarpit; decision "throttled".
func TestThrottledTokenIs429AfterTheTarpit(t *testing.T) {
	f := newFakeUpstream(t)
	reg := prometheus.NewRegistry()
	p, err := NewPipeline(Options{Registry: reg, TokenRefusalBurst: 2, TokenRefusalTarpit: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(tokenTable(f.upstream(t), nil))
	from := func(addr, token string) *Request {
		r := bearerRequest(token)
		r.ClientAddress = addr
		return r
	}
	for i := range 2 {
		if d := p.Check(context.Background(), from("203.0.113.5:40000", fmt.Sprintf("bad-%d", i))); d.Code != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i, d.Code)
		}
	}
	start := time.Now()
	d := p.Check(context.Background(), from("203.0.113.5:40001", "bad-2"))
	held := time.Since(start)
	if d.Code != http.StatusTooManyRequests || d.Outcome != Throttled {
		t.Fatalf("third bad token: %d %s, want 429 throttled", d.Code, d.Outcome)
	}
	if !hasHeader(d.ResponseHeaders, "retry-after", "1") || !strings.Contains(string(d.Body), `"reason":"TooManyRequests"`) ||
		!strings.Contains(string(d.Body), `"retryAfterSeconds":1`) {
		t.Errorf("429 without Retry-After or its Status: %v %s", d.ResponseHeaders, d.Body)
	}
	if held < 150*time.Millisecond {
		t.Errorf("answered after %v, want the 150ms tarpit", held)
	}
	if got := testutil.ToFloat64(p.reqMetrics.clientsThrottled.WithLabelValues("a")); got != 1 {
		t.Errorf("frontdoor_token_reviews_client_throttled_total = %v, want 1", got)
	}
	if d := p.Check(context.Background(), from("203.0.113.6:40000", "bad-3")); d.Code != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401", d.Code)
	}
}

// The tarpit holds at most maxTarpitted answers at once; the others are
// answered at once, so a flood from many addresses cannot make the gateway
// hold an unbounded number of streams.
func TestTarpitIsBounded(t *testing.T) {
	g := newRefusalGate(refusalLimits{burst: 1, tarpit: time.Hour}, prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range maxTarpitted {
		wg.Go(func() { _ = g.refuse(ctx) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.held.Load() < maxTarpitted && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- g.refuse(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, errClientThrottled) {
			t.Errorf("beyond the bound: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the answer beyond maxTarpitted was held too")
	}
	cancel()
	wg.Wait()
	if n := g.held.Load(); n != 0 {
		t.Errorf("%d still counted as held after they were answered", n)
	}
}

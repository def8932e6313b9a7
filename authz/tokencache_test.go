package authz

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	k8sauthn "k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

func bearerRequest(token string) *Request {
	return &Request{Cluster: "a", Method: "GET", Path: "/api", Headers: map[string]string{"authorization": "Bearer " + token}}
}

// A flood of distinct tokens against a slow apiserver: at most the
// cluster's cap of TokenReviews is in flight; every token beyond it is
// answered 503 with Retry-After at once (never 401: nobody said it is
// bad), counted, and not remembered; once the reviews finish, new tokens
// are reviewed again.
func TestTokenReviewConcurrencyCap(t *testing.T) {
	f := newFakeUpstream(t)
	// Reviews are held until every request of the flood is either in
	// review or answered, so no slot frees up while the flood is still
	// arriving, however slowly a loaded host starts its goroutines; the
	// hold ends well inside the review timeout.
	hold := make(chan struct{})
	f.hold.Store(&hold)
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))

	const floodSize = 3 * defaultTokenReviewConcurrency
	var wg sync.WaitGroup
	var mu sync.Mutex
	var answered atomic.Int32
	codes := map[int]int{}
	var badBusy []string
	for i := range floodSize {
		wg.Go(func() {
			d := tp.Check(context.Background(), bearerRequest(fmt.Sprintf("flood-%d", i)))
			answered.Add(1)
			mu.Lock()
			defer mu.Unlock()
			codes[d.Code]++
			if d.Code == http.StatusServiceUnavailable {
				if !hasHeader(d.ResponseHeaders, "retry-after", "1") || !strings.Contains(string(d.Body), "too many TokenReviews") {
					badBusy = append(badBusy, fmt.Sprintf("%v %s", d.ResponseHeaders, d.Body))
				}
			}
		})
	}
	for deadline := time.Now().Add(tokenReviewTimeout / 2); answered.Load()+f.inflight.Load() < floodSize && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	f.hold.Store(nil)
	wg.Wait()
	reviews := int(f.tokenReviews.Load())
	t.Logf("flood of %d tokens: answers %v, %d TokenReviews, at most %d at once", floodSize, codes, reviews, f.maxInflight.Load())
	if m := f.maxInflight.Load(); m > defaultTokenReviewConcurrency {
		t.Errorf("%d TokenReviews in flight at once, want at most %d", m, defaultTokenReviewConcurrency)
	}
	if reviews > defaultTokenReviewConcurrency || codes[http.StatusUnauthorized] != reviews {
		t.Errorf("%d TokenReviews, %d answered 401; want at most %d, each a 401", reviews, codes[http.StatusUnauthorized], defaultTokenReviewConcurrency)
	}
	if busy := codes[http.StatusServiceUnavailable]; busy != floodSize-reviews || busy == 0 {
		t.Errorf("%d answered 503, want the %d not reviewed", busy, floodSize-reviews)
	}
	if len(badBusy) > 0 {
		t.Errorf("503s without Retry-After: 1 and their cause: %q", badBusy[:1])
	}
	if got := testutil.ToFloat64(tp.reqMetrics.reviewsThrottled.WithLabelValues("a")); int(got) != codes[http.StatusServiceUnavailable] {
		t.Errorf("frontdoor_token_reviews_throttled_total = %v, want %d", got, codes[http.StatusServiceUnavailable])
	}
	// The slots are free again, and a throttled token was not remembered.
	f.reviewDelay.Store(0)
	before := f.tokenReviews.Load()
	for i := range floodSize {
		if d := tp.Check(context.Background(), bearerRequest(fmt.Sprintf("flood-%d", i))); d.Code != http.StatusUnauthorized {
			t.Fatalf("token %d after the flood: %d, want 401", i, d.Code)
		}
	}
	if got := int(f.tokenReviews.Load() - before); got != floodSize-reviews {
		t.Errorf("%d TokenReviews after the flood, want %d (the throttled tokens only)", got, floodSize-reviews)
	}
}

func hasHeader(hs []Header, name, value string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) && h.Value == value {
			return true
		}
	}
	return false
}

// The refused tokens a cluster remembers are bounded in number: a flood of
// distinct bad tokens evicts the oldest bad token (reviewed again when it
// comes back) and never a good one (still answered from the cache).
func TestTokenCacheBoundsRefusedTokens(t *testing.T) {
	f := newFakeUpstream(t)
	f.tokens["good"] = saUser
	tp := newTestPipeline(t, nil)
	tp.SetPolicy(tokenTable(f.upstream(t), nil))
	if d := tp.Check(context.Background(), bearerRequest("good")); !d.Allowed() {
		t.Fatalf("good token: %s %d", d.Outcome, d.Code)
	}
	const flood = defaultTokenNegativeCacheSize + 1
	for i := range flood {
		if d := tp.Check(context.Background(), bearerRequest(fmt.Sprintf("bad-%d", i))); d.Code != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i, d.Code)
		}
	}
	if got := f.tokenReviews.Load(); got != flood+1 {
		t.Fatalf("%d TokenReviews, want %d", got, flood+1)
	}
	if d := tp.Check(context.Background(), bearerRequest("bad-0")); d.Code != http.StatusUnauthorized {
		t.Fatalf("first bad token again: %d, want 401", d.Code)
	}
	if got := f.tokenReviews.Load(); got != flood+2 {
		t.Errorf("the first bad token came back after %d others: %d TokenReviews, want %d (evicted, reviewed again)", flood, got, flood+2)
	}
	if d := tp.Check(context.Background(), bearerRequest("good")); !d.Allowed() {
		t.Fatalf("good token after the flood: %s %d", d.Outcome, d.Code)
	}
	if got := f.tokenReviews.Load(); got != flood+2 {
		t.Errorf("the good token after the flood cost a TokenReview (%d, want %d): the flood evicted it", got, flood+2)
	}
}

// countingToken authenticates tokens starting with "good" and counts calls.
type countingToken struct{ calls atomic.Int32 }

func (c *countingToken) AuthenticateToken(_ context.Context, token string) (*k8sauthn.Response, bool, error) {
	c.calls.Add(1)
	if strings.HasPrefix(token, "good") {
		return &k8sauthn.Response{User: &user.DefaultInfo{Name: token}}, true, nil
	}
	return nil, false, nil
}

// The authenticated tokens remembered are bounded too, least recently used
// first out; a hit returns the same response (identityFor keys on it).
func TestTokenCacheBoundsAuthenticatedTokens(t *testing.T) {
	var rev countingToken
	c := newTokenCache(&rev, time.Minute, time.Minute, 2, 2, nil)
	ctx := context.Background()
	first, _, _ := c.AuthenticateToken(ctx, "", "good-1")
	again, _, _ := c.AuthenticateToken(ctx, "", "good-1")
	if first != again || rev.calls.Load() != 1 {
		t.Fatalf("second use: %d reviews, same response %v; want 1, true", rev.calls.Load(), first == again)
	}
	for _, tok := range []string{"good-2", "good-3", "good-1"} {
		if _, ok, err := c.AuthenticateToken(ctx, "", tok); !ok || err != nil {
			t.Fatalf("%s: %v %v", tok, ok, err)
		}
	}
	if got := rev.calls.Load(); got != 4 {
		t.Errorf("%d reviews, want 4 (good-1 evicted by good-2 and good-3)", got)
	}
	if !c.authenticated(nil, "good-3") || c.authenticated(nil, "good-2") {
		t.Errorf("authenticated: good-3 %v, good-2 %v; want true, false", c.authenticated(nil, "good-3"), c.authenticated(nil, "good-2"))
	}
	if c.authenticated([]string{"other"}, "good-3") {
		t.Error("a token cached for no audiences counts as cached for audience other")
	}
}

// AuthenticateToken is answer in the shape of k8sauthn.Token (with the
// client address), as the tests call it.
func (c *tokenCache) AuthenticateToken(ctx context.Context, addr, token string) (*k8sauthn.Response, bool, error) {
	return tokenResult(c.answer(ctx, addr, token))
}

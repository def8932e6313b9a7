package inprocess

import (
	"testing"
	"time"

	"github.com/kubefrontdoor/frontdoor/authz"
)

// TestOfferReplay: the filter offers the worker exactly the allowed
// decisions the pipeline marked replayable, for the time left, in one class
// per metric series. (The worker's side: package abi's TestReplay; the
// whole path: the e2e suite in InProcess mode.)
func TestOfferReplay(t *testing.T) {
	p, err := authz.NewPipeline(authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &filterConfig{cluster: "sandbox", pipeline: p, replays: &replayCounter{}}
	offers := func(d authz.Decision) []replayOffer {
		t.Helper()
		cfg.checker = &fakeChecker{inline: true, d: d, gotReq: make(chan *authz.Request, 1)}
		s := newFakeStream(":method", "GET", ":path", "/api/v1/pods")
		cfg.NewFilter().(*filter).onRequestHeaders(s, nil)
		return s.replays
	}

	replayable := allowed
	replayable.ReplayUntil = time.Now().Add(5 * time.Second)
	first := offers(replayable)
	if len(first) != 1 || first[0].ttl <= 0 || first[0].ttl > 5*time.Second {
		t.Fatalf("replayable decision: offers %v; want one for at most 5s", first)
	}
	if again := offers(replayable); len(again) != 1 || again[0].class != first[0].class {
		t.Errorf("the same series again: offers %v; want class %d", again, first[0].class)
	}
	other := replayable
	other.Rule = "batch"
	if o := offers(other); len(o) != 1 || o[0].class == first[0].class {
		t.Errorf("another rule: offers %v; want a class of its own", o)
	}

	expired := allowed
	expired.ReplayUntil = time.Now().Add(-time.Second)
	denied := authz.Decision{Outcome: authz.Unauthenticated, Code: 401, ReplayUntil: replayable.ReplayUntil}
	for name, d := range map[string]authz.Decision{"not replayable": allowed, "expired": expired, "denied": denied} {
		if o := offers(d); len(o) != 0 {
			t.Errorf("%s: offers %v; want none", name, o)
		}
	}
	cfg.replays.flush() // no worker replayed anything: nothing to count, no panic
}

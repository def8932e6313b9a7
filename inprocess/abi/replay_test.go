package abi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplay drives replay.c through the test module's replay filter
// (x-test-replay) in the real Envoy: x-test-decision numbers the answers Go
// made, and x-test-replay-kept is written after Replayable, so it is
// outside the plan and marks an answer made in Go. One keep-alive client
// keeps every request on one connection, so on one worker (tables are per
// worker).
func TestReplay(t *testing.T) {
	f := sharedFixture(t)
	c := f.pki.httpClient(true, false)
	type answer struct {
		decision string
		inGo     bool
		r        echoReply
	}
	send := func(path string, kv ...string) answer {
		t.Helper()
		r := echo(t, c, f.url+path, hdr(kv...))
		return answer{strings.Join(r.Headers["X-Test-Decision"], ","), len(r.Headers["X-Test-Replay-Kept"]) > 0, r}
	}

	first := send("/replay/a", "x-test-replay", "60000", "x-drop-me", "1")
	if !first.inGo || first.r.Headers["X-Test-Replay-Kept"][0] != "true" {
		t.Fatalf("first request: kept=%q; want an answer from Go that the worker kept", first.r.Headers["X-Test-Replay-Kept"])
	}
	again := send("/replay/a", "x-test-replay", "60000", "x-drop-me", "2")
	if again.inGo || again.decision != first.decision {
		t.Fatalf("identical request: decision %s (in Go: %v); want %s replayed", again.decision, again.inGo, first.decision)
	}
	// The replay made every write of the plan: headers set, added (two
	// fields), removed (x-drop-me is outside the key yet removed again);
	// filter state (an empty value too), a metadata number and a fresh
	// elapsed time (whole microseconds rounded up, digits only).
	want(t, again.r, "x-test-group", "system:masters", "devs")
	want(t, again.r, "x-drop-me")
	want(t, again.r, "x-test-tag", "replay")
	want(t, again.r, "x-test-md-num", "7.5")
	want(t, again.r, "x-test-fs", "replay-fs,,")
	if us, err := strconv.ParseUint(strings.Join(again.r.Headers["X-Test-Fs-Elapsed"], ""), 10, 64); err != nil || us < 1 || us > 1e6 {
		t.Errorf("replayed elapsed filter state %q; want whole microseconds, rounded up", again.r.Headers["X-Test-Fs-Elapsed"])
	}
	if again.r.Upstream != "first" {
		t.Errorf("replay routed to %s", again.r.Upstream)
	}

	// Another key (a header value, the path, the method) goes to Go.
	for _, k := range []struct {
		name string
		a    answer
	}{
		{"another x-test-* value", send("/replay/a", "x-test-replay", "60000", "x-test-other", "1")},
		{"another path", send("/replay/b", "x-test-replay", "60000")},
	} {
		if !k.a.inGo {
			t.Errorf("%s: replayed decision %s; want one from Go", k.name, k.a.decision)
		}
	}
	resp, body := request(t, c, f.url+"/replay/a", hdr("x-test-replay", "60000"), "posted")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"X-Test-Replay-Kept"`) {
		t.Errorf("POST of a replayed GET's key: %d %s; want an answer from Go", resp.StatusCode, body)
	}
	// A replayed POST still forwards its body (the stream is open).
	send2 := func() (*http.Response, string) {
		resp, body := request(t, c, f.url+"/replay/post", hdr("x-test-replay", "60000"), "the body")
		return resp, string(body)
	}
	send2()
	if resp, body := send2(); resp.StatusCode != http.StatusOK || strings.Contains(body, `"X-Test-Replay-Kept"`) {
		t.Errorf("second identical POST: %d %s; want a replay reaching the upstream", resp.StatusCode, body)
	}
	if got := f.first.saw("/replay/post"); got != 2 {
		t.Errorf("upstream saw /replay/post %d times, want 2", got)
	}

	// A route change in the plan is replayed too.
	r1 := send("/replay/route", "x-test-replay", "60000", "x-test-route", "1")
	r2 := send("/replay/route", "x-test-replay", "60000", "x-test-route", "1")
	if r2.inGo || r1.r.Upstream != "second" || r2.r.Upstream != "second" {
		t.Errorf("rerouted: upstreams %s, %s (second in Go: %v); want second twice, replayed", r1.r.Upstream, r2.r.Upstream, r2.inGo)
	}

	// A hashed header (a secret) keys by its value as any key field does:
	// the same value replays, another goes to Go.
	send("/replay/token", "x-test-replay", "60000", "x-test-token", "alpha")
	if a := send("/replay/token", "x-test-replay", "60000", "x-test-token", "alpha"); a.inGo {
		t.Error("same hashed token: answered in Go; want a replay")
	}
	for _, v := range []string{"beta", "alphA", "alphb", "alpha-"} {
		if a := send("/replay/token", "x-test-replay", "60000", "x-test-token", v); !a.inGo {
			t.Errorf("hashed token %q after \"alpha\": replayed; want Go", v)
		}
	}

	// A bypass header: never kept, never replayed.
	for i := range 2 {
		if a := send("/replay/secret", "x-test-replay", "60000", "x-test-secret", "s"); !a.inGo || a.r.Headers["X-Test-Replay-Kept"][0] != "false" {
			t.Errorf("bypass request %d: in Go %v, kept %q; want Go each time and never kept", i, a.inGo, a.r.Headers["X-Test-Replay-Kept"])
		}
	}

	// The hit counter of the class counts the replays so far (4 at least:
	// /replay/a, /replay/post, /replay/route, and this one may be none).
	if h := send("/replay/hits", "x-test-replay", "60000", "x-test-hits", "1"); h.inGo {
		n, _ := strconv.Atoi(strings.Join(h.r.Headers["X-Test-Replay-Hits"], ""))
		if n < 3 {
			t.Errorf("ReplayHits = %d; want at least the 3 replays above", n)
		}
	} else {
		t.Error("x-test-hits was replayed; want Go")
	}

	// ForgetReplays retires every kept answer.
	send("/replay/forget", "x-test-replay", "60000", "x-test-forget", "1")
	if a := send("/replay/a", "x-test-replay", "60000", "x-drop-me", "1"); !a.inGo {
		t.Errorf("after ForgetReplays: decision %s replayed; want Go", a.decision)
	}

	// A kept answer ends with its ttl.
	send("/replay/short", "x-test-replay", "300")
	if a := send("/replay/short", "x-test-replay", "300"); a.inGo {
		t.Error("within its ttl: answered in Go; want a replay")
	}
	time.Sleep(400 * time.Millisecond)
	if a := send("/replay/short", "x-test-replay", "300"); !a.inGo {
		t.Error("after its ttl: replayed; want Go")
	}
}

// TestSipHash: replay.c's SipHash-2-4 (the keyed hash a secret header enters
// a replay key as) gives the paper's test vectors: key 00 01 … 0f, messages
// 00 01 … (n-1) bytes, for the empty message and the appendix's 15 bytes.
func TestSipHash(t *testing.T) {
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, c := range []struct {
		n    int
		want uint64
	}{{0, 0x726fdb47dd0e0e31}, {15, 0xa129ca6149be45e5}} {
		if got := sipHash(0x0706050403020100, 0x0f0e0d0c0b0a0908, msg[:c.n]); got != c.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", c.n, got, c.want)
		}
	}
	if !SipHashKnownAnswer() {
		t.Error("SipHashKnownAnswer = false: hashed headers would never be replayed")
	}
}

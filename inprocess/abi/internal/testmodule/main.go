// Command testmodule is a test-only Envoy dynamic module built on package abi
// (go build -buildmode=c-shared). abi_test.go loads it into the real Envoy
// and drives it with request headers; everything it observes is written into
// request headers that the test's upstream echoes back.
//
// Filter config (JSON): {"tag": "...", "fail": bool, "panic": bool,
// "minimal": bool, "nilFilter": bool}; a minimal filter keeps no Go state
// (no OnDestroy, no OnStreamComplete) and only continues, except that it
// honours x-test-async and x-test-panic; with nilFilter NewFilter returns nil.
// Request headers it reacts to:
//
//	x-test-panic: 1            panic in OnRequestHeaders
//	x-test-deny: 1             local 403 with a JSON body
//	x-test-async: 1            pause; a goroutine Commits after 50ms; OnScheduled resumes
//	x-test-async-stop: 1       the same, pausing with StopIteration instead of StopAllIterationAndBuffer
//	x-test-async-panic: 1      like async, but OnScheduled panics
//	x-test-route: NAME         set x-test-rule: NAME and clear the route cache
//	x-test-noclear: 1          ... but do not clear it
//	x-test-nil: 1              dereference a nil Go pointer (a runtime panic via SIGSEGV)
//	x-test-crash: 1            dereference NULL in C (the crash must reach Envoy's handler)
//	x-test-query-complete: P   report the response code OnStreamComplete saw for path P
//	x-test-measure-allocs: 1   report Go heap allocations of 100 rounds of non-copying calls
//	x-test-replay: MS          the replay filter (replayFilter): answer, then offer the answer for MS ms
//
// Replay (abi.ConfigureReplay) is keyed by :method, :path and every x-test-*
// field, x-test-token by its hash; x-test-secret bypasses it.
//
// Test-only: it imports package abi alone, and nothing imports it.
package main

/*
static void frontdoor_test_crash(void) {
	volatile int* p = (volatile int*)0;
	*p = 1;
}
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
)

func main() {}

func init() {
	abi.RegisterFilter("frontdoor-test", newConfig)
	abi.ConfigureReplay(abi.ReplayFields{
		Key:    []abi.HeaderName{{Name: ":method"}, {Name: ":path"}, {Name: "x-test-", Prefix: true}},
		Hashed: []abi.HeaderName{{Name: "x-test-token"}},
		Bypass: []abi.HeaderName{{Name: "x-test-secret"}},
	})
}

type config struct {
	Tag     string `json:"tag"`
	Fail    bool   `json:"fail"`
	Panic   bool   `json:"panic"`
	Minimal bool   `json:"minimal"`
	// NilFilter makes NewFilter return nil (the stream must fail closed).
	NilFilter bool `json:"nilFilter"`
	// FailUnlessValidating makes the config fail when Envoy serves and
	// succeed when it only validates (abi.InValidationMode).
	FailUnlessValidating bool `json:"failUnlessValidating"`
	// AccessLog, when set, is the file the module writes its access log to
	// (abi.AccessLog), marking logged streams frontdoor.test/logged.
	AccessLogPath string `json:"accessLog"`
	FailuresOnly  bool   `json:"failuresOnly"`
	// LogFlushEvery is the module log's FlushEvery (a Go duration).
	LogFlushEvery string `json:"logFlushEvery"`
}

// AccessLog: the module's log, whose lines carry "cluster" (the tag) and
// the filter's "decision" (null when the filter set none).
func (c *config) AccessLog() *abi.AccessLog {
	if c.AccessLogPath == "" {
		return nil
	}
	every, _ := time.ParseDuration(c.LogFlushEvery)
	return &abi.AccessLog{
		FlushEvery:    every,
		Path:          c.AccessLogPath,
		Members:       `"cluster":` + strconv.Quote(c.Tag),
		Absent:        `"decision":null`,
		FailuresOnly:  c.FailuresOnly,
		MarkNamespace: "frontdoor.test",
		MarkKey:       "logged",
	}
}

func newConfig(raw []byte) (abi.FilterConfig, error) {
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if c.Panic {
		panic("testmodule: config asked to panic")
	}
	if c.Fail {
		return nil, errors.New("testmodule: config asked to fail")
	}
	if c.FailUnlessValidating && !abi.InValidationMode() {
		return nil, errors.New("testmodule: not validating")
	}
	abi.Log(abi.LogInfo, "frontdoor-test config loaded: tag="+c.Tag)
	liveConfigs.Add(1)
	return &c, nil
}

// live counts filters created and not yet destroyed, liveConfigs the same
// for filter configs, so the test can see every OnDestroy/Destroy happened.
var live, liveConfigs atomic.Int64

// nilFilter and sink let x-test-nil fault on a nil pointer the compiler
// cannot see through.
var (
	nilFilter *filter
	sink      string
)

// completed maps a request path to the response code OnStreamComplete saw.
var completed sync.Map

func (c *config) NewFilter() abi.Filter {
	switch {
	case c.NilFilter:
		return nil
	case c.Minimal:
		return minimalFilter{}
	}
	live.Add(1)
	return &filter{cfg: c}
}

func (c *config) Destroy() { liveConfigs.Add(-1) }

type filter struct {
	cfg  *config
	path string
}

// minimalFilter is the cheapest filter: the stream keeps Go state only while
// it waits for a scheduled event.
type minimalFilter struct{}

func (minimalFilter) OnRequestHeaders(s abi.Stream, _ bool) abi.HeadersStatus {
	if v, _ := s.RequestHeader("x-test-panic"); v == "1" {
		panic("testmodule: request asked to panic")
	}
	if v, _ := s.RequestHeader("x-test-async"); v == "1" {
		sched := s.NewScheduler()
		go func() {
			time.Sleep(50 * time.Millisecond)
			sched.Commit(7)
		}()
		return abi.StopAllIterationAndBuffer
	}
	return abi.Continue
}

func (minimalFilter) OnScheduled(s abi.Stream, eventID uint64) {
	s.SetRequestHeader("x-test-resumed", strconv.FormatUint(eventID, 10))
	s.ContinueDecoding()
}

func (f *filter) OnRequestHeaders(s abi.Stream, endOfStream bool) abi.HeadersStatus {
	if replayTTL(s) > 0 {
		return replayFilter(s)
	}
	f.path, _ = s.RequestHeader(":path")
	if is(s, "x-test-measure-allocs") {
		s.SetRequestHeader("x-test-allocs", strconv.FormatUint(measureAllocs(s), 10))
	}
	if is(s, "x-test-panic") {
		panic("testmodule: request asked to panic")
	}
	if is(s, "x-test-nil") {
		sink = nilFilter.cfg.Tag
	}
	if is(s, "x-test-crash") {
		C.frontdoor_test_crash()
	}
	if is(s, "x-test-deny") {
		s.SetLogFields(`"decision":"denied"`)
		s.SetLogElapsed(time.Now())
		s.SendLocalResponse(403,
			[][2]string{{"content-type", "application/json"}, {"x-test-denied", "yes"}},
			[]byte(`{"denied":true}`), "frontdoor_test_denied")
		return abi.StopIteration
	}
	s.SetLogFields(`"decision":"allowed"`)
	s.SetLogElapsed(time.Now())
	f.mutate(s)
	if is(s, "x-test-async") || is(s, "x-test-async-panic") || is(s, "x-test-async-stop") {
		sched := s.NewScheduler()
		go func() {
			time.Sleep(50 * time.Millisecond)
			sched.Commit(42)
		}()
		if is(s, "x-test-async-stop") {
			return abi.StopIteration
		}
		return abi.StopAllIterationAndBuffer
	}
	return abi.Continue
}

func (f *filter) OnScheduled(s abi.Stream, eventID uint64) {
	if is(s, "x-test-async-panic") {
		panic("testmodule: scheduled event asked to panic")
	}
	s.SetRequestHeader("x-test-resumed", strconv.FormatUint(eventID, 10))
	s.ContinueDecoding()
}

func (f *filter) OnStreamComplete(s abi.Stream) {
	if code, ok := s.AttributeInt(abi.AttrResponseCode); ok && f.path != "" {
		completed.Store(f.path, code)
	}
}

func (f *filter) OnDestroy() { live.Add(-1) }

func is(s abi.Stream, name string) bool {
	v, _ := s.RequestHeader(name)
	return v == "1"
}

// mutate exercises every header, metadata and filter-state call and records what it saw.
func (f *filter) mutate(s abi.Stream) {
	// Iterate all fields; report the repeated x-test-in field in order and
	// the total number of fields.
	var in []string
	fields := 0
	s.RequestHeaders(func(name, value []byte) {
		fields++
		if string(name) == "x-test-in" {
			in = append(in, string(value))
		}
	})
	s.SetRequestHeader("x-test-in-seen", strings.Join(in, "|"))
	s.SetRequestHeader("x-test-fields", strconv.Itoa(fields))

	s.AddRequestHeader("x-test-group", "system:masters")
	s.AddRequestHeader("x-test-group", "devs")
	s.SetRequestHeader("x-test-add-empty", strconv.FormatBool(s.AddRequestHeader("x-test-empty", "")))
	s.RemoveRequestHeader("x-drop-me")
	s.SetRequestHeader("x-test-overwrite", "module")
	s.SetRequestHeader("x-test-config", f.cfg.Tag)
	s.SetRequestHeader("x-test-live", strconv.FormatInt(live.Load(), 10))
	s.SetRequestHeader("x-test-configs-live", strconv.FormatInt(liveConfigs.Load(), 10))

	if rule, ok := s.RequestHeader("x-test-route"); ok {
		s.SetRequestHeader("x-test-rule", rule)
		if !is(s, "x-test-noclear") {
			s.ClearRouteCache()
		}
	}
	if p, ok := s.RequestHeader("x-test-query-complete"); ok {
		code, found := completed.Load(p)
		if found {
			s.SetRequestHeader("x-test-complete-code", strconv.FormatUint(code.(uint64), 10))
		}
	}

	s.SetFilterState("frontdoor.test.tag", f.cfg.Tag)
	// Filter state: a key written twice (the second write replaces the
	// first) and an empty value.
	s.SetRequestHeader("x-test-fs-set", fmt.Sprint(s.SetFilterState("frontdoor.test.fs-a", "first"),
		s.SetFilterState("frontdoor.test.fs-empty", ""), s.SetFilterState("frontdoor.test.fs-a", f.cfg.Tag+"-fs")))
	s.SetDynamicMetadataNumber("frontdoor.test", "n", 42.5)

	for _, a := range []struct {
		name string
		id   abi.Attribute
	}{
		{"path", abi.AttrRequestPath},
		{"method", abi.AttrRequestMethod},
		{"protocol", abi.AttrRequestProtocol},
		{"source-address", abi.AttrSourceAddress},
		{"tls-version", abi.AttrConnectionTLSVersion},
		{"subject", abi.AttrConnectionSubjectPeerCertificate},
		{"dns-san", abi.AttrConnectionDNSSANPeerCertificate},
		{"uri-san", abi.AttrConnectionURISANPeerCertificate},
		{"digest", abi.AttrConnectionSHA256PeerCertificateDigest},
	} {
		s.SetRequestHeader("x-test-attr-"+a.name, orAbsent(s.AttributeString(a.id)))
	}
	for _, a := range []struct {
		name string
		id   abi.Attribute
	}{
		{"source-port", abi.AttrSourcePort},
		{"connection-id", abi.AttrConnectionID},
	} {
		v, ok := s.AttributeInt(a.id)
		s.SetRequestHeader("x-test-attr-"+a.name, orAbsent(strconv.FormatUint(v, 10), ok))
	}
	mtls, ok := s.AttributeBool(abi.AttrConnectionMTLS)
	s.SetRequestHeader("x-test-attr-mtls", orAbsent(strconv.FormatBool(mtls), ok))
}

// measureAllocs counts Go heap allocations (process-wide, so only meaningful
// while no other request runs) of 100 rounds of the calls that should not
// allocate: header iteration and setters, int/bool attributes, metadata
// numbers and filter state.
func measureAllocs(s abi.Stream) uint64 {
	fields := 0
	count := func(name, value []byte) { fields++ }
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		s.RequestHeaders(count)
		s.SetRequestHeader("x-test-scratch", "v")
		s.AddRequestHeader("x-test-scratch", "w")
		s.RemoveRequestHeader("x-test-scratch")
		s.AttributeInt(abi.AttrConnectionID)
		s.AttributeBool(abi.AttrConnectionMTLS)
		s.SetDynamicMetadataNumber("frontdoor.test", "scratch", 1)
		s.SetFilterState("frontdoor.test.scratch", "v")
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

func orAbsent(v string, ok bool) string {
	switch {
	case !ok:
		return "<absent>"
	case v == "":
		return "<empty>"
	}
	return v
}

// decisions counts the replay filter's answers made in Go.
var decisions atomic.Int64

// replayClass is the class the replay filter counts its replays in.
const replayClass = 3

// replayTTL is x-test-replay in milliseconds, read by iterating the fields
// (RequestHeader would spoil the recording: it may read beyond the key).
func replayTTL(s abi.Stream) time.Duration {
	var ms int
	s.RequestHeaders(func(name, value []byte) {
		if string(name) == "x-test-replay" {
			ms, _ = strconv.Atoi(string(value))
		}
	})
	return time.Duration(ms) * time.Millisecond
}

// replayFilter answers with every write a plan can hold (header set, add,
// remove; filter state, a metadata number, elapsed; a reroute), numbering
// each answer Go makes (x-test-decision), and offers it for replay. Other
// x-test-* fields act on the way: x-test-forget retires every replay,
// x-test-hits reports abi.ReplayHits, x-test-route reroutes.
func replayFilter(s abi.Stream) abi.HeadersStatus {
	ttl := replayTTL(s)
	var forget, hits, route bool
	s.RequestHeaders(func(name, value []byte) {
		switch string(name) {
		case "x-test-forget":
			forget = true
		case "x-test-hits":
			hits = true
		case "x-test-route":
			route = true
		}
	})
	if forget {
		abi.ForgetReplays()
	}
	if hits {
		s.SetRequestHeader("x-test-replay-hits", strconv.FormatUint(abi.ReplayHits(replayClass), 10))
	}
	s.SetRequestHeader("x-test-decision", strconv.FormatInt(decisions.Add(1), 10))
	s.AddRequestHeader("x-test-group", "system:masters")
	s.AddRequestHeader("x-test-group", "devs")
	s.RemoveRequestHeader("x-drop-me")
	s.SetFilterState("frontdoor.test.tag", "replay")
	s.SetDynamicMetadataNumber("frontdoor.test", "n", 7.5)
	s.SetFilterState("frontdoor.test.fs-a", "replay-fs")
	s.SetFilterState("frontdoor.test.fs-empty", "")
	s.SetFilterStateElapsed("frontdoor.test.elapsed", time.Now())
	s.SetLogFields(`"decision":"replayed"`)
	s.SetLogElapsed(time.Now())
	if route {
		s.SetRequestHeader("x-test-rule", "second")
		s.ClearRouteCache()
	}
	s.SetRequestHeader("x-test-replay-kept", strconv.FormatBool(s.Replayable(ttl, replayClass)))
	return abi.Continue
}

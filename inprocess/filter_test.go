package inprocess

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
)

// fakeStream is an Envoy stream's request headers and what the filter did.
type fakeStream struct {
	headers [][2]string
	ops     []string
	// logFields are the access-log members the filter set last (JSON
	// members, no braces); logElapsed whether it set its time.
	logFields  *string
	logElapsed bool
	reply      *localReply
	continued  bool
	// attrs are the stream's attributes; attrReads counts their reads.
	attrs     map[abi.Attribute]string
	attrReads int
	// replays are the filter's Replayable offers.
	replays []replayOffer
}

type replayOffer struct {
	ttl   time.Duration
	class uint32
}

type localReply struct {
	code    int
	headers [][2]string
	body    string
	details string
}

func newFakeStream(headers ...string) *fakeStream {
	s := &fakeStream{}
	for i := 0; i+1 < len(headers); i += 2 {
		s.headers = append(s.headers, [2]string{headers[i], headers[i+1]})
	}
	return s
}

func (s *fakeStream) RequestHeaders(fn func(name, value []byte)) {
	for _, h := range s.headers {
		fn([]byte(h[0]), []byte(h[1]))
	}
}

func (s *fakeStream) SetRequestHeader(name, value string) bool {
	s.RemoveRequestHeader(name)
	s.headers = append(s.headers, [2]string{name, value})
	s.ops = append(s.ops, "set "+name+"="+value)
	return true
}

func (s *fakeStream) AddRequestHeader(name, value string) bool {
	s.headers = append(s.headers, [2]string{name, value})
	s.ops = append(s.ops, "add "+name+"="+value)
	return true
}

func (s *fakeStream) RemoveRequestHeader(name string) bool {
	kept := s.headers[:0]
	for _, h := range s.headers {
		if !strings.EqualFold(h[0], name) {
			kept = append(kept, h)
		}
	}
	s.headers = kept
	return true
}

func (s *fakeStream) ClearRouteCache() { s.ops = append(s.ops, "clear route cache") }

func (s *fakeStream) SendLocalResponse(code int, headers [][2]string, body []byte, details string) {
	s.reply = &localReply{code, headers, string(body), details}
}

func (s *fakeStream) ContinueDecoding() { s.continued = true }

func (s *fakeStream) SetLogFields(members string) { s.logFields = &members }

func (s *fakeStream) SetLogElapsed(time.Time) { s.logElapsed = true }

// logLine is the object of the filter's access-log members.
func (s *fakeStream) logLine(t *testing.T) map[string]any {
	t.Helper()
	if s.logFields == nil {
		t.Fatal("the filter set no access-log fields")
	}
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+*s.logFields+"}"), &m); err != nil {
		t.Fatalf("access-log members %q: %v", *s.logFields, err)
	}
	return m
}

// Replayable records the offer; the worker's side is replay.c's
// (TestReplay* in package abi and this package's e2e).
func (s *fakeStream) Replayable(ttl time.Duration, class uint32) bool {
	s.replays = append(s.replays, replayOffer{ttl, class})
	return true
}

func (s *fakeStream) AttributeString(id abi.Attribute) (string, bool) {
	s.attrReads++
	v, ok := s.attrs[id]
	return v, ok
}

// header returns every value of name, in order.
func (s *fakeStream) header(name string) []string {
	var out []string
	for _, h := range s.headers {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// fakeChecker decides by script: inline or not, and what.
type fakeChecker struct {
	inline  bool
	d       authz.Decision
	gotReq  chan *authz.Request
	release chan struct{}
}

func (c *fakeChecker) TryCheck(req *authz.Request) (authz.Decision, bool) {
	if !c.inline {
		return authz.Decision{}, false
	}
	c.gotReq <- req
	return c.d, true
}

func (c *fakeChecker) Check(_ context.Context, req *authz.Request) authz.Decision {
	c.gotReq <- req
	<-c.release
	return c.d
}

// recordingScheduler delivers Commit to a channel, as Envoy would post it
// to the worker thread.
type recordingScheduler chan uint64

func (r recordingScheduler) Commit(id uint64) bool { r <- id; return true }

var allowed = authz.Decision{
	Outcome:       authz.Allowed,
	RemoveHeaders: []string{"authorization", "impersonate-user"},
	SetHeaders: []authz.Header{
		{Name: "Impersonate-User", Value: "jane"}, {Name: "Impersonate-Group", Value: "dev"},
		{Name: "Impersonate-Group", Value: "system:authenticated"}, {Name: envoy.HeaderRule, Value: "default"},
	},
	Rule: "default", User: "jane", Groups: 2,
}

// The filter copies only the headers the pipeline reads, applies an
// allowed decision as one field per value (the default rule's without the
// rule header, and without choosing the route again) and records the
// access-log fields.
func TestInlineAllow(t *testing.T) {
	c := &fakeChecker{inline: true, d: allowed, gotReq: make(chan *authz.Request, 1)}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/api/v1/pods", "authorization", "Bearer t",
		"impersonate-user", "root", "user-agent", "kubectl", envoy.HeaderClientCert, `Cert="abc"`, "accept", "application/json")

	if st := f.onRequestHeaders(s, nil); st != abi.Continue {
		t.Fatalf("status = %v, want Continue", st)
	}
	req := <-c.gotReq
	want := &authz.Request{Cluster: "sandbox", Method: "GET", Path: "/api/v1/pods", PeerCertificate: "abc", Headers: map[string]string{
		":method": "GET", ":path": "/api/v1/pods", "authorization": "Bearer t", "impersonate-user": "root",
	}}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("request given to the pipeline (-want +got):\n%s", diff)
	}
	if got := s.header("impersonate-group"); !cmp.Equal(got, []string{"dev", "system:authenticated"}) {
		t.Errorf("Impersonate-Group fields = %q, want one per group", got)
	}
	for _, gone := range []string{"authorization", envoy.HeaderClientCert} {
		if v := s.header(gone); v != nil {
			t.Errorf("%s still present: %q", gone, v)
		}
	}
	if got := s.header("impersonate-user"); !cmp.Equal(got, []string{"jane"}) {
		t.Errorf("Impersonate-User = %q, want the decided user only", got)
	}
	if slices.Contains(s.ops, "clear route cache") {
		t.Errorf("the default rule's request had its route chosen again: %v", s.ops)
	}
	if v := s.header(envoy.HeaderRule); v != nil {
		t.Errorf("the default rule's request carries %s %q: its route was chosen without it", envoy.HeaderRule, v)
	}
	if s.attrReads != 0 {
		t.Errorf("an inline decision read %d stream attributes, want 0 (the client address is for reviews only)", s.attrReads)
	}
	if l := s.logLine(t); l["user"] != "jane" || l["groups"] != 2.0 {
		t.Errorf("access-log fields = %v, want user jane and 2 groups", l)
	}
	if !s.logElapsed {
		t.Error("the filter did not set its time for the access log")
	}
}

// Every access-log field reaches the module's line, strings as strings and
// the group count as a number, with the keys of Envoy's line in the other
// modes; a field the decision has not is null.
func TestAccessLogFieldsReachTheLine(t *testing.T) {
	d := allowed
	d.Requestor = "jane \"the\" admin\n"
	d.Info = &request.RequestInfo{Verb: "get", APIGroup: "apps", Resource: "deployments", Subresource: "scale", Namespace: "ns", Name: "web"}
	c := &fakeChecker{inline: true, d: d, gotReq: make(chan *authz.Request, 1)}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/apis/apps/v1/namespaces/ns/deployments/web/scale")
	if st := f.onRequestHeaders(s, nil); st != abi.Continue {
		t.Fatalf("status = %v, want Continue", st)
	}
	want := map[string]any{}
	d.EachAccessLogField(
		func(k, v string) { want[k] = v },
		func(k string, v float64) { want[k] = v })
	if len(want) < len(envoy.AccessLogFields) {
		t.Fatalf("the decision has only %d access-log fields; the test needs them all", len(want))
	}
	if diff := cmp.Diff(want, s.logLine(t)); diff != "" {
		t.Errorf("access-log fields (-want +got):\n%s", diff)
	}

	// A denial has no user, groups or rule: null, as Envoy writes them.
	denied := newFakeStream(":method", "GET", ":path", "/api")
	dd := authz.Decision{Outcome: authz.Unauthenticated, Code: 401}
	(&filter{cfg: &filterConfig{cluster: "sandbox", checker: &fakeChecker{inline: true, d: dd, gotReq: make(chan *authz.Request, 1)}}}).onRequestHeaders(denied, nil)
	l := denied.logLine(t)
	for _, k := range envoy.AccessLogFields {
		if _, ok := l[k]; !ok {
			t.Errorf("denied line lacks %q: %v", k, l)
		}
	}
	if l["user"] != nil || l["groups"] != nil || l["decision"] != string(authz.Unauthenticated) {
		t.Errorf("denied line = %v, want user and groups null, decision %q", l, authz.Unauthenticated)
	}
}

// A line the filter never decided (absentLogFields) has every field, null.
func TestAbsentLogFields(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+absentLogFields+"}"), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != len(envoy.AccessLogFields) {
		t.Fatalf("absent fields = %v, want every one of %v", m, envoy.AccessLogFields)
	}
	for k, v := range m {
		if v != nil {
			t.Errorf("%s = %v, want null", k, v)
		}
	}
}

// A request of any other rule has its route chosen again, after the rule
// header is set.
func TestInlineAllowOtherRuleReroutes(t *testing.T) {
	d := allowed
	d.Rule = "batch"
	d.SetHeaders = []authz.Header{{Name: "Impersonate-User", Value: "jane"}, {Name: envoy.HeaderRule, Value: "batch"}}
	c := &fakeChecker{inline: true, d: d, gotReq: make(chan *authz.Request, 1)}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/api/v1/pods")
	if st := f.onRequestHeaders(s, nil); st != abi.Continue {
		t.Fatalf("status = %v, want Continue", st)
	}
	if got := s.header(envoy.HeaderRule); !cmp.Equal(got, []string{"batch"}) {
		t.Errorf("rule header = %q", got)
	}
	if s.ops[len(s.ops)-1] != "clear route cache" {
		t.Errorf("operations %v, want the route cache cleared last", s.ops)
	}
}

func TestInlineDenial(t *testing.T) {
	deny := authz.Decision{Outcome: authz.Unauthenticated, Code: 401, Body: []byte(`{"kind":"Status"}`),
		ResponseHeaders: []authz.Header{{Name: "content-type", Value: "application/json"}}}
	c := &fakeChecker{inline: true, d: deny, gotReq: make(chan *authz.Request, 1)}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/api")
	if st := f.onRequestHeaders(s, nil); st != abi.StopIteration {
		t.Fatalf("status = %v, want StopIteration", st)
	}
	want := &localReply{401, [][2]string{{"content-type", "application/json"}}, `{"kind":"Status"}`, "frontdoor_unauthenticated"}
	if diff := cmp.Diff(want, s.reply, cmp.AllowUnexported(localReply{})); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	if len(s.ops) != 0 {
		t.Errorf("a denied request's headers were changed: %v", s.ops)
	}
}

// A decision that needs the apiserver pauses the request, runs on a
// goroutine, and is applied on the worker thread (OnScheduled) before the
// request resumes.
func TestAsyncDecision(t *testing.T) {
	c := &fakeChecker{d: allowed, gotReq: make(chan *authz.Request, 1), release: make(chan struct{})}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/api", "authorization", "Bearer new")
	s.attrs = map[abi.Attribute]string{abi.AttrSourceAddress: "192.0.2.1:5555"}
	sched := make(recordingScheduler, 1)
	if st := f.onRequestHeaders(s, func() scheduler { return sched }); st != abi.StopAllIterationAndBuffer {
		t.Fatalf("status = %v, want StopAllIterationAndBuffer", st)
	}
	if req := <-c.gotReq; req.ClientAddress != "192.0.2.1:5555" {
		t.Errorf("the decision off the worker thread got client address %q, want the stream's source address", req.ClientAddress)
	}
	if len(s.ops) != 0 || s.continued {
		t.Fatal("the request moved before the decision")
	}
	close(c.release)
	select {
	case id := <-sched:
		f.onScheduled(s, id)
	case <-time.After(5 * time.Second):
		t.Fatal("the decision was never scheduled back")
	}
	if !s.continued || len(s.header("impersonate-group")) != 2 || s.header("authorization") != nil {
		t.Errorf("after the decision: continued %v, headers %v", s.continued, s.headers)
	}
}

func TestReadsHeaderList(t *testing.T) {
	for name, want := range map[string]bool{
		"authorization": true, "impersonate-extra-scopes": true, ":path": true, ":authority": false,
		"user-agent": false, envoy.HeaderClientCert: true, "sec-websocket-protocol": true, "cookie": false,
	} {
		if got := authz.ReadsHeader([]byte(name)); got != want {
			t.Errorf("ReadsHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

// An identity with an empty value cannot be carried through the ABI: the
// request is refused, never forwarded with the value dropped.
func TestEmptyIdentityValueIsRefused(t *testing.T) {
	d := allowed
	d.SetHeaders = append(append([]authz.Header(nil), allowed.SetHeaders...), authz.Header{Name: "Impersonate-Extra-scopes", Value: ""})
	c := &fakeChecker{inline: true, d: d, gotReq: make(chan *authz.Request, 1)}
	f := (&filterConfig{cluster: "sandbox", checker: c}).NewFilter().(*filter)
	s := newFakeStream(":method", "GET", ":path", "/api")
	if st := f.onRequestHeaders(s, nil); st != abi.StopIteration {
		t.Fatalf("status = %v, want StopIteration", st)
	}
	if s.reply == nil || s.reply.code != 500 || !strings.Contains(s.reply.body, "ExtAuthz or ExtProc") || len(s.ops) != 0 {
		t.Errorf("reply %+v, ops %v", s.reply, s.ops)
	}
}

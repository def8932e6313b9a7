// Package inprocess is the request service inside Envoy: the same
// authz.Pipeline as frontdoor serve's ext_authz and ext_proc services,
// compiled into Envoy as a dynamic module (cmd/frontdoor-module, a Go
// c-shared library) and run as an HTTP filter on Envoy's worker threads.
// There is no gRPC round trip and no identity Lua filter: the filter reads
// the request headers, asks the pipeline and rewrites the headers itself,
// each identity value its own header field.
//
// A request whose credentials are cached (certificates always, tokens a
// TokenReview authenticated) is decided inline (authz.Checker.TryCheck).
// One that needs the apiserver (a new token, client impersonation) is paused,
// decided on a goroutine with the same caches, and resumed on its worker
// thread through the ABI's scheduler: a worker never waits on the network.
//
// It fails closed: until the first policy table arrives every request is
// answered 503; a Go panic in the filter becomes a 503 Status (package abi);
// a decision that never comes is cut at checkTimeout with a 503.
//
// The module gets its policy from frontdoor serve (package policyfeed), not
// from its Envoy config, so a policy edit never rebuilds Envoy's listener.
//
// This package imports the ABI binding (cgo); frontdoor serve never links
// it (it links policyfeed only).
package inprocess

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kubefrontdoor/frontdoor/authz"
	"github.com/kubefrontdoor/frontdoor/envoy"
	"github.com/kubefrontdoor/frontdoor/inprocess/abi"
	"github.com/kubefrontdoor/frontdoor/kubestatus"
)

// checkTimeout bounds a decision that waits on the apiserver, as the
// ext_authz and ext_proc filters' timeout does in the other modes.
const checkTimeout = 2 * time.Second

// scheduledDecision is the only event id the filter schedules.
const scheduledDecision = 1

// stream is what the filter needs of an Envoy stream (abi.Stream); tests
// drive the filter through a fake.
type stream interface {
	RequestHeaders(fn func(name, value []byte))
	SetRequestHeader(name, value string) bool
	AddRequestHeader(name, value string) bool
	RemoveRequestHeader(name string) bool
	ClearRouteCache()
	SendLocalResponse(code int, headers [][2]string, body []byte, details string)
	ContinueDecoding()
	SetLogFields(members string)
	SetLogElapsed(start time.Time)
	AttributeString(id abi.Attribute) (string, bool)
	Replayable(ttl time.Duration, class uint32) bool
}

// scheduler brings a result back to the stream's worker thread.
type scheduler interface {
	Commit(eventID uint64) bool
}

// filterConfig is one UpstreamCluster's filter config.
type filterConfig struct {
	cluster string
	// accessLog is the log the module writes for the cluster (logfields.go);
	// nil: none.
	accessLog *envoy.InProcessAccessLog
	checker   authz.Checker
	// pipeline and replays let the worker replay decisions (replay.go);
	// nil: never.
	pipeline *authz.Pipeline
	replays  *replayCounter
}

func (c *filterConfig) NewFilter() abi.Filter { return &filter{cfg: c} }

func (c *filterConfig) Destroy() {}

// filter handles one request.
type filter struct {
	cfg *filterConfig
	// result is the asynchronous decision, written by its goroutine
	// before Commit and read on the worker thread in OnScheduled.
	result atomic.Pointer[authz.Decision]
	start  time.Time
}

func (f *filter) OnRequestHeaders(s abi.Stream, _ bool) abi.HeadersStatus {
	return f.onRequestHeaders(s, func() scheduler { return s.NewScheduler() })
}

func (f *filter) OnScheduled(s abi.Stream, eventID uint64) { f.onScheduled(s, eventID) }

// onRequestHeaders decides inline when it can, else pauses the request
// and decides on a goroutine.
func (f *filter) onRequestHeaders(s stream, newScheduler func() scheduler) abi.HeadersStatus {
	f.start = time.Now()
	req := readRequest(s, f.cfg.cluster)
	if d, ok := f.cfg.checker.TryCheck(req); ok {
		return f.apply(s, &d)
	}
	// Only a decision that may need a TokenReview reads the client's
	// address (for the refusal gate): the inline path never pays for it.
	req.ClientAddress, _ = s.AttributeString(abi.AttrSourceAddress)
	sched := newScheduler()
	checker := f.cfg.checker
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		d := checker.Check(ctx, req)
		f.result.Store(&d)
		sched.Commit(scheduledDecision) // false: the stream is gone, nothing to do
	}()
	return abi.StopAllIterationAndBuffer
}

// onScheduled applies the asynchronous decision and resumes the request.
func (f *filter) onScheduled(s stream, eventID uint64) {
	d := f.result.Load()
	if eventID != scheduledDecision || d == nil {
		return
	}
	if f.apply(s, d) == abi.Continue {
		s.ContinueDecoding()
	}
}

// apply records the access-log fields, then forwards the request with its
// identity headers (Continue) or answers the denial (StopIteration).
//
// The fields and the module's time go into the stream's access log line,
// which the module writes itself when the stream completes (logfields.go).
func (f *filter) apply(s stream, d *authz.Decision) abi.HeadersStatus {
	setLogFields(s, d)
	s.SetLogElapsed(f.start)
	if d.Allowed() && !carriable(d) {
		d = &emptyValueDenial
	}
	if !d.Allowed() {
		headers := make([][2]string, len(d.ResponseHeaders))
		for i, h := range d.ResponseHeaders {
			headers[i] = [2]string{h.Name, h.Value}
		}
		s.SendLocalResponse(d.Code, headers, d.Body, "frontdoor_"+string(d.Outcome))
		return abi.StopIteration
	}
	reroute := needsReroute(d)
	d.Apply(mutator{s: s, ruleHeader: reroute})
	if reroute {
		s.ClearRouteCache()
	}
	f.offerReplay(s, d)
	return abi.Continue
}

// offerReplay lets the worker replay an allowed decision the pipeline says
// may be (replay.go): it must come after every write of apply, which the
// stream recorded as the replay's plan.
func (f *filter) offerReplay(s stream, d *authz.Decision) {
	c := f.cfg
	if d.ReplayUntil.IsZero() || c.replays == nil || c.pipeline == nil {
		return
	}
	ttl := time.Until(d.ReplayUntil)
	if ttl <= 0 {
		return
	}
	if id, ok := c.replays.class(c.pipeline, c.cluster, d); ok {
		s.Replayable(ttl, id)
	}
}

// needsReroute reports whether the decision's rule picks another route than
// the one Envoy chose before the filter ran. x-frontdoor-rule picks the
// route; Envoy chose it with no rule header (the early header mutation drops
// the client's), which only the catch-all default route or the upgrade route
// match (translator/route.go). So a request of the default rule keeps its
// route, and choosing it again, the route table walked once more per
// request, is skipped.
func needsReroute(d *authz.Decision) bool {
	return d.Rule != envoy.DefaultRule
}

// carriable reports whether every header the decision sets has a value:
// Envoy's ABI cannot add an empty header field (setting one removes the
// name), so an identity with an empty value (a user extra "") could only
// be forwarded without it, which would change the identity.
func carriable(d *authz.Decision) bool {
	for _, h := range d.SetHeaders {
		if h.Value == "" {
			return false
		}
	}
	return true
}

// emptyValueDenial refuses, rather than alter, an identity the module
// cannot forward.
var emptyValueDenial = authz.Decision{
	Outcome: authz.Unavailable,
	Code:    http.StatusInternalServerError,
	Body: kubestatus.Body(http.StatusInternalServerError,
		"frontdoor: the identity has an empty header value, which the in-process request service cannot forward; serve this cluster with requestService ExtAuthz or ExtProc"),
	ResponseHeaders: []authz.Header{{Name: "content-type", Value: kubestatus.ContentType}, {Name: "cache-control", Value: kubestatus.CacheControl}},
}

// readRequest copies the headers the pipeline reads into a Request;
// everything else stays in Envoy.
func readRequest(s stream, cluster string) *authz.Request {
	b := authz.NewRequestBuilder(cluster, 8)
	s.RequestHeaders(func(name, value []byte) {
		if authz.ReadsHeader(name) {
			b.Add(string(name), string(value))
		}
	})
	return b.Request()
}

// mutator applies a decision's header plan to the stream. The rule header
// is written only when it picks another route (ruleHeader, needsReroute):
// in process nothing else reads it (the access log takes the rule from
// the decision, and the routes of the default rule match without it), and
// the edge header mutation would only remove it again.
type mutator struct {
	s          stream
	ruleHeader bool
}

func (m mutator) RemoveHeader(name string) { m.s.RemoveRequestHeader(name) }

func (m mutator) SetHeader(name, value string) {
	if name == envoy.HeaderRule && !m.ruleHeader {
		return
	}
	m.s.SetRequestHeader(name, value)
}

func (m mutator) AppendHeader(name, value string) { m.s.AddRequestHeader(name, value) }

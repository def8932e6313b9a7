package abi

// Unit tests of the pure-Go half (no Envoy): run them with -race.

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

type fakeConfig struct {
	destroyed atomic.Int32
	newFilter func() Filter
}

func (c *fakeConfig) NewFilter() Filter { return c.newFilter() }
func (c *fakeConfig) Destroy()          { c.destroyed.Add(1) }

type fakeFilter struct{}

func (f *fakeFilter) OnRequestHeaders(Stream, bool) HeadersStatus { return Continue }
func (f *fakeFilter) OnScheduled(Stream, uint64)                  {}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	fn()
}

func TestRegisterFilter(t *testing.T) {
	RegisterFilter("unit-register", func([]byte) (FilterConfig, error) { return nil, nil })
	mustPanic(t, "a second registration", func() {
		RegisterFilter("unit-register", func([]byte) (FilterConfig, error) { return nil, nil })
	})
	mustPanic(t, "a nil factory", func() { RegisterFilter("unit-nil", nil) })
}

func TestConfigHandles(t *testing.T) {
	var got []byte
	cfg := &fakeConfig{newFilter: func() Filter { return &fakeFilter{} }}
	RegisterFilter("unit-ok", func(b []byte) (FilterConfig, error) { got = b; return cfg, nil })
	RegisterFilter("unit-err", func([]byte) (FilterConfig, error) { return nil, errors.New("bad config") })
	RegisterFilter("unit-panic", func([]byte) (FilterConfig, error) { panic("boom") })
	RegisterFilter("unit-nilcfg", func([]byte) (FilterConfig, error) { return nil, nil })

	for _, name := range []string{"unit-unknown", "unit-err", "unit-panic", "unit-nilcfg"} {
		if h := newConfigHandle(name, nil); h != 0 {
			t.Errorf("%s: got handle %d, want 0 (reject the config)", name, h)
		}
	}
	h := newConfigHandle("unit-ok", []byte("cfg"))
	if h == 0 || string(got) != "cfg" {
		t.Fatalf("handle %d, config %q", h, got)
	}
	if cs := configFromHandle(h); cs == nil || cs.config != cfg {
		t.Fatalf("configFromHandle: %+v", cs)
	}
	destroyConfigHandle(h)
	if n := cfg.destroyed.Load(); n != 1 {
		t.Errorf("Destroy ran %d times", n)
	}
	destroyConfigHandle(0) // no-op
}

// Envoy-side behaviour of stream state (NewFilter failing, OnDestroy,
// schedulers resuming, body held while paused) is tested against the real
// Envoy in abi_test.go; here the Go-only rules.
func TestDeadStreamsDoNothing(t *testing.T) {
	if streamStateOf(nil) != nil {
		t.Error("streamStateOf(nil) returned a state")
	}
	// A scheduler already deleted by Envoy-side teardown: Commit from many
	// goroutines is a no-op (no C call with a nil pointer).
	sched := Scheduler{s: &schedulerState{}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if sched.Commit(1) {
				t.Error("Commit on a deleted scheduler reported success")
			}
			sched.Delete()
		})
	}
	wg.Wait()
	// A Stream kept past its stream (released state), and the zero Stream,
	// do nothing.
	st := &filterState{filter: &fakeFilter{}}
	st.release()
	for _, s := range []Stream{{st: st}, {}} {
		if s.AddRequestHeader("a", "b") || s.SetRequestHeader("a", "b") || s.RemoveRequestHeader("a") {
			t.Error("header call on a dead stream reported success")
		}
		if _, ok := s.RequestHeader("a"); ok {
			t.Error("RequestHeader on a dead stream")
		}
		if _, ok := s.AttributeString(AttrRequestPath); ok {
			t.Error("AttributeString on a dead stream")
		}
		s.RequestHeaders(func(_, _ []byte) { t.Error("RequestHeaders on a dead stream") })
		s.ClearRouteCache()
		s.ContinueDecoding()
		s.SendLocalResponse(500, nil, nil, "")
		s.SetFilterState("k", "v")
		if (s.NewScheduler() != Scheduler{}) {
			t.Error("NewScheduler on a dead stream")
		}
	}
	if (Scheduler{}).Commit(1) {
		t.Error("zero Scheduler committed")
	}
}

func TestInternalErrorStatus(t *testing.T) {
	var st struct {
		Kind, APIVersion, Status, Message, Reason string
		Code                                      int
		Metadata                                  map[string]any
	}
	if err := json.Unmarshal([]byte(internalErrorStatus), &st); err != nil {
		t.Fatal(err)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != "Failure" || st.Reason != "ServiceUnavailable" || st.Code != 503 || st.Metadata == nil {
		t.Errorf("not a Kubernetes 503 Status: %+v", st)
	}
	if internalErrorStatus != statusBody {
		t.Errorf("the body the tests expect drifted from the one the hook sends")
	}
}

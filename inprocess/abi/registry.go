package abi

/*
#include "frontdoor_abi.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"runtime/debug"
	"sync"
	"unsafe"
)

// This file is the Go half of the binding's state: the factory registry and
// the per-config / per-stream Go state that the hooks (hooks.go, shell.c)
// look up. Envoy and C memory hold only integer handles to it
// (runtime/cgo.Handle), never Go pointers, as cgo's pointer rules require.

var (
	factoriesMu sync.RWMutex
	factories   = map[string]func(config []byte) (FilterConfig, error){}
)

// RegisterFilter installs the factory for the filter_name `name` of the
// DynamicModuleFilter config. Call it from an init function of the module's
// main package: Envoy creates filter configs only after package init. The
// factory gets a copy of filter_config (StringValue/BytesValue are passed
// unwrapped, Struct as JSON); an error or panic makes Envoy reject the config.
func RegisterFilter(name string, newConfig func(config []byte) (FilterConfig, error)) {
	if newConfig == nil {
		panic("abi: RegisterFilter with a nil factory for " + name)
	}
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	if _, dup := factories[name]; dup {
		panic("abi: RegisterFilter called twice for " + name)
	}
	factories[name] = newConfig
}

// configState is what an Envoy filter config's handle points to.
type configState struct {
	name   string
	config FilterConfig
}

// filterState is a stream's Go state: its Filter, and the schedulers it
// created. It exists for the duration of the request-headers hook and lives
// on (registered in its fd_stream as a handle) only when the stream needs it
// later: a Filter with OnDestroy or OnStreamComplete, or one that created a
// Scheduler. It is only touched on the stream's worker thread (inside hooks),
// except schedulers' own locks.
type filterState struct {
	filter Filter // nil: NewFilter failed; the stream fails closed
	// c is the stream's C half (shell.c); envoy is its Envoy filter pointer.
	// Both are nil once the stream is released or destroyed, so a Stream
	// kept too long turns into no-ops instead of a use-after-free.
	c          *C.fd_stream
	envoy      unsafe.Pointer
	schedulers []*schedulerState
	// rec records the filter's writes during OnRequestHeaders when the
	// worker may replay them (replay.go); nil otherwise.
	rec *recording
}

// newStreamState runs the config's NewFilter for a stream's request headers,
// and registers the state at once if the Filter asks for the later hooks.
func newStreamState(c *C.fd_stream) *filterState {
	st := &filterState{c: c, envoy: c.envoy}
	var h uintptr
	if c.config != nil {
		h = uintptr(c.config.handle)
	}
	if cs := configFromHandle(h); cs != nil {
		func() {
			defer recoverAndLog("creating filter " + cs.name)
			st.filter = cs.config.NewFilter()
		}()
	}
	_, destroyer := st.filter.(Destroyer)
	_, completer := st.filter.(StreamCompleter)
	if completer || destroyer {
		st.register()
	}
	if completer {
		c.flags |= C.FD_STREAM_WANTS_COMPLETE
	}
	return st
}

// register keeps the state beyond the current hook: Envoy's later hooks
// find it through the fd_stream.
func (st *filterState) register() {
	if st.c == nil || st.c.state != 0 {
		return
	}
	st.c.state = C.uintptr_t(cgo.NewHandle(st))
}

// release ends an unregistered state with its hook.
func (st *filterState) release() {
	if st.c != nil && st.c.state == 0 {
		st.c, st.envoy = nil, nil
	}
}

// setOpen lets request body and trailers through (true) or holds them back.
func (st *filterState) setOpen(open bool) {
	if st.c == nil {
		return
	}
	if open {
		st.c.flags |= C.FD_STREAM_OPEN
	} else {
		st.c.flags &^= C.FD_STREAM_OPEN
	}
}

// failed reports whether the stream was answered after a failure.
func (st *filterState) failed() bool {
	return st.c != nil && st.c.flags&C.FD_STREAM_FAILED != 0
}

// streamStateOf returns the registered state of a stream, or nil.
func streamStateOf(c *C.fd_stream) (st *filterState) {
	defer func() {
		if recover() != nil {
			st = nil
		}
	}()
	if c == nil || c.state == 0 {
		return nil
	}
	st, _ = cgo.Handle(c.state).Value().(*filterState)
	return st
}

// destroyStreamState runs OnDestroy, deletes every scheduler the stream left
// (after which Commit from any goroutine is a no-op) and frees the handle.
func destroyStreamState(c *C.fd_stream) {
	st := streamStateOf(c)
	if st == nil {
		return
	}
	cgo.Handle(c.state).Delete()
	c.state = 0
	if d, ok := st.filter.(Destroyer); ok {
		func() {
			defer recoverAndLog("filter OnDestroy")
			d.OnDestroy()
		}()
	}
	for _, s := range st.schedulers {
		s.delete()
	}
	st.schedulers = nil
	st.c, st.envoy = nil, nil
}

// newConfigHandle runs the registered factory; 0 means "reject the config".
func newConfigHandle(name string, config []byte) (h uintptr) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("creating filter config "+name, r)
			h = 0
		}
	}()
	factoriesMu.RLock()
	factory := factories[name]
	factoriesMu.RUnlock()
	if factory == nil {
		Log(LogError, "frontdoor abi: no filter registered under filter_name "+quote(name))
		return 0
	}
	cfg, err := factory(config)
	if err != nil {
		Log(LogError, "frontdoor abi: filter config "+quote(name)+" rejected: "+err.Error())
		return 0
	}
	if cfg == nil {
		Log(LogError, "frontdoor abi: filter config "+quote(name)+" factory returned nil")
		return 0
	}
	return uintptr(cgo.NewHandle(&configState{name: name, config: cfg}))
}

func configFromHandle(h uintptr) *configState {
	if h == 0 {
		return nil
	}
	cs, _ := cgo.Handle(h).Value().(*configState)
	return cs
}

func destroyConfigHandle(h uintptr) {
	cs := configFromHandle(h)
	if cs == nil {
		return
	}
	cgo.Handle(h).Delete()
	defer recoverAndLog("destroying filter config " + cs.name)
	cs.config.Destroy()
}

// internalErrorStatus is the body of the 503 a panicking request hook answers
// with: a Kubernetes Status, so kubectl and client-go show a proper error.
const internalErrorStatus = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"frontdoor: internal error in the request filter","reason":"ServiceUnavailable","code":503}`

// internalErrorHeaders are the headers of that reply.
var internalErrorHeaders = [][2]string{{"content-type", "application/json"}}

// failClosed answers the stream with the internal-error Status and marks it
// failed so body and trailers are never forwarded.
func failClosed(s Stream, details string) {
	if s.st == nil || s.st.c == nil {
		return
	}
	s.st.c.flags = (s.st.c.flags &^ C.FD_STREAM_OPEN) | C.FD_STREAM_FAILED
	s.SendLocalResponse(503, internalErrorHeaders, []byte(internalErrorStatus), details)
}

func recoverAndLog(what string) {
	if r := recover(); r != nil {
		logPanic(what, r)
	}
}

func logPanic(what string, r any) {
	Log(LogError, "frontdoor abi: panic in "+what+": "+fmt.Sprint(r)+"\n"+string(debug.Stack()))
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

package abi

import (
	"fmt"
	"runtime/cgo"
	"runtime/debug"
	"sync"
	"unsafe"
)

// This file is the pure-Go half of the binding: the factory registry and the
// per-config / per-stream state that the exported hooks (hooks.go) look up.
// Envoy holds only integer handles to it (runtime/cgo.Handle), never Go
// pointers, as cgo's pointer rules require.

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

// filterState is what a stream's handle points to. It is only touched on the
// stream's worker thread (inside hooks), except schedulers' own locks.
type filterState struct {
	filter Filter // nil: NewFilter failed; the stream fails closed
	// envoy is the DynamicModuleHttpFilter pointer, valid from on_http_filter_new
	// to on_http_filter_destroy; nil afterwards so a Stream kept past OnDestroy
	// turns into no-ops instead of a use-after-free.
	envoy unsafe.Pointer
	// paused: request headers returned a Stop status and ContinueDecoding has
	// not been called; failed: a local reply answered the stream after a panic.
	// In both cases request body and trailers are held back (fail closed).
	paused, failed bool
	schedulers     []*schedulerState
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

// newFilterHandle creates the per-stream state. It never returns 0: when the
// config is missing or NewFilter fails, the state has no filter and the
// request hook answers 503, so the stream fails closed whatever Envoy does
// with a NULL filter.
func newFilterHandle(cfgHandle uintptr, envoy unsafe.Pointer) uintptr {
	st := &filterState{envoy: envoy}
	if cs := configFromHandle(cfgHandle); cs != nil {
		func() {
			defer recoverAndLog("creating filter " + cs.name)
			st.filter = cs.config.NewFilter()
		}()
	}
	return uintptr(cgo.NewHandle(st))
}

func filterFromHandle(h uintptr) *filterState {
	if h == 0 {
		return nil
	}
	st, _ := cgo.Handle(h).Value().(*filterState)
	return st
}

// destroyFilterHandle runs OnDestroy, deletes every scheduler the stream left
// (after which Commit from any goroutine is a no-op) and frees the handle.
func destroyFilterHandle(h uintptr) {
	st := filterFromHandle(h)
	if st == nil {
		return
	}
	cgo.Handle(h).Delete()
	if st.filter != nil {
		func() {
			defer recoverAndLog("filter OnDestroy")
			st.filter.OnDestroy()
		}()
	}
	for _, s := range st.schedulers {
		s.delete()
	}
	st.schedulers = nil
	st.envoy = nil
}

// internalErrorStatus is the body of the 503 a panicking request hook answers
// with: a Kubernetes Status, so kubectl and client-go show a proper error.
const internalErrorStatus = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"frontdoor: internal error in the request filter","reason":"ServiceUnavailable","code":503}`

// internalErrorHeaders are the headers of that reply.
var internalErrorHeaders = [][2]string{{"content-type", "application/json"}}

// failClosed answers the stream with the internal-error Status and marks it
// failed so body and trailers are never forwarded.
func failClosed(s Stream, details string) {
	if s.st == nil {
		return
	}
	s.st.failed = true
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

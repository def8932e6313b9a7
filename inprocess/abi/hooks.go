package abi

/*
#include "frontdoor_abi.h"
*/
import "C"

import (
	"unsafe"
)

// The event hooks Envoy 1.40 resolves in an HTTP filter module. Envoy looks
// them up by name with dlsym; the C signatures are fixed by Envoy, so each
// hook only converts arguments and calls into registry.go / the Filter.
// Hooks that need no Go are C, in shell.c; the ones here are the config
// hooks, request headers (entered from shell.c) and scheduled events.
//
// The filter config crosses the boundary as a uintptr_t handle (a
// runtime/cgo.Handle value): Envoy declares it `const void*`, the same
// machine type on the LP64 targets this package builds for. The per-stream
// filter is a C fd_stream (shell.c), which Go may read and write in place.
// Envoy-owned pointers stay unsafe.Pointer.
//
// Every hook recovers panics: an unrecovered Go panic would kill Envoy.

// requiredHooks are the hooks Envoy 1.40.0 refuses the filter config without
// (found by loading a stub module into bin/envoy one missing symbol at a time,
// and by Envoy's filter_config.cc). Defined below or in shell.c; tests check
// the built module and the binary against this list.
var requiredHooks = []string{
	"envoy_dynamic_module_on_program_init",
	"envoy_dynamic_module_on_http_filter_config_new",
	"envoy_dynamic_module_on_http_filter_config_destroy",
	"envoy_dynamic_module_on_http_filter_new",
	"envoy_dynamic_module_on_http_filter_request_headers",
	"envoy_dynamic_module_on_http_filter_request_body",
	"envoy_dynamic_module_on_http_filter_request_trailers",
	"envoy_dynamic_module_on_http_filter_response_headers",
	"envoy_dynamic_module_on_http_filter_response_body",
	"envoy_dynamic_module_on_http_filter_response_trailers",
	"envoy_dynamic_module_on_http_filter_stream_complete",
	"envoy_dynamic_module_on_http_filter_destroy",
	"envoy_dynamic_module_on_http_filter_http_callout_done",
	"envoy_dynamic_module_on_http_filter_http_stream_headers",
	"envoy_dynamic_module_on_http_filter_http_stream_data",
	"envoy_dynamic_module_on_http_filter_http_stream_trailers",
	"envoy_dynamic_module_on_http_filter_http_stream_complete",
	"envoy_dynamic_module_on_http_filter_http_stream_reset",
	"envoy_dynamic_module_on_http_filter_scheduled",
	"envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
	"envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
}

// optionalHooks are HTTP filter hooks 1.40.0 looks up but does not require;
// this module leaves them out on purpose. per_route_config_* are only
// resolved for per-route configs, which are therefore rejected (fail closed).
var optionalHooks = []string{
	"envoy_dynamic_module_on_http_filter_config_scheduled",
	"envoy_dynamic_module_on_http_filter_config_http_callout_done",
	"envoy_dynamic_module_on_http_filter_config_http_stream_headers",
	"envoy_dynamic_module_on_http_filter_config_http_stream_data",
	"envoy_dynamic_module_on_http_filter_config_http_stream_trailers",
	"envoy_dynamic_module_on_http_filter_config_http_stream_complete",
	"envoy_dynamic_module_on_http_filter_config_http_stream_reset",
	"envoy_dynamic_module_on_http_filter_local_reply",
	"envoy_dynamic_module_on_http_filter_per_route_config_new",
	"envoy_dynamic_module_on_http_filter_per_route_config_destroy",
}

// abiVersionC is returned by on_program_init. Envoy compares it with its own
// ABI version and only logs on mismatch; the string must outlive the call.
var abiVersionC = C.CString(ABIVersion)

//export envoy_dynamic_module_on_program_init
func envoy_dynamic_module_on_program_init() *C.char {
	return abiVersionC
}

// fdGoConfigNew is the config half of on_http_filter_config_new (shell.c
// owns the C fd_config): it runs the registered factory into c.handle and,
// for a config with an access log (AccessLogger), opens it into c.log. false
// makes Envoy reject the config.
//
//export fdGoConfigNew
func fdGoConfigNew(envoyConfig unsafe.Pointer, name, config C.fd_buffer, c *C.fd_config) (ok C.bool) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("on_http_filter_config_new", r)
			ok = false
		}
	}()
	// Both buffers are Envoy's and only valid during this call: copy.
	n := C.GoStringN(name.ptr, C.int(name.length))
	h := newConfigHandle(n, C.GoBytes(unsafe.Pointer(config.ptr), C.int(config.length)))
	if h == 0 {
		return false
	}
	log, err := openAccessLog(configFromHandle(h).config)
	if err != nil {
		Log(LogError, "frontdoor abi: filter config "+quote(n)+" rejected: "+err.Error())
		destroyConfigHandle(h)
		return false
	}
	c.handle, c.log = C.uintptr_t(h), log
	return true
}

//export fdGoConfigDestroy
func fdGoConfigDestroy(h C.uintptr_t) {
	defer recoverAndLog("on_http_filter_config_destroy")
	destroyConfigHandle(uintptr(h))
}

// fdGoRequestHeaders is the request-headers hook when shell.c did not
// replay the request (replay.c).
//
//export fdGoRequestHeaders
func fdGoRequestHeaders(envoy unsafe.Pointer, filter *C.fd_stream, endOfStream C.bool) (status C.int32_t) {
	if filter == nil {
		sendInternalErrorRaw(envoy, "frontdoor_no_filter")
		return C.int32_t(StopIteration)
	}
	st := newStreamState(filter)
	s := Stream{st: st}
	defer st.release() // a Stream kept past the hook without Go state does nothing
	if st.filter == nil {
		// No config, or NewFilter failed: never forward.
		failClosed(s, "frontdoor_no_filter")
		return C.int32_t(StopIteration)
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnRequestHeaders", r)
			failClosed(s, "frontdoor_filter_panic")
			status = C.int32_t(StopIteration)
		}
	}()
	if C.fd_replay_pending(filter) != 0 {
		st.rec = newRecording() // the filter's writes may become a replay plan
	}
	ret := st.filter.OnRequestHeaders(s, bool(endOfStream))
	st.rec.put()
	st.rec = nil
	switch ret {
	case Continue:
		st.setOpen(true)
	case StopIteration, StopAllIterationAndBuffer:
		st.setOpen(false)
	default:
		panic("abi: OnRequestHeaders returned an unknown HeadersStatus")
	}
	return C.int32_t(ret)
}

//export envoy_dynamic_module_on_http_filter_scheduled
func envoy_dynamic_module_on_http_filter_scheduled(envoy unsafe.Pointer, filter *C.fd_stream, eventID C.uint64_t) {
	st := streamStateOf(filter)
	if st == nil || st.filter == nil || st.envoy == nil || st.failed() {
		return
	}
	s := Stream{st: st}
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnScheduled", r)
			failClosed(s, "frontdoor_filter_panic")
		}
	}()
	st.filter.OnScheduled(s, uint64(eventID))
}

// fdGoStreamComplete and fdGoStreamDestroy are called by shell.c, only for
// streams that kept Go state.

//export fdGoStreamComplete
func fdGoStreamComplete(filter *C.fd_stream) {
	defer recoverAndLog("OnStreamComplete")
	st := streamStateOf(filter)
	if st == nil || st.envoy == nil {
		return
	}
	if c, ok := st.filter.(StreamCompleter); ok {
		c.OnStreamComplete(Stream{st: st})
	}
}

//export fdGoStreamDestroy
func fdGoStreamDestroy(filter *C.fd_stream) {
	defer recoverAndLog("on_http_filter_destroy")
	destroyStreamState(filter)
}

// sendInternalErrorRaw answers 503 on a stream we have no state for.
func sendInternalErrorRaw(envoy unsafe.Pointer, details string) {
	if envoy == nil || !inEnvoy {
		return
	}
	sendLocalResponse(envoy, 503, internalErrorHeaders, []byte(internalErrorStatus), details)
}

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
//
// Module-owned pointers (config and filter) cross the boundary as uintptr_t
// handles (runtime/cgo.Handle values): Envoy declares them `const void*`,
// which is the same machine type on the LP64 targets this package builds for.
// Envoy-owned pointers stay unsafe.Pointer.
//
// Every hook recovers panics: an unrecovered Go panic would kill Envoy.

// requiredHooks are the hooks Envoy 1.40.0 refuses the filter config without
// (found by loading a stub module into bin/envoy one missing symbol at a time,
// and by Envoy's filter_config.cc). Exported below; tests check the built
// module and the binary against this list.
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

// Envoy's body and trailers statuses (FilterDataStatus, FilterTrailersStatus).
const (
	bodyContinue               = 0
	bodyStopIterationAndBuffer = 1
	trailersContinue           = 0
	trailersStopIteration      = 1
)

// abiVersionC is returned by on_program_init. Envoy compares it with its own
// ABI version and only logs on mismatch; the string must outlive the call.
var abiVersionC = C.CString(ABIVersion)

//export envoy_dynamic_module_on_program_init
func envoy_dynamic_module_on_program_init() *C.char {
	return abiVersionC
}

//export envoy_dynamic_module_on_http_filter_config_new
func envoy_dynamic_module_on_http_filter_config_new(envoyConfig unsafe.Pointer, name, config C.fd_buffer) (h C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("on_http_filter_config_new", r)
			h = 0
		}
	}()
	// Both buffers are Envoy's and only valid during this call: copy.
	return C.uintptr_t(newConfigHandle(C.GoStringN(name.ptr, C.int(name.length)),
		C.GoBytes(unsafe.Pointer(config.ptr), C.int(config.length))))
}

//export envoy_dynamic_module_on_http_filter_config_destroy
func envoy_dynamic_module_on_http_filter_config_destroy(config C.uintptr_t) {
	defer recoverAndLog("on_http_filter_config_destroy")
	destroyConfigHandle(uintptr(config))
}

//export envoy_dynamic_module_on_http_filter_new
func envoy_dynamic_module_on_http_filter_new(config C.uintptr_t, envoy unsafe.Pointer) (h C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("on_http_filter_new", r)
			h = 0
		}
	}()
	return C.uintptr_t(newFilterHandle(uintptr(config), envoy))
}

//export envoy_dynamic_module_on_http_filter_request_headers
func envoy_dynamic_module_on_http_filter_request_headers(envoy unsafe.Pointer, filter C.uintptr_t, endOfStream C.bool) (status C.int32_t) {
	st := filterFromHandleSafe(uintptr(filter))
	s := Stream{st: st}
	if st == nil || st.filter == nil {
		// No filter (handle missing or NewFilter failed): never forward.
		if st == nil {
			sendInternalErrorRaw(envoy, "frontdoor_no_filter")
		} else {
			failClosed(s, "frontdoor_no_filter")
		}
		return C.int32_t(StopIteration)
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnRequestHeaders", r)
			failClosed(s, "frontdoor_filter_panic")
			status = C.int32_t(StopIteration)
		}
	}()
	ret := st.filter.OnRequestHeaders(s, bool(endOfStream))
	switch ret {
	case Continue:
	case StopIteration, StopAllIterationAndBuffer:
		st.paused = !st.failed && st.envoy != nil
	default:
		panic("abi: OnRequestHeaders returned an unknown HeadersStatus")
	}
	return C.int32_t(ret)
}

//export envoy_dynamic_module_on_http_filter_request_body
func envoy_dynamic_module_on_http_filter_request_body(envoy unsafe.Pointer, filter C.uintptr_t, endOfStream C.bool) C.int32_t {
	if st := filterFromHandleSafe(uintptr(filter)); st == nil || st.filter == nil || st.paused || st.failed {
		return bodyStopIterationAndBuffer
	}
	return bodyContinue
}

//export envoy_dynamic_module_on_http_filter_request_trailers
func envoy_dynamic_module_on_http_filter_request_trailers(envoy unsafe.Pointer, filter C.uintptr_t) C.int32_t {
	if st := filterFromHandleSafe(uintptr(filter)); st == nil || st.filter == nil || st.paused || st.failed {
		return trailersStopIteration
	}
	return trailersContinue
}

//export envoy_dynamic_module_on_http_filter_response_headers
func envoy_dynamic_module_on_http_filter_response_headers(envoy unsafe.Pointer, filter C.uintptr_t, endOfStream C.bool) C.int32_t {
	return C.int32_t(Continue)
}

//export envoy_dynamic_module_on_http_filter_response_body
func envoy_dynamic_module_on_http_filter_response_body(envoy unsafe.Pointer, filter C.uintptr_t, endOfStream C.bool) C.int32_t {
	return bodyContinue
}

//export envoy_dynamic_module_on_http_filter_response_trailers
func envoy_dynamic_module_on_http_filter_response_trailers(envoy unsafe.Pointer, filter C.uintptr_t) C.int32_t {
	return trailersContinue
}

//export envoy_dynamic_module_on_http_filter_stream_complete
func envoy_dynamic_module_on_http_filter_stream_complete(envoy unsafe.Pointer, filter C.uintptr_t) {
	defer recoverAndLog("OnStreamComplete")
	st := filterFromHandleSafe(uintptr(filter))
	if st == nil || st.envoy == nil {
		return
	}
	if c, ok := st.filter.(StreamCompleter); ok {
		c.OnStreamComplete(Stream{st: st})
	}
}

//export envoy_dynamic_module_on_http_filter_destroy
func envoy_dynamic_module_on_http_filter_destroy(filter C.uintptr_t) {
	defer recoverAndLog("on_http_filter_destroy")
	destroyFilterHandle(uintptr(filter))
}

//export envoy_dynamic_module_on_http_filter_scheduled
func envoy_dynamic_module_on_http_filter_scheduled(envoy unsafe.Pointer, filter C.uintptr_t, eventID C.uint64_t) {
	st := filterFromHandleSafe(uintptr(filter))
	if st == nil || st.filter == nil || st.envoy == nil || st.failed {
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

// The remaining required hooks serve features this package does not offer
// (HTTP callouts started by the filter, terminal-filter flow control); Envoy
// never calls them for a filter that does not use those features.

//export envoy_dynamic_module_on_http_filter_http_callout_done
func envoy_dynamic_module_on_http_filter_http_callout_done(envoy unsafe.Pointer, filter C.uintptr_t, calloutID C.uint64_t, result C.int, headers unsafe.Pointer, headersCount C.size_t, body unsafe.Pointer, bodyCount C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_headers
func envoy_dynamic_module_on_http_filter_http_stream_headers(envoy unsafe.Pointer, filter C.uintptr_t, streamID C.uint64_t, headers unsafe.Pointer, headersCount C.size_t, endOfStream C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_data
func envoy_dynamic_module_on_http_filter_http_stream_data(envoy unsafe.Pointer, filter C.uintptr_t, streamID C.uint64_t, data unsafe.Pointer, dataCount C.size_t, endOfStream C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_trailers
func envoy_dynamic_module_on_http_filter_http_stream_trailers(envoy unsafe.Pointer, filter C.uintptr_t, streamID C.uint64_t, trailers unsafe.Pointer, trailersCount C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_complete
func envoy_dynamic_module_on_http_filter_http_stream_complete(envoy unsafe.Pointer, filter C.uintptr_t, streamID C.uint64_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_reset
func envoy_dynamic_module_on_http_filter_http_stream_reset(envoy unsafe.Pointer, filter C.uintptr_t, streamID C.uint64_t, reason C.int) {
}

//export envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark
func envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(envoy unsafe.Pointer, filter C.uintptr_t) {
}

//export envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark
func envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(envoy unsafe.Pointer, filter C.uintptr_t) {
}

// filterFromHandleSafe is filterFromHandle for hooks that must not panic.
func filterFromHandleSafe(h uintptr) (st *filterState) {
	defer func() {
		if recover() != nil {
			st = nil
		}
	}()
	return filterFromHandle(h)
}

// sendInternalErrorRaw answers 503 on a stream we have no state for.
func sendInternalErrorRaw(envoy unsafe.Pointer, details string) {
	if envoy == nil || !inEnvoy {
		return
	}
	sendLocalResponse(envoy, 503, internalErrorHeaders, []byte(internalErrorStatus), details)
}

package abi

/*
#include <stdlib.h>
#include <string.h>
#include "frontdoor_abi.h"

// Calls that never re-enter Go and never keep the pointers they are given:
// cgo may then leave their pointer arguments on the Go stack (noescape) and
// skip the callback bookkeeping (nocallback). send_response and
// continue_decoding are not here: they run other filters synchronously, and a
// local reply passes through this module's own response hooks.
#cgo noescape envoy_dynamic_module_callback_http_get_headers
#cgo nocallback envoy_dynamic_module_callback_http_get_headers
#cgo nocallback envoy_dynamic_module_callback_http_get_headers_size
#cgo noescape envoy_dynamic_module_callback_http_get_header
#cgo nocallback envoy_dynamic_module_callback_http_get_header
#cgo noescape envoy_dynamic_module_callback_http_add_header
#cgo nocallback envoy_dynamic_module_callback_http_add_header
#cgo noescape envoy_dynamic_module_callback_http_set_header
#cgo nocallback envoy_dynamic_module_callback_http_set_header
#cgo nocallback envoy_dynamic_module_callback_http_clear_route_cache
#cgo noescape envoy_dynamic_module_callback_http_set_dynamic_metadata_string
#cgo nocallback envoy_dynamic_module_callback_http_set_dynamic_metadata_string
#cgo noescape envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo nocallback envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo noescape envoy_dynamic_module_callback_http_filter_get_attribute_string
#cgo nocallback envoy_dynamic_module_callback_http_filter_get_attribute_string
#cgo noescape envoy_dynamic_module_callback_http_filter_get_attribute_int
#cgo nocallback envoy_dynamic_module_callback_http_filter_get_attribute_int
#cgo noescape envoy_dynamic_module_callback_http_filter_get_attribute_bool
#cgo nocallback envoy_dynamic_module_callback_http_filter_get_attribute_bool
#cgo noescape envoy_dynamic_module_callback_log
#cgo nocallback envoy_dynamic_module_callback_log
*/
import "C"

import (
	"os"
	"runtime"
	"unsafe"
)

// headerTypeRequest selects the request header map (Envoy's
// http_header_type RequestHeader).
const headerTypeRequest = 0

// inEnvoy is false in a plain executable (this package's unit tests), where
// the weak callback symbols are unbound and must not be called.
var inEnvoy = C.fd_in_envoy() != 0

// Stream is the view of one HTTP stream inside a hook. It is a small value;
// copying it is free. Use it only on the worker thread, inside a hook of its
// filter (OnRequestHeaders, OnScheduled, OnStreamComplete). Once the stream
// is gone (after OnDestroy, or after OnRequestHeaders for a Filter that kept
// no state: see Filter) every method is a no-op returning the zero value.
type Stream struct {
	st *filterState
}

func (s Stream) envoy() unsafe.Pointer {
	if s.st == nil {
		return nil
	}
	return s.st.envoy
}

// goBuf describes Go string bytes for a call that only reads them during the
// call (all header and metadata setters copy). Empty strings become a NULL
// pointer, which Envoy reads as "no value".
func goBuf(s string) C.fd_buffer {
	return C.fd_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(s))), length: C.size_t(len(s))}
}

// envoyBytes aliases Envoy-owned bytes without copying.
func envoyBytes(p *C.char, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// headerScratch is how many header fields RequestHeaders reads without a heap
// allocation.
const headerScratch = 64

// RequestHeaders calls fn for every request header field, in order, repeated
// names included (pseudo-headers such as :path come first). name and value
// alias Envoy's memory and are only valid until fn returns, and only while no
// header is modified: copy what you keep.
func (s Stream) RequestHeaders(fn func(name, value []byte)) {
	p := s.envoy()
	if p == nil {
		return
	}
	n := int(C.envoy_dynamic_module_callback_http_get_headers_size(p, headerTypeRequest))
	if n == 0 {
		return
	}
	var stack [headerScratch]C.fd_http_header
	buf := stack[:]
	if n > len(buf) {
		buf = make([]C.fd_http_header, n)
	}
	if !C.envoy_dynamic_module_callback_http_get_headers(p, headerTypeRequest, &buf[0]) {
		return
	}
	for i := range n {
		h := &buf[i]
		fn(envoyBytes(h.key_ptr, h.key_length), envoyBytes(h.value_ptr, h.value_length))
	}
}

// RequestHeader returns a copy of the first value of the request header name
// (lower case), and whether the header is present.
func (s Stream) RequestHeader(name string) (value string, ok bool) {
	p := s.envoy()
	if p == nil {
		return "", false
	}
	var out C.fd_buffer
	found := C.envoy_dynamic_module_callback_http_get_header(p, headerTypeRequest, goBuf(name), &out, 0, nil)
	runtime.KeepAlive(name)
	if !found {
		return "", false
	}
	return string(envoyBytes(out.ptr, out.length)), true
}

// AddRequestHeader appends a new field name: value, even if fields of that
// name exist (one field per value, e.g. one Impersonate-Group per group).
// Envoy refuses an empty value (returns false).
func (s Stream) AddRequestHeader(name, value string) bool {
	p := s.envoy()
	if p == nil {
		return false
	}
	ok := C.envoy_dynamic_module_callback_http_add_header(p, headerTypeRequest, goBuf(name), goBuf(value))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
	return bool(ok)
}

// SetRequestHeader replaces every field of name with one field name: value.
// An empty value removes the header (Envoy's semantics).
func (s Stream) SetRequestHeader(name, value string) bool {
	p := s.envoy()
	if p == nil {
		return false
	}
	ok := C.envoy_dynamic_module_callback_http_set_header(p, headerTypeRequest, goBuf(name), goBuf(value))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
	return bool(ok)
}

// RemoveRequestHeader removes every field of name.
func (s Stream) RemoveRequestHeader(name string) bool {
	return s.SetRequestHeader(name, "")
}

// ClearRouteCache makes Envoy pick the route again after header changes (the
// route is chosen before the filter chain runs).
func (s Stream) ClearRouteCache() {
	if p := s.envoy(); p != nil {
		C.envoy_dynamic_module_callback_http_clear_route_cache(p)
	}
}

// ContinueDecoding resumes a request paused by OnRequestHeaders. It may run
// later filters (and a local reply) before it returns.
func (s Stream) ContinueDecoding() {
	p := s.envoy()
	if p == nil {
		return
	}
	s.st.setOpen(true) // before: Envoy may deliver the body inside the call
	C.envoy_dynamic_module_callback_http_filter_continue_decoding(p)
}

// SendLocalResponse answers the stream from Envoy without reaching the
// upstream. headers are added to the reply (a content-type given here wins
// over Envoy's text/plain default); details is the response code detail in
// access logs (Envoy uses "dynamic_module" when empty). After calling it from
// OnRequestHeaders, return StopIteration.
func (s Stream) SendLocalResponse(code int, headers [][2]string, body []byte, details string) {
	if p := s.envoy(); p != nil {
		sendLocalResponse(p, code, headers, body, details)
	}
}

// sendLocalResponse copies everything into one C allocation: Envoy reads the
// header array during the call, and cgo forbids handing C an array of Go
// pointers.
func sendLocalResponse(p unsafe.Pointer, code int, headers [][2]string, body []byte, details string) {
	size := len(headers)*int(unsafe.Sizeof(C.fd_http_header{})) + len(body) + len(details)
	for _, h := range headers {
		size += len(h[0]) + len(h[1])
	}
	mem := C.malloc(C.size_t(size + 1))
	defer C.free(mem)
	all := unsafe.Slice((*byte)(mem), size+1)
	var hdrs []C.fd_http_header
	off := 0
	if len(headers) > 0 {
		hdrs = unsafe.Slice((*C.fd_http_header)(mem), len(headers))
		off = len(headers) * int(unsafe.Sizeof(C.fd_http_header{}))
	}
	place := func(n int) (*C.char, C.size_t) {
		if n == 0 {
			return nil, 0
		}
		start := off
		off += n
		return (*C.char)(unsafe.Pointer(&all[start])), C.size_t(n)
	}
	for i, h := range headers {
		hdrs[i].key_ptr, hdrs[i].key_length = place(copy(all[off:], h[0]))
		hdrs[i].value_ptr, hdrs[i].value_length = place(copy(all[off:], h[1]))
	}
	var cb, cd C.fd_buffer
	cb.ptr, cb.length = place(copy(all[off:], body))
	cd.ptr, cd.length = place(copy(all[off:], details))
	var first *C.fd_http_header
	if len(hdrs) > 0 {
		first = &hdrs[0]
	}
	C.envoy_dynamic_module_callback_http_send_response(p, C.uint32_t(code), first, C.size_t(len(hdrs)), cb, cd)
}

// SetDynamicMetadataString sets filter_metadata[namespace][key] to a string
// for later filters, the router and access logs.
func (s Stream) SetDynamicMetadataString(namespace, key, value string) {
	if p := s.envoy(); p != nil {
		C.envoy_dynamic_module_callback_http_set_dynamic_metadata_string(p, goBuf(namespace), goBuf(key), goBuf(value))
		runtime.KeepAlive(namespace)
		runtime.KeepAlive(key)
		runtime.KeepAlive(value)
	}
}

// SetDynamicMetadataNumber sets filter_metadata[namespace][key] to a number.
func (s Stream) SetDynamicMetadataNumber(namespace, key string, value float64) {
	if p := s.envoy(); p != nil {
		C.envoy_dynamic_module_callback_http_set_dynamic_metadata_number(p, goBuf(namespace), goBuf(key), C.double(value))
		runtime.KeepAlive(namespace)
		runtime.KeepAlive(key)
	}
}

// AttributeString returns a copy of a string attribute, or false if Envoy has
// no value (no TLS, no client certificate, ...).
func (s Stream) AttributeString(id Attribute) (string, bool) {
	p := s.envoy()
	if p == nil {
		return "", false
	}
	var out C.fd_buffer
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_string(p, C.int(id), &out) {
		return "", false
	}
	return string(envoyBytes(out.ptr, out.length)), true
}

// AttributeInt returns an integer attribute, or false if Envoy has no value.
func (s Stream) AttributeInt(id Attribute) (uint64, bool) {
	p := s.envoy()
	if p == nil {
		return 0, false
	}
	var out C.uint64_t
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_int(p, C.int(id), &out) {
		return 0, false
	}
	return uint64(out), true
}

// AttributeBool returns a boolean attribute, or false if Envoy has no value.
func (s Stream) AttributeBool(id Attribute) (value, ok bool) {
	p := s.envoy()
	if p == nil {
		return false, false
	}
	var out C.bool
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_bool(p, C.int(id), &out) {
		return false, false
	}
	return bool(out), true
}

// InValidationMode reports whether Envoy only validates its configuration
// (envoy --mode validate): a filter config should then check its input and
// start nothing (no listeners, no connections). Call it from a config
// factory (Envoy's main thread) only.
func InValidationMode() bool {
	if C.fd_in_envoy() == 0 {
		return false
	}
	return bool(C.envoy_dynamic_module_callback_is_validation_mode())
}

// Log writes msg to Envoy's log under the dynamic_modules logger (visible at
// Envoy's log level for that logger). Outside Envoy it writes to stderr.
func Log(level LogLevel, msg string) {
	if !inEnvoy {
		os.Stderr.WriteString("frontdoor abi: " + msg + "\n")
		return
	}
	C.envoy_dynamic_module_callback_log(C.int(level), goBuf(msg))
	runtime.KeepAlive(msg)
}

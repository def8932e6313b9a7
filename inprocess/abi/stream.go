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
#cgo noescape envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo nocallback envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo noescape envoy_dynamic_module_callback_http_set_filter_state_bytes
#cgo nocallback envoy_dynamic_module_callback_http_set_filter_state_bytes
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
	s.spoil() // the replay key may not cover name
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
	if r := s.record(); r != nil {
		r.op(opAddHeader, name, value)
	}
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
	if r := s.record(); r != nil {
		r.op(opSetHeader, name, value)
	}
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
	if r := s.record(); r != nil {
		r.op(opClearRoute)
	}
}

// ContinueDecoding resumes a request paused by OnRequestHeaders. It may run
// later filters (and a local reply) before it returns.
func (s Stream) ContinueDecoding() {
	p := s.envoy()
	if p == nil {
		return
	}
	s.spoil()
	s.st.setOpen(true) // before: Envoy may deliver the body inside the call
	C.envoy_dynamic_module_callback_http_filter_continue_decoding(p)
}

// SendLocalResponse answers the stream from Envoy without reaching the
// upstream. headers are added to the reply (a content-type given here wins
// over Envoy's text/plain default); details is the response code detail in
// access logs (Envoy uses "dynamic_module" when empty). After calling it from
// OnRequestHeaders, return StopIteration.
func (s Stream) SendLocalResponse(code int, headers [][2]string, body []byte, details string) {
	s.spoil()
	if p := s.envoy(); p != nil {
		sendLocalResponse(p, code, headers, body, details)
	}
}

// sendLocalResponse hands Envoy the reply in one C allocation (cPairs).
func sendLocalResponse(p unsafe.Pointer, code int, headers [][2]string, body []byte, details string) {
	c := newCPairs(headers, len(body)+len(details))
	defer c.free()
	cb := c.place(body)
	cd := c.place(unsafe.Slice(unsafe.StringData(details), len(details)))
	C.envoy_dynamic_module_callback_http_send_response(p, C.uint32_t(code), c.first(), C.size_t(len(headers)), cb, cd)
}

// cPairs is an array of name/value pairs (fd_http_header) and their bytes in
// one C allocation, with room for extra bytes: for calls that take an array
// of byte ranges, which cgo forbids building in Go memory (Go memory handed
// to C may not hold Go pointers). Envoy copies what it keeps.
type cPairs struct {
	mem   unsafe.Pointer
	all   []byte
	pairs []C.fd_http_header
	off   int
}

func newCPairs(kv [][2]string, extra int) cPairs {
	head := len(kv) * int(unsafe.Sizeof(C.fd_http_header{}))
	size := head + extra
	for _, h := range kv {
		size += len(h[0]) + len(h[1])
	}
	c := cPairs{mem: C.malloc(C.size_t(size + 1)), off: head}
	c.all = unsafe.Slice((*byte)(c.mem), size+1)
	if len(kv) > 0 {
		c.pairs = unsafe.Slice((*C.fd_http_header)(c.mem), len(kv))
	}
	for i, h := range kv {
		k := c.placeField(h[0])
		v := c.placeField(h[1])
		c.pairs[i] = C.fd_http_header{key_ptr: k.ptr, key_length: k.length, value_ptr: v.ptr, value_length: v.length}
	}
	return c
}

// place copies b after what is placed already; empty is a NULL range.
func (c *cPairs) place(b []byte) C.fd_buffer {
	if len(b) == 0 {
		return C.fd_buffer{}
	}
	start := c.off
	c.off += copy(c.all[start:], b)
	return C.fd_buffer{ptr: (*C.char)(unsafe.Pointer(&c.all[start])), length: C.size_t(len(b))}
}

// placeField copies a name or value; an empty one is a zero-length range
// at a valid address (never NULL, which C++ may not build a string from).
func (c *cPairs) placeField(v string) C.fd_buffer {
	if v == "" {
		return C.fd_buffer{ptr: (*C.char)(unsafe.Pointer(&c.all[c.off])), length: 0}
	}
	return c.place(unsafe.Slice(unsafe.StringData(v), len(v)))
}

// first is the array's first element, nil when empty.
func (c *cPairs) first() *C.fd_http_header {
	if len(c.pairs) == 0 {
		return nil
	}
	return &c.pairs[0]
}

func (c *cPairs) free() { C.free(c.mem) }

// SetFilterState sets the stream's filter state key to value, a string
// object that access logs read with %FILTER_STATE(key:PLAIN)%: Envoy's
// formatter hands it over as it is, where a %DYNAMIC_METADATA% field is
// looked up and converted through protobuf on every log line (the JSON
// access log's whole cost per request in the bench's ablation). A second
// write of a key replaces the first.
func (s Stream) SetFilterState(key, value string) bool {
	ok := s.setFilterState(key, value)
	if r := s.record(); r != nil {
		r.op(opFilterState, key, value)
	}
	return ok
}

// setFilterState is SetFilterState without recording it.
func (s Stream) setFilterState(key, value string) bool {
	p := s.envoy()
	if p == nil {
		return false
	}
	ok := bool(C.envoy_dynamic_module_callback_http_set_filter_state_bytes(p, goBuf(key), goBuf(value)))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return ok
}

// SetDynamicMetadataNumber sets filter_metadata[namespace][key] to a number.
func (s Stream) SetDynamicMetadataNumber(namespace, key string, value float64) {
	if p := s.envoy(); p != nil {
		C.envoy_dynamic_module_callback_http_set_dynamic_metadata_number(p, goBuf(namespace), goBuf(key), C.double(value))
		runtime.KeepAlive(namespace)
		runtime.KeepAlive(key)
	}
	if r := s.record(); r != nil {
		recordNumber(r, namespace, key, value)
	}
}

// AttributeString returns a copy of a string attribute, or false if Envoy has
// no value (no TLS, no client certificate, ...).
func (s Stream) AttributeString(id Attribute) (string, bool) {
	s.spoil() // attributes are not in the replay key
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
	s.spoil() // attributes are not in the replay key
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
	s.spoil() // attributes are not in the replay key
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

package abi

/*
#include <stdlib.h>
#include "frontdoor_abi.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// The retry verdict writer (verdict.c) is a filter of its own, written in C
// only: Envoy runs it as an upstream HTTP filter, once per attempt, and it
// never enters Go. RegisterRetryVerdict names it; a DynamicModuleFilter
// config with that filter_name gets the writer instead of a Go filter.

var (
	verdictMu     sync.Mutex
	verdictFilter string // filter_name; "" until registered
	verdictHeader string // the response header the verdict is written in
	attemptHeader string // the request header carrying the attempt number
)

// RegisterRetryVerdict installs the verdict writer under filter_name name:
// on each upstream attempt it reads the attempt number from attempt (a
// request header the router sets; removed before the request goes out),
// removes any header verdict the server sent, and on a first attempt
// answered 429 writes verdict: "1 429 <content-type>". Call it from init,
// like RegisterFilter, with names of at most 63 bytes.
func RegisterRetryVerdict(name, verdict, attempt string) {
	verdictMu.Lock()
	defer verdictMu.Unlock()
	if verdictFilter != "" {
		panic("abi: RegisterRetryVerdict called twice")
	}
	if len(verdict) == 0 || len(verdict) > 63 || len(attempt) == 0 || len(attempt) > 63 {
		panic("abi: RegisterRetryVerdict: header names must be 1 to 63 bytes")
	}
	verdictFilter, verdictHeader, attemptHeader = name, verdict, attempt
}

// verdictConfig is the config handle of the verdict writer if name is its
// filter_name (the same C handle for every config), else ok is false.
func verdictConfig(name string) (h uintptr, ok bool) {
	verdictMu.Lock()
	defer verdictMu.Unlock()
	if verdictFilter == "" || name != verdictFilter {
		return 0, false
	}
	v, a := C.CString(verdictHeader), C.CString(attemptHeader)
	defer C.free(unsafe.Pointer(v))
	defer C.free(unsafe.Pointer(a))
	h = uintptr(C.fd_verdict_configure(v, C.size_t(len(verdictHeader)), a, C.size_t(len(attemptHeader))))
	if h == 0 {
		Log(LogError, "frontdoor abi: the retry verdict's header names do not fit")
	}
	return h, true
}

// isVerdictConfig reports whether h is the verdict writer's config handle
// (not a runtime/cgo.Handle: nothing to look up or delete).
func isVerdictConfig(h uintptr) bool { return C.fd_is_verdict(C.uintptr_t(h)) != 0 }

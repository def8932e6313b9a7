package abi

/*
#include "frontdoor_abi.h"

#cgo nocallback envoy_dynamic_module_callback_http_filter_scheduler_new
#cgo nocallback envoy_dynamic_module_callback_http_filter_scheduler_commit
#cgo nocallback envoy_dynamic_module_callback_http_filter_scheduler_delete
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Scheduler brings work from any goroutine back to a stream's worker thread:
// Commit(id) makes Envoy call Filter.OnScheduled(s, id) there. It is a small
// value, safe to copy and to use from any goroutine.
//
// Envoy's scheduler object is freed by Delete or, at the latest, when the
// stream is destroyed; Commit after either is a harmless no-op returning
// false, so a goroutine that outlives its request cannot touch freed memory.
type Scheduler struct {
	s *schedulerState
}

type schedulerState struct {
	mu  sync.Mutex
	ptr unsafe.Pointer // Envoy's DynamicModuleHttpFilterScheduler; nil once deleted
}

// NewScheduler creates a scheduler for this stream. Call it on the worker
// thread (inside a hook); use the result from any goroutine.
func (s Stream) NewScheduler() Scheduler {
	s.spoil()
	p := s.envoy()
	if p == nil {
		return Scheduler{}
	}
	s.st.register() // OnScheduled must find the stream again
	ss := &schedulerState{ptr: C.envoy_dynamic_module_callback_http_filter_scheduler_new(p)}
	s.st.schedulers = append(s.st.schedulers, ss)
	return Scheduler{s: ss}
}

// Commit schedules OnScheduled(eventID) on the stream's worker thread. It
// reports false if the scheduler was already deleted (the stream is gone);
// true means Envoy accepted the event, which it still drops if the stream
// ends before the worker gets to it.
func (sc Scheduler) Commit(eventID uint64) bool {
	if sc.s == nil {
		return false
	}
	sc.s.mu.Lock()
	defer sc.s.mu.Unlock()
	if sc.s.ptr == nil {
		return false
	}
	C.envoy_dynamic_module_callback_http_filter_scheduler_commit(sc.s.ptr, C.uint64_t(eventID))
	return true
}

// Delete frees the scheduler. Idempotent; later Commits return false.
func (sc Scheduler) Delete() {
	if sc.s != nil {
		sc.s.delete()
	}
}

func (ss *schedulerState) delete() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ptr != nil {
		C.envoy_dynamic_module_callback_http_filter_scheduler_delete(ss.ptr)
		ss.ptr = nil
	}
}

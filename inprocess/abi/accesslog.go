package abi

/*
#include <stdlib.h>
#include "frontdoor_abi.h"

#cgo noescape fd_log_set_fields
#cgo nocallback fd_log_set_fields
*/
import "C"

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// AccessLog is a filter config's access log, written by the module itself
// when each stream it filtered completes (accesslog.c): one JSON object per
// line with Envoy's view of the request (the same keys and value shapes as
// the Envoy-formatted line of translator/accesslog.go) and the members the
// filter set (Stream.SetLogFields). Envoy formatting a JSON line costs more
// than the rest of an allowed GET's filter work; written here it costs a few
// attribute reads.
//
// Each stream the module logs is marked with the dynamic metadata number
// MarkNamespace/MarkKey, so that an Envoy access log kept beside it (with a
// metadata filter that passes only unmarked requests) logs what the module
// never saw: requests the codec rejected before the filter chain.
type AccessLog struct {
	// Path is the file lines are appended to; empty: standard output.
	Path string
	// Members are JSON object members every line carries (no braces, e.g.
	// `"cluster":"a"`), after Envoy's fields.
	Members string
	// Absent are the members a line carries when its filter set none
	// (SetLogFields), e.g. each of them null.
	Absent string
	// FailuresOnly keeps only lines of requests that failed: an answer of
	// 400 or more, no answer, or any response flag; or, with SlowerThan, that
	// took at least that long.
	FailuresOnly bool
	SlowerThan   time.Duration
	// MarkNamespace and MarkKey name the dynamic metadata number set on every
	// stream the module logs.
	MarkNamespace, MarkKey string
	// FlushEvery is how often buffered lines are written when traffic is too
	// thin to fill the buffer (64 KiB); 0: every second, as Envoy's own
	// file flush interval. The process has one flusher, at the shortest
	// interval any config asked for. Lines are also written at exit.
	FlushEvery time.Duration
}

// AccessLogger is a FilterConfig whose streams the module logs.
type AccessLogger interface {
	// AccessLog is read once, when Envoy creates the config; nil: no log.
	AccessLog() *AccessLog
}

// flushInterval is the flusher's period in ns (AccessLog.FlushEvery).
var (
	flushInterval atomic.Int64
	flusherOnce   sync.Once
)

// startFlusher lowers the flusher's period to d (0: a second) and starts it.
func startFlusher(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	for {
		cur := flushInterval.Load()
		if (cur != 0 && cur <= int64(d)) || flushInterval.CompareAndSwap(cur, int64(d)) {
			break
		}
	}
	flusherOnce.Do(func() {
		go func() {
			for {
				time.Sleep(time.Duration(flushInterval.Load()))
				C.fd_log_flush_all()
			}
		}()
	})
}

// openAccessLog opens cfg's access log, if it has one.
func openAccessLog(cfg FilterConfig) (*C.fd_log, error) {
	l, ok := cfg.(AccessLogger)
	if !ok {
		return nil, nil
	}
	spec := l.AccessLog()
	if spec == nil {
		return nil, nil
	}
	if spec.MarkNamespace == "" || spec.MarkKey == "" {
		return nil, errors.New("the access log needs a mark (MarkNamespace, MarkKey)")
	}
	var path *C.char
	if spec.Path != "" {
		path = C.CString(spec.Path)
		defer C.free(unsafe.Pointer(path))
	}
	members, absent := C.CString(spec.Members), C.CString(spec.Absent)
	ns, key := C.CString(spec.MarkNamespace), C.CString(spec.MarkKey)
	defer func() {
		for _, p := range []*C.char{members, absent, ns, key} {
			C.free(unsafe.Pointer(p))
		}
	}()
	c := C.fd_log_spec{
		path:           path,
		members:        members,
		members_len:    C.size_t(len(spec.Members)),
		absent:         absent,
		absent_len:     C.size_t(len(spec.Absent)),
		slow_ms:        C.int64_t(spec.SlowerThan.Milliseconds()),
		mark_namespace: C.fd_buffer{ptr: ns, length: C.size_t(len(spec.MarkNamespace))},
		mark_key:       C.fd_buffer{ptr: key, length: C.size_t(len(spec.MarkKey))},
	}
	if spec.FailuresOnly {
		c.failures_only = 1
	}
	var errBuf [256]C.char
	log := C.fd_log_new(&c, &errBuf[0], C.size_t(len(errBuf)))
	if log == nil {
		return nil, errors.New(C.GoString(&errBuf[0]))
	}
	startFlusher(spec.FlushEvery)
	return log, nil
}

// AccessLogLines is how many access log lines the module has written
// (appended to their file's buffer) and dropped (out of memory, or the file
// refused the write) since the process started.
func AccessLogLines() (written, dropped uint64) {
	return uint64(C.fd_log_count(0)), uint64(C.fd_log_count(1))
}

// SetLogFields sets the members the stream's access log line carries for
// the filter (AccessLog): JSON object members without braces, which the
// module copies. Without a call the line carries AccessLog.Absent.
func (s Stream) SetLogFields(members string) {
	if s.st == nil || s.st.c == nil {
		return
	}
	C.fd_log_set_fields(s.st.c, (*C.char)(unsafe.Pointer(unsafe.StringData(members))), C.size_t(len(members)))
	if r := s.record(); r != nil {
		r.op(opLogFields, members)
	}
}

// SetLogElapsed sets the access log's requestServiceUs to the microseconds
// since start, rounded up (a handled request never reads 0); a replay sets
// the time its own answer took.
func (s Stream) SetLogElapsed(start time.Time) {
	if s.st == nil || s.st.c == nil {
		return
	}
	s.st.c.log_rs_us = C.int64_t(ceilMicros(time.Since(start)))
	if r := s.record(); r != nil {
		r.op(opLogElapsed)
	}
}

package abi

/*
#include <stdlib.h>
#include "frontdoor_abi.h"

#cgo noescape fd_replay_keep
#cgo nocallback fd_replay_keep
#cgo nocallback fd_replay_hits
#cgo nocallback fd_replay_forget
#cgo nocallback fd_replay_pending
#cgo noescape fd_siphash
#cgo nocallback fd_siphash
*/
import "C"

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// Replaying decisions (replay.c): when a filter's answer to a request is a
// pure function of headers it read, it may let the worker answer the next
// byte-identical request itself, in C, without entering Go. During
// OnRequestHeaders the Stream records every write the filter makes (a plan);
// Replayable hands that plan, the time it stays valid and a metric class to
// the worker. Any call whose effect a plan cannot reproduce (a local reply,
// a scheduler, reading an attribute) spoils the recording.

// ReplayClasses is how many metric classes (ReplayHits) there are.
const ReplayClasses = C.FD_REPLAY_CLASSES

// HeaderName names one header field, or every field whose name starts with
// Name when Prefix is set.
type HeaderName struct {
	Name   string
	Prefix bool
}

// ReplayFields names the header fields of a replay key (ConfigureReplay).
type ReplayFields struct {
	// Key are the fields a filter's decisions read: a request is replayed
	// only for an identical sequence of those fields (name and value, in
	// order).
	Key []HeaderName
	// Hashed are fields a decision reads whose values are secrets (a bearer
	// token): they enter the key, in order, as a 128-bit keyed hash of the
	// value (SipHash-2-4 twice, under a random key drawn when replay is
	// configured), so no worker ever keeps the secret itself. A hashed name
	// wins over a Key name.
	Hashed []HeaderName
	// Bypass are fields whose presence makes a request never replayed nor
	// remembered: secrets a decision cannot be keyed by, or fields that make
	// the decision depend on more than the request.
	Bypass []HeaderName
}

var configureReplayOnce sync.Once

// ConfigureReplay turns replay on, once per process, before Envoy creates
// the first filter config (from the module's init). When the C hash fails
// its known-answer check (SipHashKnownAnswer), requests carrying a Hashed
// field are never replayed: they bypass instead.
func ConfigureReplay(f ReplayFields) {
	configureReplayOnce.Do(func() {
		var cf C.fd_replay_fields
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails (it crashes the program instead)
		for i := range cf.hash_key {
			cf.hash_key[i] = C.uint64_t(binary.LittleEndian.Uint64(seed[8*i:]))
		}
		if !SipHashKnownAnswer() {
			f.Bypass, f.Hashed = append(slices.Clone(f.Bypass), f.Hashed...), nil
		}
		cf.key, cf.key_count = cNames(f.Key)
		cf.hashed, cf.hashed_count = cNames(f.Hashed)
		cf.bypass, cf.bypass_count = cNames(f.Bypass)
		C.fd_replay_configure(&cf)
	})
}

// SipHashKnownAnswer checks replay.c's SipHash-2-4 against the test vector
// of its paper (appendix A): key 00 01 … 0f, message 00 01 … 0e.
func SipHashKnownAnswer() bool {
	var msg [15]byte
	for i := range msg {
		msg[i] = byte(i)
	}
	return sipHash(0x0706050403020100, 0x0f0e0d0c0b0a0908, msg[:]) == 0xa129ca6149be45e5
}

// sipHash is replay.c's fd_siphash of m under the key k0, k1.
func sipHash(k0, k1 uint64, m []byte) uint64 {
	var p *C.char
	if len(m) > 0 {
		p = (*C.char)(unsafe.Pointer(&m[0]))
	}
	return uint64(C.fd_siphash(C.uint64_t(k0), C.uint64_t(k1), p, C.size_t(len(m))))
}

// cNames copies names to C memory that lives for the process.
func cNames(names []HeaderName) (*C.fd_replay_name, C.size_t) {
	if len(names) == 0 {
		return nil, 0
	}
	arr := (*C.fd_replay_name)(C.calloc(C.size_t(len(names)), C.size_t(unsafe.Sizeof(C.fd_replay_name{}))))
	entries := unsafe.Slice(arr, len(names))
	for i := range entries {
		e := &entries[i]
		e.ptr = C.CString(names[i].Name)
		e.length = C.size_t(len(names[i].Name))
		if names[i].Prefix {
			e.prefix = 1
		}
	}
	return arr, C.size_t(len(names))
}

// ForgetReplays retires every remembered decision on every worker: call it
// after whatever the decisions depended on changed (a new policy).
func ForgetReplays() { C.fd_replay_forget() }

// ReplayHits is how many requests were answered by replaying a decision of
// class, since the process started.
func ReplayHits(class uint32) uint64 { return uint64(C.fd_replay_hits(C.uint32_t(class))) }

// The plan's operation codes (replay.c).
const (
	opSetHeader          = 1
	opAddHeader          = 2
	opMetaNumber         = 4
	opClearRoute         = 5
	opFilterStateElapsed = 6
	opFilterState        = 7
	opLogFields          = 8
	opLogElapsed         = 9
)

// recording is the plan of writes a filter made in one OnRequestHeaders.
type recording struct {
	plan    []byte
	spoiled bool
}

var recordings = sync.Pool{New: func() any { return &recording{plan: make([]byte, 0, 1024)} }}

func newRecording() *recording {
	r := recordings.Get().(*recording)
	r.plan, r.spoiled = r.plan[:0], false
	return r
}

func (r *recording) put() {
	if r != nil && cap(r.plan) <= 16<<10 {
		recordings.Put(r)
	}
}

func (r *recording) op(code byte, strs ...string) {
	r.plan = append(r.plan, code)
	for _, s := range strs {
		r.str(s)
	}
}

func (r *recording) str(s string) {
	r.plan = binary.NativeEndian.AppendUint32(r.plan, uint32(len(s)))
	r.plan = append(r.plan, s...)
}

// record returns the stream's recording, nil when not recording.
func (s Stream) record() *recording {
	if s.st == nil {
		return nil
	}
	return s.st.rec
}

// spoil marks the recording unreplayable.
func (s Stream) spoil() {
	if r := s.record(); r != nil {
		r.spoiled = true
	}
}

// SetFilterStateElapsed sets the filter state key (SetFilterState) to the
// microseconds since start, rounded up (a handled request never reads 0),
// as a string of digits: the form Envoy's own ext_authz and ext_proc
// latencies take in an access log. A replay sets the time its own answer
// took.
func (s Stream) SetFilterStateElapsed(key string, start time.Time) bool {
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0], ceilMicros(time.Since(start)), 10)
	ok := s.setFilterState(key, unsafe.String(unsafe.SliceData(digits), len(digits)))
	if r := s.record(); r != nil {
		r.op(opFilterStateElapsed, key)
	}
	return ok
}

// ceilMicros is d in whole microseconds, rounded up (replay.c's
// fd_op_fs_elapsed rounds the same way).
func ceilMicros(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// Replayable lets the worker answer later requests identical in the
// ConfigureReplay key headers (and filter config) the way this one was
// answered, for ttl, without calling the filter; their count is added to
// ReplayHits(class). Call it last in OnRequestHeaders, before returning
// Continue. It reports whether the worker took the plan: not when the
// request cannot be replayed (a bypass header, a key too large, replay off)
// or the filter did something a plan cannot reproduce.
func (s Stream) Replayable(ttl time.Duration, class uint32) bool {
	r := s.record()
	if r == nil || r.spoiled || ttl <= 0 || class >= ReplayClasses || s.st.c == nil {
		return false
	}
	var p *C.char
	if len(r.plan) > 0 {
		p = (*C.char)(unsafe.Pointer(&r.plan[0]))
	}
	return C.fd_replay_keep(s.st.c, C.int64_t(ttl), C.uint32_t(class), p, C.size_t(len(r.plan))) != 0
}

func recordNumber(r *recording, namespace, key string, v float64) {
	r.op(opMetaNumber, namespace, key)
	r.plan = binary.NativeEndian.AppendUint64(r.plan, math.Float64bits(v))
}

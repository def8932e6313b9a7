// Package abi is Frontdoor's own cgo binding to Envoy's dynamic-module C ABI,
// HTTP filter subset, for Envoy 1.40.0 (ABI v0.2.0).
//
// A Go program that imports this package and is built with
// `go build -buildmode=c-shared` is an Envoy dynamic module: the package
// exports every event hook Envoy 1.40 resolves for an HTTP filter and turns
// them into calls on the FilterConfig/Filter registered with RegisterFilter.
// No C type leaves this package.
//
// # Where the declarations come from, and how they were checked
//
// frontdoor_abi.h is written for this project; nothing is copied from Envoy's
// abi.h or its SDKs. It was written after reading, as documentation only:
//
//   - envoyproxy/envoy source/extensions/dynamic_modules/abi/abi.h at commit
//     0199da4a13cb999df12ad32db7d03942cfbf9abb (the newest stored revision; it
//     still says ABI "v0.1.0"; the 1.40.0 commit 9e5580933739 is not stored).
//     Envoy guarantees one minor version of forward compatibility (envoy PR
//     43219: a module built for 1.39 works with 1.40), so v0.1.0 declarations
//     of calls that still exist hold for the v0.2.0 binary.
//   - the C++ side of those calls (source/extensions/filters/http/
//     dynamic_modules/{abi_impl,filter,filter_config}.cc and
//     source/extensions/dynamic_modules/dynamic_modules.cc), newest stored
//     revisions, for semantics the header leaves open.
//
// Checked against bin/envoy (1.40.0, 9e5580933739775e8bce696a57a2e1bc99368f23):
//
//   - Every callback declared in frontdoor_abi.h is exported by the binary
//     (nm -D --defined-only); TestEnvoyExportsDeclaredCallbacks re-checks it.
//   - The binary contains the ABI string "v0.2.0"; Envoy logs "Dynamic module
//     ABI version v0.2.0 matched." for our on_program_init (TestABIVersionMatched).
//   - Required hooks: a C stub module was loaded into the binary one missing
//     symbol at a time; Envoy rejects the filter config naming the first hook
//     it cannot resolve. The 19 required hooks plus program_init and
//     config_new are requiredHooks in hooks.go; TestModuleExportsRequiredHooks
//     re-checks the built module against the binary's hook names.
//   - Struct layouts and argument order of every call are proven by behaviour
//     in abi_test.go: header iteration/add/set/remove reach the upstream as
//     expected, local replies carry code, headers, body and details, metadata
//     numbers set here are read back by Envoy's own %DYNAMIC_METADATA% formatter, the
//     scheduler resumes requests, and each Attribute constant returns the value
//     a TLS client can compute independently (e.g. the sha256 of its own
//     certificate), which pins the enum values.
//   - set_filter_state_bytes: the filter, then key and value as byte ranges
//     (older header revisions spell each as pointer and length: the same
//     four argument registers), returning bool. Proven by TestHeaderCalls
//     and TestReplay, which read the values back with Envoy's
//     %FILTER_STATE(key:PLAIN)% formatter (an empty value included); a
//     second write of a key replaces the first in 1.40.0.
//   - The access log's reads (accesslog.c): get_timing_info fills 176 bytes,
//     19 int64 slots and a presence byte per slot from 0x98 (layout read off
//     the binary's code with objdump; the slot map matched against Envoy's
//     %COMMON_DURATION% values on real requests); get_cluster_name and the
//     attribute ids 10, 13, 15, 17, 21, 24 and 41 (protocol, request size,
//     code, response flags as Envoy's legacy bit set, response size, source
//     and upstream address). TestModuleAccessLogMatchesEnvoy compares every
//     field of the module's line with Envoy's own JSON line for the same
//     requests (allowed, denied, 404, upstream reset, client reset,
//     rate-limited, failed closed, replayed), which pins all of them.
//   - Header semantics (from abi_impl.cc, checked by tests): add_header
//     appends a new field and refuses an empty value; set_header replaces all
//     fields of the name, and an empty value removes them.
//
// # Loading
//
// Configure the filter as envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
// with dynamic_module_config {module: {local: {filename: "/abs/lib.so"}},
// do_not_close: true}, filter_name selecting the RegisterFilter factory, and
// filter_config as a google.protobuf.StringValue (or BytesValue), passed to
// the factory verbatim. A missing or broken local file, or a factory error,
// makes Envoy reject the configuration: a static bootstrap does not start, an
// LDS update is rejected and no listener serves (failure_test.go). Do not use
// module.remote: Envoy 1.40 documents that a failed remote fetch installs no
// filter and forwards requests unfiltered (fail open).
//
// One Go c-shared module per Envoy process: each carries a whole Go runtime
// and Go does not support two in one process. The Go linker marks the library
// NODELETE, so Envoy's dlclose never unloads the runtime.
//
// The Go runtime installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGPIPE and
// SIGURG when the module loads. A fault in Go code becomes a panic (recovered,
// 503); a fault anywhere else is forwarded to Envoy's crash handler
// (TestCrashReachesEnvoyCrashHandler); SIGTERM and SIGINT stay Envoy's
// (TestSIGTERMStillHandled). An unrecoverable Go fatal error (e.g. concurrent
// map writes) still kills Envoy with a Go traceback.
//
// # Threading
//
// Envoy calls the hooks on its worker threads (config hooks on the main
// thread). A Stream may only be used from inside a hook of its own filter;
// the one thing another goroutine may do is Scheduler.Commit, which brings the
// work back to the worker thread through Filter.OnScheduled.
//
// # Failing closed
//
// Every exported hook recovers Go panics. A panic (or a missing filter) in the
// request path answers 503 with a Kubernetes Status body and never forwards
// the request; a failing filter config is rejected by Envoy.
package abi

// HeadersStatus is what Filter.OnRequestHeaders returns. The values are
// Envoy's FilterHeadersStatus, which the ABI passes through unchanged.
type HeadersStatus int32

const (
	// Continue forwards the request headers to the next filter.
	Continue HeadersStatus = 0
	// StopIteration pauses the headers until Stream.ContinueDecoding. While
	// paused, this package holds back request body and trailers itself
	// (shell.c), so a request body can never push a paused request upstream.
	StopIteration HeadersStatus = 1
	// StopAllIterationAndBuffer pauses headers, body and trailers in Envoy
	// (buffering the body) until Stream.ContinueDecoding. Preferred for
	// asynchronous decisions.
	StopAllIterationAndBuffer HeadersStatus = 3
)

// FilterConfig is one filter configuration (one Envoy filter config object).
// Envoy creates it on the main thread and may use it from every worker.
type FilterConfig interface {
	// NewFilter returns the filter for one HTTP stream. It runs on a worker
	// thread. Returning nil fails the stream closed (503).
	NewFilter() Filter
	// Destroy releases the config when Envoy drops it.
	Destroy()
}

// Filter handles one HTTP stream. FilterConfig.NewFilter creates it when the
// request headers arrive; its methods run on the stream's worker thread,
// never concurrently with each other.
//
// A Filter that implements neither Destroyer nor StreamCompleter and creates
// no Scheduler is done when OnRequestHeaders returns: the stream then costs
// the Go runtime one call, and Envoy's other hooks stay in C (shell.c).
type Filter interface {
	// OnRequestHeaders sees the request headers before any upstream does.
	OnRequestHeaders(s Stream, endOfStream bool) HeadersStatus
	// OnScheduled runs on the worker thread after Scheduler.Commit(eventID).
	OnScheduled(s Stream, eventID uint64)
}

// Destroyer is optionally implemented by a Filter that must know when its
// stream is gone. OnDestroy is the last call; the Stream must not be used
// afterwards.
type Destroyer interface {
	OnDestroy()
}

// StreamCompleter is optionally implemented by a Filter that wants to see the
// finished stream (for example to read AttrResponseCode) before OnDestroy.
type StreamCompleter interface {
	OnStreamComplete(s Stream)
}

// LogLevel is the level of a message given to Log (Envoy's spdlog levels).
type LogLevel int32

const (
	LogTrace    LogLevel = 0
	LogDebug    LogLevel = 1
	LogInfo     LogLevel = 2
	LogWarn     LogLevel = 3
	LogError    LogLevel = 4
	LogCritical LogLevel = 5
)

// Attribute identifies a value Envoy computes for a stream (Envoy's attribute
// ids, https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes).
// Only ids whose values are verified by this package's tests are defined.
type Attribute int32

const (
	AttrRequestPath     Attribute = 0  // string: :path
	AttrRequestMethod   Attribute = 4  // string: :method
	AttrRequestProtocol Attribute = 10 // string: "HTTP/1.1", "HTTP/2"
	AttrResponseCode    Attribute = 15 // int
	AttrSourceAddress   Attribute = 24 // string: downstream "ip:port"
	AttrSourcePort      Attribute = 25 // int: downstream port
	AttrConnectionID    Attribute = 28 // int: downstream connection id
	// AttrConnectionMTLS is a bool: the client presented a certificate.
	AttrConnectionMTLS       Attribute = 29
	AttrConnectionTLSVersion Attribute = 31 // string: "TLSv1.3"
	// AttrConnectionSubjectPeerCertificate is the client certificate's subject
	// (RFC 2253, e.g. "CN=alice,O=devs"); "" (ok) on TLS without a client
	// certificate.
	AttrConnectionSubjectPeerCertificate Attribute = 33
	AttrConnectionDNSSANPeerCertificate  Attribute = 35 // string: first DNS SAN; no value without one
	AttrConnectionURISANPeerCertificate  Attribute = 37 // string: first URI SAN; no value without one
	// AttrConnectionSHA256PeerCertificateDigest is the lowercase hex sha256 of
	// the client certificate (DER); "" (ok) on TLS without a client
	// certificate, so check AttrConnectionMTLS or emptiness, not ok alone.
	AttrConnectionSHA256PeerCertificateDigest Attribute = 38
)

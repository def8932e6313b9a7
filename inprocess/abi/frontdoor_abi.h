// frontdoor_abi.h: Frontdoor's own declarations of the part of Envoy's
// dynamic-module C ABI (HTTP filter subset) that package abi uses.
//
// This is not Envoy's abi.h. It declares only the callbacks we call, with our
// own type names; the function names and the machine-level shapes (argument
// order, by-value structs of pointer+length, integer enums) are what Envoy
// 1.40.0 (ABI v0.2.0) implements. abi.go records which header revisions were
// read and how each declaration was checked against the bin/envoy binary.
//
// Every callback is declared weak: inside Envoy the dynamic linker binds it to
// the symbol Envoy exports; in a plain executable (the package's own test
// binary) it stays NULL, so the package links and its pure-Go parts can be
// unit-tested. fd_in_envoy tells the two apart.
//
// This header is included from a cgo preamble of a file with //export, so it
// may only contain declarations, typedefs and static inline functions.

#ifndef FRONTDOOR_ABI_H
#define FRONTDOOR_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A byte range: Envoy's envoy_buffer / module_buffer (same layout, owner
// differs by direction). Passed by value: two integer registers on LP64.
typedef struct {
  const char* ptr;
  size_t length;
} fd_buffer;

// One header field as two byte ranges: Envoy's envoy_http_header /
// module_http_header (same layout).
typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} fd_http_header;

// Enum values are passed as int (C enums are int-sized); the constants live
// on the Go side (headerTypeRequest, Attribute, LogLevel, statuses).

// ---- callbacks Envoy implements (exported from the envoy binary) ----------

extern void envoy_dynamic_module_callback_log(int level, fd_buffer message) __attribute__((weak));

extern size_t envoy_dynamic_module_callback_http_get_headers_size(void* filter, int header_type)
    __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_get_headers(void* filter, int header_type,
                                                           fd_http_header* out) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_get_header(void* filter, int header_type, fd_buffer key,
                                                          fd_buffer* out, size_t index,
                                                          size_t* count) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_add_header(void* filter, int header_type, fd_buffer key,
                                                          fd_buffer value) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_set_header(void* filter, int header_type, fd_buffer key,
                                                          fd_buffer value) __attribute__((weak));

extern void envoy_dynamic_module_callback_http_clear_route_cache(void* filter) __attribute__((weak));
extern void envoy_dynamic_module_callback_http_send_response(void* filter, uint32_t status_code,
                                                             fd_http_header* headers, size_t headers_count,
                                                             fd_buffer body, fd_buffer details)
    __attribute__((weak));
extern void envoy_dynamic_module_callback_http_filter_continue_decoding(void* filter) __attribute__((weak));

extern void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(void* filter, fd_buffer ns,
                                                                           fd_buffer key, double value)
    __attribute__((weak));
// Sets filter state key to a string object, which %FILTER_STATE(key:PLAIN)%
// formats as the string itself. In 1.40.0 a second write of a key replaces
// the first and both return true (TestHeaderCalls).
extern bool envoy_dynamic_module_callback_http_set_filter_state_bytes(void* filter, fd_buffer key, fd_buffer value)
    __attribute__((weak));

extern bool envoy_dynamic_module_callback_http_filter_get_attribute_string(void* filter, int attribute_id,
                                                                           fd_buffer* out)
    __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_filter_get_attribute_int(void* filter, int attribute_id,
                                                                        uint64_t* out) __attribute__((weak));
extern bool envoy_dynamic_module_callback_http_filter_get_attribute_bool(void* filter, int attribute_id,
                                                                         bool* out) __attribute__((weak));

extern void* envoy_dynamic_module_callback_http_filter_scheduler_new(void* filter) __attribute__((weak));
extern void envoy_dynamic_module_callback_http_filter_scheduler_commit(void* scheduler, uint64_t event_id)
    __attribute__((weak));
extern void envoy_dynamic_module_callback_http_filter_scheduler_delete(void* scheduler) __attribute__((weak));

// Fills out (176 bytes: 19 int64 slots, then a presence byte per slot at
// 0x98) with the stream's timing. Slot map and checks: accesslog.c.
extern void envoy_dynamic_module_callback_http_get_timing_info(void* filter, void* out) __attribute__((weak));
// The upstream cluster the router picked, false before it picked one.
extern bool envoy_dynamic_module_callback_http_get_cluster_name(void* filter, fd_buffer* out) __attribute__((weak));

// Main thread only (config hooks): whether Envoy runs with --mode validate.
extern bool envoy_dynamic_module_callback_is_validation_mode(void) __attribute__((weak));

// ---- the module's per-config and per-stream shell (shell.c) --------------

// fd_log is a filter config's access log, written by the module (accesslog.c).
typedef struct fd_log fd_log;

// fd_config is what the module hands Envoy as a filter config pointer: the Go
// config's handle and the parts the C hooks need without entering Go.
typedef struct {
  uintptr_t handle; // the Go filter config (runtime/cgo.Handle); never 0
  fd_log* log;      // the config's access log; NULL: the module writes none
} fd_config;

// How many bytes of a stream's access-log members live inside fd_stream;
// longer ones are malloc'ed.
#define FD_LOG_INLINE 320

// fd_stream is what the module hands Envoy as its per-stream filter pointer.
// It is C memory, created and freed by the C hooks in shell.c, so the hooks
// that only need a flag (body, trailers, every response hook) never enter the
// Go runtime; Go state exists only for streams that need it (state != 0).
typedef struct {
  void* envoy;              // Envoy's DynamicModuleHttpFilter, valid until destroy
  const fd_config* config;  // the filter config (outlives its streams)
  uintptr_t state;          // the stream's Go state handle; 0 while it has none
  uint32_t flags;           // FD_STREAM_*
  // The access log's request-service members (fd_log_set_fields): JSON
  // object members without braces, in log_inline or malloc'ed; NULL: none.
  uint32_t log_len;
  const char* log_fields;
  int64_t log_rs_us;        // the request service's time in µs; <0: none
  char log_inline[FD_LOG_INLINE];
} fd_stream;

// Request body and trailers pass only while FD_STREAM_OPEN is set (the
// headers were let through and the stream is neither paused nor failed).
#define FD_STREAM_OPEN 1u
// The stream was answered after a failure; nothing of it is ever forwarded.
#define FD_STREAM_FAILED 2u
// The Go filter wants OnStreamComplete.
#define FD_STREAM_WANTS_COMPLETE 4u
// The stream reached request headers and its config writes an access log:
// the module writes its line (and marked it, so Envoy's logger skips it).
#define FD_STREAM_LOGGED 8u

// ---- the module-written access log (accesslog.c) --------------------------

// What a filter config's access log writes and where (fd_log_new copies it).
typedef struct {
  const char* path;          // file appended to; NULL: standard output
  const char* members;       // static JSON members (the cluster), no braces
  size_t members_len;
  const char* absent;        // request-service members when a stream set none
  size_t absent_len;
  int failures_only;         // only code >= 400, no code, or a response flag...
  int64_t slow_ms;           // ... or at least this long (0: no such rule)
  fd_buffer mark_namespace;  // dynamic metadata number set on logged streams,
  fd_buffer mark_key;        // which Envoy's own logger filters out
} fd_log_spec;

fd_log* fd_log_new(const fd_log_spec* spec, char* err, size_t err_len);
void fd_log_free(fd_log* l);
void fd_log_flush_all(void);
uint64_t fd_log_count(int dropped);
void fd_log_mark(fd_stream* s, void* envoy);
int fd_log_set_fields(fd_stream* s, const char* p, size_t n);
void fd_log_write(fd_stream* s, void* envoy);
void fd_log_stream_free(fd_stream* s);
size_t fd_format_uint(char* out, uint64_t v);
int64_t fd_now_ns(void);

// ---- replaying decisions without Go (replay.c) ---------------------------

// A header name the replay key reads, or whose presence bypasses replay;
// prefix != 0 matches every name starting with it.
typedef struct {
  const char* ptr;
  size_t length;
  int prefix;
} fd_replay_name;

// How many metric classes replayed decisions may be counted in.
#define FD_REPLAY_CLASSES 4096

// The header fields of a replay key (fd_replay_configure): key fields go
// into it as they are; hashed fields (secrets) as a keyed hash of their
// value (fd_siphash under hash_key, twice: 128 bits); a bypass field makes
// the request unreplayable.
typedef struct {
  fd_replay_name* key;
  size_t key_count;
  fd_replay_name* hashed;
  size_t hashed_count;
  fd_replay_name* bypass;
  size_t bypass_count;
  uint64_t hash_key[4];
} fd_replay_fields;

void fd_replay_configure(const fd_replay_fields* fields);
uint64_t fd_siphash(uint64_t k0, uint64_t k1, const char* p, size_t n);
void fd_replay_forget(void);
uint64_t fd_replay_hits(uint32_t cls);
int fd_replay_try(fd_stream* s, void* envoy);
void fd_replay_done(void);
int fd_replay_pending(const fd_stream* s);
int fd_replay_keep(const fd_stream* s, int64_t ttl_ns, uint32_t cls, const char* plan, size_t plan_len);

// fd_in_envoy reports whether the callbacks were bound, i.e. whether this
// code runs inside an Envoy process that exports them.
static inline int fd_in_envoy(void) { return envoy_dynamic_module_callback_log != 0; }

#endif // FRONTDOOR_ABI_H

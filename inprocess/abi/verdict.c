// verdict.c: the upstream retry verdict, written in C on Envoy's worker
// thread for clusters served in process (translator/retry.go explains the
// retry it drives). It runs as an upstream HTTP filter of every cluster, once
// per attempt, and never enters Go:
//
//   - request headers: notes whether this is the request's first attempt
//     (the router's attempt-count header, which the virtual host asks for),
//     and removes that header, so the apiserver never sees it;
//   - response headers: removes any verdict the server sent (a server cannot
//     make Envoy retry a request it executed), and on a first attempt's 429
//     writes "1 429 <content-type>", the verdict the route's retry policy
//     matches; every other answer carries no verdict.
//
// The header_mutation it replaces formatted a verdict on every response;
// this writes one only on a 429.

#include <string.h>

#include "frontdoor_abi.h"

// Envoy's http_header_type values. The translator's
// TestRetriesOnlyRefusalsBeforeExecution runs this writer in the real Envoy
// and fails if either is wrong (no retry, or the attempt header reaching the
// server).
enum { fd_request_headers = 0, fd_response_headers = 2 };

// The names, set by the first fd_verdict_configure (main thread, before any
// verdict stream exists) and never written again, so worker threads read
// them without a lock. Static storage: they live as long as the module.
static char fd_verdict_header[64];
static char fd_attempt_header[64];
static fd_buffer fd_verdict_name, fd_attempt_name;
static int fd_verdict_configured;

// fd_verdict_tag's address is the handle of every verdict filter config: C
// memory, so it never equals a runtime/cgo.Handle (small integers).
static const char fd_verdict_tag = 0;

// fd_verdict_configure returns the verdict configs' handle, or 0 if the
// names do not fit or differ from the first call's (every config names the
// same headers; the Go side passes constants).
uintptr_t fd_verdict_configure(const char* verdict, size_t verdict_len, const char* attempt, size_t attempt_len) {
  if (verdict_len == 0 || verdict_len >= sizeof fd_verdict_header || attempt_len == 0 ||
      attempt_len >= sizeof fd_attempt_header) {
    return 0;
  }
  if (fd_verdict_configured) {
    int same = verdict_len == fd_verdict_name.length && memcmp(verdict, fd_verdict_header, verdict_len) == 0 &&
               attempt_len == fd_attempt_name.length && memcmp(attempt, fd_attempt_header, attempt_len) == 0;
    return same ? (uintptr_t)&fd_verdict_tag : 0;
  }
  memcpy(fd_verdict_header, verdict, verdict_len);
  memcpy(fd_attempt_header, attempt, attempt_len);
  fd_verdict_name = (fd_buffer){fd_verdict_header, verdict_len};
  fd_attempt_name = (fd_buffer){fd_attempt_header, attempt_len};
  fd_verdict_configured = 1;
  return (uintptr_t)&fd_verdict_tag;
}

int fd_is_verdict(uintptr_t config) { return config == (uintptr_t)&fd_verdict_tag; }

static const fd_buffer fd_empty = {"", 0};

void fd_verdict_request_headers(fd_stream* s, void* envoy) {
  fd_buffer v = {0};
  if (envoy_dynamic_module_callback_http_get_header(envoy, fd_request_headers, fd_attempt_name, &v, 0, NULL) &&
      v.length == 1 && v.ptr[0] == '1') {
    s->flags |= FD_STREAM_FIRST_ATTEMPT;
  }
  envoy_dynamic_module_callback_http_set_header(envoy, fd_request_headers, fd_attempt_name, fd_empty);
}

void fd_verdict_response_headers(fd_stream* s, void* envoy) {
  envoy_dynamic_module_callback_http_set_header(envoy, fd_response_headers, fd_verdict_name, fd_empty);
  if ((s->flags & FD_STREAM_FIRST_ATTEMPT) == 0) {
    return;
  }
  fd_buffer status = {0};
  static const fd_buffer status_name = {":status", 7};
  if (!envoy_dynamic_module_callback_http_get_header(envoy, fd_response_headers, status_name, &status, 0, NULL) ||
      status.length != 3 || memcmp(status.ptr, "429", 3) != 0) {
    return;
  }
  fd_buffer ct = {0};
  static const fd_buffer ct_name = {"content-type", 12};
  if (!envoy_dynamic_module_callback_http_get_header(envoy, fd_response_headers, ct_name, &ct, 0, NULL)) {
    ct = fd_empty;
  }
  // The retry policy matches a prefix of the verdict: a long content type
  // is cut, never the part before it.
  char value[96] = "1 429 ";
  size_t n = 6;
  size_t take = ct.length < sizeof value - n ? ct.length : sizeof value - n;
  memcpy(value + n, ct.ptr, take);
  envoy_dynamic_module_callback_http_set_header(envoy, fd_response_headers, fd_verdict_name,
                                                (fd_buffer){value, n + take});
}

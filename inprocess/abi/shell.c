// shell.c: the HTTP filter hooks that need no Go. Envoy calls every hook of
// every stream; a call into a Go c-shared library costs a thread handover to
// the Go runtime (a cgo callback) each time, and a GET through the filter
// would make six of them where only request_headers has work to do. Here the
// per-stream filter pointer is C memory (fd_stream): stream creation and
// destruction, request body and trailers (a flag test) and every response
// hook stay in C, and Go is entered only for request headers (unless the
// worker replays a decision Go made for an identical request: replay.c),
// scheduled events, and the completion and destruction of streams that kept
// Go state.
//
// Only this file defines these symbols; hooks.go exports the rest.

#include <stdlib.h>

#include "frontdoor_abi.h"
#include "_cgo_export.h"

// Envoy's FilterDataStatus / FilterTrailersStatus / FilterHeadersStatus.
enum { fd_continue = 0, fd_stop_iteration = 1 /* trailers */, fd_stop_iteration_and_buffer = 1 /* body */ };

// The filter config is C memory (fd_config) around the Go config's handle,
// so stream hooks reach the config's access log without entering Go.
uintptr_t envoy_dynamic_module_on_http_filter_config_new(void* envoy_config, fd_buffer name, fd_buffer config) {
  fd_config* c = calloc(1, sizeof(fd_config));
  if (c == NULL) {
    return 0; // Envoy rejects the config
  }
  if (!fdGoConfigNew(envoy_config, name, config, c) || c->handle == 0) {
    fd_log_free(c->log);
    free(c);
    return 0;
  }
  return (uintptr_t)c;
}

void envoy_dynamic_module_on_http_filter_config_destroy(uintptr_t config) {
  fd_config* c = (fd_config*)config;
  if (c == NULL) {
    return;
  }
  fdGoConfigDestroy(c->handle);
  fd_log_free(c->log);
  free(c);
}

uintptr_t envoy_dynamic_module_on_http_filter_new(uintptr_t config, void* envoy) {
  fd_stream* s = calloc(1, sizeof(fd_stream));
  if (s == NULL) {
    return 0; // Envoy cannot create the filter; the stream never starts
  }
  s->envoy = envoy;
  s->config = (const fd_config*)config;
  return (uintptr_t)s;
}

void envoy_dynamic_module_on_http_filter_destroy(uintptr_t filter) {
  fd_stream* s = (fd_stream*)filter;
  if (s == NULL) {
    return;
  }
  if (s->state != 0) {
    fdGoStreamDestroy(s);
  }
  fd_log_stream_free(s);
  free(s);
}

// Request headers: replayed here when the worker remembers the answer (the
// stream is then open and has no Go state), else decided by Go. A stream that
// gets here gets the module's access log line (accesslog.c), if its config
// has one.
int32_t envoy_dynamic_module_on_http_filter_request_headers(void* envoy, uintptr_t filter, bool end_of_stream) {
  fd_stream* s = (fd_stream*)filter;
  if (s != NULL && s->config != NULL && s->config->log != NULL && (s->flags & FD_STREAM_LOGGED) == 0) {
    fd_log_mark(s, envoy);
  }
  if (s != NULL && fd_replay_try(s, envoy)) {
    return fd_continue;
  }
  int32_t status = fdGoRequestHeaders(envoy, s, end_of_stream);
  fd_replay_done();
  return status;
}

// A paused, failed or not yet decided request never lets its body or trailers
// through: Envoy would otherwise forward them (and the headers before them).
int32_t envoy_dynamic_module_on_http_filter_request_body(void* envoy, uintptr_t filter, bool end_of_stream) {
  const fd_stream* s = (const fd_stream*)filter;
  if (s == NULL || (s->flags & (FD_STREAM_OPEN | FD_STREAM_FAILED)) != FD_STREAM_OPEN) {
    return fd_stop_iteration_and_buffer;
  }
  return fd_continue;
}

int32_t envoy_dynamic_module_on_http_filter_request_trailers(void* envoy, uintptr_t filter) {
  const fd_stream* s = (const fd_stream*)filter;
  if (s == NULL || (s->flags & (FD_STREAM_OPEN | FD_STREAM_FAILED)) != FD_STREAM_OPEN) {
    return fd_stop_iteration;
  }
  return fd_continue;
}

void envoy_dynamic_module_on_http_filter_stream_complete(void* envoy, uintptr_t filter) {
  fd_stream* s = (fd_stream*)filter;
  if (s != NULL && s->state != 0 && (s->flags & FD_STREAM_WANTS_COMPLETE) != 0) {
    fdGoStreamComplete(s);
  }
  if (s != NULL && (s->flags & FD_STREAM_LOGGED) != 0) {
    fd_log_write(s, envoy);
  }
}

// The module never changes responses.

int32_t envoy_dynamic_module_on_http_filter_response_headers(void* envoy, uintptr_t filter, bool end_of_stream) {
  return fd_continue;
}

int32_t envoy_dynamic_module_on_http_filter_response_body(void* envoy, uintptr_t filter, bool end_of_stream) {
  return fd_continue;
}

int32_t envoy_dynamic_module_on_http_filter_response_trailers(void* envoy, uintptr_t filter) {
  return fd_continue;
}

// Required hooks for features the module does not use (HTTP callouts started
// by the filter, terminal-filter flow control): Envoy never calls them for a
// filter that does not start those.

void envoy_dynamic_module_on_http_filter_http_callout_done(void* envoy, uintptr_t filter, uint64_t callout_id, int result,
                                                           void* headers, size_t headers_count, void* body,
                                                           size_t body_count) {}

void envoy_dynamic_module_on_http_filter_http_stream_headers(void* envoy, uintptr_t filter, uint64_t stream_id,
                                                             void* headers, size_t headers_count, bool end_of_stream) {}

void envoy_dynamic_module_on_http_filter_http_stream_data(void* envoy, uintptr_t filter, uint64_t stream_id, void* data,
                                                          size_t data_count, bool end_of_stream) {}

void envoy_dynamic_module_on_http_filter_http_stream_trailers(void* envoy, uintptr_t filter, uint64_t stream_id,
                                                              void* trailers, size_t trailers_count) {}

void envoy_dynamic_module_on_http_filter_http_stream_complete(void* envoy, uintptr_t filter, uint64_t stream_id) {}

void envoy_dynamic_module_on_http_filter_http_stream_reset(void* envoy, uintptr_t filter, uint64_t stream_id,
                                                           int reason) {}

void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(void* envoy, uintptr_t filter) {}

void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(void* envoy, uintptr_t filter) {}

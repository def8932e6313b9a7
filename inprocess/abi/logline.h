// logline.h: the line buffer of the module's access log (logline.c), shared
// by accesslog.c only; Go never includes it.

#ifndef FRONTDOOR_LOGLINE_H
#define FRONTDOOR_LOGLINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "frontdoor_abi.h"

// A per-thread line under construction; it only grows.
typedef struct {
  char* p;
  size_t len, cap;
  int failed;        // out of memory: the line is dropped
  time_t sec;        // the second whose text is in sec_text
  char sec_text[24];
  fd_http_header* headers; // scratch for get_headers
  size_t headers_cap;
} fd_line;

void fd_put(fd_line* b, const char* p, size_t n);
#define FD_LIT(b, s) fd_put((b), (s), sizeof(s) - 1)
void fd_put_uint(fd_line* b, uint64_t v);
// A JSON string: quotes, backslashes and control bytes escaped, invalid
// UTF-8 replaced by U+FFFD.
void fd_put_json_string(fd_line* b, const char* p, size_t n);
// A quoted %START_TIME% in Envoy's default format: UTC, milliseconds.
void fd_put_time(fd_line* b, int64_t unix_ns);

#endif // FRONTDOOR_LOGLINE_H

// logline.c: the JSON text of the module's access log lines (accesslog.c):
// a growable line buffer, numbers, strings and the time, written by hand
// because the line is built on Envoy's worker thread for every request.

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontdoor_abi.h"
#include "logline.h"

void fd_put(fd_line* b, const char* p, size_t n) {
  if (b->failed) {
    return;
  }
  if (b->len + n > b->cap) {
    size_t c = b->cap > 0 ? b->cap * 2 : 1024; // a line of ~600 bytes fits the first
    while (c < b->len + n) {
      c *= 2;
    }
    char* q = realloc(b->p, c);
    if (q == NULL) {
      b->failed = 1;
      return;
    }
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

void fd_put_uint(fd_line* b, uint64_t v) {
  char d[20];
  fd_put(b, d, fd_format_uint(d, v));
}

// fd_utf8_len is the length of the valid UTF-8 sequence at p[0:n], 0 if none.
static size_t fd_utf8_len(const unsigned char* p, size_t n) {
  unsigned char c = p[0];
  size_t k;
  uint32_t min;
  if (c >= 0xc2 && c <= 0xdf) {
    k = 2, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    k = 3, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (n < k) {
    return 0;
  }
  uint32_t cp = c & (0x3f >> (k - 1));
  for (size_t i = 1; i < k; i++) {
    if ((p[i] & 0xc0) != 0x80) {
      return 0;
    }
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return k;
}

// fd_put_json_string writes p[0:n] as a JSON string: quotes, backslashes and
// control bytes escaped, invalid UTF-8 replaced by U+FFFD.
void fd_put_json_string(fd_line* b, const char* p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char* u = (const unsigned char*)p;
  FD_LIT(b, "\"");
  size_t run = 0; // bytes copied as they are, pending
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++, run++;
      continue;
    }
    if (c >= 0x80) {
      size_t k = fd_utf8_len(u + i, n - i);
      if (k > 0) {
        i += k, run += k;
        continue;
      }
    }
    fd_put(b, p + i - run, run);
    run = 0;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      fd_put(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      fd_put(b, e, 6);
    } else {
      FD_LIT(b, "\\ufffd");
    }
    i++;
  }
  fd_put(b, p + n - run, run);
  FD_LIT(b, "\"");
}

void fd_put_time(fd_line* b, int64_t unix_ns) {
  time_t sec = (time_t)(unix_ns / 1000000000);
  if (sec != b->sec || b->sec_text[0] == 0) {
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(b->sec_text, sizeof b->sec_text, "%Y-%m-%dT%H:%M:%S", &tm);
    b->sec = sec;
  }
  int ms = (int)(unix_ns / 1000000 % 1000);
  char f[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
  FD_LIT(b, "\"");
  fd_put(b, b->sec_text, strlen(b->sec_text));
  fd_put(b, f, sizeof f);
}

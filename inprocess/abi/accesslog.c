// accesslog.c: the access log line of a stream the module filtered, written
// by the module when the stream completes, in place of Envoy's JSON access
// log formatter.
//
// Why: in the bench, Envoy formatting its own sixteen fields per request cost
// ~6% of the gateway's CPU per GET (docs/performance-history.md); the same
// line built here from one get_headers, a few attribute reads and the timing
// struct costs a fraction of it. get_header by name is what is expensive, so
// the request headers are read once and scanned here.
//
// The line has the keys and value shapes of the Envoy-formatted line the
// translator configures for the other modes (translator/accesslog.go); the
// abi package's TestModuleAccessLogMatchesEnvoy compares the two on the same
// requests (allowed, denied, 404, upstream reset, client reset,
// rate-limited). A stream the module marked (fd_log_mark: a dynamic metadata
// number) is skipped by Envoy's own logger, which stays configured for the
// requests the filter never saw (rejected by the codec before the filter
// chain).
//
// Lines are appended to the sink's buffer under its mutex and written when
// it holds 64 KiB, every second (fd_log_flush_all, from a Go ticker) and at
// exit; each write(2) ends on a line boundary and, for a pipe, holds at most
// PIPE_BUF bytes, so lines never interleave with Envoy's own writers. A file
// renamed away (log rotation) is followed: the next flush reopens the path.

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frontdoor_abi.h"
#include "logline.h"

// Attribute ids of Envoy 1.40.0's attribute_id enum (checked against Envoy's
// own formatter by TestModuleAccessLogMatchesEnvoy).
enum {
  fd_attr_request_protocol = 10,
  fd_attr_request_size = 13,
  fd_attr_response_code = 15,
  fd_attr_response_flags = 17,
  fd_attr_response_size = 21,
  fd_attr_source_address = 24,
  fd_attr_upstream_address = 41,
};

// Slots of get_timing_info (int64 at 8*i; presence byte at 0x98+i). Slot 0 is
// the stream's start in Unix ns; the others ns since the start (read on the
// 1.40.0 binary and matched against %COMMON_DURATION% and %DURATION%).
enum {
  fd_t_start_unix = 0,
  fd_t_us_tx_beg = 9,
  fd_t_us_rx_beg = 11,
  fd_t_ds_tx_end = 15,
  fd_t_complete = 17,
  fd_t_present = 0x98,
  fd_t_size = 176,
};

// Envoy's legacy response flag bits (response.flags), in bit order, with
// the letters %RESPONSE_FLAGS% prints, comma-separated in this order.
static const char* const fd_flag_names[] = {
    "LH",  "UH",  "UT",    "LR",   "UR",   "UF",   "UC", "UO",  "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI",  "IH",    "DPE",  "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
};

#define FD_SINK_FLUSH (64 << 10)

typedef struct fd_sink {
  pthread_mutex_t mu;
  struct fd_sink* next;
  char* path; // NULL: standard output
  int fd;
  size_t chunk; // largest write: PIPE_BUF unless a regular file
  char* buf;
  size_t len, cap;
} fd_sink;

struct fd_log {
  fd_sink* sink;
  char* members;
  size_t members_len;
  char* absent;
  size_t absent_len;
  int failures_only;
  int64_t slow_ms;
  char* mark_ns;
  size_t mark_ns_len;
  char* mark_key;
  size_t mark_key_len;
};

// Sinks live for the process: a few files at most, shared by every config
// that names the same path.
static pthread_mutex_t fd_sinks_mu = PTHREAD_MUTEX_INITIALIZER;
static fd_sink* fd_sinks;
static pthread_once_t fd_atexit_once = PTHREAD_ONCE_INIT;

static void fd_log_at_exit(void) { atexit(fd_log_flush_all); }

// Lines appended to a sink, and lines lost (no memory, or write(2) failed).
static uint64_t fd_log_counts[2];

uint64_t fd_log_count(int dropped) { return __atomic_load_n(&fd_log_counts[dropped != 0], __ATOMIC_RELAXED); }

static void fd_log_counted(int dropped, uint64_t n) { __atomic_add_fetch(&fd_log_counts[dropped != 0], n, __ATOMIC_RELAXED); }

// fd_sink_write writes buf[0:len] in chunks that end on a line boundary.
static void fd_sink_write(fd_sink* k) {
  size_t off = 0;
  while (off < k->len) {
    size_t n = k->len - off;
    if (n > k->chunk) {
      n = k->chunk;
      while (n > 0 && k->buf[off + n - 1] != '\n') {
        n--;
      }
      if (n == 0) { // a single line longer than a chunk: all of it at once
        const char* nl = memchr(k->buf + off, '\n', k->len - off);
        n = nl != NULL ? (size_t)(nl - (k->buf + off)) + 1 : k->len - off;
      }
    }
    ssize_t w = write(k->fd, k->buf + off, n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      // Nowhere to write (a closed stdout, a full disk): drop the lines.
      uint64_t lost = 0;
      for (size_t i = off; i < k->len; i++) {
        lost += k->buf[i] == '\n';
      }
      fd_log_counted(1, lost);
      break;
    }
    off += (size_t)w;
  }
  k->len = 0;
}

static fd_sink* fd_sink_get(const char* path, char* err, size_t err_len) {
  pthread_mutex_lock(&fd_sinks_mu);
  for (fd_sink* k = fd_sinks; k != NULL; k = k->next) {
    if ((path == NULL && k->path == NULL) || (path != NULL && k->path != NULL && strcmp(path, k->path) == 0)) {
      pthread_mutex_unlock(&fd_sinks_mu);
      return k;
    }
  }
  int fd = path == NULL ? STDOUT_FILENO : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, err_len, "opening the access log %s: %s", path, strerror(errno));
    pthread_mutex_unlock(&fd_sinks_mu);
    return NULL;
  }
  fd_sink* k = calloc(1, sizeof *k);
  char* p = path == NULL ? NULL : strdup(path);
  if (k == NULL || (path != NULL && p == NULL)) {
    snprintf(err, err_len, "out of memory");
    free(k);
    free(p);
    if (path != NULL) {
      close(fd);
    }
    pthread_mutex_unlock(&fd_sinks_mu);
    return NULL;
  }
  struct stat st;
  k->chunk = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? FD_SINK_FLUSH : PIPE_BUF;
  pthread_mutex_init(&k->mu, NULL);
  k->path = p;
  k->fd = fd;
  k->next = fd_sinks;
  fd_sinks = k;
  pthread_mutex_unlock(&fd_sinks_mu);
  return k;
}

static char* fd_dup(const char* p, size_t n) {
  char* d = malloc(n + 1);
  if (d != NULL) {
    if (n > 0) {
      memcpy(d, p, n);
    }
    d[n] = 0;
  }
  return d;
}

fd_log* fd_log_new(const fd_log_spec* spec, char* err, size_t err_len) {
  pthread_once(&fd_atexit_once, fd_log_at_exit);
  fd_log* l = calloc(1, sizeof *l);
  if (l == NULL) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  l->members = fd_dup(spec->members, spec->members_len);
  l->members_len = spec->members_len;
  l->absent = fd_dup(spec->absent, spec->absent_len);
  l->absent_len = spec->absent_len;
  l->mark_ns = fd_dup(spec->mark_namespace.ptr, spec->mark_namespace.length);
  l->mark_ns_len = spec->mark_namespace.length;
  l->mark_key = fd_dup(spec->mark_key.ptr, spec->mark_key.length);
  l->mark_key_len = spec->mark_key.length;
  l->failures_only = spec->failures_only;
  l->slow_ms = spec->slow_ms;
  if (l->members == NULL || l->absent == NULL || l->mark_ns == NULL || l->mark_key == NULL) {
    snprintf(err, err_len, "out of memory");
    fd_log_free(l);
    return NULL;
  }
  l->sink = fd_sink_get(spec->path, err, err_len);
  if (l->sink == NULL) {
    fd_log_free(l);
    return NULL;
  }
  return l;
}

// fd_log_free runs when Envoy destroys the config, after its last stream.
void fd_log_free(fd_log* l) {
  if (l == NULL) {
    return;
  }
  free(l->members);
  free(l->absent);
  free(l->mark_ns);
  free(l->mark_key);
  free(l);
}

// fd_sink_follow reopens a file sink whose path now names another file (or
// none): log rotation renames the file and expects writers to move on, which
// Envoy's own loggers do when told (SIGUSR1, /reopen_logs) and the module
// does here, within a flush interval, without being told.
static void fd_sink_follow(fd_sink* k) {
  struct stat now, open_file;
  if (k->path == NULL || fstat(k->fd, &open_file) != 0) {
    return;
  }
  if (stat(k->path, &now) == 0 && now.st_dev == open_file.st_dev && now.st_ino == open_file.st_ino) {
    return;
  }
  int fd = open(k->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return; // keep writing where we were
  }
  close(k->fd);
  k->fd = fd;
}

void fd_log_flush_all(void) {
  pthread_mutex_lock(&fd_sinks_mu);
  for (fd_sink* k = fd_sinks; k != NULL; k = k->next) {
    pthread_mutex_lock(&k->mu);
    fd_sink_follow(k);
    fd_sink_write(k);
    pthread_mutex_unlock(&k->mu);
  }
  pthread_mutex_unlock(&fd_sinks_mu);
}

// fd_log_mark runs in request headers: the stream will get the module's line,
// and Envoy's logger (filtered on the mark's absence) none.
void fd_log_mark(fd_stream* s, void* envoy) {
  const fd_log* l = s->config->log;
  fd_buffer ns = {l->mark_ns, l->mark_ns_len}, key = {l->mark_key, l->mark_key_len};
  envoy_dynamic_module_callback_http_set_dynamic_metadata_number(envoy, ns, key, 1);
  s->flags |= FD_STREAM_LOGGED;
  s->log_rs_us = -1;
}

int fd_log_set_fields(fd_stream* s, const char* p, size_t n) {
  if (s == NULL || n > UINT32_MAX) {
    return 0;
  }
  fd_log_stream_free(s);
  if (n <= sizeof s->log_inline) {
    if (n > 0) {
      memcpy(s->log_inline, p, n);
    }
    s->log_fields = s->log_inline;
  } else {
    char* d = malloc(n);
    if (d == NULL) {
      return 0;
    }
    memcpy(d, p, n);
    s->log_fields = d;
  }
  s->log_len = (uint32_t)n;
  return 1;
}

void fd_log_stream_free(fd_stream* s) {
  if (s->log_fields != NULL && s->log_fields != s->log_inline) {
    free((void*)s->log_fields);
  }
  s->log_fields = NULL;
  s->log_len = 0;
}

static void fd_put_string_or_null(fd_line* b, int ok, fd_buffer v) {
  if (ok && v.ptr != NULL) {
    fd_put_json_string(b, v.ptr, v.length);
  } else {
    FD_LIT(b, "null");
  }
}

static void fd_put_attr_string(fd_line* b, void* envoy, int id) {
  fd_buffer v = {NULL, 0};
  fd_put_string_or_null(b, envoy_dynamic_module_callback_http_filter_get_attribute_string(envoy, id, &v), v);
}

static uint64_t fd_attr_int(void* envoy, int id) {
  uint64_t v = 0;
  if (!envoy_dynamic_module_callback_http_filter_get_attribute_int(envoy, id, &v)) {
    return 0;
  }
  return v;
}

// fd_slot_at reads timing slot i into v; 0 when Envoy did not record it.
static int fd_slot_at(const unsigned char* t, int i, int64_t* v) {
  if (t[fd_t_present + i] == 0) {
    return 0;
  }
  memcpy(v, t + 8 * i, sizeof *v);
  return 1;
}

// Each worker builds its lines in its own buffer.
static __thread fd_line* fd_tl_line;

// The request headers the line names, found in one get_headers.
enum { fd_h_method, fd_h_path, fd_h_user_agent, fd_h_request_id, fd_h_count };
static const fd_buffer fd_h_names[fd_h_count] = {
    {":method", 7}, {":path", 5}, {"user-agent", 10}, {"x-request-id", 12}};

static void fd_read_headers(fd_line* b, void* envoy, fd_buffer* found) {
  size_t n = envoy_dynamic_module_callback_http_get_headers_size(envoy, 0);
  if (n == 0) {
    return;
  }
  if (n > b->headers_cap) {
    fd_http_header* h = realloc(b->headers, n * sizeof *h);
    if (h == NULL) {
      return;
    }
    b->headers = h;
    b->headers_cap = n;
  }
  if (!envoy_dynamic_module_callback_http_get_headers(envoy, 0, b->headers)) {
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const fd_http_header* h = &b->headers[i];
    for (int j = 0; j < fd_h_count; j++) {
      if (found[j].ptr == NULL && h->key_length == fd_h_names[j].length &&
          memcmp(h->key_ptr, fd_h_names[j].ptr, h->key_length) == 0) {
        found[j].ptr = h->value_ptr != NULL ? h->value_ptr : "";
        found[j].length = h->value_length;
      }
    }
  }
}

// fd_log_write formats the stream's line and appends it to the sink, unless
// the config logs failures only and the stream succeeded.
void fd_log_write(fd_stream* s, void* envoy) {
  const fd_log* l = s->config->log;
  uint64_t code = fd_attr_int(envoy, fd_attr_response_code);
  uint64_t flags = fd_attr_int(envoy, fd_attr_response_flags);
  unsigned char t[fd_t_size];
  memset(t, 0, sizeof t);
  envoy_dynamic_module_callback_http_get_timing_info(envoy, t);
  int64_t complete = 0, v0 = 0, v1 = 0;
  int has_complete = fd_slot_at(t, fd_t_complete, &complete);
  if (l->failures_only && code > 0 && code < 400 && flags == 0 &&
      !(l->slow_ms > 0 && has_complete && complete / 1000000 >= l->slow_ms)) {
    return;
  }
  if (fd_tl_line == NULL) {
    fd_tl_line = calloc(1, sizeof *fd_tl_line);
    if (fd_tl_line == NULL) {
      fd_log_counted(1, 1);
      return;
    }
  }
  fd_line* b = fd_tl_line;
  b->len = 0;
  b->failed = 0;
  fd_buffer h[fd_h_count] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
  fd_read_headers(b, envoy, h);

  FD_LIT(b, "{\"bytesReceived\":");
  fd_put_uint(b, fd_attr_int(envoy, fd_attr_request_size));
  FD_LIT(b, ",\"bytesSent\":");
  fd_put_uint(b, fd_attr_int(envoy, fd_attr_response_size));
  FD_LIT(b, ",\"client\":");
  fd_put_attr_string(b, envoy, fd_attr_source_address);
  if (l->members_len > 0) {
    FD_LIT(b, ",");
    fd_put(b, l->members, l->members_len);
  }
  FD_LIT(b, ",\"code\":");
  fd_put_uint(b, code);
  FD_LIT(b, ",\"durationMs\":");
  if (has_complete) {
    fd_put_uint(b, (uint64_t)complete / 1000000);
  } else {
    FD_LIT(b, "null");
  }
  FD_LIT(b, ",\"durationUs\":");
  if (fd_slot_at(t, fd_t_ds_tx_end, &v0) && v0 >= 0) {
    fd_put_uint(b, (uint64_t)v0 / 1000);
  } else {
    FD_LIT(b, "null");
  }
  FD_LIT(b, ",\"flags\":\"");
  if (flags == 0) {
    FD_LIT(b, "-");
  } else {
    int first = 1;
    for (size_t i = 0; i < sizeof fd_flag_names / sizeof fd_flag_names[0]; i++) {
      if (flags & (1ull << i)) {
        if (!first) {
          FD_LIT(b, ",");
        }
        fd_put(b, fd_flag_names[i], strlen(fd_flag_names[i]));
        first = 0;
      }
    }
  }
  FD_LIT(b, "\",\"method\":");
  fd_put_string_or_null(b, 1, h[fd_h_method]);
  FD_LIT(b, ",\"path\":");
  fd_put_string_or_null(b, 1, h[fd_h_path]);
  FD_LIT(b, ",\"protocol\":");
  fd_put_attr_string(b, envoy, fd_attr_request_protocol);
  FD_LIT(b, ",\"requestID\":");
  fd_put_string_or_null(b, 1, h[fd_h_request_id]);
  FD_LIT(b, ",\"requestServiceUs\":");
  if (s->log_rs_us >= 0) {
    FD_LIT(b, "\"");
    fd_put_uint(b, (uint64_t)s->log_rs_us);
    FD_LIT(b, "\"");
  } else {
    FD_LIT(b, "null");
  }
  FD_LIT(b, ",\"time\":");
  if (fd_slot_at(t, fd_t_start_unix, &v0)) {
    fd_put_time(b, v0);
  } else {
    FD_LIT(b, "null");
  }
  FD_LIT(b, ",\"upstream\":");
  fd_put_attr_string(b, envoy, fd_attr_upstream_address);
  FD_LIT(b, ",\"upstreamCluster\":");
  fd_buffer cluster = {NULL, 0};
  fd_put_string_or_null(b, envoy_dynamic_module_callback_http_get_cluster_name(envoy, &cluster), cluster);
  FD_LIT(b, ",\"upstreamUs\":");
  if (fd_slot_at(t, fd_t_us_tx_beg, &v0) && fd_slot_at(t, fd_t_us_rx_beg, &v1) && v1 >= v0) {
    fd_put_uint(b, (uint64_t)(v1 - v0) / 1000);
  } else {
    FD_LIT(b, "null");
  }
  FD_LIT(b, ",\"userAgent\":");
  fd_put_string_or_null(b, 1, h[fd_h_user_agent]);
  const char* rs = s->log_fields != NULL ? s->log_fields : l->absent;
  size_t rs_len = s->log_fields != NULL ? s->log_len : l->absent_len;
  if (rs_len > 0) {
    FD_LIT(b, ",");
    fd_put(b, rs, rs_len);
  }
  FD_LIT(b, "}\n");
  if (b->failed) {
    fd_log_counted(1, 1);
    return;
  }

  fd_sink* k = l->sink;
  pthread_mutex_lock(&k->mu);
  if (k->len + b->len > k->cap) {
    size_t c = k->cap == 0 ? 2 * FD_SINK_FLUSH : k->cap;
    while (c < k->len + b->len) {
      c *= 2;
    }
    char* q = realloc(k->buf, c);
    if (q == NULL) {
      pthread_mutex_unlock(&k->mu);
      fd_log_counted(1, 1);
      return;
    }
    k->buf = q;
    k->cap = c;
  }
  memcpy(k->buf + k->len, b->p, b->len);
  k->len += b->len;
  fd_log_counted(0, 1);
  if (k->len >= FD_SINK_FLUSH) {
    fd_sink_write(k);
  }
  pthread_mutex_unlock(&k->mu);
}

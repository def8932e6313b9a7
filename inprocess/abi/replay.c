// replay.c: answering a request again without entering Go.
//
// Entering the Go runtime from an Envoy worker (a cgo callback) costs more
// than everything else the filter does for a request whose answer is
// already known: the callback's thread handover, and the Go scheduler's
// monitor waking every 20 µs while callbacks keep arriving. So when Go has
// decided a request and said the decision may be replayed (Replayable in
// replay.go), the worker remembers, in C, the request's key (the bytes of
// every header the decision read, in order; a secret's value, such as a bearer
// token, only as a 128-bit keyed hash) and what the filter did to the
// stream (the plan: header, metadata and filter-state writes, recorded by
// Stream). A later request on the same worker with a byte-identical key,
// within the time Go allowed and under the same generation, gets the same
// plan applied here, and Go is never entered.
//
// The table is per worker thread (Envoy runs each stream on one worker),
// so lookups and inserts take no lock; only the generation (bumped by Go
// when the policy changes) and the per-class hit counters (read by Go for
// metrics) are shared, through atomics.

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontdoor_abi.h"

// Slots per worker (a power of two). A key may live in either of two slots
// picked by its hash (two-choice hashing: with a few thousand distinct hot
// requests per worker, few keys evict each other); a new entry takes the
// free, stale or sooner-ending one. Requests beyond that go to Go.
#define FD_REPLAY_SLOTS 4096
// Largest key kept: a client certificate chain is a few KB.
#define FD_REPLAY_MAX_KEY (32 << 10)
// Requests with more header fields than this go to Go.
#define FD_REPLAY_MAX_HEADERS 96

typedef struct {
  uint64_t hash;
  uint64_t gen;
  int64_t until_ns; // CLOCK_MONOTONIC
  uintptr_t config;
  uint32_t cls;
  size_t key_len;
  size_t plan_len;
  char bytes[]; // key, then plan
} fd_replay_entry;

typedef struct {
  fd_replay_entry* slots[FD_REPLAY_SLOTS];
  // The key of the request Go is deciding on this worker (pending != NULL).
  const fd_stream* pending;
  uint64_t pending_gen;
  uint64_t pending_hash;
  size_t key_len;
  size_t key_cap;
  char* key;
} fd_replay_tls;

static __thread fd_replay_tls* fd_tls;

// Set once by fd_replay_configure, before Envoy creates any filter config.
static fd_replay_fields fd_fields;

static uint64_t fd_generation = 1;
static uint64_t fd_hits[FD_REPLAY_CLASSES];

void fd_replay_configure(const fd_replay_fields* fields) { fd_fields = *fields; }

void fd_replay_forget(void) { __atomic_add_fetch(&fd_generation, 1, __ATOMIC_SEQ_CST); }

uint64_t fd_replay_hits(uint32_t cls) {
  return cls < FD_REPLAY_CLASSES ? __atomic_load_n(&fd_hits[cls], __ATOMIC_RELAXED) : 0;
}

int64_t fd_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fd_name_in(const fd_replay_name* list, size_t n, const char* p, size_t len) {
  for (size_t i = 0; i < n; i++) {
    const fd_replay_name* m = &list[i];
    if (m->prefix ? (len >= m->length && memcmp(p, m->ptr, m->length) == 0)
                  : (len == m->length && memcmp(p, m->ptr, len) == 0)) {
      return 1;
    }
  }
  return 0;
}

// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012) of p under the 128-bit key k0, k1: the keyed hash a secret header's
// value enters a replay key as. Written from the paper's description;
// ConfigureReplay checks it against the paper's test vector.
static uint64_t fd_rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define FD_SIPROUND                                                                                                    \
  do {                                                                                                                 \
    v0 += v1;                                                                                                          \
    v1 = fd_rotl(v1, 13);                                                                                              \
    v1 ^= v0;                                                                                                          \
    v0 = fd_rotl(v0, 32);                                                                                              \
    v2 += v3;                                                                                                          \
    v3 = fd_rotl(v3, 16);                                                                                              \
    v3 ^= v2;                                                                                                          \
    v0 += v3;                                                                                                          \
    v3 = fd_rotl(v3, 21);                                                                                              \
    v3 ^= v0;                                                                                                          \
    v2 += v1;                                                                                                          \
    v1 = fd_rotl(v1, 17);                                                                                              \
    v1 ^= v2;                                                                                                          \
    v2 = fd_rotl(v2, 32);                                                                                              \
  } while (0)

// fd_le64 reads n (at most 8) bytes as a little-endian integer.
static uint64_t fd_le64(const unsigned char* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) {
    w |= (uint64_t)p[i] << (8 * i);
  }
  return w;
}

uint64_t fd_siphash(uint64_t k0, uint64_t k1, const char* in, size_t n) {
  const unsigned char* p = (const unsigned char*)in;
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  size_t full = n - n % 8;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m = fd_le64(p + i, 8);
    v3 ^= m;
    FD_SIPROUND;
    FD_SIPROUND;
    v0 ^= m;
  }
  uint64_t last = ((uint64_t)n << 56) | fd_le64(p + full, n % 8);
  v3 ^= last;
  FD_SIPROUND;
  FD_SIPROUND;
  v0 ^= last;
  v2 ^= 0xff;
  FD_SIPROUND;
  FD_SIPROUND;
  FD_SIPROUND;
  FD_SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

// A multiply-xorshift hash over 8-byte words: not cryptographic, only a
// slot index; every hit is confirmed by comparing the whole key.
static uint64_t fd_hash(const char* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 32);
}

static int fd_key_append(fd_replay_tls* t, const char* p, size_t n) {
  uint32_t len = (uint32_t)n;
  size_t need = t->key_len + sizeof len + n;
  if (need > FD_REPLAY_MAX_KEY) {
    return 0;
  }
  if (need > t->key_cap) {
    size_t cap = t->key_cap ? t->key_cap : 4096;
    while (cap < need) {
      cap *= 2;
    }
    char* k = realloc(t->key, cap);
    if (k == NULL) {
      return 0;
    }
    t->key = k;
    t->key_cap = cap;
  }
  memcpy(t->key + t->key_len, &len, sizeof len);
  memcpy(t->key + t->key_len + sizeof len, p, n);
  t->key_len = need;
  return 1;
}

// fd_replay_build_key fills t->key with the request's key; 0 if the request
// cannot be replayed (a bypass header, too many headers, too large a key).
static int fd_replay_build_key(fd_replay_tls* t, void* envoy) {
  size_t n = envoy_dynamic_module_callback_http_get_headers_size(envoy, 0);
  if (n == 0 || n > FD_REPLAY_MAX_HEADERS) {
    return 0;
  }
  fd_http_header hs[FD_REPLAY_MAX_HEADERS];
  if (!envoy_dynamic_module_callback_http_get_headers(envoy, 0, hs)) {
    return 0;
  }
  t->key_len = 0;
  const fd_replay_fields* f = &fd_fields;
  for (size_t i = 0; i < n; i++) {
    const fd_http_header* h = &hs[i];
    if (fd_name_in(f->bypass, f->bypass_count, h->key_ptr, h->key_length)) {
      return 0;
    }
    if (fd_name_in(f->hashed, f->hashed_count, h->key_ptr, h->key_length)) {
      // The value is a secret: only its keyed hash is kept.
      uint64_t sum[2] = {fd_siphash(f->hash_key[0], f->hash_key[1], h->value_ptr, h->value_length),
                         fd_siphash(f->hash_key[2], f->hash_key[3], h->value_ptr, h->value_length)};
      if (!(fd_key_append(t, h->key_ptr, h->key_length) && fd_key_append(t, (const char*)sum, sizeof sum))) {
        return 0;
      }
      continue;
    }
    if (fd_name_in(f->key, f->key_count, h->key_ptr, h->key_length) &&
        !(fd_key_append(t, h->key_ptr, h->key_length) && fd_key_append(t, h->value_ptr, h->value_length))) {
      return 0;
    }
  }
  return 1;
}

// ---- the plan: what the filter did, in Stream's recording format -------
//
// A sequence of operations, each a one-byte code and its arguments; every
// string is a native uint32 length and its bytes (replay.go writes it).

enum {
  fd_op_set_header = 1,   // name, value (empty: remove)
  fd_op_add_header = 2,   // name, value
  fd_op_meta_number = 4,  // namespace, key, double
  fd_op_clear_route = 5,  // -
  fd_op_fs_elapsed = 6,   // key: microseconds since the hook began (rounded up), as digits
  fd_op_filter_state = 7, // key, value
  fd_op_log_fields = 8,   // the access log's request-service members (fd_log_set_fields)
  fd_op_log_elapsed = 9,  // -: the access log's request-service time, since the hook began
};

typedef struct {
  const char* p;
  const char* end;
} fd_reader;

static int fd_read_u32(fd_reader* r, uint32_t* v) {
  if ((size_t)(r->end - r->p) < sizeof *v) {
    return 0;
  }
  memcpy(v, r->p, sizeof *v);
  r->p += sizeof *v;
  return 1;
}

static int fd_read_buf(fd_reader* r, fd_buffer* b) {
  uint32_t n;
  if (!fd_read_u32(r, &n) || (size_t)(r->end - r->p) < n) {
    return 0;
  }
  b->ptr = n ? r->p : NULL;
  b->length = n;
  r->p += n;
  return 1;
}

// fd_format_uint writes v in decimal into out (room for 20 digits) and
// returns how many digits it wrote.
size_t fd_format_uint(char* out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) {
    out[i] = tmp[n - 1 - i];
  }
  return n;
}

// fd_replay_apply runs a plan on the stream (apply != 0) or only checks that
// it parses (apply == 0, at insertion, so a hit never meets a bad plan).
static int fd_replay_apply(fd_stream* s, void* envoy, const char* plan, size_t len, int64_t start_ns, int apply) {
  fd_reader r = {plan, plan + len};
  while (r.p < r.end) {
    unsigned char op = (unsigned char)*r.p++;
    fd_buffer a, b;
    switch (op) {
    case fd_op_set_header:
    case fd_op_add_header:
      if (!fd_read_buf(&r, &a) || !fd_read_buf(&r, &b)) {
        return 0;
      }
      if (apply && op == fd_op_set_header) {
        envoy_dynamic_module_callback_http_set_header(envoy, 0, a, b);
      } else if (apply) {
        envoy_dynamic_module_callback_http_add_header(envoy, 0, a, b);
      }
      break;
    case fd_op_meta_number: {
      double v;
      if (!fd_read_buf(&r, &a) || !fd_read_buf(&r, &b) || (size_t)(r.end - r.p) < sizeof v) {
        return 0;
      }
      memcpy(&v, r.p, sizeof v);
      r.p += sizeof v;
      if (apply) {
        envoy_dynamic_module_callback_http_set_dynamic_metadata_number(envoy, a, b, v);
      }
      break;
    }
    case fd_op_clear_route:
      if (apply) {
        envoy_dynamic_module_callback_http_clear_route_cache(envoy);
      }
      break;
    case fd_op_filter_state:
      if (!fd_read_buf(&r, &a) || !fd_read_buf(&r, &b)) {
        return 0;
      }
      if (apply) {
        envoy_dynamic_module_callback_http_set_filter_state_bytes(envoy, a, b);
      }
      break;
    case fd_op_fs_elapsed:
      if (!fd_read_buf(&r, &a)) {
        return 0;
      }
      if (apply) {
        char digits[24];
        fd_buffer v = {digits, fd_format_uint(digits, ((uint64_t)(fd_now_ns() - start_ns) + 999) / 1000)};
        envoy_dynamic_module_callback_http_set_filter_state_bytes(envoy, a, v);
      }
      break;
    case fd_op_log_fields:
      if (!fd_read_buf(&r, &a)) {
        return 0;
      }
      if (apply) {
        fd_log_set_fields(s, a.ptr, a.length);
      }
      break;
    case fd_op_log_elapsed:
      if (apply) {
        s->log_rs_us = (fd_now_ns() - start_ns + 999) / 1000;
      }
      break;
    default:
      return 0;
    }
  }
  return 1;
}

// fd_config_id names the stream's filter config in an entry: the Go handle,
// which is never reused (a freed fd_config's address may be).
static uintptr_t fd_config_id(const fd_stream* s) { return s->config != NULL ? s->config->handle : 0; }

// fd_slot is the key's i-th candidate slot (i = 0, 1).
static size_t fd_slot(uint64_t hash, int i) { return (size_t)(i == 0 ? hash : hash >> 32) & (FD_REPLAY_SLOTS - 1); }

int fd_replay_try(fd_stream* s, void* envoy) {
  if (fd_fields.key_count == 0) {
    return 0; // not configured: every request goes to Go
  }
  if (fd_tls == NULL) {
    fd_tls = calloc(1, sizeof *fd_tls);
    if (fd_tls == NULL) {
      return 0;
    }
  }
  fd_replay_tls* t = fd_tls;
  t->pending = NULL;
  int64_t start = fd_now_ns();
  // Read before anything is decided: an entry Go inserts for this request
  // carries it, so a policy change during the decision retires the entry.
  uint64_t gen = __atomic_load_n(&fd_generation, __ATOMIC_SEQ_CST);
  if (!fd_replay_build_key(t, envoy)) {
    return 0;
  }
  uint64_t hash = fd_hash(t->key, t->key_len);
  for (int i = 0; i < 2; i++) {
    const fd_replay_entry* e = t->slots[fd_slot(hash, i)];
    if (e != NULL && e->hash == hash && e->gen == gen && e->config == fd_config_id(s) && start < e->until_ns &&
        e->key_len == t->key_len && memcmp(e->bytes, t->key, t->key_len) == 0 &&
        fd_replay_apply(s, envoy, e->bytes + e->key_len, e->plan_len, start, 1)) {
      __atomic_add_fetch(&fd_hits[e->cls], 1, __ATOMIC_RELAXED);
      s->flags |= FD_STREAM_OPEN;
      return 1;
    }
  }
  t->pending = s;
  t->pending_gen = gen;
  t->pending_hash = hash;
  return 0;
}

void fd_replay_done(void) {
  if (fd_tls != NULL) {
    fd_tls->pending = NULL;
  }
}

int fd_replay_pending(const fd_stream* s) { return fd_tls != NULL && fd_tls->pending == s && s != NULL; }

int fd_replay_keep(const fd_stream* s, int64_t ttl_ns, uint32_t cls, const char* plan, size_t plan_len) {
  fd_replay_tls* t = fd_tls;
  if (t == NULL || t->pending != s || s == NULL || ttl_ns <= 0 || cls >= FD_REPLAY_CLASSES ||
      !fd_replay_apply(NULL, NULL, plan, plan_len, 0, 0)) {
    return 0;
  }
  fd_replay_entry* e = malloc(sizeof *e + t->key_len + plan_len);
  if (e == NULL) {
    return 0;
  }
  e->hash = t->pending_hash;
  e->gen = t->pending_gen;
  int64_t now = fd_now_ns();
  e->until_ns = now + ttl_ns;
  e->config = fd_config_id(s);
  e->cls = cls;
  e->key_len = t->key_len;
  e->plan_len = plan_len;
  memcpy(e->bytes, t->key, t->key_len);
  memcpy(e->bytes + t->key_len, plan, plan_len);
  // The candidate slot to take: empty, else retired (older generation or
  // past its end), else the entry that ends sooner.
  fd_replay_entry** a = &t->slots[fd_slot(e->hash, 0)];
  fd_replay_entry** b = &t->slots[fd_slot(e->hash, 1)];
  uint64_t gen = __atomic_load_n(&fd_generation, __ATOMIC_SEQ_CST);
  fd_replay_entry** slot = a;
  if (*a != NULL && (*b == NULL || (*b)->gen != gen || (*b)->until_ns <= now ||
                     ((*a)->gen == gen && (*a)->until_ns > now && (*b)->until_ns < (*a)->until_ns))) {
    slot = b;
  }
  free(*slot);
  *slot = e;
  t->pending = NULL;
  return 1;
}

/*
 * Shared helpers for the benchmark's C programs (loadgen.c, echo-backend.c):
 * monotonic time, SHA-1 + base64 for the WebSocket handshake, a log-linear latency
 * histogram, and /proc sampling of a process tree (CPU ticks, schedstat ns, faults, RSS).
 * Header-only, no dependencies beyond libc; Linux only.
 */
#ifndef WS_COMMON_H
#define WS_COMMON_H

#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static __attribute__((unused)) void die(const char *fmt, const char *arg) {
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(2);
}

/* ---------------------------------------------------------------- SHA-1 (RFC 3174) */
typedef struct {
  uint32_t h[5];
  uint64_t len;
  uint8_t buf[64];
  size_t blen;
} sha1_ctx;

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static __attribute__((unused)) void sha1_block(sha1_ctx *c, const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
    else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
    uint32_t t = rol32(a, 5) + f + e + k + w[i];
    e = d; d = cc; cc = rol32(b, 30); b = a; a = t;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static __attribute__((unused)) void sha1_init(sha1_ctx *c) {
  c->h[0] = 0x67452301; c->h[1] = 0xEFCDAB89; c->h[2] = 0x98BADCFE; c->h[3] = 0x10325476; c->h[4] = 0xC3D2E1F0;
  c->len = 0; c->blen = 0;
}

static __attribute__((unused)) void sha1_update(sha1_ctx *c, const void *data, size_t n) {
  const uint8_t *p = data;
  c->len += n;
  while (n > 0) {
    size_t take = 64 - c->blen;
    if (take > n) take = n;
    memcpy(c->buf + c->blen, p, take);
    c->blen += take; p += take; n -= take;
    if (c->blen == 64) { sha1_block(c, c->buf); c->blen = 0; }
  }
}

static __attribute__((unused)) void sha1_final(sha1_ctx *c, uint8_t out[20]) {
  uint64_t bits = c->len * 8;
  uint8_t pad = 0x80;
  sha1_update(c, &pad, 1);
  uint8_t z = 0;
  while (c->blen != 56) sha1_update(c, &z, 1);
  uint8_t lb[8];
  for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(c, lb, 8);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(c->h[i] >> 24); out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(c->h[i] >> 8); out[4 * i + 3] = (uint8_t)c->h[i];
  }
}

static __attribute__((unused)) size_t b64_encode(const uint8_t *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  out[o] = 0;
  return o;
}

/* Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2). out needs 29 bytes. */
static __attribute__((unused)) void ws_accept_for(const char *key, size_t keylen, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  sha1_ctx c;
  uint8_t d[20];
  sha1_init(&c);
  sha1_update(&c, key, keylen);
  sha1_update(&c, guid, sizeof guid - 1);
  sha1_final(&c, d);
  b64_encode(d, 20, out);
}

/* Finds header `name` (case-insensitive) in an HTTP head [p, p+n); returns value start, sets *vlen. */
static const char *http_header(const char *p, size_t n, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  const char *end = p + n;
  const char *line = memchr(p, '\n', n);
  while (line && line + 1 < end) {
    const char *s = line + 1;
    const char *e = memchr(s, '\n', (size_t)(end - s));
    if (!e) e = end;
    if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
      const char *v = s + nl + 1;
      while (v < e && (*v == ' ' || *v == '\t')) v++;
      const char *ve = e;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    line = e < end ? e : NULL;
  }
  return NULL;
}

/* XOR-mask (or unmask) n bytes at p with a 4-byte key, starting at key offset `off`. */
static inline void ws_mask(uint8_t *p, size_t n, const uint8_t key[4]) {
  uint32_t k32;
  memcpy(&k32, key, 4);
  uint64_t k64 = (uint64_t)k32 << 32 | k32;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= k64;
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] ^= key[i & 3];
}

/* ---------------------------------------------------------------- latency histogram
 * Log-linear: exact below 128 ns, then 64 sub-buckets per power of two (< 1.6 % error). */
#define HIST_BUCKETS (64 * 60)
typedef struct {
  uint64_t b[HIST_BUCKETS];
  uint64_t count, max, sum;
} hist_t;

static inline int hist_index(uint64_t v) {
  if (v < 128) return (int)v;
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - 6;
  int idx = shift * 64 + (int)(v >> shift);
  return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static inline uint64_t hist_value(int idx) {
  if (idx < 128) return (uint64_t)idx;
  int shift = idx / 64 - 1;
  uint64_t m = (uint64_t)(idx % 64 + 64);
  return (m << shift) + ((1ull << shift) >> 1);
}

static inline void hist_add(hist_t *h, uint64_t v) {
  h->b[hist_index(v)]++;
  h->count++;
  h->sum += v;
  if (v > h->max) h->max = v;
}

static __attribute__((unused)) void hist_merge(hist_t *into, const hist_t *from) {
  for (int i = 0; i < HIST_BUCKETS; i++) into->b[i] += from->b[i];
  into->count += from->count;
  into->sum += from->sum;
  if (from->max > into->max) into->max = from->max;
}

static __attribute__((unused)) uint64_t hist_pct(const hist_t *h, double pct) {
  if (h->count == 0) return 0;
  uint64_t want = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
  if (want < 1) want = 1;
  if (want > h->count) want = h->count;
  uint64_t acc = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    acc += h->b[i];
    if (acc >= want) {
      uint64_t v = hist_value(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

/* Prints {"count":..,"mean_us":..,"p50_us":..,...} */
static __attribute__((unused)) void hist_json(FILE *f, const hist_t *h) {
  fprintf(f, "{\"count\":%llu,\"mean_us\":%.3f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"max_us\":%.3f}",
          (unsigned long long)h->count, h->count ? (double)h->sum / h->count / 1000.0 : 0.0,
          hist_pct(h, 50) / 1000.0, hist_pct(h, 90) / 1000.0, hist_pct(h, 99) / 1000.0,
          hist_pct(h, 99.9) / 1000.0, h->max / 1000.0);
}

/* [[value_ns,count],...] for the non-empty buckets, so windows can be merged afterwards */
static __attribute__((unused)) void hist_sparse_json(FILE *f, const hist_t *h) {
  fputc('[', f);
  int first = 1;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    if (!h->b[i]) continue;
    fprintf(f, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)hist_value(i), (unsigned long long)h->b[i]);
    first = 0;
  }
  fputc(']', f);
}

/* ---------------------------------------------------------------- /proc sampling */
#define MAX_PIDS 64
typedef struct {
  int n;
  int pid[MAX_PIDS];
} pidset;

typedef struct {
  uint64_t ticks;     /* utime + stime + cutime + cstime, clock ticks */
  uint64_t sched_ns;  /* sum over threads of /proc/PID/task/TID/schedstat run time */
  uint64_t wait_ns;   /* ... and of the time they waited on a run queue (runnable, not running) */
  uint64_t minflt, majflt;
  uint64_t rss_kb;
  int alive;          /* processes that could be read */
} psample;

static __attribute__((unused)) int read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return (int)n;
}

/* Fields of /proc/PID/stat after the comm; field k (1-based, as in proc(5)) is at index k-3. */
static __attribute__((unused)) int proc_stat_fields(int pid, unsigned long long *f, int nf) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (read_small(path, buf, sizeof buf) < 0) return -1;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* state char */
  int i = 0;
  f[i++] = 0; /* state placeholder (field 3) */
  p = strchr(p, ' ');
  while (p && i < nf) {
    p++;
    f[i++] = strtoull(p, &p, 10);
  }
  return i;
}

static __attribute__((unused)) void sample_pidset(const pidset *ps, psample *out) {
  memset(out, 0, sizeof *out);
  long page_kb = sysconf(_SC_PAGESIZE) / 1024;
  for (int k = 0; k < ps->n; k++) {
    unsigned long long f[30];
    int pid = ps->pid[k];
    if (proc_stat_fields(pid, f, 30) < 22) continue;
    out->alive++;
    /* field numbers: 10 minflt, 11 cminflt, 12 majflt, 13 cmajflt, 14 utime, 15 stime, 16 cutime, 17 cstime, 24 rss */
    out->minflt += f[10 - 3] + f[11 - 3];
    out->majflt += f[12 - 3] + f[13 - 3];
    out->ticks += f[14 - 3] + f[15 - 3] + f[16 - 3] + f[17 - 3];
    out->rss_kb += f[24 - 3] * (unsigned long long)page_kb;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d) {
      struct dirent *de;
      while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char p2[320], buf[256];
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, de->d_name);
        if (read_small(p2, buf, sizeof buf) > 0) {
          char *e;
          out->sched_ns += strtoull(buf, &e, 10);
          out->wait_ns += strtoull(e, NULL, 10);
        }
      }
      closedir(d);
    }
  }
}

/* All live descendants of root (root included). */
static __attribute__((unused)) void pidset_tree(int root, pidset *ps) {
  ps->n = 0;
  if (root <= 0) return;
  static int pids[65536], ppids[65536];
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)) && n < 65536) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    int pid = atoi(de->d_name);
    unsigned long long f[4];
    if (proc_stat_fields(pid, f, 4) < 2) continue;
    pids[n] = pid;
    ppids[n] = (int)f[4 - 3];
    n++;
  }
  closedir(d);
  ps->pid[ps->n++] = root;
  for (int i = 0; i < ps->n && ps->n < MAX_PIDS; i++)
    for (int j = 0; j < n && ps->n < MAX_PIDS; j++)
      if (ppids[j] == ps->pid[i]) ps->pid[ps->n++] = pids[j];
}

static __attribute__((unused)) void psample_json(FILE *f, const char *name, const psample *a, const psample *b, long clk_tck) {
  fprintf(f, "\"%s\":{\"cpu_us\":%.1f,\"sched_us\":%.1f,\"wait_us\":%.1f,\"minflt\":%llu,\"majflt\":%llu,\"rss_kb_start\":%llu,\"rss_kb_end\":%llu,\"procs\":%d}",
          name, (double)(b->ticks - a->ticks) * 1e6 / (double)clk_tck, (double)(b->sched_ns - a->sched_ns) / 1000.0,
          (double)(b->wait_ns - a->wait_ns) / 1000.0,
          (unsigned long long)(b->minflt - a->minflt), (unsigned long long)(b->majflt - a->majflt),
          (unsigned long long)a->rss_kb, (unsigned long long)b->rss_kb, b->alive);
}

/* ---------------------------------------------------------------- per-core times (/proc/stat) */
#define MAX_CPUS 16
typedef struct {
  int n;
  unsigned long long user[MAX_CPUS], sys[MAX_CPUS], irq[MAX_CPUS], idle[MAX_CPUS], steal[MAX_CPUS];
} cpustat;

static __attribute__((unused)) void sample_cpustat(cpustat *cs) {
  char buf[8192];
  memset(cs, 0, sizeof *cs);
  if (read_small("/proc/stat", buf, sizeof buf) < 0) return;
  char *line = buf;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    int id;
    unsigned long long u, ni, sy, idl, iow, irq, sirq, st;
    if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &u, &ni, &sy, &idl, &iow, &irq, &sirq, &st) == 9 &&
        id >= 0 && id < MAX_CPUS) {
      cs->user[id] = u + ni; cs->sys[id] = sy; cs->irq[id] = irq + sirq; cs->idle[id] = idl + iow; cs->steal[id] = st;
      if (id + 1 > cs->n) cs->n = id + 1;
    }
    line = nl ? nl + 1 : NULL;
  }
}

/* "cores":[{"user":f,"sys":f,"irq":f,"idle":f,"steal":f},...] as fractions of the interval */
static __attribute__((unused)) void cpustat_json(FILE *f, const cpustat *a, const cpustat *b) {
  fprintf(f, "\"cores\":[");
  for (int i = 0; i < b->n; i++) {
    double u = (double)(b->user[i] - a->user[i]), s = (double)(b->sys[i] - a->sys[i]), q = (double)(b->irq[i] - a->irq[i]);
    double id = (double)(b->idle[i] - a->idle[i]), st = (double)(b->steal[i] - a->steal[i]);
    double tot = u + s + q + id + st;
    if (tot <= 0) tot = 1;
    fprintf(f, "%s{\"user\":%.3f,\"sys\":%.3f,\"irq\":%.3f,\"idle\":%.3f,\"steal\":%.3f}", i ? "," : "", u / tot, s / tot, q / tot, id / tot, st / tot);
  }
  fputc(']', f);
}

#endif

/*
 * loadgen: single-threaded epoll WebSocket load generator for wsgate's benchmark.
 *
 *   loadgen MODE --port P [--host 127.0.0.1] [--path /] [options]
 *
 * MODE
 *   echo       --conns N --inflight K --size S: keeps K masked binary messages of S bytes in
 *              flight per connection; each echo is verified (sequence number, connection id
 *              and a shifted pattern), so corruption, loss or reordering count as errors.
 *   rate       --conns N --rate M --size S: M messages/s per connection, paced by a timerfd
 *              round-robin over the connections (open loop); round-trip latency percentiles.
 *   handshake  --concurrency C: C loops of connect -> upgrade (101 + Sec-WebSocket-Accept
 *              checked) -> close frame -> server's close frame -> server's FIN -> close.
 *   idle       --conns N: opens N tunnels, sends one message on each and waits for its echo,
 *              prints "idle-open LIVE FAILED" on stderr, holds them --settle seconds while
 *              sampling RSS of the watched processes (SIGTERM ends the wait), then closes them.
 * --src IP binds every connection to that local address (another 127.0.0.x: its own ephemeral
 * ports, for more connections to one proxy port than one address has).
 * --tls speaks TLS to the proxy (every mode): OpenSSL, TLS 1.3 only, TLS_AES_256_GCM_SHA384 with
 * an X25519 key exchange, a full handshake on every connection (no session is kept or offered),
 * the certificate not verified (the bench's is self-signed) but the handshake and what it agreed
 * checked; --sni NAME sends that server name. A handshake loop is then TCP connect -> TLS
 * handshake -> upgrade -> close frames -> the server's close -> close.
 * Timing: --warmup SEC, then --reps R windows of --duration SEC each. For every window it
 * samples, at the window's edges, the CPU (utime+stime+cutime+cstime and schedstat), page
 * faults and RSS of the process tree under --watch PID (the proxy) and --aux PID (the
 * backend), and its own CPU (getrusage), so the work counted and the CPU measured cover the
 * same interval. Prints one JSON object on stdout. Exit 0 even with errors (they are in the
 * JSON); exit 2 on bad usage.
 */
#include "ws_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

enum { M_ECHO, M_RATE, M_HANDSHAKE, M_IDLE };
enum { C_FREE, C_CONNECTING, C_TLS, C_HANDSHAKE, C_OPEN, C_CLOSING };

typedef struct conn {
  int fd, id, state, out_armed, got_close, live;
  SSL *ssl;
  /* non-blocking TLS: a read (or the handshake) that needs the socket writable, a write that
     needs it readable, and a close_notify seen (then only the TCP FIN is awaited) */
  int rd_wants_out, wr_wants_in, tls_eof;
  uint8_t *pend; size_t plen, pcap;
  uint8_t *wbuf; size_t wlen, woff, wcap;
  uint64_t seq_send, seq_recv;
  uint64_t *ts; uint32_t tcap, thead, tcount;
  uint32_t rnd;
  char key[25];
  uint64_t t0;
} conn;

static struct {
  int mode;
  const char *host, *path, *src;
  int port;
  int conns, inflight, size, rate, concurrency;
  double warmup, duration, settle, hs_timeout;
  int reps;
  int watch_root, aux_root;
  double slow_us;
  int tls;
  const char *sni;
} cfg = {.host = "127.0.0.1", .path = "/", .conns = 100, .inflight = 16, .size = 64, .rate = 100,
         .concurrency = 64, .warmup = 2, .duration = 5, .settle = 3, .hs_timeout = 5, .reps = 3};

static int ep, tfd = -1;
static struct sockaddr_in dst, src;
static conn **C;          /* connection table (slots) */
static int nslots;
static uint8_t bigbuf[1 << 18];
static uint8_t *pattern;
static uint64_t tnow;
static volatile sig_atomic_t interrupted;
static SSL_CTX *tls_ctx;

/* counters */
static uint64_t n_echoes, n_bytes, n_hs_ok, n_errors, n_connect_err, n_started, n_open, n_live;
static uint64_t total_inflight;
static int measuring, stopping;
static hist_t hwin, htotal;
static char errmsg[3][200];
static int nerrmsg;
static int token_marker;
/* --slow-us: the first 4000 round trips slower than this, as (ms since start, µs, conn) */
#define MAX_SLOW 4000
static struct { double t_ms, us; int conn; } slow[MAX_SLOW];
static int nslow;
static uint64_t t_origin;

static void note_error(const char *what, int id) {
  n_errors++;
  if (nerrmsg < 3) snprintf(errmsg[nerrmsg++], sizeof errmsg[0], "conn %d: %s", id, what);
}

static inline uint32_t xrand(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13; x ^= x >> 17; x ^= x << 5;
  return *s = x;
}

static void ensure(uint8_t **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t c = *cap ? *cap : 1024;
  while (c < need) c *= 2;
  uint8_t *nb = realloc(*buf, c);
  if (!nb) { perror("realloc"); exit(1); }
  *buf = nb; *cap = c;
}

static void update_events(conn *c) {
  int want = (c->wlen > c->woff && !c->wr_wants_in) || c->rd_wants_out;
  if (want == c->out_armed) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->out_armed = want;
}

static void start_conn(int slot);

/* Drops a connection; in handshake/idle mode its slot may be reused. */
static void conn_drop(conn *c) {
  if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
  c->fd = -1;
  /* no close_notify of our own: the server has closed already, it would only draw a reset */
  if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
  c->rd_wants_out = c->wr_wants_in = c->tls_eof = 0;
  if (c->state == C_OPEN || c->state == C_CLOSING) n_open--;
  total_inflight -= c->tcount;
  c->tcount = c->thead = 0;
  c->state = C_FREE;
  c->plen = c->wlen = c->woff = 0;
  c->out_armed = 0;
}

static void conn_fail(conn *c, const char *why) {
  note_error(why, c->id);
  int was_connecting = c->state == C_CONNECTING || c->state == C_TLS || c->state == C_HANDSHAKE;
  if (was_connecting) n_connect_err++;
  conn_drop(c); /* handshake mode: run_until restarts free slots */
}

/* Fails c with what OpenSSL says about an SSL_* call that returned r. */
static void tls_fail(conn *c, const char *op, int r) {
  int e = SSL_get_error(c->ssl, r);
  unsigned long code = ERR_peek_error();
  char m[160], why[120];
  if (code) ERR_error_string_n(code, why, sizeof why);
  else if (e == SSL_ERROR_SYSCALL && errno) snprintf(why, sizeof why, "%s", strerror(errno));
  else snprintf(why, sizeof why, "SSL error %d", e);
  snprintf(m, sizeof m, "%s: %s", op, why);
  ERR_clear_error(); /* SSL_get_error reads the queue: it must be empty before the next call */
  conn_fail(c, m);
}

/* Writes c's pending output with SSL_write (partial writes and a moving buffer allowed, so a
   retry after WANT_WRITE may pass the same bytes with more appended). Returns -1 if c failed. */
static int tls_flush(conn *c) {
  while (c->wlen > c->woff) {
    int n = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_WRITE) break;
      if (e == SSL_ERROR_WANT_READ) { c->wr_wants_in = 1; break; }
      tls_fail(c, "SSL_write", n);
      return -1;
    }
    c->wr_wants_in = 0;
    c->woff += (size_t)n;
  }
  if (c->wlen == c->woff) c->wlen = c->woff = 0;
  update_events(c);
  return 0;
}

static int flush(conn *c) {
  if (c->ssl && !c->tls_eof) return tls_flush(c);
  while (c->wlen > c->woff) {
    ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      char m[96]; snprintf(m, sizeof m, "write: %s", strerror(errno));
      conn_fail(c, m);
      return -1;
    }
    c->woff += (size_t)n;
  }
  if (c->wlen == c->woff) c->wlen = c->woff = 0;
  update_events(c);
  return 0;
}

static uint8_t *out_reserve(conn *c, size_t n) {
  if (c->woff == c->wlen) c->woff = c->wlen = 0;
  ensure(&c->wbuf, &c->wcap, c->wlen + n);
  uint8_t *p = c->wbuf + c->wlen;
  c->wlen += n;
  return p;
}

/* Appends one masked binary message carrying (seq, id, pattern) to c's output. */
static void send_msg(conn *c) {
  size_t S = (size_t)cfg.size;
  size_t hl = S < 126 ? 2 : S < 65536 ? 4 : 10;
  uint8_t *p = out_reserve(c, hl + 4 + S);
  p[0] = 0x82;
  if (S < 126) p[1] = 0x80 | (uint8_t)S;
  else if (S < 65536) { p[1] = 0x80 | 126; p[2] = (uint8_t)(S >> 8); p[3] = (uint8_t)S; }
  else { p[1] = 0x80 | 127; for (int i = 0; i < 8; i++) p[2 + i] = (uint8_t)((uint64_t)S >> (56 - 8 * i)); }
  uint32_t mk = xrand(&c->rnd);
  memcpy(p + hl, &mk, 4);
  uint8_t *pl = p + hl + 4;
  uint64_t seq = c->seq_send++;
  uint32_t id = (uint32_t)c->id;
  memcpy(pl, &seq, 8);
  memcpy(pl + 8, &id, 4);
  memcpy(pl + 12, pattern + seq % 251, S - 12);
  ws_mask(pl, S, p + hl);
  if (c->tcount == c->tcap) { /* grow the timestamp ring, keeping order */
    uint32_t nc = c->tcap ? c->tcap * 2 : 16;
    uint64_t *nt = malloc(nc * sizeof *nt);
    for (uint32_t i = 0; i < c->tcount; i++) nt[i] = c->ts[(c->thead + i) % c->tcap];
    free(c->ts);
    c->ts = nt; c->tcap = nc; c->thead = 0;
  }
  c->ts[(c->thead + c->tcount) % c->tcap] = tnow;
  c->tcount++;
  total_inflight++;
}

static void send_close(conn *c) {
  uint8_t *p = out_reserve(c, 8);
  p[0] = 0x88; p[1] = 0x80 | 2;
  uint32_t mk = xrand(&c->rnd);
  memcpy(p + 2, &mk, 4);
  p[6] = 0x03; p[7] = 0xE8; /* 1000 */
  ws_mask(p + 6, 2, p + 2);
}

static void on_open(conn *c) {
  c->state = C_OPEN;
  n_open++;
  if (cfg.mode == M_HANDSHAKE) { send_close(c); c->state = C_CLOSING; }
  else if (cfg.mode == M_IDLE) send_msg(c);
}

static void on_echo(conn *c, uint8_t *pl, uint64_t plen) {
  if (c->tcount == 0) { conn_fail(c, "unsolicited message"); return; }
  uint64_t sent = c->ts[c->thead];
  c->thead = (c->thead + 1) % c->tcap;
  c->tcount--;
  total_inflight--;
  uint64_t seq; uint32_t id;
  if (plen != (uint64_t)cfg.size) { note_error("echo has wrong length", c->id); c->seq_recv++; return; }
  memcpy(&seq, pl, 8);
  memcpy(&id, pl + 8, 4);
  if (seq != c->seq_recv || id != (uint32_t)c->id) {
    char m[120];
    snprintf(m, sizeof m, "echo out of order or misrouted: got seq %llu conn %u, want seq %llu",
             (unsigned long long)seq, id, (unsigned long long)c->seq_recv);
    note_error(m, c->id);
    c->seq_recv = seq + 1;
    return;
  }
  c->seq_recv++;
  if (memcmp(pl + 12, pattern + seq % 251, plen - 12) != 0) { note_error("echo payload corrupted", c->id); return; }
  if (cfg.slow_us > 0 && (double)(tnow - sent) > cfg.slow_us * 1000 && nslow < MAX_SLOW && measuring) {
    slow[nslow].t_ms = (double)(sent - t_origin) / 1e6;
    slow[nslow].us = (double)(tnow - sent) / 1e3;
    slow[nslow].conn = c->id;
    nslow++;
  }
  if (measuring) {
    hist_add(&hwin, tnow - sent);
    n_echoes++;
    n_bytes += plen;
  }
  if (cfg.mode == M_ECHO && !stopping) send_msg(c);
  else if (cfg.mode == M_IDLE && !c->live) { c->live = 1; n_live++; }
}

/* consumes complete units; returns bytes consumed or -1 if c was dropped */
static ssize_t process(conn *c, uint8_t *data, size_t len) {
  size_t off = 0;
  if (c->state == C_HANDSHAKE) {
    uint8_t *e = memmem(data, len, "\r\n\r\n", 4);
    if (!e) {
      if (len > 16384) { conn_fail(c, "response head too large"); return -1; }
      return 0;
    }
    size_t hlen = (size_t)(e - data) + 4;
    if (hlen < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
      char m[120]; size_t l = 0;
      while (l < hlen && l < 60 && data[l] != '\r') l++;
      snprintf(m, sizeof m, "upgrade refused: %.*s", (int)l, data);
      conn_fail(c, m);
      return -1;
    }
    char want[29]; size_t alen = 0;
    ws_accept_for(c->key, strlen(c->key), want);
    const char *acc = http_header((const char *)data, hlen, "sec-websocket-accept", &alen);
    if (!acc || alen != 28 || memcmp(acc, want, 28) != 0) { conn_fail(c, "bad Sec-WebSocket-Accept"); return -1; }
    off = hlen;
    on_open(c);
  }
  while (len - off >= 2) {
    uint8_t *f = data + off;
    size_t avail = len - off;
    int opcode = f[0] & 0x0f;
    uint64_t plen = f[1] & 0x7f;
    size_t hl = 2;
    if (f[1] & 0x80) { conn_fail(c, "server frame is masked"); return -1; }
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)f[2] << 8 | f[3]; hl = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
      hl = 10;
    }
    if (plen > (64u << 20)) { conn_fail(c, "frame too large"); return -1; }
    if (avail < hl + plen) break;
    uint8_t *pl = f + hl;
    off += hl + plen;
    if (!(f[0] & 0x80)) { conn_fail(c, "fragmented frame"); return -1; }
    if (opcode == 0x2) {
      on_echo(c, pl, plen);
      if (c->state == C_FREE) return -1;
    } else if (opcode == 0x8) {
      c->got_close = 1;
      if (cfg.mode != M_HANDSHAKE) { conn_fail(c, "server sent close"); return -1; }
    } else if (opcode == 0x9) {
      uint8_t *p = out_reserve(c, 6 + plen);
      p[0] = 0x8A; p[1] = 0x80 | (uint8_t)plen; memset(p + 2, 0, 4); memcpy(p + 6, pl, plen);
    } else if (opcode != 0xA) {
      conn_fail(c, "unexpected opcode"); return -1;
    }
  }
  return (ssize_t)off;
}

static void on_eof(conn *c) {
  if (cfg.mode == M_HANDSHAKE && c->state == C_CLOSING && c->got_close) {
    if (measuring) { n_hs_ok++; hist_add(&hwin, tnow - c->t0); }
    conn_drop(c);
    return;
  }
  conn_fail(c, c->state == C_HANDSHAKE ? "closed during upgrade" : "unexpected EOF");
}

#define IO_AGAIN (-1)
#define IO_FAILED (-2)

/* One read from c: bytes, 0 at EOF, IO_AGAIN when nothing more is there now, IO_FAILED when c
   has failed (and was dropped). Over TLS, a close_notify switches c to plain reads until the
   server's FIN, so that, as on plain connections, the server closes first. */
static ssize_t io_read(conn *c, uint8_t *buf, size_t cap) {
  if (c->ssl && !c->tls_eof) {
    if (cap > INT32_MAX) cap = INT32_MAX;
    int n = SSL_read(c->ssl, buf, (int)cap);
    if (n > 0) { c->rd_wants_out = 0; return n; }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) { c->rd_wants_out = 0; return IO_AGAIN; }
    if (e == SSL_ERROR_WANT_WRITE) { c->rd_wants_out = 1; return IO_AGAIN; }
    if (e != SSL_ERROR_ZERO_RETURN) { tls_fail(c, "SSL_read", n); return IO_FAILED; }
    c->tls_eof = 1;
    c->rd_wants_out = c->wr_wants_in = 0;
  }
  ssize_t n = read(c->fd, buf, cap);
  if (n >= 0) {
    if (n > 0 && c->tls_eof) { conn_fail(c, "data after close_notify"); return IO_FAILED; }
    return n;
  }
  if (errno == EAGAIN || errno == EINTR) return IO_AGAIN;
  char m[96]; snprintf(m, sizeof m, "read: %s", strerror(errno));
  conn_fail(c, m);
  return IO_FAILED;
}

/* Plain: one read per wake-up. TLS: reads until OpenSSL has nothing left, since records it
   has buffered would not wake a level-triggered epoll again. */
static void on_readable(conn *c) {
  tnow = now_ns();
  for (;;) {
    uint8_t *data, *dst;
    size_t len, cap;
    if (c->plen > 0) {
      ensure(&c->pend, &c->pcap, c->plen + 65536);
      data = c->pend; dst = c->pend + c->plen; cap = c->pcap - c->plen;
    } else {
      data = dst = bigbuf; cap = sizeof bigbuf;
    }
    ssize_t n = io_read(c, dst, cap);
    if (n == 0) { on_eof(c); return; }
    if (n == IO_FAILED) return;
    if (n == IO_AGAIN) break;
    if (data == bigbuf) len = (size_t)n;
    else len = c->plen += (size_t)n;
    ssize_t used = process(c, data, len);
    if (used < 0) return;
    size_t left = len - (size_t)used;
    if (data == bigbuf) {
      if (left) { ensure(&c->pend, &c->pcap, left + 65536); memcpy(c->pend, bigbuf + used, left); }
      c->plen = left;
    } else {
      if (left && used) memmove(c->pend, c->pend + used, left);
      c->plen = left;
    }
    if (!c->ssl || c->tls_eof) break;
  }
  flush(c);
}

static void send_upgrade(conn *c) {
  uint8_t kb[16];
  for (int i = 0; i < 16; i += 4) { uint32_t r = xrand(&c->rnd); memcpy(kb + i, &r, 4); }
  b64_encode(kb, 16, c->key);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   cfg.path, cfg.host, cfg.port, c->key);
  memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
  c->state = C_HANDSHAKE;
  flush(c);
}

/* Drives the TLS handshake; once done, checks what was agreed and sends the upgrade. */
static void tls_step(conn *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r != 1) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      c->rd_wants_out = e == SSL_ERROR_WANT_WRITE;
      update_events(c);
    } else {
      tls_fail(c, "TLS handshake", r);
    }
    return;
  }
  c->rd_wants_out = 0;
  const char *suite = SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl));
  if (SSL_version(c->ssl) != TLS1_3_VERSION || strcmp(suite, "TLS_AES_256_GCM_SHA384") != 0 ||
      SSL_get_negotiated_group(c->ssl) != NID_X25519) {
    char m[120];
    snprintf(m, sizeof m, "TLS handshake agreed %s %s group %d", SSL_get_version(c->ssl), suite,
             (int)SSL_get_negotiated_group(c->ssl));
    conn_fail(c, m);
    return;
  }
  send_upgrade(c);
}

static void on_connected(conn *c) {
  int err = 0; socklen_t el = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err) { char m[96]; snprintf(m, sizeof m, "connect: %s", strerror(err)); conn_fail(c, m); return; }
  if (!cfg.tls) { send_upgrade(c); return; }
  c->ssl = SSL_new(tls_ctx);
  if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) { ERR_clear_error(); conn_fail(c, "SSL_new failed"); return; }
  if (cfg.sni) SSL_set_tlsext_host_name(c->ssl, cfg.sni);
  SSL_set_connect_state(c->ssl);
  c->state = C_TLS;
  tls_step(c);
}

static void start_conn(int slot) {
  conn *c = C[slot];
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) { note_error("socket() failed (fd limit?)", slot); n_connect_err++; return; }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg.src) {
    /* the port is chosen at connect(), unique per destination rather than per address */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
      char m[96]; snprintf(m, sizeof m, "bind: %s", strerror(errno));
      close(c->fd); c->fd = -1; note_error(m, slot); n_connect_err++; return;
    }
  }
  c->state = C_CONNECTING;
  c->got_close = 0; c->live = 0;
  c->seq_send = c->seq_recv = 0;
  c->t0 = now_ns();
  n_started++;
  int r = connect(c->fd, (struct sockaddr *)&dst, sizeof dst);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  c->out_armed = 1;
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  if (r < 0 && errno != EINPROGRESS) {
    char m[96]; snprintf(m, sizeof m, "connect: %s", strerror(errno));
    conn_fail(c, m);
  }
}

static void handle(struct epoll_event *e) {
  conn *c = e->data.ptr;
  if (c->state == C_CONNECTING) {
    if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
    return;
  }
  if (c->state == C_TLS) { tls_step(c); return; }
  if (e->events & EPOLLOUT) {
    if (c->rd_wants_out) { /* an SSL_read waits for this */
      on_readable(c);
      if (c->state == C_FREE) return;
    } else if (flush(c) < 0) {
      return;
    }
  }
  if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    if (c->wr_wants_in && flush(c) < 0) return; /* an SSL_write waits for this */
    on_readable(c);
  }
}

static void on_tick(void) {
  uint64_t exp = 0;
  if (read(tfd, &exp, sizeof exp) != sizeof exp) return;
  static int rr;
  for (uint64_t i = 0; i < exp && !stopping; i++) {
    for (int tries = 0; tries < nslots; tries++) {
      conn *c = C[rr];
      rr = (rr + 1) % nslots;
      if (c->state != C_OPEN) continue;
      tnow = now_ns();
      send_msg(c);
      flush(c);
      break;
    }
  }
}

/* Runs the event loop until deadline or until done() is true. */
static void run_until(uint64_t deadline, int (*done)(void)) {
  struct epoll_event evs[512];
  while (!interrupted) {
    uint64_t t = now_ns();
    if (t >= deadline || (done && done())) return;
    int to = (int)((deadline - t) / 1000000) + 1;
    if (to > 20) to = 20;
    int n = epoll_wait(ep, evs, 512, to);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == &token_marker) on_tick();
      else handle(&evs[i]);
    }
    if (cfg.mode == M_HANDSHAKE) { /* bound each handshake loop iteration; refill free slots */
      uint64_t lim = (uint64_t)(cfg.hs_timeout * 1e9), tn = now_ns();
      for (int i = 0; i < nslots; i++) {
        if (C[i]->state != C_FREE && tn - C[i]->t0 > lim) conn_fail(C[i], "handshake loop timed out");
        if (C[i]->state == C_FREE && !stopping) start_conn(i);
      }
    }
    if (n_errors > 100000 || (n_errors > 500 && n_echoes == 0 && n_hs_ok == 0 && n_open == 0)) return;
  }
}

/* ---------------------------------------------------------------- windows */
typedef struct {
  uint64_t t, echoes, bytes, hs, errors;
  psample w, a;
  psample ks[2];
  cpustat cs;
  double self_us;
  double others_us;
} snap;

static pidset watch, aux, ksoft[2];

/* CPU of every process on the machine that is not part of this run (other work competing for
   the cores): sum of utime+stime+cutime+cstime over /proc, minus ours. A process that started
   inside the window counts in full; one that exited inside it counts through its parent's
   cutime/cstime if the parent lives on. */
typedef struct { int pid; unsigned long long ticks; } pt;
static pt *others_a; static int n_others_a;
static unsigned long long boot_ticks_at_start;

static int is_ours(int pid) {
  if (pid == getpid() || pid == getppid()) return 1;
  for (int i = 0; i < watch.n; i++) if (watch.pid[i] == pid) return 1;
  for (int i = 0; i < aux.n; i++) if (aux.pid[i] == pid) return 1;
  for (int k = 0; k < 2; k++) for (int i = 0; i < ksoft[k].n; i++) if (ksoft[k].pid[i] == pid) return 1;
  return 0;
}

static int pt_cmp(const void *a, const void *b) { return ((const pt *)a)->pid - ((const pt *)b)->pid; }

static unsigned long long uptime_ticks(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (unsigned long long)ts.tv_sec * (unsigned long long)sysconf(_SC_CLK_TCK) +
         (unsigned long long)ts.tv_nsec * (unsigned long long)sysconf(_SC_CLK_TCK) / 1000000000ull;
}

/* start=1: remember every process's ticks; start=0: return ticks used by others since then */
static double others_sample(int start) {
  static pt cur[8192];
  int n = 0;
  double used = 0;
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < 8192) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
    int pid = atoi(de->d_name);
    if (is_ours(pid)) continue;
    unsigned long long f[24];
    if (proc_stat_fields(pid, f, 24) < 20) continue;
    unsigned long long t = f[14 - 3] + f[15 - 3] + f[16 - 3] + f[17 - 3];
    cur[n].pid = pid; cur[n].ticks = t; n++;
    if (!start) {
      pt key = {pid, 0};
      pt *hit = others_a ? bsearch(&key, others_a, (size_t)n_others_a, sizeof(pt), pt_cmp) : NULL;
      if (hit) { if (t > hit->ticks) used += (double)(t - hit->ticks); }
      else if (f[22 - 3] >= boot_ticks_at_start) used += (double)t; /* started in the window */
    }
  }
  closedir(d);
  if (start) {
    free(others_a);
    others_a = malloc(sizeof(pt) * (size_t)(n ? n : 1));
    memcpy(others_a, cur, sizeof(pt) * (size_t)n);
    n_others_a = n;
    qsort(others_a, (size_t)n, sizeof(pt), pt_cmp);
    boot_ticks_at_start = uptime_ticks();
  }
  return used * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ksoftirqd/0 and ksoftirqd/1: network work deferred there is CPU the proxy caused but that
   is not in its /proc/PID/stat, and not "other processes" either */
static void find_ksoftirqd(void) {
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
    char path[300], comm[64];
    snprintf(path, sizeof path, "/proc/%s/comm", de->d_name);
    if (read_small(path, comm, sizeof comm) <= 0) continue;
    int cpu;
    if (sscanf(comm, "ksoftirqd/%d", &cpu) == 1 && cpu >= 0 && cpu < 2 && ksoft[cpu].n < MAX_PIDS)
      ksoft[cpu].pid[ksoft[cpu].n++] = atoi(de->d_name);
  }
  closedir(d);
}

static double self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

static void take(snap *s) {
  s->t = now_ns();
  s->echoes = n_echoes; s->bytes = n_bytes; s->hs = n_hs_ok; s->errors = n_errors;
  sample_pidset(&watch, &s->w);
  sample_pidset(&aux, &s->a);
  sample_pidset(&ksoft[0], &s->ks[0]);
  sample_pidset(&ksoft[1], &s->ks[1]);
  s->self_us = self_cpu_us();
  sample_cpustat(&s->cs);
}

static FILE *wjson;   /* windows accumulate here */
static char *wjson_buf;
static size_t wjson_len;
static int nwin;

static void window_json(const snap *a, const snap *b) {
  long tck = sysconf(_SC_CLK_TCK);
  fprintf(wjson, "%s{\"seconds\":%.4f,\"echoes\":%llu,\"bytes\":%llu,\"handshakes\":%llu,\"errors\":%llu,",
          nwin++ ? "," : "", (double)(b->t - a->t) / 1e9, (unsigned long long)(b->echoes - a->echoes),
          (unsigned long long)(b->bytes - a->bytes), (unsigned long long)(b->hs - a->hs),
          (unsigned long long)(b->errors - a->errors));
  psample_json(wjson, "proxy", &a->w, &b->w, tck);
  fputc(',', wjson);
  psample_json(wjson, "backend", &a->a, &b->a, tck);
  fprintf(wjson, ",\"others_cpu_us\":%.1f", b->others_us);
  fprintf(wjson, ",\"loadgen_cpu_us\":%.1f,\"ksoftirqd_us\":[%.1f,%.1f],", b->self_us - a->self_us,
          (double)(b->ks[0].ticks - a->ks[0].ticks) * 1e6 / (double)tck, (double)(b->ks[1].ticks - a->ks[1].ticks) * 1e6 / (double)tck);
  cpustat_json(wjson, &a->cs, &b->cs);
  fprintf(wjson, ",\"lat\":");
  hist_json(wjson, &hwin);
  if (cfg.mode == M_RATE) { fprintf(wjson, ",\"hist\":"); hist_sparse_json(wjson, &hwin); }
  fputc('}', wjson);
}

static void measured_windows(void) {
  measuring = 0;
  run_until(now_ns() + (uint64_t)(cfg.warmup * 1e9), NULL);
  for (int r = 0; r < cfg.reps && !interrupted; r++) {
    snap a, b;
    memset(&hwin, 0, sizeof hwin);
    others_sample(1);
    take(&a);
    measuring = 1;
    run_until(a.t + (uint64_t)(cfg.duration * 1e9), NULL);
    measuring = 0;
    take(&b);
    b.others_us = others_sample(0);
    hist_merge(&htotal, &hwin);
    window_json(&a, &b);
    if (n_open == 0 && cfg.mode != M_HANDSHAKE) break;
  }
}

static int all_started_settled(void) { return n_open + n_connect_err >= (uint64_t)cfg.conns && n_started >= (uint64_t)cfg.conns; }
static int no_inflight(void) { return total_inflight == 0; }
static int all_free(void) {
  for (int i = 0; i < nslots; i++) if (C[i]->state != C_FREE) return 0;
  return 1;
}
static int idle_all_live(void) {
  return n_started >= (uint64_t)cfg.conns && n_live + n_connect_err + (n_errors - n_connect_err) >= (uint64_t)cfg.conns;
}

/* Opens cfg.conns connections, at most cfg.concurrency connecting at a time. */
static void open_all(int (*done)(void), double timeout_s) {
  uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
  int next = 0;
  while (!interrupted && now_ns() < deadline) {
    int64_t pending = (int64_t)n_started - (int64_t)n_open - (int64_t)n_connect_err;
    if (cfg.mode == M_IDLE) pending = (int64_t)n_started - (int64_t)n_live - (int64_t)n_errors;
    while (next < cfg.conns && pending < cfg.concurrency) { start_conn(next++); pending++; }
    if (next >= cfg.conns && done()) break;
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, 10);
    tnow = now_ns();
    for (int i = 0; i < n; i++) handle(&evs[i]);
  }
}

static void on_sig(int s) { (void)s; interrupted = 1; }

/* One client context for every connection: TLS 1.3 only, one suite, X25519 only, no session
   cache and no tickets (every handshake is a full one), no certificate verification. */
static void tls_setup(void) {
  tls_ctx = SSL_CTX_new(TLS_client_method());
  if (!tls_ctx || !SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(tls_ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_ciphersuites(tls_ctx, "TLS_AES_256_GCM_SHA384") || !SSL_CTX_set1_groups_list(tls_ctx, "X25519"))
    die("OpenSSL client context: %s", ERR_error_string(ERR_get_error(), NULL));
  SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
  /* a peer's plain FIN without close_notify reads as an EOF, as on a plain connection */
  SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* read-ahead: one read() takes whatever records are there, not one record header at a time */
  SSL_CTX_set_read_ahead(tls_ctx, 1);
  /* thousands of idle tunnels: give each session's buffers back while it waits */
  if (cfg.mode == M_IDLE) SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
}

static int parse_mode(const char *m) {
  if (!strcmp(m, "echo")) return M_ECHO;
  if (!strcmp(m, "rate")) return M_RATE;
  if (!strcmp(m, "handshake")) return M_HANDSHAKE;
  if (!strcmp(m, "idle")) return M_IDLE;
  die("unknown mode %s (echo|rate|handshake|idle)", m);
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: loadgen echo|rate|handshake|idle --port P [--tls [--sni NAME]] [...]%s", "");
  cfg.mode = parse_mode(argv[1]);
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--tls")) { cfg.tls = 1; continue; }
    if (i + 1 >= argc) die("missing value for %s", k);
    const char *v = argv[++i];
    if (!strcmp(k, "--host")) cfg.host = v;
    else if (!strcmp(k, "--port")) cfg.port = atoi(v);
    else if (!strcmp(k, "--path")) cfg.path = v;
    else if (!strcmp(k, "--src")) cfg.src = v;
    else if (!strcmp(k, "--conns")) cfg.conns = atoi(v);
    else if (!strcmp(k, "--inflight")) cfg.inflight = atoi(v);
    else if (!strcmp(k, "--size")) cfg.size = atoi(v);
    else if (!strcmp(k, "--rate")) cfg.rate = atoi(v);
    else if (!strcmp(k, "--concurrency")) cfg.concurrency = atoi(v);
    else if (!strcmp(k, "--warmup")) cfg.warmup = atof(v);
    else if (!strcmp(k, "--duration")) cfg.duration = atof(v);
    else if (!strcmp(k, "--reps")) cfg.reps = atoi(v);
    else if (!strcmp(k, "--settle")) cfg.settle = atof(v);
    else if (!strcmp(k, "--watch")) cfg.watch_root = atoi(v);
    else if (!strcmp(k, "--aux")) cfg.aux_root = atoi(v);
    else if (!strcmp(k, "--slow-us")) cfg.slow_us = atof(v);
    else if (!strcmp(k, "--sni")) cfg.sni = v;
    else die("unknown option %s", k);
  }
  if (cfg.port <= 0) die("--port is required%s", "");
  if (cfg.size < 12) cfg.size = 12;
  if (strncmp(cfg.host, "127.", 4) != 0) die("refusing non-loopback host %s (127.0.0.0/8 only)", cfg.host);
  if (cfg.tls) tls_setup();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_sig);
  signal(SIGTERM, on_sig);
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)cfg.port);
  if (inet_pton(AF_INET, cfg.host, &dst.sin_addr) != 1) die("bad host %s", cfg.host);
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  if (cfg.src && inet_pton(AF_INET, cfg.src, &src.sin_addr) != 1) die("bad --src %s", cfg.src);
  pattern = malloc((size_t)cfg.size + 256);
  for (int i = 0; i < cfg.size + 256; i++) pattern[i] = (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
  ep = epoll_create1(EPOLL_CLOEXEC);
  nslots = cfg.mode == M_HANDSHAKE ? cfg.concurrency : cfg.conns;
  C = calloc((size_t)nslots, sizeof *C);
  for (int i = 0; i < nslots; i++) {
    C[i] = calloc(1, sizeof(conn));
    C[i]->fd = -1; C[i]->id = i;
    C[i]->rnd = 0x9E3779B9u ^ (uint32_t)(i * 2654435761u) ^ (uint32_t)now_ns();
    if (!C[i]->rnd) C[i]->rnd = 1;
  }
  pidset_tree(cfg.watch_root, &watch);
  pidset_tree(cfg.aux_root, &aux);
  find_ksoftirqd();
  wjson = open_memstream(&wjson_buf, &wjson_len);
  uint64_t t_start = now_ns();
  t_origin = t_start;
  double open_s = 0;
  psample rss0, rss1;
  memset(&rss0, 0, sizeof rss0); memset(&rss1, 0, sizeof rss1);
  char samples[2048] = "";
  size_t sl = 0;

  if (cfg.mode == M_ECHO || cfg.mode == M_RATE) {
    if (cfg.mode == M_ECHO && cfg.concurrency < cfg.conns) cfg.concurrency = cfg.conns;
    open_all(all_started_settled, 30);
    open_s = (now_ns() - t_start) / 1e9;
    if (n_open > 0) {
      if (cfg.mode == M_ECHO) { /* every open connection starts its K messages */
        tnow = now_ns();
        for (int i = 0; i < nslots; i++) {
          if (C[i]->state != C_OPEN) continue;
          for (int k = 0; k < cfg.inflight; k++) send_msg(C[i]);
          flush(C[i]);
        }
      }
      if (cfg.mode == M_RATE) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        uint64_t per = (uint64_t)(1e9 / ((double)cfg.rate * cfg.conns));
        struct itimerspec its = {.it_interval = {(time_t)(per / 1000000000), (long)(per % 1000000000)},
                                 .it_value = {0, 1000000}};
        timerfd_settime(tfd, 0, &its, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &token_marker};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
      }
      measured_windows();
      stopping = 1;
      run_until(now_ns() + 3000000000ull, no_inflight);
    }
  } else if (cfg.mode == M_HANDSHAKE) {
    measured_windows(); /* run_until starts the loops */
    stopping = 1;
    run_until(now_ns() + (uint64_t)(cfg.hs_timeout * 1e9), all_free);
  } else { /* idle */
    sample_pidset(&watch, &rss0);
    if (cfg.concurrency > 256) cfg.concurrency = 256;
    measuring = 1; /* count the liveness echoes */
    open_all(idle_all_live, 120);
    measuring = 0;
    open_s = (now_ns() - t_start) / 1e9;
    fprintf(stderr, "idle-open %llu %llu\n", (unsigned long long)n_live, (unsigned long long)(n_started - n_live));
    uint64_t settle_end = now_ns() + (uint64_t)(cfg.settle * 1e9);
    sl += (size_t)snprintf(samples + sl, sizeof samples - sl, "[");
    for (int k = 0; now_ns() < settle_end && !interrupted; k++) {
      run_until(now_ns() + 500000000ull < settle_end ? now_ns() + 500000000ull : settle_end, NULL);
      sample_pidset(&watch, &rss1);
      if (sl < sizeof samples - 40) sl += (size_t)snprintf(samples + sl, sizeof samples - sl, "%s%llu", k ? "," : "", (unsigned long long)rss1.rss_kb);
    }
    sample_pidset(&watch, &rss1);
    snprintf(samples + sl, sizeof samples - sl, "]");
  }
  /* close everything we opened */
  int still_open = (int)n_open;
  for (int i = 0; i < nslots; i++) if (C[i]->fd >= 0) { close(C[i]->fd); C[i]->fd = -1; }
  fclose(wjson);

  static const char *names[] = {"echo", "rate", "handshake", "idle"};
  printf("{\"mode\":\"%s\",\"tls\":%d,\"host\":\"%s\",\"port\":%d,\"conns\":%d,\"inflight\":%d,\"size\":%d,\"rate\":%d,"
         "\"concurrency\":%d,\"opened\":%llu,\"open_at_end\":%d,\"live\":%llu,\"connect_errors\":%llu,\"errors\":%llu,"
         "\"interrupted\":%d,\"open_seconds\":%.3f,\"watch_pids\":%d,\"aux_pids\":%d,",
         names[cfg.mode], cfg.tls, cfg.host, cfg.port, cfg.conns, cfg.inflight, cfg.size, cfg.rate, cfg.concurrency,
         (unsigned long long)(n_started - n_connect_err), still_open, (unsigned long long)n_live,
         (unsigned long long)n_connect_err, (unsigned long long)n_errors, (int)interrupted, open_s, watch.n, aux.n);
  printf("\"error_messages\":[");
  for (int i = 0; i < nerrmsg; i++) {
    printf("%s\"", i ? "," : "");
    for (char *p = errmsg[i]; *p; p++) {
      if (*p == '"' || *p == '\\') putchar('\\');
      putchar((unsigned char)*p >= 32 ? *p : ' ');
    }
    putchar('"');
  }
  printf("],\"windows\":[%s],\"lat_total\":", wjson_buf ? wjson_buf : "");
  hist_json(stdout, &htotal);
  if (cfg.mode == M_IDLE)
    printf(",\"rss_kb_before\":%llu,\"rss_kb_after\":%llu,\"rss_samples_kb\":%s,\"live_echoes\":%llu",
           (unsigned long long)rss0.rss_kb, (unsigned long long)rss1.rss_kb, samples, (unsigned long long)n_echoes);
  if (cfg.slow_us > 0) {
    printf(",\"slow\":[");
    for (int i = 0; i < nslow; i++) printf("%s[%.3f,%.1f,%d]", i ? "," : "", slow[i].t_ms, slow[i].us, slow[i].conn);
    printf("]");
  }
  printf(",\"elapsed_seconds\":%.3f}\n", (now_ns() - t_start) / 1e9);
  return 0;
}

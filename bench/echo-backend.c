/*
 * echo-backend: a single-threaded epoll WebSocket echo server for the benchmark.
 *
 *   echo-backend [--host 127.0.0.1] [--port 0]
 *
 * Prints "listening PORT" on stdout once it accepts connections. Answers an HTTP/1.1
 * WebSocket upgrade with 101 (checks nothing but Sec-WebSocket-Key), then echoes every data
 * frame back unmasked with the same opcode and FIN bit, answers ping with pong, and answers
 * a close frame with a close frame and then closes the TCP connection (server closes first,
 * RFC 6455 §7.1.1). A request without Sec-WebSocket-Key gets "200 ok" and is closed (probes).
 * Reads go into one shared 256 KiB buffer; only partial frames are copied per connection.
 * SIGTERM/SIGINT exit at once.
 */
#include "ws_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

enum { ST_HTTP = 0, ST_WS = 1 };

typedef struct conn {
  int fd;
  int state;
  int close_after_write;
  int out_armed;
  int in_paused;
  uint8_t *pend; size_t plen, pcap;   /* unprocessed input (partial head / frame) */
  uint8_t *wbuf; size_t wlen, woff, wcap;
} conn;

static int ep;
static uint8_t bigbuf[1 << 18];
static unsigned long long n_accepted, n_frames;

static void ensure(uint8_t **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t c = *cap ? *cap : 1024;
  while (c < need) c *= 2;
  uint8_t *nb = realloc(*buf, c);
  if (!nb) { perror("realloc"); exit(1); }
  *buf = nb; *cap = c;
}

static void out_append(conn *c, const void *p, size_t n) {
  if (c->woff == c->wlen) c->woff = c->wlen = 0;
  ensure(&c->wbuf, &c->wcap, c->wlen + n);
  memcpy(c->wbuf + c->wlen, p, n);
  c->wlen += n;
}

static void conn_close(conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pend); free(c->wbuf); free(c);
}

static void update_events(conn *c) {
  int want_out = c->wlen > c->woff;
  int pause_in = (c->wlen - c->woff) > (4u << 20);
  if (want_out == c->out_armed && pause_in == c->in_paused) return;
  struct epoll_event ev = {0};
  ev.events = (pause_in ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0) | EPOLLRDHUP;
  ev.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->out_armed = want_out;
  c->in_paused = pause_in;
}

/* returns -1 when the connection was closed */
static int flush(conn *c) {
  while (c->wlen > c->woff) {
    ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      conn_close(c);
      return -1;
    }
    c->woff += (size_t)n;
  }
  if (c->wlen == c->woff) {
    c->wlen = c->woff = 0;
    if (c->close_after_write) { conn_close(c); return -1; }
  }
  update_events(c);
  return 0;
}

/* Consumes complete units from data; returns bytes consumed, or -1 to drop the connection. */
static ssize_t process(conn *c, uint8_t *data, size_t len) {
  size_t off = 0;
  if (c->state == ST_HTTP) {
    uint8_t *e = memmem(data, len, "\r\n\r\n", 4);
    if (!e) return len > 16384 ? -1 : 0;
    size_t hlen = (size_t)(e - data) + 4;
    size_t klen = 0;
    const char *key = http_header((const char *)data, hlen, "sec-websocket-key", &klen);
    if (!key || klen == 0 || klen > 64) {
      static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
      out_append(c, ok, sizeof ok - 1);
      c->close_after_write = 1;
      return (ssize_t)len;
    }
    char acc[29];
    ws_accept_for(key, klen, acc);
    char resp[256];
    int rn = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    out_append(c, resp, (size_t)rn);
    c->state = ST_WS;
    off = hlen;
  }
  while (len - off >= 2) {
    uint8_t *f = data + off;
    size_t avail = len - off;
    int fin_op = f[0];
    int opcode = fin_op & 0x0f;
    int masked = f[1] & 0x80;
    uint64_t plen = f[1] & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)f[2] << 8 | f[3];
      hl = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
      hl = 10;
    }
    if (plen > (64u << 20)) return -1;
    size_t mh = masked ? 4 : 0;
    if (avail < hl + mh + plen) break;
    uint8_t *payload = f + hl + mh;
    if (masked) ws_mask(payload, (size_t)plen, f + hl);
    /* header of the reply: same FIN/opcode, no mask */
    uint8_t h[10];
    size_t rh;
    int rop = fin_op;
    if (opcode == 0x9) rop = (fin_op & 0xf0) | 0xA; /* ping -> pong */
    if (opcode == 0xA) { off += hl + mh + plen; continue; } /* ignore pongs */
    h[0] = (uint8_t)rop;
    if (plen < 126) { h[1] = (uint8_t)plen; rh = 2; }
    else if (plen < 65536) { h[1] = 126; h[2] = (uint8_t)(plen >> 8); h[3] = (uint8_t)plen; rh = 4; }
    else { h[1] = 127; for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(plen >> (56 - 8 * i)); rh = 10; }
    out_append(c, h, rh);
    out_append(c, payload, (size_t)plen);
    n_frames++;
    off += hl + mh + plen;
    if (opcode == 0x8) { c->close_after_write = 1; return (ssize_t)len; }
  }
  return (ssize_t)off;
}

static void on_readable(conn *c) {
  uint8_t *data;
  size_t len;
  ssize_t n;
  if (c->plen > 0) {
    ensure(&c->pend, &c->pcap, c->plen + 65536);
    n = read(c->fd, c->pend + c->plen, c->pcap - c->plen);
    if (n > 0) { c->plen += (size_t)n; data = c->pend; len = c->plen; }
  } else {
    n = read(c->fd, bigbuf, sizeof bigbuf);
    data = bigbuf; len = (size_t)(n > 0 ? n : 0);
  }
  if (n == 0) { conn_close(c); return; }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    conn_close(c);
    return;
  }
  ssize_t used = process(c, data, len);
  if (used < 0) { conn_close(c); return; }
  size_t left = len - (size_t)used;
  if (data == bigbuf) {
    if (left) { ensure(&c->pend, &c->pcap, left + 65536); memcpy(c->pend, bigbuf + used, left); }
    c->plen = left;
  } else {
    if (left && used) memmove(c->pend, c->pend + used, left);
    c->plen = left;
    if (left == 0 && c->pcap > (1u << 20)) { free(c->pend); c->pend = NULL; c->pcap = 0; }
  }
  flush(c);
}

static void on_term(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else die("usage: echo-backend [--host H] [--port P] (unknown %s)", argv[i]);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("bad host %s", host);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
  if (listen(ls, 4096) < 0) { perror("listen"); return 1; }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  printf("listening %d\n", ntohs(a.sin_port));
  fflush(stdout);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (!c) {
        for (int k = 0; k < 256; k++) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          n_accepted++;
        }
        continue;
      }
      uint32_t e = evs[i].events;
      if (e & EPOLLOUT) { if (flush(c) < 0) continue; }
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
  }
}

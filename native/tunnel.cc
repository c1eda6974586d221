// wsgate's native tunnel engine: moves the bytes of established tunnels between two TCP sockets
// in C++, outside the JavaScript heap, on Node's own event loop thread.
//
// JavaScript hands over both file descriptors of a tunnel after the 101 (adopt); this engine
// dup()s them, so Node can close its own handles and free its socket objects, and from then on
// forwards bytes with read()/write() through one shared 64 KiB buffer. An idle tunnel costs a
// small struct here and nothing in JavaScript but its record. Everything the JS tunnel does is
// done here too: backpressure (a side with unsent bytes stops the other side's reads), half-close
// (a FIN is forwarded with shutdown(SHUT_WR) once the bytes before it are written), byte counts,
// one teardown with a reason, and the FIN timeout.
//
// The proxy may also write bytes into one direction after what is queued there (SendToward) and
// half-close one direction (EndToward). The epoll loop these run on is engine.cc's; JavaScript
// reaches them through binding.cc.

#include "tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgate {

const char* const kReasonNames[kReasonCount] = {"closed",        "client-error", "backend-error", "client-reset",
                                                "backend-reset", "shutdown",     "fin-timeout",   "ping-timeout"};

namespace {

// Reads of 64 KiB one side may do per turn before the others get theirs.
constexpr int kMaxReadsPerPump = 16;

// Who closed a WebSocket tunnel first, as in kWsCloseEvent (without the sent code).
int32_t FirstClose(const WsState& w) {
  uint64_t seqs[3] = {w.dir[0].close_seq, w.dir[1].close_seq, w.wsgate_seq};
  int32_t first = 0;
  uint64_t best = 0;
  for (int i = 0; i < 3; i++) {
    if (seqs[i] != 0 && (best == 0 || seqs[i] < best)) {
      best = seqs[i];
      first = i + 1;
    }
  }
  return first;
}

// Takes a WebSocket tunnel out of the pingers (swapping the last one into its place).
void StopPings(Engine* e, Tunnel* t) {
  if (t->ws == nullptr || t->ws->ping_ms == 0) return;
  size_t i = t->ws->pinger_index;
  Tunnel* last = e->pingers.back();
  e->pingers[i] = last;
  last->ws->pinger_index = i;
  e->pingers.pop_back();
  t->ws->ping_ms = 0;
  if (e->pingers.empty()) SetPingTimer(e, 0);
}

void Finish(Engine* e, Tunnel* t, int32_t reason, int32_t err) {
  if (t->closed) return;
  t->closed = true;
  if (t->ws != nullptr && t->ws->fail_reason >= 0) {
    // The side that vanished is what ended it, however the survivor's close handshake went.
    reason = t->ws->fail_reason;
    err = t->ws->fail_err;
  }
  for (Side& s : t->side) {
    if (s.fd >= 0) {
      if (!t->sole_fds) epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, s.fd, nullptr);
      close(s.fd);
      s.fd = -1;
    }
  }
  if (t->fin_deadline != 0) {
    for (size_t i = 0; i < e->fin_wait.size(); i++) {
      if (e->fin_wait[i] == t) {
        e->fin_wait[i] = e->fin_wait.back();
        e->fin_wait.pop_back();
        break;
      }
    }
  }
  // A side waiting for its next turn must not outlive the tunnel (it is freed after this batch).
  for (size_t i = 0; i < e->ready.size();) {
    if (e->ready[i]->tunnel == t) {
      e->ready[i] = e->ready.back();
      e->ready.pop_back();
    } else {
      i++;
    }
  }
  if (t->ws != nullptr) {
    StopPings(e, t);
    // A WebSocket tunnel's final counts and close codes come just before its close.
    for (int i = 0; i < 2; i++) {
      const WsTracker& w = t->ws->dir[i];
      e->events.push_back(CloseEvent{t->id, kWsCountsEvent + i, int32_t(w.violations), double(w.frames), double(w.messages)});
    }
    const WsState& ws = *t->ws;
    e->events.push_back(CloseEvent{t->id, kWsCloseEvent, FirstClose(ws) + 4 * int32_t(ws.sent_code), double(ws.dir[0].close_code),
                                   double(ws.dir[1].close_code)});
  }
  if (!t->bridge) e->events.push_back(CloseEvent{t->id, reason, err, double(t->bytes[0]), double(t->bytes[1])});
  auto it = e->tunnels.find(t->id);
  if (it != e->tunnels.end()) {
    e->graveyard.push_back(std::move(it->second));
    e->tunnels.erase(it);
  }
}

int32_t ResetReason(int index) {
  return index == 0 ? kClientReset : kBackendReset;
}

int32_t ErrorReason(int index) {
  return index == 0 ? kClientError : kBackendError;
}

bool IsReset(int err) {
  return err == ECONNRESET || err == EPIPE || err == ECONNABORTED;
}

bool SendTo(Engine* e, Tunnel* t, int index, const char* data, size_t len);
bool EndTo(Engine* e, Tunnel* t, int index);

// Masking keys and ping payloads: random, or (no entropy yet) at least varying.
void RandomBytes(uint8_t* out, size_t n) {
  if (getrandom(out, n, GRND_NONBLOCK) == ssize_t(n)) return;
  uint32_t r = uint32_t(NowMs()) * 2654435761u;
  for (size_t i = 0; i < n; i++) {
    r = r * 1103515245u + 12345u;
    out[i] = uint8_t(r >> 16);
  }
}

// A close frame with `code` and `text` into `out` (room for 6 + 2 + 123 bytes); masked with a
// random key toward a backend. Returns its length.
size_t CloseFrame(char* out, uint16_t code, const char* text, bool masked) {
  size_t tl = strlen(text);
  size_t len = 2 + tl;
  uint8_t key[4] = {0, 0, 0, 0};
  out[0] = char(0x88);
  out[1] = char((masked ? 0x80 : 0) | len);
  size_t head = 2;
  if (masked) {
    RandomBytes(key, sizeof key);
    memcpy(out + 2, key, sizeof key);
    head = 6;
  }
  char* p = out + head;
  p[0] = char(code >> 8);
  p[1] = char(code & 0xff);
  memcpy(p + 2, text, tl);
  if (masked)
    for (size_t i = 0; i < len; i++)
      p[i] = char(p[i] ^ key[i & 3]);
  return head + len;
}

// Side `dead` of a WebSocket tunnel vanished (reset, error): it is closed, and the other side gets
// a close frame — 1011 when the backend failed, 1001 when the client went away — if the bytes
// toward it are at a frame boundary (else only its FIN), and kWsCloseGraceMs to answer; the tunnel
// then finishes with the dead side's reason. False when the survivor had already been ended.
// `text`: the close frame's reason, if not the usual one.
bool WsSurvive(Engine* e, Tunnel* t, int dead, int32_t reason, int32_t err, const char* text = nullptr) {
  Side* d = &t->side[dead];
  Side* s = &t->side[1 - dead];
  if (s->shut_wr || s->end_queued || s->fd < 0 || d->fd < 0) return false;
  t->ws->fail_reason = reason;
  t->ws->fail_err = err;
  if (!t->sole_fds) epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, d->fd, nullptr);
  close(d->fd);
  d->fd = -1;
  d->read_eof = true;
  d->shut_wr = true;
  d->readable = false;
  std::vector<char>().swap(d->pending);
  d->pending_off = 0;
  for (size_t i = 0; i < e->ready.size(); i++) {
    if (e->ready[i] == d) {
      e->ready[i] = e->ready.back();
      e->ready.pop_back();
      break;
    }
  }
  WsTracker& w = t->ws->dir[dead];
  bool at_boundary = w.AtBoundary();
  w.stopped = true;
  t->ws->close_frame[1 - dead].clear();  // held for a boundary that will not come
  if (at_boundary) {
    char frame[6 + 2 + 32];
    uint16_t code = dead == 1 ? 1011 : 1001;
    if (text == nullptr) text = dead == 1 ? "backend error" : "client went away";
    size_t n = CloseFrame(frame, code, text, dead == 0);
    t->ws->sent_code = code;
    if (t->ws->wsgate_seq == 0) t->ws->wsgate_seq = NextCloseSeq();
    SendTo(e, t, 1 - dead, frame, n);
  }
  if (!t->closed) EndTo(e, t, 1 - dead);
  if (!t->closed) {
    if (t->fin_deadline == 0) e->fin_wait.push_back(t);
    t->fin_deadline = NowMs() + kWsCloseGraceMs;
  }
  Queued(e);
  return true;
}

void FailSide(Engine* e, Tunnel* t, int index, int32_t reason, int32_t err) {
  if (t->ws != nullptr && t->ws->fail_reason < 0 && WsSurvive(e, t, index, reason, err)) return;
  Finish(e, t, reason, err);
}

void FailIo(Engine* e, Tunnel* t, int index, int err) {
  FailSide(e, t, index, IsReset(err) ? ResetReason(index) : ErrorReason(index), err);
}

// Both FINs forwarded and every byte written: the tunnel is done. Returns true if it finished.
bool MaybeDone(Engine* e, Tunnel* t) {
  Side& a = t->side[0];
  Side& b = t->side[1];
  if (a.read_eof && b.read_eof && a.shut_wr && b.shut_wr) {
    Finish(e, t, kClosed, 0);
    return true;
  }
  if (a.read_eof && b.read_eof && t->fin_deadline == 0) {
    t->fin_deadline = NowMs() + kFinTimeoutMs;
    e->fin_wait.push_back(t);
  }
  return false;
}

// Forwards a FIN to `dst` (its peer sent all it will). The last FIN of a tunnel that is about to
// finish is left to close(), which sends it: one syscall less per tunnel.
void ForwardFin(Side* dst) {
  if (dst->shut_wr) return;
  dst->shut_wr = true;
  if (dst->ssl != nullptr) TlsCloseNotify(dst->ssl);  // TLS ends with close_notify, then the FIN
  Tunnel* t = dst->tunnel;
  if (t->side[0].read_eof && t->side[1].read_eof && t->side[1 - dst->index].shut_wr) return;
  shutdown(dst->fd, SHUT_WR);
}

void Pump(Engine* e, Side* src);

void SetCork(int fd, int on) {
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

// The first violation of a WebSocket tunnel goes to JavaScript (to log it, and in strict mode to
// close the tunnel); later ones are only counted.
void WsReport(Engine* e, Tunnel* t, int from, int32_t violation) {
  if (t->ws->reported) return;
  t->ws->reported = true;
  e->events.push_back(CloseEvent{t->id, kWsEvent, violation, double(from), 0});
  Queued(e);
}

// The direction toward side `index` reached the boundary it was held at: the frame waiting for
// it goes now, then that direction ends.
void WsStopped(Engine* e, Tunnel* t, int index) {
  std::vector<char> frame;
  frame.swap(t->ws->close_frame[index]);
  if (frame.empty()) return;
  SendTo(e, t, index, frame.data(), frame.size());
  if (!t->closed) EndTo(e, t, index);
}

// A side that failed or hung up while its bytes cannot be read (the other side is full): if the
// socket holds an error (a reset), nothing more will come from it and nothing can be delivered
// to it, so the tunnel ends now rather than when the other side drains — which may be never.
void FailIfBroken(Engine* e, Side* s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) FailIo(e, s->tunnel, s->index, err);
}

// Writes `dst`'s pending bytes. Returns false if the tunnel was finished.
bool FlushPending(Engine* e, Side* dst, Side* src) {
  Tunnel* t = dst->tunnel;
  int err = WriteSide(dst, dst->pending.data(), dst->pending.size(), &dst->pending_off);
  if (err != 0) {
    FailIo(e, t, dst->index, err);
    return false;
  }
  if (dst->pending_off < dst->pending.size()) return true;  // the next EPOLLOUT edge goes on
  // Drained: an idle tunnel holds no buffer.
  std::vector<char>().swap(dst->pending);
  dst->pending_off = 0;
  // A FIN asked for by endToward goes now, after the bytes queued before it.
  if (dst->end_queued && !src->read_eof) {
    ForwardFin(dst);
    if (MaybeDone(e, t)) return false;
  }
  // The source's FIN may now be forwarded, or its reading resumes.
  if (src->read_eof) {
    ForwardFin(dst);
    return !MaybeDone(e, t);
  }
  if (src->readable) Pump(e, src);
  return !t->closed;
}

void OnEof(Engine* e, Side* src, Side* dst) {
  src->read_eof = true;
  src->readable = false;
  if (dst->pending.empty()) ForwardFin(dst);
  MaybeDone(e, src->tunnel);
}

// Forwards the n bytes just read into e->buf from `src`: the fast path. A WebSocket tracker
// follows them; a stop (a boundary asked for, or a violation in strict mode) forwards only what
// comes before it, and the rest of the direction is dropped. False if the tunnel finished.
bool ForwardRead(Engine* e, Tunnel* t, Side* src, Side* dst, size_t n) {
  size_t fwd = n;
  bool ws_stop = false;
  if (t->ws != nullptr) {
    WsTracker& w = t->ws->dir[src->index];
    bool was_stopped = w.stopped;
    uint64_t seen = w.violations;
    long stop = w.Feed(reinterpret_cast<const uint8_t*>(e->buf), n);
    if (stop != kWsNoStop) fwd = size_t(stop);
    ws_stop = w.stopped && !was_stopped;
    if (seen == 0 && w.violations != 0) WsReport(e, t, src->index, w.first_violation);
  }
  t->bytes[src->index] += uint64_t(fwd);
  size_t off = 0;
  int err = WriteSide(dst, e->buf, fwd, &off);
  if (err != 0) {
    FailIo(e, t, dst->index, err);
    return false;
  }
  if (off < fwd) {
    dst->pending.assign(e->buf + off, e->buf + fwd);
    dst->pending_off = 0;
  }
  if (ws_stop) WsStopped(e, t, dst->index);
  return !t->closed;
}

// The slow path of ForwardRead while a pong to wsgate's ping is awaited from `src`: the tracker
// pauses before each pong that starts at a boundary, and the catcher holds it until it can tell.
// The answer to the ping is dropped (the tracker still follows it, so it stays in step); any
// other frame is forwarded as it was. False if the tunnel finished.
bool ForwardCatching(Engine* e, Tunnel* t, Side* src, Side* dst, size_t n) {
  WsTracker& w = t->ws->dir[src->index];
  WsPongCatcher& c = t->ws->pong[src->index];
  const uint8_t* b = reinterpret_cast<const uint8_t*>(e->buf);
  uint64_t seen = w.violations;
  size_t i = 0;
  while (i < n && !t->closed) {
    if (c.held_len > 0 || w.paused) {
      w.paused = false;
      int verdict = c.Take(b, n, &i);
      if (verdict == kPongPending) break;
      uint8_t held[sizeof c.held];
      size_t hl = c.held_len;
      memcpy(held, c.held, hl);
      c.held_len = 0;
      w.pause_on_pong = false;
      long stop = w.Feed(held, hl);
      if (verdict == kPongOurs) {
        c.awaiting = false;  // the side answered: not forwarded, not counted as tunnel bytes
        c.answered = true;
        continue;
      }
      w.pause_on_pong = true;
      if (stop != kWsNoStop) {
        // Stopped at the held frame's start (a boundary asked for): it is dropped, the frame held for that boundary goes.
        WsStopped(e, t, dst->index);
        break;
      }
      t->bytes[src->index] += hl;
      SendTo(e, t, dst->index, reinterpret_cast<const char*>(held), hl);
      continue;
    }
    long stop = w.Feed(b + i, n - i);
    size_t end = stop == kWsNoStop ? n : i + size_t(stop);
    if (end > i) {
      t->bytes[src->index] += end - i;
      SendTo(e, t, dst->index, e->buf + i, end - i);
    }
    if (w.stopped) {
      if (!t->closed) WsStopped(e, t, dst->index);
      break;
    }
    i = end;
  }
  if (seen == 0 && w.violations != 0 && !t->closed) WsReport(e, t, src->index, w.first_violation);
  return !t->closed;
}

// Moves bytes from `src` to the other side until `src` is empty, the other side is full (the rest
// is kept for it and `src` waits: backpressure), or `src` sent its FIN. Sockets are edge-triggered
// with every interest registered once, so no epoll_ctl happens per chunk or per state change;
// `readable` remembers an edge that could not be acted on at once.
void Pump(Engine* e, Side* src) {
  Tunnel* t = src->tunnel;
  Side* dst = &t->side[1 - src->index];
  for (int i = 0; i < kMaxReadsPerPump; i++) {
    if (src->read_eof || !dst->pending.empty()) return;
    bool socket_drained = false;
    ssize_t n = ReadSide(src, e->buf, kReadSize, &socket_drained);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        src->readable = false;
      else
        FailIo(e, t, src->index, errno);
      return;
    }
    if (n == 0) {
      OnEof(e, src, dst);
      return;
    }
    // A short read emptied the socket: anything arriving later raises a new edge. If the FIN
    // had been seen (EPOLLRDHUP), this was the last of the data: no read is needed to learn it.
    // After EPOLLERR/EPOLLHUP no edge will come: the next read returns the error (or EOF).
    bool drained = socket_drained && !src->hup_seen;
    if (drained) src->readable = false;
    if (t->ws != nullptr) t->ws->heard[src->index] = true;
    if (dst->shut_wr) {
      // endToward closed this direction: what the source still sends has nowhere to go. It is
      // read and dropped (not counted), so the source is never stuck behind a full socket. A
      // tracker stopped at a boundary still reads it, for the peer's close code.
      if (t->ws != nullptr && t->ws->dir[src->index].trailing)
        t->ws->dir[src->index].Feed(reinterpret_cast<const uint8_t*>(e->buf), size_t(n));
      if (drained) {
        if (src->fin_seen) OnEof(e, src, dst);
        return;
      }
      continue;
    }
    // The last bytes before a FIN, toward a TLS client: they, close_notify and the FIN leave in
    // one segment (corked until shutdown pushes it) instead of three.
    bool cork = dst->ssl != nullptr && drained && src->fin_seen;
    if (cork) SetCork(dst->fd, 1);
    if (t->ws != nullptr && t->ws->dir[src->index].pause_on_pong) {
      // A pong to wsgate's ping is awaited from this side: the slow path.
      if (!ForwardCatching(e, t, src, dst, size_t(n))) return;
    } else if (!ForwardRead(e, t, src, dst, size_t(n))) {
      return;
    }
    if (!dst->pending.empty()) {
      if (cork) SetCork(dst->fd, 0);  // what follows waits for room: send what is corked now
      // The destination is full: keep the rest; its EPOLLOUT edge resumes (FlushPending).
      if (drained && src->fin_seen) src->readable = true;  // the EOF is still to be read
      if (src->hup_seen) FailIfBroken(e, src);
      return;
    }
    if (drained) {
      if (src->fin_seen) OnEof(e, src, dst);
      return;
    }
  }
  // A busy socket had its share of this turn; it goes on at the next one (no edge will come for
  // what is already waiting).
  e->ready.push_back(src);
  ReportSoon(e);
}

// Writes `data` to side `index` after every byte already queued for it: straight to the socket
// when nothing is waiting (what it does not take is kept), else appended to the pending bytes,
// which the next EPOLLOUT edge writes. While they wait the other side is not read (the same
// backpressure as forwarded bytes). False if that direction is already ended.
bool SendTo(Engine* e, Tunnel* t, int index, const char* data, size_t len) {
  Side* dst = &t->side[index];
  if (dst->shut_wr || dst->end_queued) return false;
  if (len == 0) return true;
  if (!dst->pending.empty()) {
    dst->pending.insert(dst->pending.end(), data, data + len);
    return true;
  }
  size_t off = 0;
  int err = WriteSide(dst, data, len, &off);
  if (err != 0) {
    FailIo(e, t, index, err);
    Queued(e);
    return true;  // accepted; the tunnel ends with the socket's error, reported as usual
  }
  if (off < len) {
    dst->pending.assign(data + off, data + len);
    dst->pending_off = 0;
  }
  return true;
}

// Sends a FIN to side `index` once the bytes queued for it are written, while the other
// direction goes on. False if that direction is already ended.
bool EndTo(Engine* e, Tunnel* t, int index) {
  Side* dst = &t->side[index];
  if (dst->shut_wr || dst->end_queued) return false;
  dst->end_queued = true;
  if (dst->pending.empty()) {
    ForwardFin(dst);
    if (MaybeDone(e, t)) Queued(e);
  }
  return true;
}

// See CloseAtBoundary in tunnel.h.
bool CloseAt(Engine* e, Tunnel* t, int index, const char* frame, size_t len) {
  Side* dst = &t->side[index];
  if (t->ws == nullptr || dst->shut_wr || dst->end_queued) return false;
  if (t->ws->wsgate_seq == 0) t->ws->wsgate_seq = NextCloseSeq();
  WsTracker& w = t->ws->dir[1 - index];
  if (!w.AtBoundary()) {
    if (!w.stopped) {
      // Held until the bytes toward the side reach the end of the frame they are in (Pump).
      t->ws->close_frame[index].assign(frame, frame + len);
      w.stop_at_boundary = true;
      return true;
    }
    // Stopped inside a frame (a violation whose header began in an earlier read): a frame
    // cannot go there, so the direction only ends.
    return EndTo(e, t, index);
  }
  w.stopped = true;
  w.trailing = true;  // the peer's answer is still read (and dropped) for its close code
  SendTo(e, t, index, frame, len);
  if (!t->closed) EndTo(e, t, index);
  return true;
}

// Pings side `index` if the bytes toward it are between two frames (else a later check tries
// again); its pong is then awaited from it.
void Ping(Engine* e, Tunnel* t, int index) {
  WsState& ws = *t->ws;
  WsTracker& toward = ws.dir[1 - index];
  Side* dst = &t->side[index];
  if (!toward.AtBoundary() || toward.stopped || toward.stop_at_boundary || dst->shut_wr || dst->end_queued) return;
  WsPongCatcher& c = ws.pong[index];
  uint8_t key[4];
  RandomBytes(c.expect, kPingPayload);
  RandomBytes(key, sizeof key);
  uint8_t frame[6 + kPingPayload];
  size_t n = PingFrame(frame, c.expect, index == 1, key);
  SendTo(e, t, index, reinterpret_cast<const char*>(frame), n);
  if (t->closed) return;
  c.awaiting = true;
  ws.dir[index].pause_on_pong = true;
}

// A side sent nothing within an interval after its ping: it is cut, and the other side gets a
// close frame as when a side vanishes (WsSurvive).
// The reported errno names the dead side: 1 the client, 2 the backend (see kPingTimeout).
void PingDead(Engine* e, Tunnel* t, int dead) {
  if (!WsSurvive(e, t, dead, kPingTimeout, dead + 1, dead == 1 ? "backend not answering" : "client not answering"))
    Finish(e, t, kPingTimeout, dead + 1);
}

// One tunnel's ping check (see PingTick).
void PingCheck(Engine* e, Tunnel* t) {
  WsState& ws = *t->ws;
  // A side not read because the other is full (backpressure) may be sending: it counts as heard.
  bool heard_client = ws.heard[0] || !t->side[1].pending.empty();
  bool heard_backend = ws.heard[1] || !t->side[0].pending.empty();
  ws.heard[0] = ws.heard[1] = false;
  // Closing (both FINs in, a side vanished, or wsgate sent its close): no more pings.
  if (t->fin_deadline != 0 || ws.fail_reason >= 0 || ws.wsgate_seq != 0) return;
  // (A side that sends but has not answered yet is alive: its pong may be behind a long frame.)
  if (ws.pong[0].awaiting && !heard_client) return PingDead(e, t, 0);
  if (ws.pong[1].awaiting && !heard_backend) return PingDead(e, t, 1);
  // A side whose answer to the last ping may be all it sent is pinged again: an idle side is
  // pinged once per interval, so an intermediary never sees the wire silent much longer.
  bool answered_client = ws.pong[0].answered;
  bool answered_backend = ws.pong[1].answered;
  ws.pong[0].answered = ws.pong[1].answered = false;
  if ((!heard_client || answered_client) && !ws.pong[0].awaiting) Ping(e, t, 0);
  if (!t->closed && (!heard_backend || answered_backend) && !ws.pong[1].awaiting) Ping(e, t, 1);
}

// A non-blocking duplicate of a connected TCP socket, with no-delay and TCP keepalive (first
// probe after `keepalive_s` of silence) so that vanished peers are found.
int DupSocket(int fd, int keepalive_s) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -1;
  int flags = fcntl(d, F_GETFL);
  fcntl(d, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  KeepAlive(d, keepalive_s);
  return d;
}

Tunnel* Find(Engine* e, uint32_t id) {
  auto it = e->tunnels.find(id);
  return it == e->tunnels.end() || it->second->closed ? nullptr : it->second.get();
}

}  // namespace

ssize_t ReadSide(Side* s, char* buf, size_t cap, bool* drained) {
  if (s->ssl != nullptr) return TlsRead(s->ssl, buf, cap, drained);
  ssize_t n;
  do {
    n = read(s->fd, buf, cap);
  } while (n < 0 && errno == EINTR);
  *drained = n >= 0 && size_t(n) < cap;
  return n;
}

int WriteSide(Side* s, const char* data, size_t len, size_t* off) {
  if (s->ssl != nullptr) return TlsWrite(s->ssl, data, len, off);
  return WriteSome(s->fd, data, len, off);
}

void HandleTunnelEvent(Engine* e, Side* s, uint32_t ev) {
  Tunnel* t = s->tunnel;
  if (t->closed || s->fd < 0) return;  // (a WebSocket side that vanished is closed before its tunnel)
  Side* other = &t->side[1 - s->index];
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->readable = true;
  // (Not with EPOLLERR: a reset is read as the error it is.)
  if ((ev & (EPOLLRDHUP | EPOLLHUP)) && !(ev & EPOLLERR)) s->fin_seen = true;
  if (ev & (EPOLLERR | EPOLLHUP)) s->hup_seen = true;
  if (!s->pending.empty() && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    // A failed write ends the tunnel with the socket's error.
    if (!FlushPending(e, s, other) || t->closed) return;
  }
  if (!s->readable) return;
  if (!s->read_eof) {
    if (other->pending.empty())
      Pump(e, s);  // else: resumed when `other` drains
    else if (s->hup_seen)
      FailIfBroken(e, s);
  } else if (s->pending.empty() && (ev & (EPOLLHUP | EPOLLERR))) {
    // Done reading and nothing to write, yet the socket hung up or failed: its peer is gone, so
    // nothing more can be delivered to it.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    FailSide(e, t, s->index, err != 0 && !IsReset(err) ? ErrorReason(s->index) : ResetReason(s->index), err);
  }
}

void RegisterSide(Engine* e, Side* s) {
  struct epoll_event ev;
  ev.events = kSideEvents;
  ev.data.ptr = static_cast<Watched*>(s);
  epoll_ctl(e->epfd.get(), EPOLL_CTL_ADD, s->fd, &ev);
}

void RunTunnel(Engine* e, std::unique_ptr<Tunnel> owned) {
  Tunnel* t = owned.get();
  e->tunnels[t->id] = std::move(owned);
  for (int i = 0; i < 2; i++) {
    t->side[i].kind = Kind::kTunnelSide;
    t->side[i].tunnel = t;
    t->side[i].index = i;
  }
  // Early bytes (a 101 head, bytes sent with the request) go first, written now if the socket
  // takes them, as it nearly always does; the rest waits for the socket's EPOLLOUT edge.
  for (int i = 0; i < 2; i++) {
    Side& s = t->side[i];
    int err = WriteSide(&s, s.pending.data(), s.pending.size(), &s.pending_off);
    if (err != 0) {
      FailIo(e, t, i, err);
      // Reported (and freed) at the next loop turn.
      ReportSoon(e);
      return;
    }
    if (s.pending_off >= s.pending.size()) {
      std::vector<char>().swap(s.pending);
      s.pending_off = 0;
    }
  }
  // Bytes that arrived before the tunnel existed raised their edges already: read them now.
  for (int i = 0; i < 2 && !t->closed; i++) {
    Side& s = t->side[i];
    if (s.readable && t->side[1 - i].pending.empty()) Pump(e, &s);
  }
  if (t->closed) ReportSoon(e);
}

// Sides that stopped at their read cap go on (each is still readable unless it ended).
void RunReady(Engine* e) {
  if (e->ready.empty()) return;
  std::vector<Side*> ready;
  ready.swap(e->ready);
  for (Side* s : ready) {
    if (!s->tunnel->closed && s->readable && !s->read_eof && s->tunnel->side[1 - s->index].pending.empty()) Pump(e, s);
  }
}

void TunnelTick(Engine* e, int64_t now) {
  if (e->fin_wait.empty()) return;
  std::vector<Tunnel*> waiting;
  waiting.swap(e->fin_wait);
  // Finish() removes a tunnel from fin_wait, so every entry here is live.
  for (Tunnel* t : waiting) {
    if (t->fin_deadline <= now) {
      t->fin_deadline = 0;  // already out of fin_wait
      Finish(e, t, kFinTimeout, 0);
    } else {
      e->fin_wait.push_back(t);
    }
  }
}

// The fds are duplicated: the caller closes its own afterwards. Early bytes (sent with the
// request head, or with the 101) are written first. A tunnel that ends at once (a write fails)
// is reported on the next loop turn like any other.
void TrackWebSocket(Tunnel* t, uint32_t flags, size_t skip_to_client) {
  t->ws = std::make_unique<WsState>();
  t->ws->dir[0].flags = flags | kWsFlagMasked;
  t->ws->dir[1].flags = flags & ~kWsFlagMasked;
  // Early bytes are forwarded whole whatever the trackers find in them: they were accepted with
  // the handshake. A violation there is counted (and reported with the next one found).
  std::vector<char>& up = t->side[1].pending;
  std::vector<char>& down = t->side[0].pending;
  if (!up.empty()) t->ws->dir[0].Feed(reinterpret_cast<const uint8_t*>(up.data()), up.size());
  if (down.size() > skip_to_client)
    t->ws->dir[1].Feed(reinterpret_cast<const uint8_t*>(down.data()) + skip_to_client, down.size() - skip_to_client);
}

int AdoptTunnel(Engine* e, uint32_t id, int client_fd, int backend_fd, int keepalive_s, std::vector<char> to_backend,
                std::vector<char> to_client, uint32_t ws_flags) {
  UniqueFd c(DupSocket(client_fd, keepalive_s));
  UniqueFd b(DupSocket(backend_fd, keepalive_s));
  if (!c.valid() || !b.valid()) return errno;
  auto t = std::make_unique<Tunnel>();
  t->id = id;
  t->side[0].pending = std::move(to_client);
  t->side[1].pending = std::move(to_backend);
  t->side[0].fd = c.release();
  t->side[1].fd = b.release();
  if (ws_flags != 0) TrackWebSocket(t.get(), ws_flags, 0);
  for (Side& s : t->side) {
    s.readable = true;  // Node may have left bytes in the kernel: the first Pump reads them
    RegisterSide(e, &s);
  }
  RunTunnel(e, std::move(t));
  return 0;
}

bool CloseTunnel(Engine* e, uint32_t id, double* out) {
  Tunnel* t = Find(e, id);
  if (t == nullptr) return false;
  out[0] = double(t->bytes[0]);
  out[1] = double(t->bytes[1]);
  Finish(e, t, kShutdown, 0);
  e->events.pop_back();  // reported to the caller right here, not through onClose (its counts still are)
  return true;
}

bool TunnelBytes(Engine* e, uint32_t id, double* out) {
  Tunnel* t = Find(e, id);
  if (t == nullptr) return false;
  out[0] = double(t->bytes[0]);
  out[1] = double(t->bytes[1]);
  return true;
}

bool SendToward(Engine* e, uint32_t id, int index, const char* data, size_t len) {
  Tunnel* t = Find(e, id);
  return t != nullptr && SendTo(e, t, index, data, len);
}

bool EndToward(Engine* e, uint32_t id, int index) {
  Tunnel* t = Find(e, id);
  return t != nullptr && EndTo(e, t, index);
}

bool CloseAtBoundary(Engine* e, uint32_t id, int index, const char* frame, size_t len) {
  Tunnel* t = Find(e, id);
  return t != nullptr && CloseAt(e, t, index, frame, len);
}

bool WsStats(Engine* e, uint32_t id, double* out) {
  Tunnel* t = Find(e, id);
  if (t == nullptr || t->ws == nullptr) return false;
  for (int i = 0; i < 2; i++) {
    const WsTracker& w = t->ws->dir[i];
    out[i * 3] = double(w.frames);
    out[i * 3 + 1] = double(w.messages);
    out[i * 3 + 2] = double(w.violations);
    out[6 + i] = w.AtBoundary() ? 1 : 0;
  }
  out[8] = double(t->ws->dir[0].close_code);
  out[9] = double(t->ws->dir[1].close_code);
  out[10] = double(FirstClose(*t->ws) + 4 * int32_t(t->ws->sent_code));
  return true;
}

bool WsPing(Engine* e, uint32_t id, int64_t interval_ms) {
  Tunnel* t = Find(e, id);
  if (t == nullptr || t->ws == nullptr || interval_ms <= 0) return false;
  WsState& ws = *t->ws;
  if (ws.ping_ms == 0) {
    ws.pinger_index = e->pingers.size();
    e->pingers.push_back(t);
  }
  ws.ping_ms = interval_ms;
  ws.ping_next = NowMs() + interval_ms;
  ws.pong[0].masked = true;
  ws.pong[1].masked = false;
  int64_t granule = interval_ms / 4;
  if (granule < 20) granule = 20;
  if (granule > 1000) granule = 1000;
  if (e->ping_granule == 0 || granule < e->ping_granule) SetPingTimer(e, granule);
  return true;
}

void PingTick(Engine* e, int64_t now) {
  if (e->pingers.empty()) return;
  // A check may finish a tunnel, which takes it out of `pingers`: walk a copy (records outlive
  // this callback in the graveyard).
  std::vector<Tunnel*> due;
  for (Tunnel* t : e->pingers) {
    if (t->ws->ping_next <= now) due.push_back(t);
  }
  for (Tunnel* t : due) {
    if (t->closed || t->ws->ping_ms == 0) continue;
    t->ws->ping_next = now + t->ws->ping_ms;
    PingCheck(e, t);
  }
}

}  // namespace wsgate

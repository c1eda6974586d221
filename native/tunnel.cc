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
// The engine's epoll set is itself watched by libuv (a uv_poll on the epoll fd), so tunnel I/O
// runs on the loop thread between JavaScript callbacks: no second thread, no locks, and no
// cross-thread wake-ups, which cost 15-20 us of CPU each on a VM. Closed tunnels are reported to
// JavaScript in one call per loop turn.

#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace wsgate {

Engine* g_engine = nullptr;

namespace {

// Why a tunnel ended; exported by name (contract.reasons), checked by src/tunnel/native.ts.
enum Reason : int32_t {
  kClosed = 0,
  kClientError = 1,
  kBackendError = 2,
  kClientReset = 3,
  kBackendReset = 4,
  kShutdown = 5,
  kFinTimeout = 6,
};

constexpr int64_t kFinTimeoutMs = 30000;
// Events handled per poll callback before yielding back to libuv (and so to JavaScript).
constexpr int kMaxEvents = 256;
// Reads of 64 KiB one side may do per turn before the others get theirs.
constexpr int kMaxReadsPerPump = 16;

void OnTick(uv_timer_t* handle);

void Finish(Engine* e, Tunnel* t, int32_t reason, int32_t err) {
  if (t->closed) return;
  t->closed = true;
  for (Side& s : t->side) {
    if (s.fd >= 0) {
      if (!t->sole_fds) epoll_ctl(e->epfd, EPOLL_CTL_DEL, s.fd, nullptr);
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
  e->events.push_back(CloseEvent{t->id, reason, err, double(t->bytes[0]), double(t->bytes[1])});
  e->tunnels.erase(t->id);
  e->graveyard.push_back(t);
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

void FailIo(Engine* e, Tunnel* t, int index, int err) {
  Finish(e, t, IsReset(err) ? ResetReason(index) : ErrorReason(index), err);
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
  Tunnel* t = dst->tunnel;
  if (t->side[0].read_eof && t->side[1].read_eof && t->side[1 - dst->index].shut_wr) return;
  shutdown(dst->fd, SHUT_WR);
}

void Pump(Engine* e, Side* src);

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
  int err = WriteSome(dst->fd, dst->pending.data(), dst->pending.size(), &dst->pending_off);
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

// Moves bytes from `src` to the other side until `src` is empty, the other side is full (the rest
// is kept for it and `src` waits: backpressure), or `src` sent its FIN. Sockets are edge-triggered
// with every interest registered once, so no epoll_ctl happens per chunk or per state change;
// `readable` remembers an edge that could not be acted on at once.
void Pump(Engine* e, Side* src) {
  Tunnel* t = src->tunnel;
  Side* dst = &t->side[1 - src->index];
  for (int i = 0; i < kMaxReadsPerPump; i++) {
    if (src->read_eof || !dst->pending.empty()) return;
    ssize_t n;
    do {
      n = read(src->fd, e->buf, kReadSize);
    } while (n < 0 && errno == EINTR);
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
    bool drained = size_t(n) < kReadSize && !src->hup_seen;
    if (drained) src->readable = false;
    if (dst->shut_wr) {
      // endToward closed this direction: what the source still sends has nowhere to go. It is
      // read and dropped (not counted), so the source is never stuck behind a full socket.
      if (drained) {
        if (src->fin_seen) OnEof(e, src, dst);
        return;
      }
      continue;
    }
    t->bytes[src->index] += uint64_t(n);
    size_t off = 0;
    int err = WriteSome(dst->fd, e->buf, size_t(n), &off);
    if (err != 0) {
      FailIo(e, t, dst->index, err);
      return;
    }
    if (off < size_t(n)) {
      // The destination is full: keep the rest; its EPOLLOUT edge resumes (FlushPending).
      dst->pending.assign(e->buf + off, e->buf + n);
      dst->pending_off = 0;
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

void HandleEvent(Engine* e, Side* s, uint32_t ev) {
  Tunnel* t = s->tunnel;
  if (t->closed) return;
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
    Finish(e, t, err != 0 && !IsReset(err) ? ErrorReason(s->index) : ResetReason(s->index), err);
  }
}

// Writes `data` to side `index` after every byte already queued for it: straight to the socket
// when nothing is waiting (what it does not take is kept), else appended to the pending bytes,
// which the next EPOLLOUT edge writes. While they wait the other side is not read (the same
// backpressure as forwarded bytes). False if that direction is already ended.
bool SendToward(Engine* e, Tunnel* t, int index, const char* data, size_t len) {
  Side* dst = &t->side[index];
  if (dst->shut_wr || dst->end_queued) return false;
  if (len == 0) return true;
  if (!dst->pending.empty()) {
    dst->pending.insert(dst->pending.end(), data, data + len);
    return true;
  }
  size_t off = 0;
  int err = WriteSome(dst->fd, data, len, &off);
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
bool EndToward(Engine* e, Tunnel* t, int index) {
  Side* dst = &t->side[index];
  if (dst->shut_wr || dst->end_queued) return false;
  dst->end_queued = true;
  if (dst->pending.empty()) {
    ForwardFin(dst);
    if (MaybeDone(e, t)) Queued(e);
  }
  return true;
}

}  // namespace

size_t MaxUnreadHeads() {
  struct rlimit rl;
  size_t soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) soft = size_t(rl.rlim_cur);
  return soft / 4 > kMinUnreadHeads ? soft / 4 : kMinUnreadHeads;
}

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void SetInterest(Engine* e, int fd, Watched* w, uint32_t events) {
  struct epoll_event ev;
  ev.events = events;
  ev.data.ptr = w;
  epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int WriteSome(int fd, const char* data, size_t len, size_t* off) {
  while (*off < len) {
    ssize_t n = write(fd, data + *off, len - *off);
    if (n > 0) {
      *off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n < 0 ? errno : EPIPE;
  }
  return 0;
}

void KeepAlive(int fd, int keepalive_s) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_s, sizeof keepalive_s);
}

void ReportSoon(Engine* e) {
  uv_timer_start(&e->tick, OnTick, 0, 1000);
}

void RegisterSide(Engine* e, Side* s) {
  struct epoll_event ev;
  ev.events = kSideEvents;
  ev.data.ptr = static_cast<Watched*>(s);
  epoll_ctl(e->epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

void RunTunnel(Engine* e, Tunnel* t) {
  e->tunnels[t->id] = t;
  for (int i = 0; i < 2; i++) {
    t->side[i].kind = Kind::kTunnelSide;
    t->side[i].tunnel = t;
    t->side[i].index = i;
  }
  // Early bytes (a 101 head, bytes sent with the request) go first, written now if the socket
  // takes them, as it nearly always does; the rest waits for the socket's EPOLLOUT edge.
  for (int i = 0; i < 2; i++) {
    Side& s = t->side[i];
    int err = WriteSome(s.fd, s.pending.data(), s.pending.size(), &s.pending_off);
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

// Reports closed tunnels (one call with [id, reason, errno, up, down, …]) and the front's
// events (one call with [type, id, a, text, bytes, …]) to JavaScript.
void Report(Engine* e) {
  for (Tunnel* t : e->graveyard)
    delete t;
  e->graveyard.clear();
  FreeHandshakes(e);
  if (e->events.empty() && e->front_events.empty()) return;
  napi_env env = e->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value recv, cb, arr, v;
  napi_get_global(env, &recv);  // make_callback needs an object as `this`
  // The front first: a tunnel closed in this turn may have been established in it.
  while (!e->front_events.empty()) {
    std::vector<FrontEvent> evs;
    evs.swap(e->front_events);
    napi_create_array_with_length(env, evs.size() * 5, &arr);
    uint32_t k = 0;
    for (FrontEvent& ev : evs) {
      napi_create_int32(env, ev.type, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_uint32(env, ev.id, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_int32(env, ev.a, &v);
      napi_set_element(env, arr, k++, v);
      if (ev.text.empty())
        napi_get_undefined(env, &v);
      else
        napi_create_string_latin1(env, ev.text.data(), ev.text.size(), &v);
      napi_set_element(env, arr, k++, v);
      if (ev.bytes.empty())
        napi_get_undefined(env, &v);
      else
        napi_create_buffer_copy(env, ev.bytes.size(), ev.bytes.data(), nullptr, &v);
      napi_set_element(env, arr, k++, v);
    }
    napi_get_reference_value(env, e->on_front, &cb);
    // make_callback runs the microtasks and reports an exception as uncaught, like any I/O callback.
    napi_make_callback(env, e->async_context, recv, cb, 1, &arr, nullptr);
  }
  if (!e->events.empty()) {
    std::vector<CloseEvent> evs;
    evs.swap(e->events);
    napi_create_array_with_length(env, evs.size() * 5, &arr);
    uint32_t k = 0;
    for (const CloseEvent& ev : evs) {
      napi_create_uint32(env, ev.id, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_int32(env, ev.reason, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_int32(env, ev.err, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_double(env, ev.up, &v);
      napi_set_element(env, arr, k++, v);
      napi_create_double(env, ev.down, &v);
      napi_set_element(env, arr, k++, v);
    }
    napi_get_reference_value(env, e->on_close, &cb);
    napi_make_callback(env, e->async_context, recv, cb, 1, &arr, nullptr);
  }
  napi_close_handle_scope(env, scope);
  // JavaScript may have finished tunnels or handshakes synchronously; free them now.
  for (Tunnel* t : e->graveyard)
    delete t;
  e->graveyard.clear();
  FreeHandshakes(e);
}

namespace {

void OnPoll(uv_poll_t* handle, int status, int events) {
  Engine* e = static_cast<Engine*>(handle->data);
  e->in_callback = true;
  struct epoll_event evs[kMaxEvents];
  int n;
  do {
    n = epoll_wait(e->epfd, evs, kMaxEvents, 0);
  } while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++) {
    Watched* w = static_cast<Watched*>(evs[i].data.ptr);
    if (w->kind == Kind::kTunnelSide)
      HandleEvent(e, static_cast<Side*>(w), evs[i].events);
    else
      HandleFrontEvent(e, w, evs[i].events);
  }
  Report(e);
  e->in_callback = false;
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

void OnTick(uv_timer_t* handle) {
  Engine* e = static_cast<Engine*>(handle->data);
  e->in_callback = true;
  RunReady(e);
  int64_t now = NowMs();
  if (!e->fin_wait.empty()) {
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
  FrontTick(e, now);
  Report(e);
  e->in_callback = false;
}

}  // namespace

// ---- JavaScript side ----

napi_value Throw(napi_env env, const char* msg) {
  napi_throw_error(env, nullptr, msg);
  return nullptr;
}

void SetNumber(napi_env env, napi_value obj, const char* name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

bool GetUint32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

bool CopyBuffer(napi_env env, napi_value v, std::vector<char>* out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return true;
  void* data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return false;
  out->assign(static_cast<char*>(data), static_cast<char*>(data) + len);
  return true;
}

namespace {

// start(onClose: (events: number[]) => void, onFront: (events: unknown[]) => void): void
napi_value Start(napi_env env, napi_callback_info info) {
  if (g_engine != nullptr) return Throw(env, "native tunnel engine already started");
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uv_loop_t* loop;
  if (argc < 2 || napi_get_uv_event_loop(env, &loop) != napi_ok) return Throw(env, "start(onClose, onFront)");
  Engine* e = new Engine();
  e->env = env;
  e->max_reading = MaxUnreadHeads();
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (e->epfd < 0) {
    delete e;
    return Throw(env, "epoll unavailable");
  }
  napi_create_reference(env, argv[0], 1, &e->on_close);
  napi_create_reference(env, argv[1], 1, &e->on_front);
  napi_value resource_name;
  napi_create_string_utf8(env, "wsgate.tunnel", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, nullptr, resource_name, &e->async_context);
  uv_poll_init(loop, &e->poll, e->epfd);
  e->poll.data = e;
  uv_poll_start(&e->poll, UV_READABLE, OnPoll);
  uv_timer_init(loop, &e->tick);
  e->tick.data = e;
  uv_timer_start(&e->tick, OnTick, 1000, 1000);
  // Neither handle keeps the process alive: live tunnels are not a reason to keep running by
  // themselves (the gateway's listeners are).
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->poll));
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->tick));
  g_engine = e;
  return nullptr;
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

// adopt(id, clientFd, backendFd, keepaliveSeconds, toBackend?: Buffer, toClient?: Buffer): void
// The fds are duplicated: the caller closes its own afterwards. Early bytes (sent with the
// request head, or with the 101) are written first. A tunnel that ends at once (a write fails)
// is reported on the next loop turn like any other.
napi_value AdoptJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  if (e == nullptr) return Throw(env, "native tunnel engine not started");
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id, cfd, bfd, keepalive_s;
  if (argc < 4 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &cfd) || !GetUint32(env, argv[2], &bfd) ||
      !GetUint32(env, argv[3], &keepalive_s)) {
    return Throw(env, "adopt(id, clientFd, backendFd, keepaliveSeconds, toBackend?, toClient?)");
  }
  Tunnel* t = new Tunnel();
  t->id = id;
  // side[1].pending: bytes for the backend; side[0].pending: bytes for the client.
  if ((argc > 4 && !CopyBuffer(env, argv[4], &t->side[1].pending)) || (argc > 5 && !CopyBuffer(env, argv[5], &t->side[0].pending))) {
    delete t;
    return Throw(env, "early bytes must be Buffers");
  }
  t->side[0].fd = DupSocket(int(cfd), int(keepalive_s));
  t->side[1].fd = DupSocket(int(bfd), int(keepalive_s));
  if (t->side[0].fd < 0 || t->side[1].fd < 0) {
    int err = errno;
    if (t->side[0].fd >= 0) close(t->side[0].fd);
    if (t->side[1].fd >= 0) close(t->side[1].fd);
    delete t;
    return Throw(env, strerror(err));
  }
  for (Side& s : t->side) {
    s.readable = true;  // Node may have left bytes in the kernel: the first Pump reads them
    RegisterSide(e, &s);
  }
  RunTunnel(e, t);
  return nullptr;
}

// Reads the (id, out: Float64Array(2)) arguments of close() and bytes(); null on a bad call.
double* IdAndOut(napi_env env, napi_callback_info info, uint32_t* id) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (argc < 2 || !GetUint32(env, argv[0], id) ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array ||
      length < 2) {
    return nullptr;
  }
  return static_cast<double*>(data);
}

// close(id, out: Float64Array(2)): boolean — ends the tunnel now, fills [up, down] and returns
// true; false if it had already ended (its close is reported through onClose as usual).
napi_value CloseJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  uint32_t id;
  double* out = IdAndOut(env, info, &id);
  if (e == nullptr || out == nullptr) return Throw(env, "close(id, Float64Array(2))");
  napi_value result;
  auto it = e->tunnels.find(id);
  bool found = it != e->tunnels.end();
  if (found) {
    Tunnel* t = it->second;
    out[0] = double(t->bytes[0]);
    out[1] = double(t->bytes[1]);
    Finish(e, t, kShutdown, 0);
    e->events.pop_back();  // reported to the caller right here, not through onClose
  }
  napi_get_boolean(env, found, &result);
  return result;
}

// bytes(id, out: Float64Array(2)): boolean — fills [up, down]; false if the tunnel is gone.
napi_value BytesJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  uint32_t id;
  double* out = IdAndOut(env, info, &id);
  if (e == nullptr || out == nullptr) return Throw(env, "bytes(id, Float64Array(2))");
  napi_value result;
  auto it = e->tunnels.find(id);
  bool found = it != e->tunnels.end();
  if (found) {
    out[0] = double(it->second->bytes[0]);
    out[1] = double(it->second->bytes[1]);
  }
  napi_get_boolean(env, found, &result);
  return result;
}

// Reads the (id, toward) arguments of send() and endToward(); the live tunnel, or null.
Tunnel* TunnelAndSide(napi_env env, napi_value* argv, size_t argc, int* index) {
  uint32_t id, toward;
  if (g_engine == nullptr || argc < 2 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &toward) || toward > 1) return nullptr;
  auto it = g_engine->tunnels.find(id);
  if (it == g_engine->tunnels.end() || it->second->closed) return nullptr;
  *index = int(toward);
  return it->second;
}

// send(id, toward: 0 client | 1 backend, bytes: Buffer): boolean — false if the tunnel is gone
// or that direction ended.
napi_value SendJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  size_t len = 0;
  if (argc < 3 || napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) return Throw(env, "send(id, toward, Buffer)");
  int index;
  Tunnel* t = TunnelAndSide(env, argv, argc, &index);
  napi_value result;
  napi_get_boolean(env, t != nullptr && SendToward(g_engine, t, index, static_cast<const char*>(data), len), &result);
  return result;
}

// endToward(id, toward: 0 client | 1 backend): boolean — false if the tunnel is gone or that
// direction had ended.
napi_value EndTowardJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int index;
  Tunnel* t = TunnelAndSide(env, argv, argc, &index);
  napi_value result;
  napi_get_boolean(env, t != nullptr && EndToward(g_engine, t, index), &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adopt", nullptr, AdoptJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, CloseJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bytes", nullptr, BytesJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, SendJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"endToward", nullptr, EndTowardJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontListen", nullptr, FrontListenJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontUnlisten", nullptr, FrontUnlistenJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontHandoff", nullptr, FrontHandoffJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontConnect", nullptr, FrontConnectJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontEstablish", nullptr, FrontEstablishJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontRespond", nullptr, FrontRespondJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontAbort", nullptr, FrontAbortJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontLocalAddress", nullptr, FrontLocalAddressJs, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value contract, events, reasons, limits, v;
  napi_create_object(env, &contract);
  napi_create_object(env, &events);
  napi_create_object(env, &limits);
  // Close reasons by number: reasons[kClientReset] === 'client-reset'.
  static const char* const kReasonNames[] = {"closed",        "client-error", "backend-error", "client-reset",
                                             "backend-reset", "shutdown",     "fin-timeout"};
  static_assert(sizeof kReasonNames / sizeof kReasonNames[0] == kFinTimeout + 1, "one name per Reason");
  napi_create_array_with_length(env, kFinTimeout + 1, &reasons);
  for (uint32_t i = 0; i <= uint32_t(kFinTimeout); i++) {
    napi_create_string_utf8(env, kReasonNames[i], NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, reasons, i, v);
  }
  SetNumber(env, limits, "finTimeoutMs", double(kFinTimeoutMs));
  SetNumber(env, limits, "readSize", double(kReadSize));
  SetNumber(env, limits, "maxUnreadHeads", double(MaxUnreadHeads()));
  ExportFrontContract(env, events, limits);
  napi_set_named_property(env, contract, "events", events);
  napi_set_named_property(env, contract, "reasons", reasons);
  napi_set_named_property(env, contract, "limits", limits);
  napi_set_named_property(env, exports, "contract", contract);
  return exports;
}

}  // namespace
}  // namespace wsgate

NAPI_MODULE(NODE_GYP_MODULE_NAME, wsgate::Init)

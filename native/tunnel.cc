// wsgate's native tunnel engine: moves the bytes of established tunnels between two TCP sockets
// on one epoll thread, outside the JavaScript heap and event loop.
//
// JavaScript hands over both file descriptors of a tunnel after the 101 (adopt); this engine
// dup()s them, so Node can close its own handles and free its socket objects, and from then on
// forwards bytes with read()/write() through one shared 64 KiB buffer. An idle tunnel costs a
// small struct here and nothing in JavaScript but its record. Everything the JS tunnel does is
// done here too: backpressure (a side with unsent bytes stops the other side's reads), half-close
// (a FIN is forwarded with shutdown(SHUT_WR) once the bytes before it are written), byte counts,
// one teardown with a reason, and the FIN timeout. JavaScript polls byte counts for its idle
// timer and receives one event per closed tunnel.
//
// Threading: tunnel state is touched only by the epoll thread, except the byte counters
// (atomics, read by JS). JS → thread: a command queue under a mutex, woken through an eventfd.
// Thread → JS: a queue of close events drained by a napi threadsafe function.

#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// Why a tunnel ended; the numbers match src/tunnel/native.ts.
enum Reason : int32_t {
  kClosed = 0,
  kClientError = 1,
  kBackendError = 2,
  kClientReset = 3,
  kBackendReset = 4,
  kShutdown = 5,
  kFinTimeout = 6,
};

constexpr size_t kReadSize = 64 * 1024;
constexpr int64_t kFinTimeoutMs = 30000;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Tunnel;

// One socket of a tunnel, with the bytes still to be written TO it.
struct Side {
  int fd = -1;
  bool read_eof = false;   // this socket sent its FIN
  bool shut_wr = false;    // we forwarded the other side's FIN to this socket
  bool want_read = true;   // EPOLLIN is registered
  bool want_write = false; // EPOLLOUT is registered
  std::vector<char> pending;  // unsent bytes for this socket
  size_t pending_off = 0;
  Tunnel* tunnel = nullptr;
  int index = 0;  // 0 = client, 1 = backend
};

struct Tunnel {
  uint32_t id = 0;
  Side side[2];
  // bytes[0]: client → backend, bytes[1]: backend → client
  std::atomic<uint64_t> bytes[2];
  int64_t fin_deadline = 0;  // set once both sides sent their FIN
  bool closed = false;
  Tunnel() { bytes[0] = 0; bytes[1] = 0; }
};

struct Command {
  enum Kind { kAdopt, kClose } kind;
  Tunnel* tunnel;  // kAdopt
  uint32_t id;     // kClose
};

struct CloseEvent {
  uint32_t id;
  int32_t reason;
  int32_t err;
  double up;
  double down;
};

struct Engine {
  int epfd = -1;
  int evfd = -1;
  std::thread thread;
  std::mutex mu;  // guards commands, events, tunnels (map membership)
  std::vector<Command> commands;
  std::vector<CloseEvent> events;
  std::unordered_map<uint32_t, Tunnel*> tunnels;
  // Finished tunnels are freed after the current epoll batch: later events of the same batch may
  // still point at their sides. Only the epoll thread touches this.
  std::vector<Tunnel*> graveyard;
  napi_threadsafe_function tsfn = nullptr;
  bool event_pending = false;
  bool stopping = false;
  char buf[kReadSize];
};

Engine* g_engine = nullptr;

void UpdateInterest(Engine* e, Side* s) {
  struct epoll_event ev;
  ev.events = (s->want_read ? uint32_t(EPOLLIN | EPOLLRDHUP) : 0u) | (s->want_write ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = s;
  epoll_ctl(e->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

void Finish(Engine* e, Tunnel* t, int32_t reason, int32_t err) {
  if (t->closed) return;
  t->closed = true;
  for (Side& s : t->side) {
    if (s.fd >= 0) {
      epoll_ctl(e->epfd, EPOLL_CTL_DEL, s.fd, nullptr);
      close(s.fd);
      s.fd = -1;
    }
  }
  CloseEvent ev{t->id, reason, err, double(t->bytes[0].load(std::memory_order_relaxed)),
                double(t->bytes[1].load(std::memory_order_relaxed))};
  bool notify;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    e->tunnels.erase(t->id);
    e->events.push_back(ev);
    notify = !e->event_pending;
    e->event_pending = true;
  }
  if (notify) napi_call_threadsafe_function(e->tsfn, nullptr, napi_tsfn_nonblocking);
  e->graveyard.push_back(t);
}

int32_t ResetReason(int index) { return index == 0 ? kClientReset : kBackendReset; }
int32_t ErrorReason(int index) { return index == 0 ? kClientError : kBackendError; }

bool IsReset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

// Both FINs forwarded and every byte written: the tunnel is done.
bool MaybeDone(Engine* e, Tunnel* t) {
  Side& a = t->side[0];
  Side& b = t->side[1];
  if (a.read_eof && b.read_eof && a.shut_wr && b.shut_wr) {
    Finish(e, t, kClosed, 0);
    return true;
  }
  if (a.read_eof && b.read_eof && t->fin_deadline == 0) t->fin_deadline = NowMs() + kFinTimeoutMs;
  return false;
}

// Writes `dst`'s pending bytes. Returns false if the tunnel was finished.
bool FlushPending(Engine* e, Side* dst, Side* src) {
  Tunnel* t = dst->tunnel;
  while (dst->pending_off < dst->pending.size()) {
    ssize_t n = write(dst->fd, dst->pending.data() + dst->pending_off, dst->pending.size() - dst->pending_off);
    if (n > 0) {
      dst->pending_off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!dst->want_write) {
        dst->want_write = true;
        UpdateInterest(e, dst);
      }
      return true;
    }
    int err = errno;
    Finish(e, t, IsReset(err) ? ResetReason(dst->index) : ErrorReason(dst->index), err);
    return false;
  }
  dst->pending.clear();
  dst->pending.shrink_to_fit();  // an idle tunnel holds no buffer
  dst->pending_off = 0;
  if (dst->want_write) {
    dst->want_write = false;
    UpdateInterest(e, dst);
  }
  // Drained: the source may read again, or its FIN may now be forwarded.
  if (src->read_eof) {
    if (!dst->shut_wr) {
      shutdown(dst->fd, SHUT_WR);
      dst->shut_wr = true;
    }
    return !MaybeDone(e, t);
  }
  if (!src->want_read) {
    src->want_read = true;
    UpdateInterest(e, src);
  }
  return true;
}

// `src` is readable: read once and forward to the other side.
void OnReadable(Engine* e, Side* src) {
  Tunnel* t = src->tunnel;
  Side* dst = &t->side[1 - src->index];
  ssize_t n;
  do {
    n = read(src->fd, e->buf, kReadSize);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    int err = errno;
    Finish(e, t, IsReset(err) ? ResetReason(src->index) : ErrorReason(src->index), err);
    return;
  }
  if (n == 0) {
    src->read_eof = true;
    src->want_read = false;
    UpdateInterest(e, src);
    if (dst->pending_off >= dst->pending.size() && !dst->shut_wr) {
      shutdown(dst->fd, SHUT_WR);
      dst->shut_wr = true;
    }
    MaybeDone(e, t);
    return;
  }
  t->bytes[src->index].fetch_add(uint64_t(n), std::memory_order_relaxed);
  size_t off = 0;
  for (;;) {
    ssize_t w = write(dst->fd, e->buf + off, size_t(n) - off);
    if (w > 0) {
      off += size_t(w);
      if (off == size_t(n)) return;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    int err = errno;
    Finish(e, t, IsReset(err) ? ResetReason(dst->index) : ErrorReason(dst->index), err);
    return;
  }
  // The destination is full: keep the rest, stop reading here until it drains.
  dst->pending.assign(e->buf + off, e->buf + n);
  dst->pending_off = 0;
  dst->want_write = true;
  UpdateInterest(e, dst);
  src->want_read = false;
  UpdateInterest(e, src);
}

void Adopt(Engine* e, Tunnel* t) {
  for (Side& s : t->side) {
    struct epoll_event ev;
    s.want_read = true;
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &s;
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, s.fd, &ev);
  }
  // Early bytes (sent with the request head or with the 101) go out first.
  for (int i = 0; i < 2; i++) {
    Side& dst = t->side[i];
    if (!dst.pending.empty()) {
      Side& src = t->side[1 - i];
      src.want_read = false;
      UpdateInterest(e, &src);
      if (!FlushPending(e, &dst, &src)) return;
    }
  }
}

void DrainCommands(Engine* e) {
  uint64_t v;
  ssize_t r = read(e->evfd, &v, sizeof v);
  (void)r;
  std::vector<Command> cmds;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    cmds.swap(e->commands);
  }
  for (const Command& c : cmds) {
    if (c.kind == Command::kAdopt) {
      Adopt(e, c.tunnel);
    } else {
      Tunnel* t = nullptr;
      {
        std::lock_guard<std::mutex> lock(e->mu);
        auto it = e->tunnels.find(c.id);
        if (it != e->tunnels.end()) t = it->second;
      }
      if (t != nullptr) Finish(e, t, kShutdown, 0);
    }
  }
}

void CheckFinTimeouts(Engine* e) {
  int64_t now = NowMs();
  std::vector<Tunnel*> expired;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    for (auto& kv : e->tunnels) {
      Tunnel* t = kv.second;
      if (t->fin_deadline != 0 && t->fin_deadline <= now) expired.push_back(t);
    }
  }
  for (Tunnel* t : expired) Finish(e, t, kFinTimeout, 0);
}

void Run(Engine* e) {
  constexpr int kMaxEvents = 256;
  struct epoll_event events[kMaxEvents];
  int64_t next_fin_check = NowMs() + 1000;
  for (;;) {
    int n = epoll_wait(e->epfd, events, kMaxEvents, 1000);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == nullptr) {
        DrainCommands(e);
        continue;
      }
      Side* s = static_cast<Side*>(events[i].data.ptr);
      Tunnel* t = s->tunnel;
      if (t->closed) continue;
      uint32_t ev = events[i].events;
      Side* other = &t->side[1 - s->index];
      if (s->want_write && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        // A failed write ends the tunnel with the socket's error.
        if (!FlushPending(e, s, other) || t->closed) continue;
      }
      if (s->want_read) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) OnReadable(e, s);
      } else if (!s->want_write && (ev & (EPOLLHUP | EPOLLERR))) {
        // Neither reading nor writing here, yet the socket hung up or failed: its peer is gone,
        // so nothing more can be delivered to it. (Level-triggered: ignoring it would spin.)
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        Finish(e, t, err != 0 && !IsReset(err) ? ErrorReason(s->index) : ResetReason(s->index), err);
      }
    }
    for (Tunnel* t : e->graveyard) delete t;
    e->graveyard.clear();
    {
      std::lock_guard<std::mutex> lock(e->mu);
      if (e->stopping) break;
    }
    int64_t now = NowMs();
    if (now >= next_fin_check) {
      CheckFinTimeouts(e);
      next_fin_check = now + 1000;
    }
  }
}

// ---- JavaScript side ----

void CallJs(napi_env env, napi_value js_cb, void*, void*) {
  if (env == nullptr || g_engine == nullptr) return;
  std::vector<CloseEvent> evs;
  {
    std::lock_guard<std::mutex> lock(g_engine->mu);
    evs.swap(g_engine->events);
    g_engine->event_pending = false;
  }
  if (evs.empty()) return;
  napi_value arr;
  napi_create_array_with_length(env, evs.size() * 5, &arr);
  uint32_t k = 0;
  for (const CloseEvent& ev : evs) {
    napi_value v;
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
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 1, &arr, nullptr);
}

napi_value Throw(napi_env env, const char* msg) {
  napi_throw_error(env, nullptr, msg);
  return nullptr;
}

// start(onClose: (events: number[]) => void): void
napi_value Start(napi_env env, napi_callback_info info) {
  if (g_engine != nullptr) return Throw(env, "native tunnel engine already started");
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Engine* e = new Engine();
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->epfd < 0 || e->evfd < 0) {
    delete e;
    return Throw(env, "epoll or eventfd unavailable");
  }
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev);
  napi_value name;
  napi_create_string_utf8(env, "wsgate-native-tunnel", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], nullptr, name, 0, 1, nullptr, nullptr, nullptr, CallJs, &e->tsfn) != napi_ok) {
    delete e;
    return Throw(env, "cannot create threadsafe function");
  }
  // The engine must not keep the process alive by itself: JS keeps its own handles for tunnels.
  napi_unref_threadsafe_function(env, e->tsfn);
  g_engine = e;
  e->thread = std::thread(Run, e);
  return nullptr;
}

bool GetUint32(napi_env env, napi_value v, uint32_t* out) { return napi_get_value_uint32(env, v, out) == napi_ok; }

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

// A non-blocking duplicate of a connected TCP socket, with no-delay and TCP keepalive (first
// probe after `keepalive_s` of silence) so that vanished peers are found.
int DupSocket(int fd, int keepalive_s) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -1;
  int flags = fcntl(d, F_GETFL);
  fcntl(d, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(d, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(d, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_s, sizeof keepalive_s);
  return d;
}

// adopt(id, clientFd, backendFd, keepaliveSeconds, toBackend?: Buffer, toClient?: Buffer): void
// The fds are duplicated: the caller closes its own afterwards.
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
  for (int i = 0; i < 2; i++) {
    t->side[i].tunnel = t;
    t->side[i].index = i;
  }
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
    napi_throw_error(env, nullptr, strerror(err));
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(e->mu);
    e->tunnels[id] = t;
    e->commands.push_back(Command{Command::kAdopt, t, id});
  }
  uint64_t one = 1;
  ssize_t r = write(e->evfd, &one, sizeof one);
  (void)r;
  return nullptr;
}

// close(id): ends the tunnel now (reason shutdown); a no-op if it already ended.
napi_value CloseJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  if (e == nullptr) return nullptr;
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  if (argc < 1 || !GetUint32(env, argv[0], &id)) return Throw(env, "close(id)");
  {
    std::lock_guard<std::mutex> lock(e->mu);
    e->commands.push_back(Command{Command::kClose, nullptr, id});
  }
  uint64_t one = 1;
  ssize_t r = write(e->evfd, &one, sizeof one);
  (void)r;
  return nullptr;
}

// bytes(id, out: Float64Array(2)): boolean — fills [up, down]; false if the tunnel is gone.
napi_value BytesJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  napi_value result;
  if (e == nullptr || argc < 2 || !GetUint32(env, argv[0], &id)) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array || length < 2) {
    return Throw(env, "bytes(id, Float64Array(2))");
  }
  double* out = static_cast<double*>(data);
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    auto it = e->tunnels.find(id);
    if (it != e->tunnels.end()) {
      out[0] = double(it->second->bytes[0].load(std::memory_order_relaxed));
      out[1] = double(it->second->bytes[1].load(std::memory_order_relaxed));
      found = true;
    }
  }
  napi_get_boolean(env, found, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adopt", nullptr, AdoptJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, CloseJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bytes", nullptr, BytesJs, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

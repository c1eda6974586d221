// The engine core: one epoll set for every socket the native engine owns (tunnels, listeners,
// handshakes), itself watched by libuv (a uv_poll on the epoll fd), so all of its I/O runs on
// Node's loop thread between JavaScript callbacks: no second thread, no locks, and no
// cross-thread wake-ups, which cost 15-20 us of CPU each on a VM. Each epoll event goes to its
// owner (tunnel.cc or front.cc) by the kind its data.ptr starts with; what they queue for
// JavaScript is reported in one call per loop turn (Report, binding.cc).

#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "front.h"
#include "tunnel.h"

namespace wsgate {

Engine* g_engine = nullptr;

namespace {

// Events handled per poll callback before yielding back to libuv (and so to JavaScript).
constexpr int kMaxEvents = 256;

void OnTick(uv_timer_t* handle);

void OnPoll(uv_poll_t* handle, int status, int events) {
  Engine* e = static_cast<Engine*>(handle->data);
  e->in_callback = true;
  struct epoll_event evs[kMaxEvents];
  int n;
  do {
    n = epoll_wait(e->epfd.get(), evs, kMaxEvents, 0);
  } while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++) {
    Watched* w = static_cast<Watched*>(evs[i].data.ptr);
    if (w->kind == Kind::kTunnelSide)
      HandleTunnelEvent(e, static_cast<Side*>(w), evs[i].events);
    else
      HandleFrontEvent(e, w, evs[i].events);
  }
  Report(e);
  e->in_callback = false;
}

void OnTick(uv_timer_t* handle) {
  Engine* e = static_cast<Engine*>(handle->data);
  e->in_callback = true;
  RunReady(e);
  int64_t now = NowMs();
  TunnelTick(e, now);
  FrontTick(e, now);
  Report(e);
  e->in_callback = false;
}

void OnPingTick(uv_timer_t* handle) {
  Engine* e = static_cast<Engine*>(handle->data);
  e->in_callback = true;
  PingTick(e, NowMs());
  Report(e);
  e->in_callback = false;
}

}  // namespace

void SetPingTimer(Engine* e, int64_t granule) {
  e->ping_granule = granule;
  if (granule == 0)
    uv_timer_stop(&e->ping_tick);
  else
    uv_timer_start(&e->ping_tick, OnPingTick, uint64_t(granule), uint64_t(granule));
}

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
  epoll_ctl(e->epfd.get(), EPOLL_CTL_MOD, fd, &ev);
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

void FreeFinished(Engine* e) {
  e->graveyard.clear();
  FreeHandshakes(e);
}

Engine* CreateEngine(uv_loop_t* loop) {
  auto e = std::make_unique<Engine>();
  e->max_reading = MaxUnreadHeads();
  e->epfd.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!e->epfd.valid()) return nullptr;
  uv_poll_init(loop, &e->poll, e->epfd.get());
  e->poll.data = e.get();
  uv_poll_start(&e->poll, UV_READABLE, OnPoll);
  uv_timer_init(loop, &e->tick);
  e->tick.data = e.get();
  uv_timer_start(&e->tick, OnTick, 1000, 1000);
  uv_timer_init(loop, &e->ping_tick);
  e->ping_tick.data = e.get();
  // Neither handle keeps the process alive: live tunnels are not a reason to keep running by
  // themselves (the gateway's listeners are).
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->poll));
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->tick));
  uv_unref(reinterpret_cast<uv_handle_t*>(&e->ping_tick));
  // The engine lives as long as the process: its handles are on the loop.
  return e.release();
}

void StopEngine(Engine* e) {
  // Node turns the loop again while it frees the environment, to close its own handles, and a
  // socket of ours may become readable then; the N-API env may already be gone by that turn (a
  // stop crashed in Report's napi_open_handle_scope so). Sockets still open close with the process.
  e->env = nullptr;
  uv_poll_stop(&e->poll);
  uv_timer_stop(&e->tick);
  uv_timer_stop(&e->ping_tick);
}

}  // namespace wsgate

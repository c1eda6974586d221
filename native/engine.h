// The engine core shared by wsgate's native halves: the epoll set run on the libuv loop, the
// queue of events reported to JavaScript once per loop turn, and small pieces every half uses.
// What runs on it: tunnels (tunnel.h, tunnel.cc) and the native front (front.h, front.cc); the
// N-API binding (binding.cc) is the only file that speaks to JavaScript.

#ifndef WSGATE_ENGINE_H_
#define WSGATE_ENGINE_H_

#include <node_api.h>
#include <uv.h>

#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wsgate {

constexpr size_t kReadSize = 64 * 1024;
// Connections reading their first head (accepted, head incomplete) may be a quarter of the
// descriptor limit, and at least this many: past that, the oldest is closed for each new one.
constexpr size_t kMinUnreadHeads = 64;
size_t MaxUnreadHeads();

// A file descriptor with one owner, closed when the owner lets go of it without handing it on.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor away: the caller closes it (or hands it on) from now on.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// What an epoll entry's data.ptr points at; every watched struct starts with its kind.
enum class Kind : uint8_t { kTunnelSide, kListener, kHandshakeClient, kHandshakeBackend };
struct Watched {
  Kind kind;
  explicit Watched(Kind k) : kind(k) {}
};

// Every socket of a tunnel (and of a handshake, which becomes one) is registered once with these
// and never modified: edge-triggered, so no epoll_ctl per chunk or per state change.
constexpr uint32_t kSideEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

struct Side;
struct Tunnel;
struct Handshake;
struct Listener;

struct CloseEvent {
  uint32_t id;
  int32_t reason;
  int32_t err;
  double up;
  double down;
};

// An event of the native front for JavaScript (front.h documents the types).
struct FrontEvent {
  int32_t type;
  uint32_t id;
  int32_t a;
  std::string text;         // the client's address, for a new request
  std::vector<char> bytes;  // a request or response head
};

struct Engine {
  napi_env env = nullptr;
  napi_ref on_close = nullptr;
  napi_ref on_front = nullptr;
  napi_async_context async_context = nullptr;
  UniqueFd epfd;
  uv_poll_t poll;
  uv_timer_t tick;  // once a second: FIN timeouts, request-head timeouts, paused listeners
  // Live tunnels by id; each owned by its entry until it finishes (then by `graveyard`).
  std::unordered_map<uint32_t, std::unique_ptr<Tunnel>> tunnels;
  std::vector<Tunnel*> fin_wait;  // tunnels with a FIN deadline
  // WebSocket tunnels with keep-alive pings, checked by `ping_tick` every `ping_granule` ms (a
  // quarter of the shortest interval in use, 20 ms to 1 s): one timer for all of them.
  std::vector<Tunnel*> pingers;
  uv_timer_t ping_tick;
  int64_t ping_granule = 0;
  std::vector<CloseEvent> events;  // closes not yet reported to JavaScript
  std::vector<FrontEvent> front_events;
  // Finished records are freed after the current batch of epoll events: later events of the
  // same batch may still point at them.
  std::vector<std::unique_ptr<Tunnel>> graveyard;
  std::vector<Handshake*> handshake_graveyard;
  std::vector<Side*> ready;  // sides that stopped at their read cap (tunnel.cc Pump)
  std::unordered_map<uint32_t, Handshake*> handshakes;
  // Connections reading their first head, oldest first (front.cc), and how many may be.
  Handshake* oldest_reading = nullptr;
  Handshake* newest_reading = nullptr;
  size_t reading = 0;
  size_t max_reading = 0;
  std::unordered_map<uint32_t, std::unique_ptr<Listener>> listeners;
  uint32_t next_handshake_id = 1;
  // Inside OnPoll/OnTick: queued events are reported at its end. Outside (a JS call from a timer
  // or a DNS callback), queuing one asks for a Report at the next loop turn.
  bool in_callback = false;
  char buf[kReadSize];
};

extern Engine* g_engine;

// Makes the engine on `loop` (an epoll set watched by a uv_poll, and the once-a-second tick);
// null if epoll is unavailable. The binding sets its JavaScript callbacks.
Engine* CreateEngine(uv_loop_t* loop);
// Node is freeing its environment: stops the engine's poll and timers and forgets the N-API env,
// so that nothing more reaches JavaScript (binding.cc registers it as an env cleanup hook).
void StopEngine(Engine* e);

int64_t NowMs();
void SetInterest(Engine* e, int fd, Watched* w, uint32_t events);
// Hands queued events to JavaScript and frees finished records (binding.cc).
void Report(Engine* e);
// Frees the records finished since the last call (after a batch of epoll events).
void FreeFinished(Engine* e);
// Makes the next Report come at the next loop turn (something finished outside a callback).
void ReportSoon(Engine* e);
// Something was queued for JavaScript: reported at the end of the current callback, or soon.
inline void Queued(Engine* e) {
  if (!e->in_callback) ReportSoon(e);
}
void KeepAlive(int fd, int keepalive_s);
// (Re)starts the ping timer with `granule` ms between checks; 0 stops it.
void SetPingTimer(Engine* e, int64_t granule);
// Writes data[*off, len) to a non-blocking socket until all is written or it is full, advancing
// *off. Returns 0 (check *off against len), or the errno of a failed write.
int WriteSome(int fd, const char* data, size_t len, size_t* off);

}  // namespace wsgate

#endif  // WSGATE_ENGINE_H_

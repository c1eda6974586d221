// What the two halves of wsgate's native engine share: the epoll set run on the libuv loop, the
// tunnel records (tunnel.cc), the handshakes and listeners of the native front (front.cc), and
// the queue of events reported to JavaScript once per loop turn.

#ifndef WSGATE_ENGINE_H_
#define WSGATE_ENGINE_H_

#include <node_api.h>
#include <uv.h>

#include <stdint.h>
#include <sys/epoll.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace wsgate {

constexpr size_t kReadSize = 64 * 1024;
// Connections reading their first head (accepted, head incomplete) may be a quarter of the
// descriptor limit, and at least this many: past that, the oldest is closed for each new one.
constexpr size_t kMinUnreadHeads = 64;
size_t MaxUnreadHeads();

// What an epoll entry's data.ptr points at; every watched struct starts with its kind.
enum class Kind : uint8_t { kTunnelSide, kListener, kHandshakeClient, kHandshakeBackend };
struct Watched {
  Kind kind;
  explicit Watched(Kind k) : kind(k) {}
};

// Every socket of a tunnel (and of a handshake, which becomes one) is registered once with these
// and never modified: edge-triggered, so no epoll_ctl per chunk or per state change.
constexpr uint32_t kSideEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

struct Handshake;

struct Tunnel;

// One socket of a tunnel, with the bytes still to be written TO it.
struct Side : Watched {
  Side() : Watched(Kind::kTunnelSide) {}
  int fd = -1;
  bool read_eof = false;  // this socket sent its FIN (read returned 0, or inferred: see Pump)
  bool shut_wr = false;   // we sent this socket our FIN (the other side's, or endToward's)
  // endToward asked for a FIN to this socket: it is sent once `pending` is written.
  bool end_queued = false;
  bool readable = false;  // an input edge came that has not been read to the end yet
  bool fin_seen = false;  // EPOLLRDHUP: the FIN is in; once the data is read, that is the EOF
  // EPOLLERR or EPOLLHUP came: the socket failed or hung up. Edge-triggered, that is said once, so
  // a short read no longer means "empty, wait for the next edge": reads go on to the error or EOF.
  bool hup_seen = false;
  std::vector<char> pending;  // unsent bytes for this socket
  size_t pending_off = 0;
  Tunnel* tunnel = nullptr;
  int index = 0;  // 0 = client, 1 = backend
};

struct Tunnel {
  uint32_t id = 0;
  Side side[2];
  // bytes[0]: client → backend, bytes[1]: backend → client
  uint64_t bytes[2] = {0, 0};
  int64_t fin_deadline = 0;  // set once both sides sent their FIN
  bool closed = false;
  // The engine holds the only descriptors of both sockets (made by the front, not dup()ed from
  // Node's): close() alone takes them out of the epoll set.
  bool sole_fds = false;
  // While the native front's handshake owns this tunnel-to-be (front.cc).
  Handshake* handshake = nullptr;
};

struct CloseEvent {
  uint32_t id;
  int32_t reason;
  int32_t err;
  double up;
  double down;
};

// An event of the native front for JavaScript (front.cc documents the types).
struct FrontEvent {
  int32_t type;
  uint32_t id;
  int32_t a;
  std::string text;         // the client's address, for a new request
  std::vector<char> bytes;  // a request or response head
};

struct Listener;

struct Engine {
  napi_env env = nullptr;
  napi_ref on_close = nullptr;
  napi_ref on_front = nullptr;
  napi_async_context async_context = nullptr;
  int epfd = -1;
  uv_poll_t poll;
  uv_timer_t tick;  // once a second: FIN timeouts, request-head timeouts, paused listeners
  std::unordered_map<uint32_t, Tunnel*> tunnels;
  std::vector<Tunnel*> fin_wait;   // tunnels with a FIN deadline
  std::vector<CloseEvent> events;  // closes not yet reported to JavaScript
  std::vector<FrontEvent> front_events;
  // Finished records are freed after the current batch of epoll events: later events of the
  // same batch may still point at them.
  std::vector<Tunnel*> graveyard;
  std::vector<Handshake*> handshake_graveyard;
  std::vector<Side*> ready;  // sides that stopped at their read cap (tunnel.cc Pump)
  std::unordered_map<uint32_t, Handshake*> handshakes;
  // Connections reading their first head, oldest first (front.cc), and how many may be.
  Handshake* oldest_reading = nullptr;
  Handshake* newest_reading = nullptr;
  size_t reading = 0;
  size_t max_reading = 0;
  std::unordered_map<uint32_t, Listener*> listeners;
  uint32_t next_handshake_id = 1;
  // Inside OnPoll/OnTick: queued events are reported at its end. Outside (a JS call from a timer
  // or a DNS callback), queuing one asks for a Report at the next loop turn.
  bool in_callback = false;
  char buf[kReadSize];
};

extern Engine* g_engine;

int64_t NowMs();
void SetInterest(Engine* e, int fd, Watched* w, uint32_t events);
// Starts relaying a tunnel whose sides have their fds and early bytes set and are in the epoll
// set, registered (RegisterSide) with data.ptr = the side itself.
void RunTunnel(Engine* e, Tunnel* t);
// Adds a side's socket to the epoll set with kSideEvents.
void RegisterSide(Engine* e, Side* s);
// Hands queued events to JavaScript and frees finished records.
void Report(Engine* e);
// Makes the next Report come at the next loop turn (something finished outside a callback).
void ReportSoon(Engine* e);
// Something was queued for JavaScript: reported at the end of the current callback, or soon.
inline void Queued(Engine* e) {
  if (!e->in_callback) ReportSoon(e);
}
void KeepAlive(int fd, int keepalive_s);
// Writes data[*off, len) to a non-blocking socket until all is written or it is full, advancing
// *off. Returns 0 (check *off against len), or the errno of a failed write.
int WriteSome(int fd, const char* data, size_t len, size_t* off);

// front.cc
void HandleFrontEvent(Engine* e, Watched* w, uint32_t ev);
void FrontTick(Engine* e, int64_t now);
void FreeHandshakes(Engine* e);
napi_value FrontListenJs(napi_env env, napi_callback_info info);
napi_value FrontUnlistenJs(napi_env env, napi_callback_info info);
napi_value FrontHandoffJs(napi_env env, napi_callback_info info);
napi_value FrontConnectJs(napi_env env, napi_callback_info info);
napi_value FrontEstablishJs(napi_env env, napi_callback_info info);
napi_value FrontRespondJs(napi_env env, napi_callback_info info);
napi_value FrontAbortJs(napi_env env, napi_callback_info info);
napi_value FrontLocalAddressJs(napi_env env, napi_callback_info info);

// The contract with TypeScript: each number JavaScript relies on is defined once, here in C++,
// and exported as `contract` ({events, reasons, limits}); src/tunnel/native.ts checks it at load.
void SetNumber(napi_env env, napi_value obj, const char* name, double value);
// front.cc: its event numbers and limits.
void ExportFrontContract(napi_env env, napi_value events, napi_value limits);

napi_value Throw(napi_env env, const char* msg);
bool GetUint32(napi_env env, napi_value v, uint32_t* out);
bool CopyBuffer(napi_env env, napi_value v, std::vector<char>* out);

}  // namespace wsgate

#endif  // WSGATE_ENGINE_H_

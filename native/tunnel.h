// Tunnels: two sockets and the bytes between them (tunnel.cc moves them).

#ifndef WSGATE_TUNNEL_H_
#define WSGATE_TUNNEL_H_

#include "engine.h"
#include "tls.h"
#include "wsframe.h"

namespace wsgate {

// Why a tunnel ended; exported by name (contract.reasons), checked by src/tunnel/native.ts.
enum Reason : int32_t {
  kClosed = 0,
  kClientError = 1,
  kBackendError = 2,
  kClientReset = 3,
  kBackendReset = 4,
  kShutdown = 5,
  kFinTimeout = 6,
  kPingTimeout = 7,  // a WebSocket side did not answer a ping in time (err: 1 the client, 2 the backend)
};
constexpr int kReasonCount = kPingTimeout + 1;
extern const char* const kReasonNames[kReasonCount];
// Not a close: a CloseEvent with this reason says a WebSocket tunnel broke the protocol (err: the
// violation, up: the side it came from); once per tunnel. In the contract as limits.wsEvent.
constexpr int32_t kWsEvent = 100;
// Not a close either: a WebSocket tunnel's final counts, just before its close event, one per
// direction (reason kWsCountsEvent + side read from; err: violations, up: frames, down: messages).
constexpr int32_t kWsCountsEvent = 101;
// Not a close either: a WebSocket tunnel's close frames, just before its close event (err: who
// closed first, 0 none, 1 client, 2 backend, 3 wsgate, + 4 × the code of a close the engine sent
// itself; up: the client's close code, down: the backend's; 0 for none). Past both counts events
// (101 and 102).
constexpr int32_t kWsCloseEvent = 103;

// Both FINs in, a tunnel gets this long to flush before it is destroyed.
constexpr int64_t kFinTimeoutMs = 30000;

// One socket of a tunnel, with the bytes still to be written TO it. Its descriptor is closed when
// the tunnel finishes (Finish), while the record lives on until the batch of events that may
// still name it is over: two lifetimes, so the fd is a plain int closed explicitly.
struct Side : Watched {
  Side() : Watched(Kind::kTunnelSide) {}
  ~Side() {
    if (ssl != nullptr) TlsSessionFree(ssl);
  }
  Side(const Side&) = delete;
  Side& operator=(const Side&) = delete;
  int fd = -1;
  // A client side on a TLS port: its bytes are read and written through this session (tls.h).
  ssl_st* ssl = nullptr;
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

// The frame trackers of a tunnel that upgraded to `websocket`. dir[i] follows the bytes read from
// side i; close_frame[i] is a frame waiting to go to side i once the bytes toward it reach a
// frame boundary, after which that direction ends (see CloseAtBoundary).
struct WsState {
  WsTracker dir[2];
  std::vector<char> close_frame[2];
  bool reported = false;  // the first violation went to JavaScript
  // A side vanished and the other was sent a close frame: the reason the tunnel reports when it
  // finishes (-1: none), and its errno.
  int32_t fail_reason = -1;
  int32_t fail_err = 0;
  // The code of a close frame the engine sent itself (WsSurvive), and when wsgate first closed
  // the WebSocket (NextCloseSeq; 0: it did not).
  uint16_t sent_code = 0;
  uint64_t wsgate_seq = 0;
  // Keep-alive pings (WsPing): the interval (0: off), the next check, whether each side sent
  // anything since the last one, pong[i] the catcher of pongs read from side i, and the tunnel's
  // place in Engine::pingers.
  int64_t ping_ms = 0;
  int64_t ping_next = 0;
  bool heard[2] = {false, false};
  WsPongCatcher pong[2];
  size_t pinger_index = 0;
};

// After a side of a WebSocket tunnel vanished, the other gets this long to answer wsgate's close
// frame (checked at the once-a-second tick); the same as WS_CLOSE_GRACE_MS in TypeScript.
constexpr int64_t kWsCloseGraceMs = 2000;

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
  std::unique_ptr<WsState> ws;  // a WebSocket tunnel's trackers, else null
  // While the native front's handshake owns this tunnel-to-be (front.cc).
  Handshake* handshake = nullptr;
  // A TLS connection handed to Node's HTTP/1 path: this tunnel relays its decrypted bytes to a
  // socket pair whose other end Node reads (FrontHandoff). JavaScript never hears of it.
  bool bridge = false;
};

// Reads from a side's socket (through its TLS session if it has one) into buf: > 0 the count,
// 0 EOF, -1 with errno (EAGAIN: empty). *drained: the socket was read to its end, so the next
// bytes raise a new edge.
ssize_t ReadSide(Side* s, char* buf, size_t cap, bool* drained);
// WriteSome through a side's TLS session if it has one.
int WriteSide(Side* s, const char* data, size_t len, size_t* off);

// Makes `t` a WebSocket tunnel (before RunTunnel): `flags` are the backend-bound tracker's
// (wsframe.h; the client-bound one gets the same without kWsFlagMasked). The early bytes already in
// the sides' pending buffers are followed, after the first `skip_to_client` bytes toward the
// client (a 101 head).
void TrackWebSocket(Tunnel* t, uint32_t flags, size_t skip_to_client);
// Adds a side's socket to the epoll set with kSideEvents.
void RegisterSide(Engine* e, Side* s);
// Starts relaying a tunnel whose sides have their fds and early bytes set and are in the epoll
// set, registered (RegisterSide) with data.ptr = the side itself. The engine owns it from here.
void RunTunnel(Engine* e, std::unique_ptr<Tunnel> t);
// An epoll event on a tunnel's side.
void HandleTunnelEvent(Engine* e, Side* s, uint32_t ev);
// Sides that stopped at their read cap go on; FIN timeouts pass.
void RunReady(Engine* e);
void TunnelTick(Engine* e, int64_t now);
// Keep-alive pings of the tunnels in Engine::pingers whose check is due (engine.cc's ping timer).
void PingTick(Engine* e, int64_t now);

// What JavaScript asks of tunnels (binding.cc), by tunnel id.
// Duplicates two connected sockets and relays them as tunnel `id`, early bytes first; 0 or errno.
// `ws_flags` 0: not a WebSocket tunnel.
int AdoptTunnel(Engine* e, uint32_t id, int client_fd, int backend_fd, int keepalive_s, std::vector<char> to_backend,
                std::vector<char> to_client, uint32_t ws_flags);
// Ends a tunnel now with kShutdown; fills out[up, down]. False if it had already ended.
bool CloseTunnel(Engine* e, uint32_t id, double* out);
bool TunnelBytes(Engine* e, uint32_t id, double* out);
// Writes bytes toward side `index` after every byte queued for it; false if gone or ended.
bool SendToward(Engine* e, uint32_t id, int index, const char* data, size_t len);
// Sends a FIN toward side `index` after its queued bytes; false if gone or already ended.
bool EndToward(Engine* e, uint32_t id, int index);
// A WebSocket tunnel: writes `frame` toward side `index` at the next frame boundary of that
// direction (now if it is at one), then ends the direction; what comes after the boundary is
// dropped. False if the tunnel is gone, not a WebSocket tunnel, or the direction was ended.
bool CloseAtBoundary(Engine* e, uint32_t id, int index, const char* frame, size_t len);
// A WebSocket tunnel's counts: out[frames up, messages up, violations up, frames down, messages
// down, violations down, at boundary up (0/1), at boundary down]. False if gone or not WebSocket.
// out[8, 11): the close codes the client and the backend sent (0 none), and who closed first as in
// kWsCloseEvent.
bool WsStats(Engine* e, uint32_t id, double* out);
// A WebSocket tunnel pings a side that sent nothing for `interval_ms`, at a frame boundary of the
// bytes toward it, consumes the pong (never forwarded), and treats a side that sends nothing
// within the next interval as dead (kPingTimeout, closed as in WsSurvive). False if gone or not
// WebSocket.
bool WsPing(Engine* e, uint32_t id, int64_t interval_ms);

}  // namespace wsgate

#endif  // WSGATE_TUNNEL_H_

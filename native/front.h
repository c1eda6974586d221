// The native front: the upgrade handshake without Node sockets (front.cc says how it works).
//
// Events for JavaScript (queued, reported once per loop turn by Report in binding.cc), exported as
// contract.events and checked by src/tunnel/native.ts at load:
//   1 head          a = listener id, text = client address, bytes = everything read so far
//                   (a complete head and maybe more, or what came before EOF or the size limit)
//   2 connect-failed a = errno (ETIMEDOUT when the connect timeout passed)
//   3 answer        bytes = the backend's answer so far (a complete head, or over the size limit)
//   4 backend-lost  a = errno (0: closed), bytes = the part of an answer that arrived
//   5 answer-timeout
//   6 client-gone   a = errno (the client reset or failed while the backend was being asked)
//   7 head-timeout  a = listener id, text = the client's address, bytes = the part of a head that
//                   arrived (none: nothing came); JavaScript answers (408) or aborts
//   8 head-evicted  a = listener id: the oldest connection still reading its head was closed to
//                   make room for a new one (the connection is already closed)
//   9 hello         a = listener id, text = client address, bytes = the ClientHello (a TLS port;
//                   peeked: still in the socket). JavaScript calls FrontTlsStart or FrontHandoff
//  10 tls-failed    a = listener id, text = client address, bytes = "reason\nlocal address:port"
//                   (the TLS handshake failed or timed out; the connection is already closed)

#ifndef WSGATE_FRONT_H_
#define WSGATE_FRONT_H_

#include "engine.h"

namespace wsgate {

enum FrontEventType : int32_t {
  kHead = 1,
  kConnectFailed = 2,
  kAnswer = 3,
  kBackendLost = 4,
  kAnswerTimeout = 5,
  kClientGone = 6,
  kHeadTimeout = 7,
  kHeadEvicted = 8,
  kHello = 9,
  kTlsFailed = 10,
  kTlsStageTimeout = 11,  // RequestReadTimeout's handshake stage cut the TLS handshake
};

// A head may be this long (src/http/head.ts MAX_HEAD_BYTES); past it JS answers 431 or 502.
constexpr size_t kMaxHead = 16 * 1024 + 4;
// Connections accepted per readable event, so one busy port cannot starve the loop.
constexpr int kAcceptBatch = 64;
// A client that does not take wsgate's error response is dropped after this long.
constexpr uint64_t kRespondTimeoutMs = 10000;
// The accept queue of a socket FrontBindShared makes (Node's default for its servers).
constexpr int kListenBacklog = 511;

// How long a request head may take: `silence_ms` (Timeout) between bytes, and RequestReadTimeout's
// header stage for the whole head: `header_ms` from accept, extended by 1 s per `min_rate` bytes
// up to `header_max_ms` (0: no cap); `header_ms` 0 turns the stage off.
struct HeadLimits {
  int64_t silence_ms = 0;
  int64_t header_ms = 0;
  int64_t header_max_ms = 0;
  int64_t min_rate = 0;
  // RequestReadTimeout's handshake stage (an https port): the ClientHello and the TLS handshake
  // must be done by handshake_ms from accept, extended at handshake_min_rate by the bytes
  // received, up to handshake_max_ms (0: no stage; Timeout alone bounds the handshake).
  int64_t handshake_ms = 0;
  int64_t handshake_max_ms = 0;
  int64_t handshake_min_rate = 0;
};

// A Listen port the engine accepts on (owned by Engine::listeners).
struct Listener : Watched {
  Listener() : Watched(Kind::kListener) {}
  uint32_t id = 0;
  UniqueFd fd;
  HeadLimits limits;
  bool paused = false;  // out of file descriptors: accepting again at the next tick
  bool tls = false;     // an https port: each connection starts with a ClientHello (kHello)
};

// An epoll event on a listener or a handshake's socket.
void HandleFrontEvent(Engine* e, Watched* w, uint32_t ev);
// Once a second: paused listeners, request-head deadlines.
void FrontTick(Engine* e, int64_t now);
void FreeHandshakes(Engine* e);

// What JavaScript asks of the front (binding.cc), by listener or handshake id.
// Accepts on a duplicate of a bound, listening socket; 0 or errno.
// `tls`: an https port (connections start with the kHello event).
int FrontListen(Engine* e, uint32_t id, int fd, int keepalive_s, const HeadLimits& limits, bool tls);
void FrontUnlisten(Engine* e, uint32_t id);
// A listening socket of this process's own on `ip`:`port` ("": every address, IPv6 and IPv4 where
// the host has IPv6) with SO_REUSEPORT: each `-w N` worker binds one and the kernel spreads new
// connections over them. `exclusive`: fail with EADDRINUSE when another socket already holds
// the port, even one with SO_REUSEPORT (another wsgate of the same user), as a plain bind would.
// Returns the fd (the caller owns it, and passes it to FrontListen), or -errno; *bound_port and
// *family (4 or 6) say what it got.
int FrontBindShared(const char* ip, uint32_t port, bool exclusive, uint32_t* bound_port, int* family);
// New limits for the connections a listener accepts from now on (a reload); false for an unknown id.
bool FrontLimits(Engine* e, uint32_t id, const HeadLimits& limits);
// Lets go of a handshake's sockets: the caller owns *client_fd and *backend_fd (-1: none). False
// when the handshake had ended. After the engine's TLS handshake, *client_fd is one end of a
// socket pair carrying the decrypted bytes (the engine keeps the TLS session: a bridge tunnel).
bool FrontHandoff(Engine* e, uint32_t id, int* client_fd, int* backend_fd);
// Connects to ip:port and sends `head`: 0 when the connection is on its way (its outcome comes as
// an event), else an errno; EINVAL when `ip` is not an IP address.
int FrontConnect(Engine* e, uint32_t id, const char* ip, uint32_t port, std::vector<char> head, uint32_t connect_ms, uint32_t answer_ms);
// The handshake's two sockets become tunnel `tunnel_id`; false when the handshake had ended.
// `ws_flags` (0: not WebSocket) and the 101 head's length at the start of `to_client`: TrackWebSocket.
bool FrontEstablish(Engine* e, uint32_t id, uint32_t tunnel_id, std::vector<char> to_client, std::vector<char> to_backend, int keepalive_s,
                    uint32_t ws_flags, size_t head_len);
bool FrontRespond(Engine* e, uint32_t id, std::vector<char> response);
bool FrontAbort(Engine* e, uint32_t id);
// Starts the TLS handshake of a connection JavaScript had the ClientHello of, with context
// `ctx_id` (tls.h) and `alpn` the protocol to select ("" none); false when the handshake had
// ended or the context is unknown.
bool FrontTlsStart(Engine* e, uint32_t id, uint32_t ctx_id, const std::string& alpn);
// The TLS session's protocol, cipher, SNI name, ALPN protocol and "1" when it was resumed ("" not);
// false without one.
bool FrontTlsInfo(Engine* e, uint32_t id, std::string* protocol, std::string* cipher, std::string* servername, std::string* alpn,
                  std::string* reused);
// The address the client connected to, or "" (`out` holds INET6_ADDRSTRLEN bytes).
void FrontLocalAddress(Engine* e, uint32_t id, char* out, size_t size);

}  // namespace wsgate

#endif  // WSGATE_FRONT_H_

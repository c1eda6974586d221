// The native front: the upgrade handshake without Node sockets.
//
// On a plain-TCP Listen port the engine accepts connections itself and reads each request head;
// JavaScript then decides what it is (it parses, routes and builds every head, so HTTP rules live
// in one place). For an upgrade to a plain-TCP backend the engine connects, sends the head JS
// built, reads the answer, and after JS has checked the 101 it turns the two sockets into a
// tunnel of tunnel.cc. Anything else (plain HTTP, a refused upgrade, a malformed request) is
// handed to Node as a file descriptor, with the bytes read so far, and runs on the JavaScript
// path. A handshake that becomes a tunnel never creates a net.Socket: that machinery, not
// wsgate's own logic, was most of the CPU per handshake (docs/performance.md).
//
// The events it reports to JavaScript, and its limits, are in front.h.

#include "front.h"

#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace wsgate {

enum class Stage : uint8_t {
  kHello,  // a TLS port: waiting for the whole ClientHello (peeked, left in the socket)
  kTls,    // the engine runs the TLS handshake
  kReadingHead,
  kDeciding,  // JavaScript has the head or the answer (or a failure) and will call back
  kConnecting,
  kSending,
  kAwaitingAnswer,
  kResponding,  // writing wsgate's own response, then closing
  kDone,
};

// A connection between accept and its fate. It owns the Tunnel it may become: its sockets are
// registered in the epoll set as that tunnel's sides (kind kHandshake*) from the start, so that
// becoming a tunnel costs no epoll_ctl.
struct Handshake {
  explicit Handshake(Tunnel* tunnel) : t(tunnel) {
    t->handshake = this;
    t->side[0].kind = Kind::kHandshakeClient;
    t->side[1].kind = Kind::kHandshakeBackend;
    for (int i = 0; i < 2; i++) {
      t->side[i].tunnel = tunnel;
      t->side[i].index = i;
    }
  }
  std::unique_ptr<Tunnel> t;  // null once it became a tunnel
  int& cfd() { return t->side[0].fd; }
  int& bfd() { return t->side[1].fd; }
  uint32_t id = 0;
  uint32_t listener = 0;
  Stage stage = Stage::kReadingHead;
  std::vector<char> in;   // the request head being read, then the backend's answer
  std::vector<char> out;  // the head for the backend, or a response for the client
  size_t out_off = 0;
  int64_t head_deadline = 0;  // silence: the last byte + Timeout
  int64_t accepted_at = 0;
  uint64_t head_bytes = 0;
  HeadLimits limits;
  bool tls_wants_write = false;  // the TLS handshake waits for room in the client's socket
  bool linked = false;           // in the list of connections reading their head (or TLS handshake)
  // The list of connections reading their head, oldest first (see Accept: the oldest goes first
  // when there are too many).
  Handshake* older = nullptr;
  Handshake* newer = nullptr;
  uint32_t answer_timeout_ms = 0;
  uv_timer_t* timer = nullptr;
  char peer[INET6_ADDRSTRLEN] = {0};
  char local[INET6_ADDRSTRLEN] = {0};  // LocalAddress's answer, once asked ("" : not yet)
  uint16_t local_port = 0;
};

namespace {

void Queue(Engine* e, int32_t type, Handshake* h, int32_t a) {
  e->front_events.push_back(FrontEvent{type, h->id, a, std::string(), std::vector<char>()});
  Queued(e);
}

void QueueBytes(Engine* e, int32_t type, Handshake* h, int32_t a) {
  e->front_events.push_back(FrontEvent{type, h->id, a, std::string(), std::move(h->in)});
  h->in.clear();
  Queued(e);
}

void LinkReading(Engine* e, Handshake* h) {
  h->linked = true;
  h->older = e->newest_reading;
  h->newer = nullptr;
  if (e->newest_reading != nullptr)
    e->newest_reading->newer = h;
  else
    e->oldest_reading = h;
  e->newest_reading = h;
  e->reading++;
}

// Called whenever a handshake stops reading its head (or its TLS handshake).
void UnlinkReading(Engine* e, Handshake* h) {
  if (!h->linked) return;
  h->linked = false;
  if (h->older != nullptr)
    h->older->newer = h->newer;
  else
    e->oldest_reading = h->newer;
  if (h->newer != nullptr)
    h->newer->older = h->older;
  else
    e->newest_reading = h->older;
  h->older = h->newer = nullptr;
  e->reading--;
}

// A RequestReadTimeout stage's deadline: `ms` from `from`, extended at `rate` bytes/s by
// `bytes`, up to `max_ms` (0: no cap); INT64_MAX without the stage.
int64_t StageDeadline(int64_t from, int64_t ms, int64_t max_ms, int64_t rate, uint64_t bytes) {
  if (ms <= 0) return INT64_MAX;
  int64_t at = from + ms + (rate > 0 ? int64_t(bytes * 1000 / uint64_t(rate)) : 0);
  if (max_ms > 0 && at > from + max_ms) at = from + max_ms;
  return at;
}

// The handshake stage's deadline of a connection still in its ClientHello or TLS handshake.
int64_t HandshakeStageDeadline(const Handshake* h) {
  const HeadLimits& l = h->limits;
  if (l.handshake_ms <= 0) return INT64_MAX;
  uint64_t bytes = h->stage == Stage::kTls ? TlsBytesRead(h->t->side[0].ssl) : h->head_bytes;
  return StageDeadline(h->accepted_at, l.handshake_ms, l.handshake_max_ms, l.handshake_min_rate, bytes);
}

// When the head must be complete: the silence limit, and the header stage's deadline as the
// bytes received so far have extended it.
int64_t HeadDeadline(const Handshake* h) {
  int64_t at = h->head_deadline;
  // A TLS handshake has Timeout from accept, as Node's handshakeTimeout, and the handshake
  // stage; the header stage starts once it is done.
  if (h->stage != Stage::kReadingHead) return std::min(at, HandshakeStageDeadline(h));
  const HeadLimits& l = h->limits;
  return std::min(at, StageDeadline(h->accepted_at, l.header_ms, l.header_max_ms, l.min_rate, h->head_bytes));
}

void StopTimer(Handshake* h) {
  if (h->timer != nullptr) uv_timer_stop(h->timer);
}

void OnHandshakeTimer(uv_timer_t* timer);

void StartTimer(Engine* e, Handshake* h, uint64_t ms) {
  if (h->timer == nullptr) {
    uv_loop_t* loop;
    napi_get_uv_event_loop(e->env, &loop);
    h->timer = new uv_timer_t;
    uv_timer_init(loop, h->timer);
    h->timer->data = h;
    uv_unref(reinterpret_cast<uv_handle_t*>(h->timer));
  }
  uv_timer_start(h->timer, OnHandshakeTimer, ms, 0);
}

void CloseFd(Engine* e, int* fd) {
  if (*fd < 0) return;
  epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, *fd, nullptr);
  close(*fd);
  *fd = -1;
}

// Forgets a handshake; its fds must be closed or given away first. Freed after the batch.
void Forget(Engine* e, Handshake* h) {
  UnlinkReading(e, h);
  h->stage = Stage::kDone;
  if (h->timer != nullptr) {
    h->timer->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(h->timer), [](uv_handle_t* t) { delete reinterpret_cast<uv_timer_t*>(t); });
    h->timer = nullptr;
  }
  e->handshakes.erase(h->id);
  e->handshake_graveyard.push_back(h);
}

void Drop(Engine* e, Handshake* h) {
  CloseFd(e, &h->cfd());
  CloseFd(e, &h->bfd());
  Forget(e, h);
}

// Closes the client connection after wsgate's response: what the client sent is read and
// discarded first, so that close() sends a FIN rather than a reset that could destroy the
// response on its way.
void CloseAfterResponse(Engine* e, Handshake* h) {
  Side& c = h->t->side[0];
  if (c.ssl != nullptr) TlsCloseNotify(c.ssl);
  shutdown(h->cfd(), SHUT_WR);
  bool drained;
  for (int i = 0; i < 4 && ReadSide(&c, e->buf, kReadSize, &drained) > 0; i++) {
  }
  Drop(e, h);
}

const char* FindHeadEnd(const std::vector<char>& in, size_t from) {
  static const char kEnd[] = "\r\n\r\n";
  size_t start = from > 3 ? from - 3 : 0;
  if (in.size() < 4) return nullptr;
  const char* base = in.data();
  const char* p = static_cast<const char*>(memmem(base + start, in.size() - start, kEnd, 4));
  return p;
}

// Reads what arrived on a side (decrypted on a TLS port) into h->in. Returns the count, 0 at
// EOF, -1 with errno on failure (EAGAIN included); *drained as ReadSide's.
ssize_t ReadInto(Engine* e, Side& side, Handshake* h, bool* drained) {
  ssize_t n = ReadSide(&side, e->buf, kReadSize, drained);
  if (n > 0) h->in.insert(h->in.end(), e->buf, e->buf + n);
  return n;
}

enum class HeadRead { kWait, kComplete, kEof, kError };

// An answer head starts with "HTTP/": bytes that cannot become one are handed over at once (JS
// answers 502) instead of being read until a head's worth came or the answer timeout.
bool CannotBeAnswer(const std::vector<char>& in) {
  static const char kPrefix[] = "HTTP/";
  size_t n = in.size() < 5 ? in.size() : 5;
  return memcmp(in.data(), kPrefix, n) != 0;
}

// Reads a handshake socket into h->in. Sockets are edge-triggered: it reads until the head is
// complete (or over the size limit) or the socket is empty; bytes and a FIN after the head stay
// in the socket for the tunnel (`readable` says whether any may).
HeadRead ReadHeadBytes(Engine* e, Handshake* h, Side& side, bool answer, int* err) {
  for (;;) {
    size_t before = h->in.size();
    bool drained = false;
    ssize_t n = ReadInto(e, side, h, &drained);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        *err = errno;
        return HeadRead::kError;
      }
      side.readable = false;
      return HeadRead::kWait;
    }
    if (n == 0) return HeadRead::kEof;
    if (FindHeadEnd(h->in, before) != nullptr || h->in.size() > kMaxHead || (answer && CannotBeAnswer(h->in))) {
      side.readable = !drained || side.fin_seen || side.hup_seen;
      return HeadRead::kComplete;
    }
    // After EPOLLERR/EPOLLHUP no new edge comes: read on to the error or the EOF.
    if (drained && !side.fin_seen && !side.hup_seen) {
      side.readable = false;  // the rest raises a new edge
      return HeadRead::kWait;
    }
  }
}

void ReadHead(Engine* e, Handshake* h) {
  size_t had = h->in.size();
  int err = 0;
  HeadRead r = ReadHeadBytes(e, h, h->t->side[0], false, &err);
  // Timeout is a limit on silence, as on Node's path: every byte read restarts it.
  if (h->in.size() > had) {
    h->head_deadline = NowMs() + h->limits.silence_ms;
    h->head_bytes += h->in.size() - had;
  }
  if (r == HeadRead::kWait) return;
  if (r == HeadRead::kError || (r == HeadRead::kEof && h->in.empty())) {
    Drop(e, h);  // reset, or closed, before a request: nothing to answer or log
    return;
  }
  // A head, or something JavaScript must answer (EOF mid-head: 400; too large: 431).
  UnlinkReading(e, h);
  h->stage = Stage::kDeciding;
  e->front_events.push_back(FrontEvent{kHead, h->id, int32_t(h->listener), std::string(h->peer), std::move(h->in)});
  h->in.clear();
}

void AnswerTimerOrStop(Engine* e, Handshake* h) {
  if (h->answer_timeout_ms > 0)
    StartTimer(e, h, h->answer_timeout_ms);
  else
    StopTimer(h);
}

void FlushHead(Engine* e, Handshake* h) {
  int err = WriteSome(h->bfd(), h->out.data(), h->out.size(), &h->out_off);
  if (err != 0) {
    CloseFd(e, &h->bfd());
    StopTimer(h);
    h->stage = Stage::kDeciding;
    Queue(e, kBackendLost, h, err);
    return;
  }
  if (h->out_off < h->out.size()) {
    h->stage = Stage::kSending;  // the next EPOLLOUT edge goes on
    return;
  }
  std::vector<char>().swap(h->out);
  h->out_off = 0;
  h->stage = Stage::kAwaitingAnswer;
}

void Connected(Engine* e, Handshake* h) {
  AnswerTimerOrStop(e, h);
  h->stage = Stage::kConnecting;  // FlushHead moves it on
  FlushHead(e, h);
}

void ConnectFailed(Engine* e, Handshake* h, int err) {
  CloseFd(e, &h->bfd());
  StopTimer(h);
  std::vector<char>().swap(h->out);
  h->out_off = 0;
  h->stage = Stage::kDeciding;
  Queue(e, kConnectFailed, h, err);
}

void ReadAnswer(Engine* e, Handshake* h) {
  int err = 0;
  HeadRead r = ReadHeadBytes(e, h, h->t->side[1], true, &err);
  if (r == HeadRead::kWait) return;
  StopTimer(h);
  h->stage = Stage::kDeciding;
  if (r == HeadRead::kComplete) {
    QueueBytes(e, kAnswer, h, 0);
    return;
  }
  CloseFd(e, &h->bfd());
  QueueBytes(e, kBackendLost, h, r == HeadRead::kEof ? 0 : err);
}

void FlushResponse(Engine* e, Handshake* h) {
  if (WriteSide(&h->t->side[0], h->out.data(), h->out.size(), &h->out_off) != 0) {
    Drop(e, h);  // the client is gone; nobody to answer
    return;
  }
  if (h->out_off < h->out.size()) return;  // the next EPOLLOUT edge goes on
  CloseAfterResponse(e, h);
}

// The connection's local address and port, read once (h->local, h->local_port); false if the
// socket cannot tell.
bool LocalAddress(Handshake* h) {
  if (h->local[0] != 0) return true;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(h->cfd(), reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return false;
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&ss)->sin_addr, h->local, sizeof h->local);
    h->local_port = ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_addr, h->local, sizeof h->local);
    h->local_port = ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
  }
  return h->local[0] != 0;
}

// A TLS handshake failed or timed out: one event (kTlsFailed: JavaScript logs it as Node's
// tlsClientError would: `reason` is ERR_SSL_…, a tab and OpenSSL's message, or ECONNRESET;
// kTlsStageTimeout: RequestReadTimeout's handshake stage, its own line), then the connection is
// closed. The event's bytes are `reason`, a newline and the local address.
void TlsFailed(Engine* e, Handshake* h, const std::string& reason, int32_t type = kTlsFailed) {
  char local[INET6_ADDRSTRLEN + 8] = {0};
  if (LocalAddress(h)) snprintf(local, sizeof local, "%s:%d", h->local, int(h->local_port));
  std::string text = reason + "\n" + local;
  e->front_events.push_back(
      FrontEvent{type, h->id, int32_t(h->listener), std::string(h->peer), std::vector<char>(text.begin(), text.end())});
  Drop(e, h);
}

// A TLS record header (type, version, length) and the most a ClientHello may need to be looked at.
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxHelloPeek = kRecordHeader + 16384 + 2048;

// Looks at the ClientHello without taking it from the socket: JavaScript decides from its SNI
// name and ALPN offer whether the engine runs the handshake or Node does (HTTP/2, anything the
// engine does not do), and Node's TLS server then reads it from the socket as if it had accepted.
void PeekHello(Engine* e, Handshake* h) {
  Side& c = h->t->side[0];
  ssize_t n;
  do {
    n = recv(c.fd, e->buf, kMaxHelloPeek, MSG_PEEK);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    c.readable = false;
    return;
  }
  if (n <= 0) {
    TlsFailed(e, h, "ECONNRESET");  // gone before a ClientHello, as Node reports it
    return;
  }
  const uint8_t* b = reinterpret_cast<const uint8_t*>(e->buf);
  size_t got = size_t(n);
  bool complete = got >= kRecordHeader && (b[0] != 22 || got >= kRecordHeader + ((size_t(b[3]) << 8) | b[4]));
  if (!complete && got < kMaxHelloPeek && !c.fin_seen && !c.hup_seen) {
    h->head_bytes = got;
    c.readable = false;  // the rest raises a new edge (peeked bytes stay in the socket)
    return;
  }
  h->head_bytes = got;  // the handshake stage counts them until the handshake reads them
  h->stage = Stage::kDeciding;
  e->front_events.push_back(FrontEvent{kHello, h->id, int32_t(h->listener), std::string(h->peer), std::vector<char>(e->buf, e->buf + got)});
}

void ReadHead(Engine* e, Handshake* h);

// Runs the TLS handshake as far as the socket allows; once done, the request head is read through it.
void StepTls(Engine* e, Handshake* h) {
  std::string reason;
  Side& c = h->t->side[0];
  switch (TlsHandshake(c.ssl, &reason)) {
    case TlsStep::kWantRead:
      c.readable = false;  // the next EPOLLIN edge goes on (the socket said EAGAIN)
      h->tls_wants_write = false;
      return;
    case TlsStep::kWantWrite:
      h->tls_wants_write = true;  // the next EPOLLOUT edge goes on
      return;
    case TlsStep::kFailed:
      TlsFailed(e, h, reason);
      return;
    case TlsStep::kDone:
      break;
  }
  h->stage = Stage::kReadingHead;
  h->accepted_at = NowMs();
  h->head_deadline = h->accepted_at + h->limits.silence_ms;
  h->head_bytes = 0;
  h->t->side[0].readable = true;  // a head sent with the client's Finished came with its edge
  ReadHead(e, h);
}

void OnHandshakeTimer(uv_timer_t* timer) {
  Handshake* h = static_cast<Handshake*>(timer->data);
  Engine* e = g_engine;
  if (h == nullptr || h->stage == Stage::kDone) return;
  switch (h->stage) {
    case Stage::kConnecting:
      ConnectFailed(e, h, ETIMEDOUT);
      break;
    case Stage::kSending:
    case Stage::kAwaitingAnswer:
      h->stage = Stage::kDeciding;
      Queue(e, kAnswerTimeout, h, 0);
      break;
    case Stage::kResponding:
      Drop(e, h);
      break;
    default:
      break;
  }
  Report(e);
}

void Accept(Engine* e, Listener* l) {
  for (int i = 0; i < kAcceptBatch; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->fd.get(), reinterpret_cast<struct sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Level-triggered: a readable listener we cannot accept from would spin. Pause it.
        l->paused = true;
        SetInterest(e, l->fd.get(), l, 0);
      }
      return;
    }
    // Too many connections reading their head: the oldest goes. A client sending a head at any
    // sensible rate is done within milliseconds, so the oldest are the slowest (a trickle meant
    // to hold descriptors), and a flood of them cannot keep new clients out.
    if (e->reading >= e->max_reading && e->oldest_reading != nullptr) {
      Handshake* old = e->oldest_reading;
      uint32_t old_id = old->id;
      int32_t old_listener = int32_t(old->listener);
      Drop(e, old);
      e->front_events.push_back(FrontEvent{kHeadEvicted, old_id, old_listener, std::string(), std::vector<char>()});
    }
    // No-delay and TCP keepalive come from the listening socket (Linux copies them).
    Handshake* h = new Handshake(new Tunnel());
    h->id = e->next_handshake_id++;
    if (e->next_handshake_id == 0) e->next_handshake_id = 1;
    h->listener = l->id;
    h->cfd() = fd;
    h->limits = l->limits;
    h->accepted_at = NowMs();
    h->head_deadline = h->accepted_at + l->limits.silence_ms;
    h->stage = l->tls ? Stage::kHello : Stage::kReadingHead;
    LinkReading(e, h);
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&ss)->sin_addr, h->peer, sizeof h->peer);
    } else if (ss.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_addr, h->peer, sizeof h->peer);
      if (strncmp(h->peer, "::ffff:", 7) == 0 && strchr(h->peer + 7, '.') != nullptr)
        memmove(h->peer, h->peer + 7, strlen(h->peer + 7) + 1);
    }
    RegisterSide(e, &h->t->side[0]);
    e->handshakes[h->id] = h;
    // The head has usually arrived with the connection: read it now rather than after a poll.
    h->t->side[0].readable = true;
    if (l->tls)
      PeekHello(e, h);
    else
      ReadHead(e, h);
  }
}

void OnClientEvent(Engine* e, Handshake* h, uint32_t ev) {
  switch (h->stage) {
    case Stage::kHello:
      if (h->t->side[0].readable) PeekHello(e, h);
      return;
    case Stage::kTls:
      // Edge-triggered EPOLLOUT comes whenever the client's ACKs free send space: such an edge
      // only matters to a handshake blocked on a full socket, not to one waiting for the client.
      if (h->t->side[0].readable || (h->tls_wants_write && (ev & EPOLLOUT))) StepTls(e, h);
      return;
    case Stage::kReadingHead:
      if (h->t->side[0].readable) ReadHead(e, h);
      return;
    case Stage::kResponding:
      if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) FlushResponse(e, h);
      return;
    case Stage::kDone:
      return;
    default:
      // While the backend is being asked, new bytes wait in the socket (they are the tunnel's);
      // only a reset or a failure ends the handshake.
      if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(h->cfd(), SOL_SOCKET, SO_ERROR, &err, &len);
        uint32_t id = h->id;
        Drop(e, h);
        e->front_events.push_back(FrontEvent{kClientGone, id, err, std::string(), std::vector<char>()});
      }
  }
}

void OnBackendEvent(Engine* e, Handshake* h, uint32_t ev) {
  switch (h->stage) {
    case Stage::kConnecting: {
      if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(h->bfd(), SOL_SOCKET, SO_ERROR, &err, &len);
        ConnectFailed(e, h, err != 0 ? err : ECONNREFUSED);
      } else if (ev & EPOLLOUT) {
        Connected(e, h);
        // An answer (or the backend's FIN) that came in the same edge is not signalled again.
        if (h->stage == Stage::kAwaitingAnswer && h->t->side[1].readable) ReadAnswer(e, h);
      }
      return;
    }
    case Stage::kSending:
      FlushHead(e, h);
      if (h->stage == Stage::kAwaitingAnswer && h->t->side[1].readable) ReadAnswer(e, h);
      return;
    case Stage::kAwaitingAnswer:
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadAnswer(e, h);
      return;
    default:
      return;  // deciding: JavaScript answers within this loop turn
  }
}

Handshake* Find(Engine* e, uint32_t id) {
  auto it = e->handshakes.find(id);
  return it == e->handshakes.end() ? nullptr : it->second;
}

}  // namespace

void HandleFrontEvent(Engine* e, Watched* w, uint32_t ev) {
  switch (w->kind) {
    case Kind::kListener:
      Accept(e, static_cast<Listener*>(w));
      return;
    case Kind::kHandshakeClient:
    case Kind::kHandshakeBackend: {
      Side* s = static_cast<Side*>(w);
      Handshake* h = s->tunnel->handshake;
      if (h == nullptr || h->stage == Stage::kDone) return;
      // Input that is not read now (a decision is pending) is read by the tunnel later.
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->readable = true;
      if ((ev & (EPOLLRDHUP | EPOLLHUP)) && !(ev & EPOLLERR)) s->fin_seen = true;
      if (ev & (EPOLLERR | EPOLLHUP)) s->hup_seen = true;
      if (w->kind == Kind::kHandshakeClient)
        OnClientEvent(e, h, ev);
      else
        OnBackendEvent(e, h, ev);
      return;
    }
    default:
      return;
  }
}

void FrontTick(Engine* e, int64_t now) {
  for (auto& it : e->listeners) {
    Listener* l = it.second.get();
    if (l->paused) {
      l->paused = false;
      SetInterest(e, l->fd.get(), l, EPOLLIN);
    }
  }
  std::vector<Handshake*> late;
  for (Handshake* h = e->oldest_reading; h != nullptr; h = h->newer) {
    if (h->stage != Stage::kDeciding && HeadDeadline(h) <= now) late.push_back(h);
  }
  // JavaScript answers what arrived (408 once a request line is in) or closes the connection.
  for (Handshake* h : late) {
    if (h->stage != Stage::kReadingHead) {
      // The handshake stage's cut has a log line of its own (as on Node's path); Timeout's is Node's handshakeTimeout.
      if (HandshakeStageDeadline(h) <= now)
        TlsFailed(e, h, std::string(), kTlsStageTimeout);
      else
        TlsFailed(e, h, "ERR_TLS_HANDSHAKE_TIMEOUT");
      continue;
    }
    UnlinkReading(e, h);
    h->stage = Stage::kDeciding;
    e->front_events.push_back(FrontEvent{kHeadTimeout, h->id, int32_t(h->listener), std::string(h->peer), std::move(h->in)});
    h->in.clear();
  }
}

void FreeHandshakes(Engine* e) {
  for (Handshake* h : e->handshake_graveyard)
    delete h;
  e->handshake_graveyard.clear();
}

// Accepts on a duplicate of a bound, listening socket (HeadLimits says what the limits mean).
// No-delay and TCP keepalive are set on it once: accepted sockets inherit them.
int FrontListen(Engine* e, uint32_t id, int fd, int keepalive_s, const HeadLimits& limits, bool tls) {
  UniqueFd d(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!d.valid()) return errno;
  fcntl(d.get(), F_SETFL, fcntl(d.get(), F_GETFL) | O_NONBLOCK);
  int one = 1;
  setsockopt(d.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  KeepAlive(d.get(), keepalive_s);
  auto l = std::make_unique<Listener>();
  l->id = id;
  l->fd = std::move(d);
  l->limits = limits;
  l->tls = tls;
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Watched*>(l.get());
  epoll_ctl(e->epfd.get(), EPOLL_CTL_ADD, l->fd.get(), &ev);
  e->listeners[id] = std::move(l);
  // Listening ports keep the process running (live tunnels alone do not).
  if (e->listeners.size() == 1) uv_ref(reinterpret_cast<uv_handle_t*>(&e->poll));
  return 0;
}

// Stops accepting, closes the engine's copy of the socket and the connections of this port
// still reading their first head.
void FrontUnlisten(Engine* e, uint32_t id) {
  auto it = e->listeners.find(id);
  if (it == e->listeners.end()) return;
  epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
  // Freed (and its socket closed) here: only called from JavaScript, never inside a batch of
  // epoll events.
  e->listeners.erase(it);
  // Connections that have not sent a head yet go with the port; handshakes JavaScript knows
  // of are its to end.
  std::vector<Handshake*> unread;
  for (auto& h : e->handshakes) {
    if (h.second->listener == id && h.second->linked) unread.push_back(h.second);
  }
  for (Handshake* h : unread)
    Drop(e, h);
  ReportSoon(e);  // frees them
  if (e->listeners.empty()) uv_unref(reinterpret_cast<uv_handle_t*>(&e->poll));
}

namespace {

// Fills `ss` from an IP address; false when `ip` is not one.
bool SocketAddress(const char* ip, uint32_t port, struct sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  auto* a4 = reinterpret_cast<struct sockaddr_in*>(ss);
  auto* a6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(uint16_t(port));
    *len = sizeof *a4;
    return true;
  }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(uint16_t(port));
    *len = sizeof *a6;
    return true;
  }
  return false;
}

// A bound socket (listening when `listen_too`), or -errno. SO_REUSEADDR as Node sets it on its
// servers: a port with connections in TIME_WAIT can be bound again at once.
int BindSocket(const struct sockaddr_storage& ss, socklen_t len, bool reuse_port, bool listen_too) {
  UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return -errno;
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return -errno;
  if (bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&ss), len) != 0) return -errno;
  if (listen_too && listen(fd.get(), kListenBacklog) != 0) return -errno;
  return fd.release();
}

int BindSharedAt(const char* ip, uint32_t port, bool exclusive, uint32_t* bound_port) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (!SocketAddress(ip, port, &ss, &len)) return -EINVAL;
  if (exclusive && port != 0) {
    // Without SO_REUSEPORT this bind fails on any socket that holds the port.
    int probe = BindSocket(ss, len, false, false);
    if (probe < 0) return probe;
    close(probe);
  }
  int fd = BindSocket(ss, len, true, true);
  if (fd < 0) return fd;
  struct sockaddr_storage got;
  socklen_t got_len = sizeof got;
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&got), &got_len);
  *bound_port = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<struct sockaddr_in6*>(&got)->sin6_port
                                                : reinterpret_cast<struct sockaddr_in*>(&got)->sin_port);
  return fd;
}

}  // namespace

int FrontBindShared(const char* ip, uint32_t port, bool exclusive, uint32_t* bound_port, int* family) {
  if (ip[0] != 0) {
    *family = strchr(ip, ':') != nullptr ? 6 : 4;
    return BindSharedAt(ip, port, exclusive, bound_port);
  }
  // Every address: "::" (which takes IPv4 too), or "0.0.0.0" on a host without IPv6, as Node does.
  *family = 6;
  int fd = BindSharedAt("::", port, exclusive, bound_port);
  if (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL) return fd;
  *family = 4;
  return BindSharedAt("0.0.0.0", port, exclusive, bound_port);
}

// Each handshake copies its listener's limits when accepted, so the ones under way keep theirs.
bool FrontLimits(Engine* e, uint32_t id, const HeadLimits& limits) {
  auto it = e->listeners.find(id);
  if (it == e->listeners.end()) return false;
  it->second->limits = limits;
  return true;
}

namespace {

uint32_t g_next_bridge = 0;

// A TLS connection for Node's HTTP/1 path: Node gets one end of a socket pair, and a tunnel
// relays between the other end and the client's TLS session (decrypting and encrypting), so the
// session never has to leave the engine. On failure the connection is closed.
bool Bridge(Engine* e, Handshake* h, int* client_fd, int* backend_fd) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
    Drop(e, h);
    return false;
  }
  StopTimer(h);
  *backend_fd = h->bfd();
  if (h->bfd() >= 0) epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, h->bfd(), nullptr);
  std::unique_ptr<Tunnel> t = std::move(h->t);
  Side& b = t->side[1];
  b.fd = sp[0];
  b.readable = b.fin_seen = b.hup_seen = b.read_eof = b.shut_wr = false;
  std::vector<char>().swap(b.pending);
  b.pending_off = 0;
  RegisterSide(e, &b);
  // Ids JavaScript never gives its tunnels (the registry counts up from 1).
  t->id = 0x80000000u | (g_next_bridge++ & 0x7fffffffu);
  t->bridge = true;
  t->sole_fds = true;
  t->handshake = nullptr;
  *client_fd = sp[1];
  Forget(e, h);
  RunTunnel(e, std::move(t));
  return true;
}

}  // namespace

bool FrontHandoff(Engine* e, uint32_t id, int* client_fd, int* backend_fd) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->cfd() < 0) return false;
  if (h->t->side[0].ssl != nullptr) return Bridge(e, h, client_fd, backend_fd);
  epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, h->cfd(), nullptr);
  if (h->bfd() >= 0) epoll_ctl(e->epfd.get(), EPOLL_CTL_DEL, h->bfd(), nullptr);
  *client_fd = h->cfd();
  *backend_fd = h->bfd();
  h->cfd() = -1;
  h->bfd() = -1;
  Forget(e, h);
  return true;
}

int FrontConnect(Engine* e, uint32_t id, const char* ip, uint32_t port, std::vector<char> head, uint32_t connect_ms, uint32_t answer_ms) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->stage != Stage::kDeciding || h->bfd() >= 0) return ECANCELED;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  auto* a4 = reinterpret_cast<struct sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<struct sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(uint16_t(port));
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(uint16_t(port));
    len = sizeof *a6;
  } else {
    return EINVAL;
  }
  h->out = std::move(head);
  h->out_off = 0;
  h->answer_timeout_ms = answer_ms;
  int err = 0;
  UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    err = errno;
  } else {
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r;
    do {
      r = connect(fd.get(), reinterpret_cast<struct sockaddr*>(&ss), len);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EINPROGRESS) {
      err = errno;
    } else {
      // A fresh socket (a failover or the next address may come after a failed one).
      Side& b = h->t->side[1];
      b.fd = fd.release();
      b.readable = b.fin_seen = b.hup_seen = b.read_eof = b.shut_wr = false;
      // Edge-triggered from here to the end of the tunnel: connected (EPOLLOUT), then the
      // answer (EPOLLIN), then tunnel traffic, with no epoll_ctl in between.
      RegisterSide(e, &h->t->side[1]);
      h->stage = Stage::kConnecting;
      if (r == 0) {
        Connected(e, h);
      } else if (connect_ms > 0) {
        StartTimer(e, h, connect_ms);
      }
    }
  }
  if (err != 0) std::vector<char>().swap(h->out);
  return err;
}

// The backend switched protocols: `to_client` (the 101 and what followed it) goes to the client,
// `to_backend` (what the client sent after its head) to the backend.
bool FrontEstablish(Engine* e, uint32_t id, uint32_t tunnel_id, std::vector<char> to_client, std::vector<char> to_backend, int keepalive_s,
                    uint32_t ws_flags, size_t head_len) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->stage != Stage::kDeciding || h->bfd() < 0) return false;
  std::unique_ptr<Tunnel> t = std::move(h->t);
  t->side[0].pending = std::move(to_client);
  t->side[1].pending = std::move(to_backend);
  t->id = tunnel_id;
  t->sole_fds = true;
  t->handshake = nullptr;
  KeepAlive(t->side[1].fd, keepalive_s);  // the client's socket has it from the listener
  if (ws_flags != 0) TrackWebSocket(t.get(), ws_flags, head_len);
  Forget(e, h);
  RunTunnel(e, std::move(t));
  return true;
}

// Writes wsgate's own response to the client and closes both connections.
bool FrontRespond(Engine* e, uint32_t id, std::vector<char> response) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->cfd() < 0) return false;
  CloseFd(e, &h->bfd());
  h->out = std::move(response);
  h->out_off = 0;
  h->stage = Stage::kResponding;
  StartTimer(e, h, kRespondTimeoutMs);
  FlushResponse(e, h);
  return true;
}

// Closes both connections without a word (shutdown, or the client is gone).
bool FrontAbort(Engine* e, uint32_t id) {
  Handshake* h = Find(e, id);
  if (h != nullptr) Drop(e, h);
  return h != nullptr;
}

// The address the client connected to (for name-based virtual hosts). A TLS connection asks at
// its ClientHello and again at its head: one getsockname serves both.
void FrontLocalAddress(Engine* e, uint32_t id, char* out, size_t size) {
  out[0] = 0;
  Handshake* h = Find(e, id);
  if (h == nullptr || h->cfd() < 0 || !LocalAddress(h)) return;
  snprintf(out, size, "%s", h->local);
}

}  // namespace wsgate

namespace wsgate {

bool FrontTlsStart(Engine* e, uint32_t id, uint32_t ctx_id, const std::string& alpn) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->stage != Stage::kDeciding || h->t == nullptr || h->t->side[0].ssl != nullptr || h->cfd() < 0) return false;
  ssl_st* ssl = TlsSessionNew(ctx_id, h->cfd(), alpn);
  if (ssl == nullptr) return false;
  h->t->side[0].ssl = ssl;
  h->stage = Stage::kTls;
  StepTls(e, h);
  return true;
}

bool FrontTlsInfo(Engine* e, uint32_t id, std::string* protocol, std::string* cipher, std::string* servername, std::string* alpn,
                  std::string* reused) {
  Handshake* h = Find(e, id);
  if (h == nullptr || h->t == nullptr || h->t->side[0].ssl == nullptr) return false;
  bool resumed = false;
  TlsInfo(h->t->side[0].ssl, protocol, cipher, servername, alpn, &resumed);
  *reused = resumed ? "1" : "";
  return true;
}

}  // namespace wsgate

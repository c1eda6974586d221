// The N-API binding: the only file that speaks to JavaScript. It reads the arguments of each call
// and hands them to the engine core (engine.cc), tunnels (tunnel.cc) or the front (front.cc), and
// delivers their queued events (Report). It also exports the contract: each number JavaScript
// relies on (event types, close reasons, limits), defined once in C++ and checked by
// src/tunnel/native.ts at load.

#include <errno.h>
#include <string.h>

#include "engine.h"
#include "front.h"
#include "tls.h"
#include "tunnel.h"

namespace wsgate {

namespace {

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

napi_value Bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

// Reads the handshake id of a front call; false when it is not a number.
bool IdArg(napi_env env, size_t argc, size_t need, napi_value* argv, uint32_t* id) {
  return g_engine != nullptr && argc >= need && GetUint32(env, argv[0], id);
}

}  // namespace

// Reports closed tunnels (one call with [id, reason, errno, up, down, …]) and the front's
// events (one call with [type, id, a, text, bytes, …]) to JavaScript.
void Report(Engine* e) {
  FreeFinished(e);
  if (e->env == nullptr) {
    // Stopped while Node frees its environment (StopEngine): nobody is left to tell.
    e->events.clear();
    e->front_events.clear();
    return;
  }
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
  FreeFinished(e);
}

namespace {

void OnEnvCleanup(void* arg) {
  StopEngine(static_cast<Engine*>(arg));
}

// start(onClose: (events: number[]) => void, onFront: (events: unknown[]) => void): void
napi_value Start(napi_env env, napi_callback_info info) {
  if (g_engine != nullptr) return Throw(env, "native tunnel engine already started");
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uv_loop_t* loop;
  if (argc < 2 || napi_get_uv_event_loop(env, &loop) != napi_ok) return Throw(env, "start(onClose, onFront)");
  Engine* e = CreateEngine(loop);
  if (e == nullptr) return Throw(env, "epoll unavailable");
  e->env = env;
  napi_create_reference(env, argv[0], 1, &e->on_close);
  napi_create_reference(env, argv[1], 1, &e->on_front);
  napi_value resource_name;
  napi_create_string_utf8(env, "wsgate.tunnel", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, nullptr, resource_name, &e->async_context);
  // Hooks run last-registered first, so this one runs before N-API's own, which frees the env.
  napi_add_env_cleanup_hook(env, OnEnvCleanup, e);
  g_engine = e;
  return nullptr;
}

// adopt(id, clientFd, backendFd, keepaliveSeconds, toBackend?: Buffer, toClient?: Buffer): void
// The fds are duplicated: the caller closes its own afterwards (tunnel.cc AdoptTunnel).
napi_value AdoptJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  if (e == nullptr) return Throw(env, "native tunnel engine not started");
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id, cfd, bfd, keepalive_s, ws_flags = 0;
  if (argc < 4 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &cfd) || !GetUint32(env, argv[2], &bfd) ||
      !GetUint32(env, argv[3], &keepalive_s)) {
    return Throw(env, "adopt(id, clientFd, backendFd, keepaliveSeconds, toBackend?, toClient?)");
  }
  std::vector<char> to_backend, to_client;
  if ((argc > 4 && !CopyBuffer(env, argv[4], &to_backend)) || (argc > 5 && !CopyBuffer(env, argv[5], &to_client))) {
    return Throw(env, "early bytes must be Buffers");
  }
  if (argc > 6 && !GetUint32(env, argv[6], &ws_flags)) return Throw(env, "wsFlags must be a number");
  int err = AdoptTunnel(e, id, int(cfd), int(bfd), int(keepalive_s), std::move(to_backend), std::move(to_client), ws_flags);
  if (err != 0) return Throw(env, strerror(err));
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
  uint32_t id;
  double* out = IdAndOut(env, info, &id);
  if (g_engine == nullptr || out == nullptr) return Throw(env, "close(id, Float64Array(2))");
  return Bool(env, CloseTunnel(g_engine, id, out));
}

// bytes(id, out: Float64Array(2)): boolean — fills [up, down]; false if the tunnel is gone.
napi_value BytesJs(napi_env env, napi_callback_info info) {
  uint32_t id;
  double* out = IdAndOut(env, info, &id);
  if (g_engine == nullptr || out == nullptr) return Throw(env, "bytes(id, Float64Array(2))");
  return Bool(env, TunnelBytes(g_engine, id, out));
}

// Reads the (id, toward: 0 client | 1 backend) arguments of send() and endToward().
bool IdAndToward(napi_env env, napi_value* argv, size_t argc, uint32_t* id, int* index) {
  uint32_t toward;
  if (g_engine == nullptr || argc < 2 || !GetUint32(env, argv[0], id) || !GetUint32(env, argv[1], &toward) || toward > 1) return false;
  *index = int(toward);
  return true;
}

// Reads the (id, toward, bytes: Buffer) arguments of send() and closeAtBoundary().
bool IdTowardBytes(napi_env env, napi_value* argv, size_t argc, uint32_t* id, int* index, void** data, size_t* len) {
  return argc >= 3 && napi_get_buffer_info(env, argv[2], data, len) == napi_ok && IdAndToward(env, argv, argc, id, index);
}

// send(id, toward, bytes: Buffer): boolean — false if the tunnel is gone or that direction ended.
napi_value SendJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  size_t len = 0;
  uint32_t id;
  int index;
  if (!IdTowardBytes(env, argv, argc, &id, &index, &data, &len)) return Throw(env, "send(id, toward, Buffer)");
  return Bool(env, SendToward(g_engine, id, index, static_cast<const char*>(data), len));
}

// endToward(id, toward): boolean — false if the tunnel is gone or that direction had ended.
napi_value EndTowardJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  int index;
  if (!IdAndToward(env, argv, argc, &id, &index)) return Throw(env, "endToward(id, toward)");
  return Bool(env, EndToward(g_engine, id, index));
}

// frontListen(id, fd, silenceMs, keepaliveSeconds, headerMs, headerMaxMs, headerMinRate, tls?)
// The optional handshake stage (headerMs… then handshakeMs, handshakeMaxMs, handshakeMinRate) at argv[at…].
void HandshakeStageArgs(napi_env env, size_t argc, napi_value* argv, size_t at, HeadLimits* limits) {
  uint32_t ms = 0, max_ms = 0, rate = 0;
  if (argc < at + 3 || !GetUint32(env, argv[at], &ms) || !GetUint32(env, argv[at + 1], &max_ms) || !GetUint32(env, argv[at + 2], &rate))
    return;
  limits->handshake_ms = ms;
  limits->handshake_max_ms = max_ms;
  limits->handshake_min_rate = rate;
}

napi_value FrontListenJs(napi_env env, napi_callback_info info) {
  Engine* e = g_engine;
  size_t argc = 11;
  napi_value argv[11];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id, fd, timeout, keepalive_s, header_ms, header_max_ms, min_rate;
  if (e == nullptr || argc < 7 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &fd) || !GetUint32(env, argv[2], &timeout) ||
      !GetUint32(env, argv[3], &keepalive_s) || !GetUint32(env, argv[4], &header_ms) || !GetUint32(env, argv[5], &header_max_ms) ||
      !GetUint32(env, argv[6], &min_rate)) {
    return Throw(env, "frontListen(id, fd, silenceMs, keepaliveSeconds, headerMs, headerMaxMs, headerMinRate)");
  }
  HeadLimits limits;
  limits.silence_ms = timeout;
  limits.header_ms = header_ms;
  limits.header_max_ms = header_max_ms;
  limits.min_rate = min_rate;
  bool tls = false;
  if (argc > 7) napi_get_value_bool(env, argv[7], &tls);
  HandshakeStageArgs(env, argc, argv, 8, &limits);
  int err = FrontListen(e, id, int(fd), int(keepalive_s), limits, tls);
  if (err != 0) return Throw(env, strerror(err));
  return nullptr;
}

// frontBindShared(ip, port, exclusive): [fd, port, family] | errno — see FrontBindShared.
napi_value FrontBindSharedJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char ip[INET6_ADDRSTRLEN + 1];
  size_t ip_len = 0;
  uint32_t port;
  bool exclusive = false;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &ip_len) != napi_ok || !GetUint32(env, argv[1], &port) ||
      port > 65535 || napi_get_value_bool(env, argv[2], &exclusive) != napi_ok) {
    return Throw(env, "frontBindShared(ip, port, exclusive)");
  }
  uint32_t bound = 0;
  int family = 0;
  int fd = FrontBindShared(ip, port, exclusive, &bound, &family);
  napi_value result;
  if (fd < 0) {
    napi_create_int32(env, -fd, &result);
    return result;
  }
  napi_create_array_with_length(env, 3, &result);
  napi_value v;
  napi_create_int32(env, fd, &v);
  napi_set_element(env, result, 0, v);
  napi_create_uint32(env, bound, &v);
  napi_set_element(env, result, 1, v);
  napi_create_int32(env, family, &v);
  napi_set_element(env, result, 2, v);
  return result;
}

// frontLimits(id, silenceMs, headerMs, headerMaxMs, headerMinRate): true if the listener exists.
napi_value FrontLimitsJs(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id, timeout, header_ms, header_max_ms, min_rate;
  if (g_engine == nullptr || argc < 5 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &timeout) ||
      !GetUint32(env, argv[2], &header_ms) || !GetUint32(env, argv[3], &header_max_ms) || !GetUint32(env, argv[4], &min_rate)) {
    return Throw(env, "frontLimits(id, silenceMs, headerMs, headerMaxMs, headerMinRate)");
  }
  HeadLimits limits;
  limits.silence_ms = timeout;
  limits.header_ms = header_ms;
  limits.header_max_ms = header_max_ms;
  limits.min_rate = min_rate;
  HandshakeStageArgs(env, argc, argv, 5, &limits);
  napi_get_boolean(env, FrontLimits(g_engine, id, limits), &result);
  return result;
}

// frontUnlisten(id)
napi_value FrontUnlistenJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  if (!IdArg(env, argc, 1, argv, &id)) return Throw(env, "frontUnlisten(id)");
  FrontUnlisten(g_engine, id);
  return nullptr;
}

// frontHandoff(id): [clientFd, backendFd (-1 if none)] | undefined — the caller owns the fds.
napi_value FrontHandoffJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  int cfd, bfd;
  if (!IdArg(env, argc, 1, argv, &id) || !FrontHandoff(g_engine, id, &cfd, &bfd)) {
    napi_get_undefined(env, &result);
    return result;
  }
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, cfd, &v);
  napi_set_element(env, result, 0, v);
  napi_create_int32(env, bfd, &v);
  napi_set_element(env, result, 1, v);
  return result;
}

// frontConnect(id, ip, port, head: Buffer, connectTimeoutMs, answerTimeoutMs): errno, 0 when
// the connection is on its way (its outcome comes as an event).
napi_value FrontConnectJs(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], result;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id = 0;
  char ip[64];
  size_t iplen;
  uint32_t port, connect_ms, answer_ms;
  if (argc < 6 || napi_get_value_string_latin1(env, argv[1], ip, sizeof ip, &iplen) != napi_ok || !GetUint32(env, argv[2], &port) ||
      !GetUint32(env, argv[4], &connect_ms) || !GetUint32(env, argv[5], &answer_ms)) {
    return Throw(env, "frontConnect(id, ip, port, head, connectTimeoutMs, answerTimeoutMs)");
  }
  std::vector<char> head;
  if (!CopyBuffer(env, argv[3], &head)) return Throw(env, "head must be a Buffer");
  int err = IdArg(env, argc, 1, argv, &id) ? FrontConnect(g_engine, id, ip, port, std::move(head), connect_ms, answer_ms) : ECANCELED;
  if (err == EINVAL) return Throw(env, "frontConnect: not an IP address");
  napi_create_int32(env, err, &result);
  return result;
}

// closeAtBoundary(id, toward, frame: Buffer): boolean — see CloseAtBoundary (tunnel.h).
napi_value CloseAtBoundaryJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  size_t len = 0;
  uint32_t id;
  int index;
  if (!IdTowardBytes(env, argv, argc, &id, &index, &data, &len)) return Throw(env, "closeAtBoundary(id, toward, Buffer)");
  return Bool(env, CloseAtBoundary(g_engine, id, index, static_cast<const char*>(data), len));
}

// wsStats(id, out: Float64Array(11)): boolean — see WsStats (tunnel.h).
napi_value WsStatsJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t length;
  void* data;
  uint32_t id;
  if (g_engine == nullptr || argc < 2 || !GetUint32(env, argv[0], &id) ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array ||
      length < 11)
    return Throw(env, "wsStats(id, Float64Array(11))");
  return Bool(env, WsStats(g_engine, id, static_cast<double*>(data)));
}

// wsPing(id, intervalMs): boolean — see WsPing (tunnel.h).
napi_value WsPingJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  uint32_t ms;
  if (g_engine == nullptr || argc < 2 || !GetUint32(env, argv[0], &id) || !GetUint32(env, argv[1], &ms))
    return Throw(env, "wsPing(id, intervalMs)");
  return Bool(env, WsPing(g_engine, id, int64_t(ms)));
}

// Test hooks: a lone tracker fed from JavaScript, to run the shared vectors against the C++ code.
// wsTestTracker(flags): External; wsTestFeed(tracker, bytes: Buffer, stopAtBoundary: boolean): number
// (the stop offset or -1); wsTestState(tracker, out: Float64Array(7 or 8)) fills [frames, messages,
// violations, firstViolation, atBoundary, inMessage, stopped, closeCode].
void DeleteTracker(napi_env, void* data, void*) {
  delete static_cast<WsTracker*>(data);
}

napi_value WsTestTrackerJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t flags;
  if (argc < 1 || !GetUint32(env, argv[0], &flags)) return Throw(env, "wsTestTracker(flags)");
  auto* w = new WsTracker();
  w->flags = flags;
  napi_value v;
  napi_create_external(env, w, DeleteTracker, nullptr, &v);
  return v;
}

WsTracker* TrackerArg(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok) return nullptr;
  return static_cast<WsTracker*>(p);
}

napi_value WsTestFeedJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  size_t len = 0;
  bool stop = false;
  WsTracker* w = argc < 3 ? nullptr : TrackerArg(env, argv[0]);
  if (w == nullptr || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || napi_get_value_bool(env, argv[2], &stop) != napi_ok)
    return Throw(env, "wsTestFeed(tracker, Buffer, stopAtBoundary)");
  w->stop_at_boundary = stop;
  napi_value v;
  napi_create_double(env, double(w->Feed(static_cast<const uint8_t*>(data), len)), &v);
  return v;
}

napi_value WsTestStateJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t length;
  void* data;
  WsTracker* w = argc < 2 ? nullptr : TrackerArg(env, argv[0]);
  if (w == nullptr || napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || length < 7)
    return Throw(env, "wsTestState(tracker, Float64Array(7))");
  double* out = static_cast<double*>(data);
  out[0] = double(w->frames);
  out[1] = double(w->messages);
  out[2] = double(w->violations);
  out[3] = w->first_violation;
  out[4] = w->AtBoundary() ? 1 : 0;
  out[5] = w->in_message ? 1 : 0;
  out[6] = w->stopped ? 1 : 0;
  if (length >= 8) out[7] = w->close_code;
  return nullptr;
}

// frontEstablish(id, tunnelId, toClient: Buffer, toBackend?: Buffer, keepaliveSeconds): boolean —
// the backend switched protocols and the two sockets become tunnel `tunnelId`. False when the
// handshake had ended (the client went away).
napi_value FrontEstablishJs(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id = 0, tunnel_id, keepalive_s, ws_flags = 0, head_len = 0;
  if (argc < 5 || !GetUint32(env, argv[1], &tunnel_id) || !GetUint32(env, argv[4], &keepalive_s) ||
      (argc > 6 && (!GetUint32(env, argv[5], &ws_flags) || !GetUint32(env, argv[6], &head_len)))) {
    return Throw(env, "frontEstablish(id, tunnelId, toClient, toBackend, keepaliveSeconds)");
  }
  std::vector<char> to_client, to_backend;
  if (!CopyBuffer(env, argv[2], &to_client) || !CopyBuffer(env, argv[3], &to_backend)) {
    return Throw(env, "toClient and toBackend must be Buffers");
  }
  if (!IdArg(env, argc, 1, argv, &id)) return Bool(env, false);
  return Bool(env, FrontEstablish(g_engine, id, tunnel_id, std::move(to_client), std::move(to_backend), int(keepalive_s), ws_flags,
                                  size_t(head_len)));
}

// frontRespond(id, bytes: Buffer): boolean — writes wsgate's own response to the client and
// closes both connections. False when the handshake had ended.
napi_value FrontRespondJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  std::vector<char> response;
  if (!IdArg(env, argc, 2, argv, &id)) return Bool(env, false);
  if (!CopyBuffer(env, argv[1], &response)) return Throw(env, "frontRespond(id, Buffer)");
  return Bool(env, FrontRespond(g_engine, id, std::move(response)));
}

// frontAbort(id): boolean — closes both connections without a word.
napi_value FrontAbortJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  return Bool(env, IdArg(env, argc, 1, argv, &id) && FrontAbort(g_engine, id));
}

// frontLocalAddress(id): the address the client connected to (for name-based virtual hosts).
napi_value FrontLocalAddressJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  char ip[64] = {0};
  if (IdArg(env, argc, 1, argv, &id)) FrontLocalAddress(g_engine, id, ip, sizeof ip);
  napi_create_string_latin1(env, ip, NAPI_AUTO_LENGTH, &result);
  return result;
}

bool GetString(napi_env env, napi_value obj, const char* name, std::string* out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_undefined) return true;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len + 1);
  napi_get_value_string_utf8(env, v, &(*out)[0], len + 1, &len);
  out->resize(len);
  return true;
}

bool GetInt(napi_env env, napi_value obj, const char* name, int64_t* out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_int64(env, v, out) == napi_ok;
}

bool GetFlag(napi_env env, napi_value obj, const char* name, bool* out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_bool(env, v, out) == napi_ok;
}

// tlsContext({cert, key, minVersion, maxVersion, cipherList, cipherSuites, honorCipherOrder,
// noTickets, sessionTimeout, groups, sigalgs}): the context's id, or what OpenSSL refused (a string).
napi_value TlsContextJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  TlsContextOptions o;
  int64_t min_v = 0, max_v = 0, timeout = 0;
  if (argc < 1 || !GetString(env, argv[0], "cert", &o.cert) || !GetString(env, argv[0], "key", &o.key) ||
      !GetInt(env, argv[0], "minVersion", &min_v) || !GetInt(env, argv[0], "maxVersion", &max_v) ||
      !GetString(env, argv[0], "cipherList", &o.cipher_list) || !GetString(env, argv[0], "cipherSuites", &o.cipher_suites) ||
      !GetFlag(env, argv[0], "honorCipherOrder", &o.honor_cipher_order) || !GetFlag(env, argv[0], "noTickets", &o.no_tickets) ||
      !GetInt(env, argv[0], "sessionTimeout", &timeout) || !GetString(env, argv[0], "groups", &o.groups) ||
      !GetString(env, argv[0], "sigalgs", &o.sigalgs)) {
    return Throw(env, "tlsContext(options)");
  }
  o.min_version = int(min_v);
  o.max_version = int(max_v);
  o.session_timeout_s = long(timeout);
  std::string error;
  uint32_t id = TlsContextNew(o, &error);
  if (id == 0)
    napi_create_string_utf8(env, error.c_str(), error.size(), &result);
  else
    napi_create_uint32(env, id, &result);
  return result;
}

// tlsContextFree(id): false for an unknown id (sessions keep their context alive).
napi_value TlsContextFreeJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  return Bool(env, argc >= 1 && GetUint32(env, argv[0], &id) && TlsContextFree(id));
}

// tlsCounts(): [sessions, handshakes] since the process started.
napi_value TlsCountsJs(napi_env env, napi_callback_info info) {
  double counts[2];
  TlsCounts(&counts[0], &counts[1]);
  napi_value result, v;
  napi_create_array_with_length(env, 2, &result);
  for (uint32_t i = 0; i < 2; i++) {
    napi_create_double(env, counts[i], &v);
    napi_set_element(env, result, i, v);
  }
  return result;
}

// frontTlsStart(id, contextId, alpn): boolean — the engine runs the TLS handshake.
napi_value FrontTlsStartJs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id, ctx;
  char alpn[256] = {0};
  size_t alen = 0;
  if (!IdArg(env, argc, 3, argv, &id) || !GetUint32(env, argv[1], &ctx) ||
      napi_get_value_string_utf8(env, argv[2], alpn, sizeof alpn, &alen) != napi_ok) {
    return Throw(env, "frontTlsStart(id, contextId, alpn)");
  }
  return Bool(env, FrontTlsStart(g_engine, id, ctx, std::string(alpn, alen)));
}

// frontTlsInfo(id): [protocol, cipher, servername, alpn, resumed ("1" or "")] | undefined.
napi_value FrontTlsInfoJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id;
  std::string parts[5];
  if (!IdArg(env, argc, 1, argv, &id) || !FrontTlsInfo(g_engine, id, &parts[0], &parts[1], &parts[2], &parts[3], &parts[4])) {
    napi_get_undefined(env, &result);
    return result;
  }
  napi_create_array_with_length(env, 5, &result);
  for (uint32_t i = 0; i < 5; i++) {
    napi_create_string_utf8(env, parts[i].data(), parts[i].size(), &v);
    napi_set_element(env, result, i, v);
  }
  return result;
}

// The contract: {events, reasons, limits}.
napi_value Contract(napi_env env) {
  napi_value contract, events, reasons, limits, violations, v;
  napi_create_object(env, &contract);
  napi_create_object(env, &events);
  napi_create_object(env, &limits);
  SetNumber(env, events, "head", kHead);
  SetNumber(env, events, "connectFailed", kConnectFailed);
  SetNumber(env, events, "answer", kAnswer);
  SetNumber(env, events, "backendLost", kBackendLost);
  SetNumber(env, events, "answerTimeout", kAnswerTimeout);
  SetNumber(env, events, "clientGone", kClientGone);
  SetNumber(env, events, "headTimeout", kHeadTimeout);
  SetNumber(env, events, "headEvicted", kHeadEvicted);
  SetNumber(env, events, "hello", kHello);
  SetNumber(env, events, "tlsFailed", kTlsFailed);
  SetNumber(env, events, "tlsStageTimeout", kTlsStageTimeout);
  // Close reasons by number: reasons[kClientReset] === 'client-reset'.
  napi_create_array_with_length(env, kReasonCount, &reasons);
  for (uint32_t i = 0; i < uint32_t(kReasonCount); i++) {
    napi_create_string_utf8(env, kReasonNames[i], NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, reasons, i, v);
  }
  SetNumber(env, limits, "finTimeoutMs", double(kFinTimeoutMs));
  SetNumber(env, limits, "readSize", double(kReadSize));
  SetNumber(env, limits, "maxUnreadHeads", double(MaxUnreadHeads()));
  SetNumber(env, limits, "maxHead", double(kMaxHead));
  SetNumber(env, limits, "respondTimeoutMs", double(kRespondTimeoutMs));
  SetNumber(env, limits, "acceptBatch", kAcceptBatch);
  SetNumber(env, limits, "wsEvent", kWsEvent);
  SetNumber(env, limits, "wsCountsEvent", kWsCountsEvent);
  SetNumber(env, limits, "wsCloseEvent", kWsCloseEvent);
  SetNumber(env, limits, "pingPayload", double(kPingPayload));
  SetNumber(env, limits, "wsMasked", kWsFlagMasked);
  SetNumber(env, limits, "wsStrict", kWsFlagStrict);
  SetNumber(env, limits, "wsCloseGraceMs", double(kWsCloseGraceMs));
  napi_create_array_with_length(env, kWsViolationCount, &violations);
  for (uint32_t i = 0; i < uint32_t(kWsViolationCount); i++) {
    napi_create_string_utf8(env, kWsViolationNames[i], NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, violations, i, v);
  }
  napi_set_named_property(env, contract, "wsViolations", violations);
  napi_set_named_property(env, contract, "events", events);
  napi_set_named_property(env, contract, "reasons", reasons);
  napi_set_named_property(env, contract, "limits", limits);
  return contract;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adopt", nullptr, AdoptJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, CloseJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bytes", nullptr, BytesJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, SendJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"endToward", nullptr, EndTowardJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"closeAtBoundary", nullptr, CloseAtBoundaryJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wsStats", nullptr, WsStatsJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wsPing", nullptr, WsPingJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wsTestTracker", nullptr, WsTestTrackerJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wsTestFeed", nullptr, WsTestFeedJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wsTestState", nullptr, WsTestStateJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontListen", nullptr, FrontListenJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontBindShared", nullptr, FrontBindSharedJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontUnlisten", nullptr, FrontUnlistenJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontLimits", nullptr, FrontLimitsJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontHandoff", nullptr, FrontHandoffJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontConnect", nullptr, FrontConnectJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontEstablish", nullptr, FrontEstablishJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontRespond", nullptr, FrontRespondJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontAbort", nullptr, FrontAbortJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontLocalAddress", nullptr, FrontLocalAddressJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontTlsStart", nullptr, FrontTlsStartJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"frontTlsInfo", nullptr, FrontTlsInfoJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsContext", nullptr, TlsContextJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsContextFree", nullptr, TlsContextFreeJs, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsCounts", nullptr, TlsCountsJs, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_set_named_property(env, exports, "contract", Contract(env));
  return exports;
}

}  // namespace
}  // namespace wsgate

NAPI_MODULE(NODE_GYP_MODULE_NAME, wsgate::Init)

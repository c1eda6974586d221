// HTTP/2 on the front (`Protocols h2 …`): TLS connections whose ALPN is `h2`, and with `h2c`
// plain connections that open with the HTTP/2 preface (prior knowledge; the HTTP/1 reader finds
// it, listeners/accept.ts hands the socket over), are served by Node's http2 module. Two
// http2.Servers are used only as session factories, one per value of `H2WebSockets` (the
// SETTINGS a session advertises are fixed when it starts); they never listen. Each stream is
// routed as an HTTP/1.1 request would be (Host = `:authority`) and handed to the one Exchange
// through an H2Client (proxy/client-h2.ts).

import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Config, ListenAddress, VirtualHost } from '../config/model';
import { type HandlerHost, localRequest, runHandler } from '../handlers/handler';
import { errorBody } from '../http/forward';
import type { Logger } from '../observe/log';
import { respondH2Error } from '../proxy/answers';
import { H2Body, H2Client } from '../proxy/client-h2';
import { H2Local } from '../proxy/local-h2';
import { Exchange } from '../proxy/exchange';
import { RequestRecord } from '../proxy/record';
import { headerScope, Upstream } from '../proxy/upstream';
import { newWebSocketKey } from '../http/websocket-key';
import { isValidHost, requestHeadCap, type RequestHead, type RequestLimits } from '../http/head';
import { basicChallenge, decideRequest } from '../routing/router';
import { selectVirtualHost } from '../routing/vhost';
import { KEEPALIVE_TIMEOUT_MS } from './http1';
import { plainAddress } from './address';
import { headLimits, limitsOf } from './limits';
import { stageDeadline } from '../config/reqtimeout';

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR, NGHTTP2_PROTOCOL_ERROR } = http2.constants;

/**
 * Rapid reset (CVE-2023-44487): a client that opens streams and resets them before their answer
 * makes the proxy start work (routing, a backend connection) that costs it nothing. Each such
 * stream takes a token from a bucket of H2_RESET_BURST, refilled at H2_RESET_RATE a second; an
 * empty bucket ends the session with GOAWAY ENHANCE_YOUR_CALM. A browser cancels a few streams
 * when the user navigates, never hundreds a second. The burst is below nghttp2's own limit
 * (1000), which would end the session with INTERNAL_ERROR, a code that blames the server.
 */
export const H2_RESET_BURST = 200;
export const H2_RESET_RATE = 50;

/**
 * A session silent this long (no frame read or written, streams open or not) is sent a PING.
 * nghttp2 stops reading a connection once it has sent GOAWAY for a connection error, and Node
 * reports nothing of it: the client's FIN is never read and the streams never close. Only a
 * question the peer must answer tells a dead session from a quiet one.
 */
export const H2_PROBE_AFTER_MS = 10_000;
/** No PING ACK this long after the PING: the session is destroyed, every stream with it. */
export const H2_PING_TIMEOUT_MS = 10_000;
/** A session being closed (GOAWAY sent, or destroyed) whose socket is still open this long after is cut. */
export const H2_CLOSE_GRACE_MS = 5_000;

export interface H2Host extends HandlerHost {
  /** The config in force now; read once per stream. */
  readonly config: Config;
}

/** What a session was opened with, found again by its streams. */
interface SessionInfo {
  readonly listen: ListenAddress;
  readonly clientIp: string;
  readonly localAddress: string;
  /** The connection under the session (Node hides it behind the session). */
  readonly socket: net.Socket;
  readonly clientPort: number | undefined;
  /** The same socket, for TLS variables (`%{VAR}s`). */
  readonly tls: unknown;
  readonly log: Logger;
  /** Streams open now; the session is closed after KEEPALIVE_TIMEOUT_MS with none. */
  streams: number;
  idle: NodeJS.Timeout | undefined;
  /** Runs while a PING waits for its ACK. */
  probe: NodeJS.Timeout | undefined;
  /** Runs once the session is being closed: cuts its socket if it is still open then. */
  cut: NodeJS.Timeout | undefined;
  /** RequestReadTimeout's header stage for the connection's first HEADERS: when it started, the socket's byte count then, its timer. */
  readonly host: H2Host;
  readonly acceptedAt: number;
  readonly startBytes: number;
  firstHead: NodeJS.Timeout | undefined;
  readonly front: H2Front;
  /** Rapid-reset bucket: tokens left and when they were last counted. */
  resetTokens: number;
  resetAt: number;
}

const kInfo = Symbol('wsgate.h2info');
type Session = http2.ServerHttp2Session & { [kInfo]?: SessionInfo };

/**
 * The protocol ALPN selects on `listen` for a client offering `offered`, from the Protocols of
 * the server its SNI name selects; undefined when they have none in common.
 */
export function selectAlpn(
  config: Config,
  listen: ListenAddress,
  localAddress: string,
  servername: string | undefined,
  offered: readonly string[],
): string | undefined {
  const name = typeof servername === 'string' && servername !== '' ? servername : undefined;
  const vhost = selectVirtualHost(config, listen, localAddress, name);
  const ours = vhost.settings.protocols.filter((p) => p !== 'h2c');
  if (vhost.settings.protocolsHonorOrder) return ours.find((p) => offered.includes(p));
  return offered.find((p) => (ours as readonly string[]).includes(p));
}

export class H2Front {
  readonly sessions = new Set<http2.ServerHttp2Session>();
  /**
   * Session factories by the SETTINGS they advertise (extended CONNECT on or off, the stream cap),
   * made at the first connection that needs one, with the header bounds of the config then in force
   * (Node fixes a session's settings when it starts).
   */
  private readonly factories = new Map<string, http2.Http2Server>();
  private stopping = false;

  constructor(private readonly host: H2Host) {}

  private factory(websockets: boolean, maxStreams: number): http2.Http2Server {
    // Node resets a stream whose header list passes these (ENHANCE_YOUR_CALM), before wsgate sees it;
    // below them, the LimitRequest* checks of route() answer 414/431 as mod_http2 does. They are set
    // from the largest limits any server has, with room for mod_http2's 100 extra fields.
    let pairs = 0;
    let bytes = 65535;
    for (const vh of [this.host.config.mainServer, ...this.host.config.virtualHosts]) {
      const l = limitsOf(vh.settings);
      pairs = Math.max(pairs, l.fields === 0 ? 65535 : l.fields + 100 + 8);
      bytes = Math.max(bytes, requestHeadCap(l) * 2);
    }
    const server = http2.createServer({
      maxHeaderListPairs: pairs,
      // H2MaxSessionStreams is SETTINGS_MAX_CONCURRENT_STREAMS, as in mod_http2: once the client
      // has acknowledged it, nghttp2 treats a stream beyond it as a connection error, before wsgate sees it.
      settings: { enableConnectProtocol: websockets, maxConcurrentStreams: maxStreams, maxHeaderListSize: bytes },
    });
    server.on('session', (session) => this.onSession(session as Session));
    // A client's protocol error ends its session; it is logged, never thrown.
    server.on('sessionError', (err: NodeJS.ErrnoException, session: http2.ServerHttp2Session) => {
      if ((err as { [kOwn]?: boolean })[kOwn] === true) return;
      this.host.log.info('HTTP/2 session error', { client: (session as Session)[kInfo]?.clientIp, reason: err.code ?? err.message });
    });
    return server;
  }

  /**
   * Serves an HTTP/2 connection on `socket` (TLS with ALPN h2, or plain with the preface, which
   * may already be in the socket's read buffer).
   * `vhost` is the server the connection was opened for (SNI, else its address): its
   * `H2WebSockets` decides whether the session offers extended CONNECT.
   */
  accept(socket: net.Socket, listen: ListenAddress, vhost: VirtualHost): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.pending = {
      listen,
      clientIp: plainAddress(socket.remoteAddress),
      clientPort: socket.remotePort,
      localAddress: socket.localAddress ?? '',
      socket,
      tls: socket,
      log: this.host.log,
      streams: 0,
      idle: undefined,
      probe: undefined,
      cut: undefined,
      host: this.host,
      acceptedAt: Date.now(),
      startBytes: socket.bytesRead,
      firstHead: undefined,
      front: this,
      resetTokens: H2_RESET_BURST,
      resetAt: Date.now(),
    };
    // An h2 connection ends with GOAWAY, not half-closes: a FIN from the client closes it.
    socket.allowHalfOpen = false;
    // The factory's connection listener creates the session and emits 'session' synchronously.
    const ws = vhost.settings.h2WebSockets;
    const maxStreams = vhost.settings.h2MaxSessionStreams;
    const key = `${ws ? 'ws' : 'plain'}:${maxStreams}`;
    let f = this.factories.get(key);
    if (f === undefined) {
      f = this.factory(ws, maxStreams);
      this.factories.set(key, f);
    }
    f.emit('connection', socket);
    this.pending = undefined;
  }

  private pending: SessionInfo | undefined;

  private onSession(session: Session): void {
    const info = this.pending;
    if (info === undefined) {
      session.destroy();
      return;
    }
    session[kInfo] = info;
    this.sessions.add(session);
    session.on('close', () => {
      this.sessions.delete(session);
      clearTimers(info);
    });
    session.on('error', () => {}); // reported through the factory's 'sessionError'
    // The session's own 'stream' (not the server's): a stream the client reset in the same read
    // as its HEADERS is already destroyed when it is emitted, and no longer knows its session.
    session.on('stream', sessionOnStream);
    session.on('timeout', sessionOnSilence);
    session.setTimeout(H2_PROBE_AFTER_MS);
    this.armIdle(session, info);
    const header = this.host.config.mainServer.settings.requestReadTimeouts.header;
    if (header.timeoutMs > 0) armFirstHead(session, info, header.timeoutMs);
  }

  /** Closes a session that has had no stream for KEEPALIVE_TIMEOUT_MS (GOAWAY, then close), as Apache's KeepAliveTimeout. */
  private armIdle(session: Session, info: SessionInfo): void {
    if (info.idle !== undefined) clearTimeout(info.idle);
    info.idle = setTimeout(closeIdle, KEEPALIVE_TIMEOUT_MS, session);
    info.idle.unref();
  }

  onStream(session: Session, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    const info = session[kInfo];
    stream.on('error', streamOnError);
    if (info === undefined) {
      stream.close(NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    if (stream.destroyed) {
      // Reset before its HEADERS were even handed over.
      resetBeforeAnswer(session, info);
      return;
    }
    info.streams++;
    if (info.firstHead !== undefined) {
      clearTimeout(info.firstHead);
      info.firstHead = undefined;
    }
    if (info.idle !== undefined) {
      clearTimeout(info.idle);
      info.idle = undefined;
    }
    stream.once('close', () => {
      if (stream.rstCode !== NGHTTP2_NO_ERROR && !stream.headersSent) resetBeforeAnswer(session, info);
      if (--info.streams === 0 && !session.closed && !session.destroyed) this.armIdle(session, info);
    });
    try {
      this.route(stream, headers, rawHeaders, info);
    } catch (e) {
      // A defect of ours must cost one stream, not the process.
      this.host.log.error('HTTP/2 stream failed', { client: info.clientIp, reason: (e as Error).message });
      respondH2Error(stream, 500);
    }
  }

  private route(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[], info: SessionInfo): void {
    const method = headers[':method'] ?? '';
    const path = headers[':path'];
    const authority = headers[':authority'] ?? headerString(headers.host);
    const protocol = headers[':protocol'];
    const isConnect = method === 'CONNECT';
    if (isConnect && protocol === undefined) {
      this.refuse(stream, info, 501, 'CONNECT (forward proxying) is not supported', method, authority ?? '');
      return;
    }
    if (path === undefined || (isConnect && (headers[':scheme'] === undefined || authority === undefined))) {
      // RFC 8441 §4 / RFC 9113 §8.3: a malformed request is a stream error (nghttp2 usually catches it first).
      this.host.log.info('bad HTTP/2 request', {
        status: 'RST PROTOCOL_ERROR',
        reason: 'missing pseudo-header',
        client: info.clientIp,
        method,
      });
      stream.close(NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    if (authority !== undefined && !isValidHost(authority)) {
      this.refuse(stream, info, 400, `malformed :authority "${authority.slice(0, 80)}"`, method, path);
      return;
    }
    const config = this.host.config;
    const limited = checkLimits(
      rawHeaders,
      headLimits(config, info.listen, () => info.localAddress),
    );
    if (limited !== undefined) {
      this.refuse(stream, info, limited.status, limited.reason, method, path);
      return;
    }
    const vhost = selectVirtualHost(config, info.listen, info.localAddress, authority);
    if (isConnect && protocol!.toLowerCase() !== 'websocket') {
      this.refuse(stream, info, 501, `extended CONNECT for protocol "${protocol}" is not supported`, method, path);
      return;
    }
    if (isConnect && !vhost.settings.h2WebSockets) {
      this.refuse(stream, info, 501, 'H2WebSockets is off for this server', method, path);
      return;
    }
    const websocket = isConnect ? { key: newWebSocketKey() } : undefined;
    const backendMethod = isConnect ? 'GET' : method;
    const contentLength = headerString(headers['content-length']);
    if (isConnect && contentLength !== undefined) {
      // RFC 9110 §9.3.6: a CONNECT has no content; its DATA are the tunnel's. Forwarding the field
      // would make the backend read the first bytes of the WebSocket as a request body.
      this.refuse(stream, info, 400, 'content-length on an extended CONNECT', method, path);
      return;
    }
    const maxBody = vhost.settings.limitRequestBody;
    if (maxBody > 0 && contentLength !== undefined && Number(contentLength) > maxBody) {
      this.refuse(stream, info, 413, `request body of ${contentLength} bytes exceeds LimitRequestBody (${maxBody})`, method, path);
      return;
    }
    const body = isConnect || stream.endAfterHeaders ? H2Body.None : contentLength !== undefined ? H2Body.Length : H2Body.Chunked;
    const fields = backendHeaders(rawHeaders, websocket?.key, body === H2Body.Chunked);
    const upgrade = isConnect ? 'websocket' : undefined;
    // An extended CONNECT is the HTTP/2 form of an upgrade: routing (RewriteCond %{HTTP:Upgrade},
    // %{HTTP:Connection}) sees it as one, as Apache's mod_http2 does (h2_ws.c adds both fields).
    const routingFields = isConnect ? [...fields, 'Upgrade', 'websocket', 'Connection', 'Upgrade'] : fields;
    const decision = decideRequest(
      vhost,
      { method: backendMethod, target: path, upgrade, headers: routingFields, host: authority, secure: info.listen.protocol === 'https' },
      { clientIp: info.clientIp, localAddress: () => info.localAddress, protocol: 'HTTP/2.0', limits: this.host.wsLimits },
    );
    if (decision.kind === 'handler') {
      const record = this.record(info, method, path, undefined, fields, authority);
      record.routed(vhost, undefined);
      const local = new H2Local(stream, record, method === 'HEAD');
      runHandler(
        this.host,
        decision.handler,
        localRequest({ method, target: path, host: authority }, fields, info.listen.protocol === 'https', vhost, record, decision.file),
        local,
      );
      return;
    }
    if (decision.kind === 'local' || decision.kind === 'redirect') {
      const fields: string[] = [];
      if (decision.kind === 'redirect' && decision.location !== undefined) fields.push('Location', decision.location);
      if (decision.kind === 'local' && decision.realm !== undefined) fields.push('WWW-Authenticate', basicChallenge(decision.realm));
      if (decision.kind === 'local' && decision.retryAfter !== undefined) fields.push('Retry-After', String(decision.retryAfter));
      this.refuse(stream, info, decision.status, decision.reason, method, path, fields);
      return;
    }
    const req: RequestHead = {
      method: backendMethod,
      target: path,
      host: authority,
      headers: fields,
      connectionTokens: [],
      contentLength: contentLength === undefined ? -1 : Number(contentLength),
      chunked: body === H2Body.Chunked,
      upgrade,
      versionMinor: 1,
    };
    // The client's own method (an RFC 8441 WebSocket's is CONNECT), not the backend's.
    const record = this.record(info, method, path, upgrade, fields, authority);
    record.routed(vhost, decision.route);
    const up = new Upstream(this.host, decision, record, fields, headerScope(vhost, backendMethod, path, info.tls));
    const side = new H2Client(stream, info.clientIp, body, websocket?.key, vhost.settings.limitRequestBody);
    side.x = new Exchange(this.host, side, vhost, req, up);
    side.start();
  }

  private refuse(
    stream: http2.ServerHttp2Stream,
    info: SessionInfo,
    status: number,
    reason: string,
    method: string,
    path: string,
    fields: readonly string[] = [],
  ): void {
    this.host.log.info('request not proxied', { status, reason, client: info.clientIp, method, path, protocol: 'h2' });
    respondH2Error(stream, status, undefined, fields);
    const record = this.record(info, method, path, undefined);
    if (method !== 'HEAD') record.bytesOut = errorBody(status).length;
    record.end({ kind: 'answered', status, reason });
  }

  /** The record of a request read on a stream of `info`'s session. */
  private record(
    info: SessionInfo,
    method: string,
    path: string,
    upgrade: string | undefined,
    headers?: readonly string[],
    host?: string,
  ): RequestRecord {
    const tls = info.listen.protocol === 'https';
    return new RequestRecord(
      {
        clientIp: info.clientIp,
        clientPort: info.clientPort,
        listen: info.listen,
        tls,
        alpn: tls ? 'h2' : undefined,
        protocol: 'h2',
        sink: this.host.observers,
      },
      { method, target: path, upgrade, headers: headers as string[] | undefined, host, versionMinor: 1 },
      info.acceptedAt,
    );
  }

  /**
   * A graceful stop: every session is told GOAWAY and takes no new stream; those under way (and
   * RFC 8441 tunnels) go on until they end or `closeAll`.
   */
  drain(): void {
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
  }

  /** Closes every session now (shutdown): their streams, and the tunnels on them, close too. */
  closeAll(): void {
    this.stopping = true;
    for (const s of [...this.sessions]) {
      s.destroy();
      const info = (s as Session)[kInfo];
      if (info !== undefined) armCut(info);
    }
  }
}

/**
 * The request's fields for the HTTP/1.1 backend, from the raw HTTP/2 list (order kept): pseudo-
 * headers out (Host comes from :authority); cookies joined into one field (RFC 9113 §8.2.3); for
 * a WebSocket, the key and version of an RFC 6455 handshake; `Transfer-Encoding: chunked` for a
 * body of unknown length.
 */
function backendHeaders(raw: readonly string[], wsKey: string | undefined, chunked: boolean): string[] {
  const out: string[] = [];
  const cookies: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === 0x3a /* : */) continue;
    if (name === 'cookie') {
      cookies.push(raw[i + 1]);
      continue;
    }
    if (wsKey !== undefined && (name === 'sec-websocket-key' || name === 'sec-websocket-version')) continue;
    out.push(name, raw[i + 1]);
  }
  if (cookies.length > 0) out.push('cookie', cookies.join('; '));
  if (wsKey !== undefined) out.push('sec-websocket-key', wsKey, 'sec-websocket-version', '13');
  if (chunked) out.push('transfer-encoding', 'chunked');
  return out;
}

/**
 * LimitRequestLine, LimitRequestFieldSize and LimitRequestFields on an HTTP/2 header list, as
 * mod_http2 applies them: a pseudo-header longer than the request-line limit is 414; a field
 * longer than the field limit once merged with its repeats (`name: v1, v2`; cookies with `; `),
 * or more distinct fields than the count limit, is 431.
 */
function checkLimits(raw: readonly string[], limits: RequestLimits): { status: number; reason: string } | undefined {
  let merged: Map<string, number> | undefined;
  let fields = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const vlen = raw[i + 1].length;
    if (name.charCodeAt(0) === 0x3a) {
      if (vlen > limits.line) return { status: 414, reason: `${name} exceeds LimitRequestLine (${limits.line})` };
      continue;
    }
    merged ??= new Map();
    const prev = merged.get(name);
    const len = prev === undefined ? name.length + 2 + vlen : prev + 2 + vlen;
    if (len > limits.fieldSize)
      return { status: 431, reason: `request header field ${name.slice(0, 40)} exceeds LimitRequestFieldSize (${limits.fieldSize})` };
    if (prev === undefined && limits.fields > 0 && ++fields > limits.fields) {
      return { status: 431, reason: `more than ${limits.fields} request header fields (LimitRequestFields)` };
    }
    merged.set(name, len);
  }
  return undefined;
}

function armFirstHead(session: Session, info: SessionInfo, ms: number): void {
  info.firstHead = setTimeout(firstHeadTimer, ms, session);
  info.firstHead.unref();
}

/**
 * The first request of an HTTP/2 connection must come within RequestReadTimeout's header stage
 * (the bytes received meanwhile extend it at MinRate, as for an HTTP/1 head): past it the
 * connection is closed, with one log line.
 */
function firstHeadTimer(session: Session): void {
  const info = session[kInfo];
  if (info === undefined || session.destroyed) return;
  info.firstHead = undefined;
  if (info.streams > 0) return;
  const stage = info.host.config.mainServer.settings.requestReadTimeouts.header;
  const now = Date.now();
  const deadline = stageDeadline(stage, info.acceptedAt, info.socket.bytesRead - info.startBytes);
  if (deadline > now) {
    armFirstHead(session, info, Math.ceil(deadline - now));
    return;
  }
  info.host.log.warn('request head timed out', { client: info.clientIp, protocol: 'h2' });
  session.destroy();
}

function sessionOnStream(
  this: Session,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  _flags: number,
  rawHeaders: string[],
): void {
  const info = this[kInfo];
  if (info === undefined) {
    stream.close(NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  info.front.onStream(this, stream, headers, rawHeaders);
}

/** A stream ended by a reset before it had an answer: one token of the rapid-reset bucket; none left, the session ends. */
function resetBeforeAnswer(session: Session, info: SessionInfo): void {
  const now = Date.now();
  info.resetTokens = Math.min(H2_RESET_BURST, info.resetTokens + ((now - info.resetAt) * H2_RESET_RATE) / 1000);
  info.resetAt = now;
  if (--info.resetTokens >= 0 || session.destroyed) return;
  info.log.warn('HTTP/2 session closed', {
    client: info.clientIp,
    reason: `more than ${H2_RESET_BURST} streams reset before their answer (rapid reset)`,
    status: 'GOAWAY ENHANCE_YOUR_CALM',
  });
  // With an error: Node's destroy() without one sends GOAWAY NO_ERROR whatever code is given.
  session.destroy(ownError('RAPID_RESET', 'rapid reset'), NGHTTP2_ENHANCE_YOUR_CALM);
  armCut(info);
}

/** Errors wsgate ends a session with itself (already logged, so 'sessionError' skips them). */
const kOwn = Symbol('wsgate.h2own');

function ownError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, [kOwn]: true });
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function streamOnError(): void {
  // A reset or failed stream: whoever owns it (exchange, tunnel) sees 'close' and ends its part.
}

function closeIdle(session: Session): void {
  const info = session[kInfo]!;
  info.idle = undefined;
  if (info.streams !== 0 || session.closed || session.destroyed) return;
  session.close();
  armCut(info);
}

/**
 * The session has been silent for H2_PROBE_AFTER_MS. An open one is asked a PING; one already
 * closing cannot be (Node sends no PING after GOAWAY), and it has had its chance to finish.
 */
function sessionOnSilence(this: Session): void {
  const info = this[kInfo];
  if (info === undefined || this.destroyed || info.probe !== undefined) return;
  if (this.closed) {
    armCut(info);
    return;
  }
  info.probe = setTimeout(probeExpired, H2_PING_TIMEOUT_MS, this);
  info.probe.unref();
  try {
    this.ping(probeAnswered.bind(this));
  } catch {
    // Destroyed meanwhile: its 'close' clears the probe.
  }
}

function probeAnswered(this: Session, err: Error | null): void {
  const info = this[kInfo];
  if (info === undefined || err !== null || this.destroyed) return;
  if (info.probe !== undefined) clearTimeout(info.probe);
  info.probe = undefined;
  // Node's session timer fires once per silence: arm it again for the next one.
  this.setTimeout(H2_PROBE_AFTER_MS);
}

/** No ACK: the peer is gone or nghttp2 stopped reading (a connection error). Every stream ends with the session. */
function probeExpired(session: Session): void {
  const info = session[kInfo]!;
  info.probe = undefined;
  if (session.destroyed) return;
  const reason = `no PING ACK within ${H2_PING_TIMEOUT_MS} ms`;
  info.log.info('HTTP/2 session closed', { client: info.clientIp, reason, streams: info.streams });
  // With an error, so that each stream closes with an error code: a tunnel whose client had
  // half-closed then sees a reset, not the end of a clean close.
  session.destroy(ownError('PING_TIMEOUT', reason), NGHTTP2_CANCEL);
  armCut(info);
}

function armCut(info: SessionInfo): void {
  if (info.cut !== undefined) return;
  info.cut = setTimeout(cutSocket, H2_CLOSE_GRACE_MS, info);
  info.cut.unref();
}

/** The session is over but its socket stayed open (a peer that neither reads nor closes): Node's 'close' on the socket destroys what is left. */
function cutSocket(info: SessionInfo): void {
  info.cut = undefined;
  info.socket.destroy();
}

function clearTimers(info: SessionInfo): void {
  for (const t of [info.idle, info.probe, info.cut, info.firstHead]) if (t !== undefined) clearTimeout(t);
  info.idle = info.probe = info.cut = info.firstHead = undefined;
}

// An HTTP/1.1 client connection on a Listen port: reads request heads, routes each request and
// runs one Exchange at a time (pipelined requests wait their turn), until the connection closes
// or a request becomes a tunnel.

import type { Socket } from 'node:net';
import type { Config, ListenAddress, VirtualHost } from '../config/model';
import {
  findHeadEnd,
  leadingEmptyLines,
  HeadError,
  parseRequestHead,
  PartialHeadCheck,
  requestHeadCap,
  type RequestHead,
  type RequestLimits,
} from '../http/head';
import { type HandlerHost, localRequest, runHandler } from '../handlers/handler';
import { errorBody } from '../http/forward';
import { respondHttp1Error } from '../proxy/answers';
import { Http1Local } from '../proxy/local-http1';
import { Http1Client, type ExchangeOwner } from '../proxy/client-http1';
import { Exchange } from '../proxy/exchange';
import { RequestRecord } from '../proxy/record';
import { headerScope, Upstream } from '../proxy/upstream';
import { basicChallenge, routeHead } from '../routing/router';
import { stageDeadline } from '../config/reqtimeout';
import { EvictionLog, maxUnreadHeads } from './unread';
import { plainAddress } from './address';
import { headLimits } from './limits';

/** Between requests, an idle keep-alive connection is closed after this long (Apache's KeepAliveTimeout default). */
export const KEEPALIVE_TIMEOUT_MS = 5_000;

const kConn = Symbol('wsgate.conn');

/** Connections Node accepted that have not finished their first head, oldest first (see unread.ts). */
const unread = new Set<ClientConnection>();
const evictions = new EvictionLog();
type ConnSocket = Socket & { [kConn]?: ClientConnection };

export interface ConnectionHost extends HandlerHost {
  /** The config in force now; read once per request so a reload applies to the next one. */
  readonly config: Config;
  connectionClosed(conn: ClientConnection): void;
  /**
   * The connection opened with the HTTP/2 preface (`bytes`, read so far): serve it as h2c if its
   * server speaks it (`Protocols h2c`); true when it was taken (the connection is detached).
   */
  takePriorKnowledgeH2?(conn: ClientConnection, listen: ListenAddress, bytes: Buffer): boolean;
}

/** What runs a request on the connection once its head is read: an exchange's client side, or a handler's answer. */
interface ConnectionTenant {
  onData(chunk: Buffer): void;
  /** The client's FIN. */
  onEnd(): void;
  gone(detail: string): void;
  drained(): void;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Whether `buf` is (the start of) the HTTP/2 connection preface. */
function isH2Preface(buf: Buffer): boolean {
  const n = Math.min(buf.length, H2_PREFACE.length);
  return buf.compare(H2_PREFACE, 0, n, 0, n) === 0;
}

export class ClientConnection implements ExchangeOwner {
  readonly clientIp: string;
  /** When the connection was accepted (its requests' records start there). */
  private readonly acceptedAt = Date.now();
  private buf: Buffer | undefined;
  /** The exchange (through its client side on this connection) or the handler running now. */
  private exchange: ConnectionTenant | undefined;
  private detached = false;
  private closed = false;
  /** Set by drain(): close once the current (or next) request is answered. */
  private lastRequest = false;
  /** A request was read: the connection can no longer turn into HTTP/2 (the preface must come first). */
  private servedAny = false;
  /** The limits the head being read is held to (chosen when it starts), and the check of its lines so far. */
  private limits: RequestLimits | undefined;
  private readonly partial = new PartialHeadCheck();
  /** RequestReadTimeout's header stage: when it started (0: not running), and the socket's byte count then. */
  private headStartedAt = 0;
  private headStartBytes = 0;
  private headTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: ConnectionHost,
    private readonly listen: ListenAddress,
    readonly socket: Socket,
  ) {
    this.clientIp = plainAddress(socket.remoteAddress);
    const s = socket as ConnSocket;
    s[kConn] = this;
    s.on('data', connOnData);
    s.on('end', connOnEnd);
    s.on('error', connOnError);
    s.on('close', connOnClose);
    s.on('drain', connOnDrain);
    s.on('timeout', connOnTimeout);
    // While a head arrives, Timeout bounds the silence (each byte restarts it) and
    // RequestReadTimeout's header stage the whole head.
    socket.setTimeout(host.config.mainServer.settings.timeoutMs);
    this.startHeadStage();
    if (unread.size >= maxUnreadHeads()) {
      const oldest = unread.values().next().value as ClientConnection;
      unread.delete(oldest);
      oldest.onGone('evicted');
      evictions.evicted(host.log);
    }
    unread.add(this);
  }

  /** Starts the header stage: on a new connection, and at the first byte of a keep-alive request. */
  private startHeadStage(): void {
    const stage = this.host.config.mainServer.settings.requestReadTimeouts.header;
    if (stage.timeoutMs === 0) return;
    this.headStartedAt = Date.now();
    this.headStartBytes = this.socket.bytesRead;
    this.armHeadTimer(stage.timeoutMs);
  }

  /** One timer per head, re-armed only when it fires before a deadline that bytes have moved. */
  private armHeadTimer(ms: number): void {
    if (this.headTimer !== undefined) clearTimeout(this.headTimer);
    this.headTimer = setTimeout(connOnHeadTimer, ms, this);
    this.headTimer.unref();
  }

  private stopHeadStage(): void {
    unread.delete(this);
    this.headStartedAt = 0;
    if (this.headTimer !== undefined) {
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
    }
  }

  /** @internal The header stage's timer: the bytes received meanwhile may have moved the deadline (MinRate). */
  onHeadTimer(): void {
    this.headTimer = undefined;
    if (this.headStartedAt === 0 || this.exchange !== undefined || this.closed || this.detached) return;
    const stage = this.host.config.mainServer.settings.requestReadTimeouts.header;
    const now = Date.now();
    const deadline = stageDeadline(stage, this.headStartedAt, this.socket.bytesRead - this.headStartBytes);
    if (deadline > now) {
      this.armHeadTimer(Math.ceil(deadline - now));
      return;
    }
    this.headTimedOut();
  }

  /**
   * A head took too long (RequestReadTimeout) or went silent (Timeout). As Apache: a request line
   * already in → 408 and close; less than that → closed without an answer. One log line, none for
   * a connection that sent nothing (an idle keep-alive one, a port scan).
   */
  private headTimedOut(): void {
    this.stopHeadStage();
    const buf = this.buf;
    if (buf?.includes(0x0a)) {
      this.host.log.warn('request head timed out', { status: 408, client: this.clientIp });
      this.buf = undefined;
      this.socket.pause();
      respondHttp1Error(this.socket, 408, false);
      this.socket.destroySoon();
      return;
    }
    if (buf !== undefined && buf.length > 0) this.host.log.warn('request head timed out', { client: this.clientIp });
    this.onGone('timeout');
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.exchange !== undefined) {
      this.exchange.onData(chunk);
      return;
    }
    if (this.headStartedAt === 0 && this.buf === undefined) this.startHeadStage();
    this.buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    this.readHead(chunk.length);
  }

  private readHead(newBytes: number): void {
    let buf = this.buf;
    if (buf === undefined) return;
    if (buf[0] === 0x0d) {
      // Empty lines before a request line are skipped (up to ten, as Apache does).
      const skip = leadingEmptyLines(buf);
      if (skip > 0) {
        buf = this.buf = buf.subarray(skip);
        newBytes = Math.min(newBytes, buf.length);
        if (buf.length === 0) return;
      }
    }
    const limits = (this.limits ??= headLimits(this.host.config, this.listen, this.localAddress));
    const end = findHeadEnd(buf, buf.length - newBytes);
    const cap = requestHeadCap(limits);
    if (end === -1 || end > cap) {
      // A line over its own limit is answered as such (414, 400) as soon as it is seen; a head
      // whose lines are each within their limits but that is too large as a whole is 431.
      try {
        this.partial.check(end === -1 ? buf : buf.subarray(0, end), limits);
      } catch (e) {
        if (!(e instanceof HeadError)) throw e;
        this.reject(e.status, e.reason);
        return;
      }
      if (end !== -1 || buf.length > cap) this.reject(431, 'request head too large');
      return;
    }
    this.limits = undefined;
    this.partial.reset();
    let req: RequestHead;
    try {
      req = parseRequestHead(buf, end, limits);
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      // `PRI * HTTP/2.0` is HTTP/2 with prior knowledge (h2c), not a bad HTTP/1 version, when the server speaks it.
      if (e.status === 505 && !this.servedAny && isH2Preface(buf) && this.host.takePriorKnowledgeH2?.(this, this.listen, buf) === true)
        return;
      this.reject(e.status, e.reason);
      return;
    }
    this.buf = undefined;
    this.servedAny = true;
    this.stopHeadStage();
    this.socket.setTimeout(0);
    this.handle(req, end < buf.length ? buf.subarray(end) : undefined);
  }

  private readonly localAddress = (): string => this.socket.localAddress ?? '';

  private handle(req: RequestHead, rest: Buffer | undefined): void {
    const { vhost, decision } = routeHead(
      this.host.config,
      this.listen,
      () => this.socket.localAddress ?? '',
      req,
      this.clientIp,
      this.host.wsLimits,
    );
    if (decision.kind === 'handler') {
      const record = this.record(req);
      record.routed(vhost, undefined);
      const local = new Http1Local(this, req, record);
      this.exchange = local;
      // The body and any pipelined bytes first: a handler that answers at once decides keep-alive on them.
      local.start(rest);
      const secure = (this.socket as Socket & { encrypted?: boolean }).encrypted === true;
      runHandler(this.host, decision.handler, localRequest(req, req.headers, secure, vhost, record, decision.file), local);
      return;
    }
    if (decision.kind === 'local' || decision.kind === 'redirect') {
      this.host.log.info('request not proxied', {
        status: decision.status,
        reason: decision.reason,
        client: this.clientIp,
        method: req.method,
        path: req.target,
      });
      // Without a body to skip, the connection can serve the next request.
      const keepAlive = req.versionMinor === 1 && !req.connectionTokens.includes('close') && !req.chunked && req.contentLength <= 0;
      let extra = decision.kind === 'redirect' && decision.location !== undefined ? `Location: ${decision.location}\r\n` : '';
      if (decision.kind === 'local' && decision.realm !== undefined) extra += `WWW-Authenticate: ${basicChallenge(decision.realm)}\r\n`;
      if (decision.kind === 'local' && decision.retryAfter !== undefined) extra += `Retry-After: ${decision.retryAfter}\r\n`;
      respondHttp1Error(this.socket, decision.status, keepAlive, extra, req.method !== 'HEAD');
      const record = this.record(req);
      record.routed(vhost, undefined);
      if (req.method !== 'HEAD') record.bytesOut = errorBody(decision.status).length;
      record.end({ kind: 'answered', status: decision.status, reason: decision.reason });
      if (keepAlive) this.exchangeDone(true, rest);
      return;
    }
    const maxBody = vhost.settings.limitRequestBody;
    if (maxBody > 0 && req.contentLength > maxBody) {
      // Known from the head: refused before any backend is contacted (a chunked body is counted as it comes).
      this.reject(413, `request body of ${req.contentLength} bytes exceeds LimitRequestBody (${maxBody})`);
      return;
    }
    const record = this.record(req);
    record.routed(vhost, decision.route);
    const up = new Upstream(this.host, decision, record, req.headers, headerScope(vhost, req.method, req.target, this.socket));
    this.run(vhost, req, up).start(rest);
  }

  /** The record of a request read on this connection. */
  private record(req: RequestHead): RequestRecord {
    const s = this.socket as Socket & { encrypted?: boolean; alpnProtocol?: string | false };
    return new RequestRecord(
      {
        clientIp: this.clientIp,
        clientPort: s.remotePort,
        listen: this.listen,
        tls: s.encrypted === true,
        alpn: typeof s.alpnProtocol === 'string' ? s.alpnProtocol : undefined,
        protocol: 'http/1.1',
        sink: this.host.observers,
      },
      req,
      this.acceptedAt,
    );
  }

  /** An exchange for `req` on this connection, its client side returned (the exchange is its `x`). */
  private run(vhost: VirtualHost, req: RequestHead, up: Upstream): Http1Client {
    const side = new Http1Client(this, req, vhost.settings, this.host.config.mainServer.settings.requestReadTimeouts.body);
    side.x = new Exchange(this.host, side, vhost, req, up);
    this.exchange = side;
    return side;
  }

  /** Bytes read from the connection before it was given to this object (the native front). */
  feed(initial: Buffer): void {
    this.buf = initial;
    this.readHead(initial.length);
  }

  /**
   * Takes over an upgrade the native front started: the request was sent and the backend
   * answered something other than a 101 to take (see Exchange.resumeAtAnswer).
   */
  resumeUpgrade(vhost: VirtualHost, req: RequestHead, up: Upstream, rest: Buffer | undefined, backend: Socket, answer: Buffer): void {
    this.stopHeadStage();
    this.socket.setTimeout(0);
    const side = this.run(vhost, req, up);
    side.start(rest, backend, answer);
  }

  exchangeDone(keepAlive: boolean, leftover: Buffer | undefined): void {
    this.exchange = undefined;
    if (this.closed || this.detached) return;
    if (!keepAlive || this.lastRequest) {
      // Let the response flush, then close; destroySoon does not wait for a FIN from the client.
      this.socket.destroySoon();
      return;
    }
    // The next head's stage starts with its first byte (Apache: KeepAliveTimeout until then).
    this.socket.setTimeout(KEEPALIVE_TIMEOUT_MS);
    this.socket.resume();
    if (leftover !== undefined && leftover.length > 0) {
      this.startHeadStage();
      this.buf = leftover;
      this.readHead(leftover.length);
    }
  }

  detach(): void {
    this.detached = true;
    const s = this.socket as ConnSocket;
    s[kConn] = undefined;
    s.removeListener('data', connOnData);
    s.removeListener('end', connOnEnd);
    s.removeListener('error', connOnError);
    s.removeListener('close', connOnClose);
    s.removeListener('drain', connOnDrain);
    s.removeListener('timeout', connOnTimeout);
    s.setTimeout(0);
    this.stopHeadStage();
    this.host.connectionClosed(this);
  }

  /** Answers a malformed request and closes the connection (REFERENCE §4: 400, 431). */
  private reject(status: number, reason: string): void {
    this.host.log.warn('bad request', { status, reason, client: this.clientIp });
    this.buf = undefined;
    this.socket.pause();
    respondHttp1Error(this.socket, status, false);
    this.socket.destroySoon();
  }

  /** @internal */
  onEnd(): void {
    if (this.exchange !== undefined) {
      this.exchange.onEnd();
      return;
    }
    if (this.buf !== undefined && this.buf.length > 0) {
      this.reject(400, 'connection closed in the middle of a request head');
      return;
    }
    this.socket.end();
  }

  /** @internal */
  onGone(detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.stopHeadStage();
    this.exchange?.gone(detail);
    this.exchange = undefined;
    this.socket.destroy();
    this.host.connectionClosed(this);
  }

  /** @internal */
  onDrain(): void {
    this.exchange?.drained();
  }

  /** @internal */
  onTimeout(): void {
    if (this.exchange !== undefined) return;
    this.headTimedOut();
  }

  /**
   * A graceful stop: the request under way, or the next one on an idle keep-alive connection (a
   * readiness probe then sees the stop), is the connection's last; it closes once it is answered.
   */
  drain(): void {
    this.lastRequest = true;
  }

  /** A request is under way: being read (part of a head came) or answered. */
  get busy(): boolean {
    return this.exchange !== undefined || (this.buf !== undefined && this.buf.length > 0);
  }

  /** Closes the connection now (shutdown). */
  destroy(): void {
    this.onGone('shutdown');
  }
}

function connOnData(this: ConnSocket, chunk: Buffer): void {
  this[kConn]?.onData(chunk);
}
function connOnEnd(this: ConnSocket): void {
  this[kConn]?.onEnd();
}
function connOnError(this: ConnSocket, err: Error): void {
  this[kConn]?.onGone((err as NodeJS.ErrnoException).code ?? err.message);
}
function connOnClose(this: ConnSocket): void {
  this[kConn]?.onGone('closed');
}
function connOnDrain(this: ConnSocket): void {
  this[kConn]?.onDrain();
}
function connOnTimeout(this: ConnSocket): void {
  this[kConn]?.onTimeout();
}
function connOnHeadTimer(conn: ClientConnection): void {
  conn.onHeadTimer();
}

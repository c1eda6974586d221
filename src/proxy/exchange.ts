// The backend side of one proxied request, whichever front it came by: reach the backend through
// Upstream (election, failover, max=), send the request head and body, read the answer head, and
// then relay the answer, or after a checked 101 make the request a tunnel (becomeTunnel, the one
// place where that happens), or fail with one status and one log line. What differs per front
// (an HTTP/1.1 socket, an HTTP/2 stream) is a ClientSide (client-http1.ts, client-h2.ts); the
// native front's handshakes (native-upgrade.ts) take their decisions from the functions here.

import type { Socket } from 'node:net';
import type { VirtualHost } from '../config/model';
import { type BodyError, type BodyFramer, Framing, responseFraming } from '../http/body';
import { findHeadEnd, HeadError, headerValue, MAX_HEAD_BYTES, parseResponseHead, type RequestHead, type ResponseHead } from '../http/head';
import { webSocketAccept } from '../http/websocket-key';
import type { TunnelClient } from '../tunnel/tunnel';
import { websocketFlagsOf } from '../tunnel/wsframe';
import type { GatewayContext, TunnelEnds } from './context';
import type { FrontProtocol, RequestRecord } from './record';
import type { Refusal, Upstream } from './upstream';

/** What one front does for an exchange: how its client is answered, paused and handed to a tunnel. */
export interface ClientSide {
  readonly protocol: FrontProtocol;
  readonly clientIp: string;
  /** The client's connection is TLS (mapped Locations name the front as https; X-Forwarded-*). */
  readonly secure: boolean;
  /** The request may become a tunnel (an HTTP/2 stream only when it is an RFC 8441 WebSocket). */
  readonly mayUpgrade: boolean;
  /** The request has a body: it cannot be sent again on a fresh connection. */
  readonly hasBody: boolean;
  /** The body's length is unknown to the backend: it is sent chunk-framed. */
  readonly chunkBody: boolean;
  /** The client takes the payload of a chunked answer, not its framing (HTTP/2). */
  readonly dechunk: boolean;
  /**
   * The Sec-WebSocket-Key wsgate made for the backend (an RFC 8441 WebSocket): the 101 must carry
   * its Accept, and any other 2xx is no answer to it.
   */
  readonly wsKey: string | undefined;
  pause(): void;
  resume(): void;
  /** The backend connection is ready and the request head written: body bytes held back may go now. */
  backendReady(): void;
  /** A 1xx answer other than 101, relayed or dropped. */
  interim(res: ResponseHead): void;
  /** Sends the final answer head; false when the exchange was ended instead (client gone, head refused). */
  answerHead(x: Exchange, res: ResponseHead, framer: BodyFramer): boolean;
  /** Answer body bytes; false when the client must drain first. */
  answerBody(part: Buffer): boolean;
  /** The answer is complete. */
  answerDone(x: Exchange, backendReusable: boolean): void;
  /** wsgate's own error answer (nothing was sent yet); `fields`: extra header fields, name/value pairs. */
  error(status: number, fields: readonly string[]): void;
  /** Cuts the client off without an answer (a head was sent already, or the client is broken). */
  abort(): void;
  /** Sends the switching answer; false when the exchange was ended instead. */
  switchHead(x: Exchange, res: ResponseHead): boolean;
  /** Gives the connection up to a tunnel; `backend` is the backend socket the tunnel will take. */
  tunnelEnd(backend: Socket): { client: TunnelClient; early: Buffer | undefined };
}

const enum Phase {
  Connecting,
  AwaitingHead,
  RelayingBody,
  Done,
}

/** Most interim (1xx) responses taken before the final one, as Apache's limit. */
const MAX_INTERIM = 10;

const CHUNK_END = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

export class Exchange {
  private phase = Phase.Connecting;
  private backendSocket: Socket | undefined;
  private reused = false;
  private retried = false;
  private resFramer: BodyFramer | undefined;
  /** Body bytes from the client that came before the backend connection was ready. */
  private pending: Buffer[] | undefined;
  /** The client has sent its whole body (or has none). */
  private bodyComplete = false;
  /** The request, head and whole body, has been written to the backend. */
  private requestSent = false;
  private resBuf: Buffer | undefined;
  private interim = 0;
  private timer: NodeJS.Timeout | undefined;
  private keepBackend = false;
  readonly upgradeValue: string | undefined;

  constructor(
    readonly ctx: GatewayContext,
    readonly client: ClientSide,
    readonly vhost: VirtualHost,
    readonly req: RequestHead,
    /** The backend (or balancer member), the election and failover, and the request's slot in its counters. */
    readonly up: Upstream,
  ) {
    this.upgradeValue = client.mayUpgrade ? up.upgradeValue : undefined;
  }

  get isUpgrade(): boolean {
    return this.upgradeValue !== undefined;
  }

  get record(): RequestRecord {
    return this.up.record;
  }

  get over(): boolean {
    return this.phase === Phase.Done;
  }

  /** A backend connection is attached and the request head written to it. */
  get connected(): boolean {
    return this.backendSocket !== undefined;
  }

  start(): void {
    if (this.phase === Phase.Done) return;
    this.up.choose(this);
  }

  /** @internal A backend is chosen: reuse a pooled connection or connect (at once after a failover). */
  upstreamChosen(failover: boolean): void {
    if (failover) {
      this.up.connect(this);
      return;
    }
    this.client.pause();
    if (!this.isUpgrade) {
      const idle = this.up.state.takeIdle();
      if (idle !== undefined) {
        this.reused = true;
        this.attachBackend(idle);
        return;
      }
    }
    this.up.connect(this);
  }

  /** @internal */
  upstreamRefused(r: Refusal): void {
    this.fail(r.status, r.reason, r.retryAfterS);
  }

  /** @internal */
  get upstreamOver(): boolean {
    return this.phase === Phase.Done;
  }

  /** @internal */
  upstreamConnected(socket: Socket): void {
    this.attachBackend(socket);
  }

  /**
   * Carries on an upgrade whose backend connection, request head and answer the native front
   * handled, from the answer on: it was not a 101 it could take (another status to relay, an
   * interim response, a malformed head). The request had no body.
   */
  resumeAtAnswer(backend: Socket, answer: Buffer): void {
    this.client.pause();
    this.bodyComplete = this.requestSent = true;
    this.listenBackend(backend);
    this.phase = Phase.AwaitingHead;
    this.timer = setTimeout(onResponseTimeout, this.up.backend.responseTimeoutMs, this);
    this.onHeadBytes(answer);
  }

  private listenBackend(socket: Socket): void {
    this.backendSocket = socket;
    (socket as ExchangeSocket)[kExchange] = this;
    for (const [event, handler] of BACKEND_HANDLERS) socket.on(event, handler);
  }

  private attachBackend(socket: Socket): void {
    this.listenBackend(socket);
    this.record.connectedAt = Date.now();
    // A socket taken from the keep-alive pool comes back paused (origins.ts unpool).
    if (this.reused) socket.resume();
    const head = this.up.requestHead(this.vhost, this.req, this.client.clientIp, this.client.secure, this.client.protocol === 'h2');
    this.up.sent(head.length);
    socket.write(head);
    this.phase = Phase.AwaitingHead;
    this.timer = setTimeout(onResponseTimeout, this.up.backend.responseTimeoutMs, this);
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) for (const chunk of pending) this.writeBody(chunk);
    this.client.backendReady();
    if (this.over) return;
    if (this.bodyComplete) this.sendBodyEnd();
    else if (!socket.writableNeedDrain) this.client.resume();
  }

  /** Request body bytes from the client; false when the client must wait (backend not ready, or draining). */
  bodyBytes(chunk: Buffer): boolean {
    if (this.phase === Phase.Done) return false;
    if (this.backendSocket === undefined) {
      (this.pending ??= []).push(chunk);
      return false;
    }
    if (this.timer !== undefined) this.timer.refresh();
    return this.writeBody(chunk);
  }

  /** The client's request body is complete (or it has none). */
  bodyEnd(): void {
    if (this.bodyComplete) return;
    this.bodyComplete = true;
    if (this.backendSocket !== undefined && this.phase !== Phase.Done) this.sendBodyEnd();
  }

  private sendBodyEnd(): void {
    if (this.requestSent) return;
    if (this.client.chunkBody) this.backendSocket!.write(CHUNK_END);
    this.requestSent = true;
  }

  /** Writes body bytes to the backend, chunk-framed when its length is unknown; false when it must drain. */
  private writeBody(chunk: Buffer): boolean {
    const b = this.backendSocket!;
    if (!this.client.chunkBody) {
      this.up.sent(chunk.length);
      return b.write(chunk);
    }
    if (chunk.length === 0) return true;
    const size = `${chunk.length.toString(16)}\r\n`;
    this.up.sent(size.length + chunk.length + CRLF.length);
    b.cork();
    b.write(size, 'latin1');
    b.write(chunk);
    const ok = b.write(CRLF);
    b.uncork();
    return ok;
  }

  /**
   * The client's body is wrong or incomplete: `status` is answered if no answer head went out yet
   * (and there is one to give), else the client is cut off.
   */
  clientBodyError(reason: string, status: number | undefined): void {
    if (status !== undefined && this.phase !== Phase.RelayingBody) this.fail(status, reason);
    else this.abort(reason);
  }

  /** The client's connection or stream failed or closed while this exchange ran. */
  clientGone(detail: string): void {
    if (this.phase === Phase.Done) return;
    this.ctx.log.debug('client went away during exchange', {
      client: this.client.clientIp,
      path: this.req.target,
      reason: detail,
      protocol: this.client.protocol,
    });
    this.record.end({ kind: 'client-gone', reason: detail });
    this.finish();
    this.dropBackend();
  }

  /** The client drained: read the answer again. */
  clientDrained(): void {
    if (this.phase === Phase.RelayingBody) this.backendSocket?.resume();
  }

  /** @internal The backend drained: read the request body again. */
  backendDrained(): void {
    if (!this.bodyComplete) this.client.resume();
  }

  /** @internal */
  onBackendData(chunk: Buffer): void {
    if (this.phase === Phase.AwaitingHead) this.onHeadBytes(chunk);
    else if (this.phase === Phase.RelayingBody) this.relayBody(chunk);
  }

  private onHeadBytes(chunk: Buffer): void {
    const prevLen = this.resBuf === undefined ? 0 : this.resBuf.length;
    const buf = this.resBuf === undefined ? chunk : Buffer.concat([this.resBuf, chunk]);
    const head = readAnswerHead(buf, prevLen);
    if (head === undefined) {
      this.resBuf = buf;
      return;
    }
    this.resBuf = undefined;
    if (typeof head === 'string') {
      this.fail(502, head);
      return;
    }
    const { res, end } = head;
    this.up.received(end);
    const rest = end < buf.length ? buf.subarray(end) : undefined;
    if (res.status === 101) {
      this.onSwitching(res, rest);
      return;
    }
    if (res.status >= 100 && res.status < 200) {
      if (++this.interim > MAX_INTERIM) {
        this.fail(502, 'too many interim responses');
        return;
      }
      this.client.interim(res);
      if (rest !== undefined) this.onHeadBytes(rest);
      return;
    }
    if (this.client.wsKey !== undefined && res.status >= 200 && res.status < 300) {
      this.fail(502, `backend answered ${res.status} to a WebSocket request instead of switching protocols`);
      return;
    }
    this.onFinalResponse(res, rest);
  }

  private onSwitching(res: ResponseHead, rest: Buffer | undefined): void {
    const refused = switchRefusal(res, this.upgradeValue, this.client.wsKey, this.bodyComplete);
    if (refused !== undefined) {
      this.fail(502, refused);
      return;
    }
    if (!this.client.switchHead(this, this.up.relayed(this.vhost, res, this.req, this.client.protocol === 'h2'))) return;
    const backend = this.backendSocket!;
    this.backendSocket = undefined;
    this.stop();
    releaseBackend(backend);
    backend.pause();
    const { client, early } = this.client.tunnelEnd(backend);
    becomeTunnel(this.ctx, this.up, this.vhost, res, { kind: 'sockets', client, backend, clientEarly: early, backendEarly: rest });
  }

  private onFinalResponse(res: ResponseHead, rest: Buffer | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.up.answered(res.status);
    this.record.answeredAt = Date.now();
    const framer = responseFraming(this.req.method, res.status, res.chunked, res.contentLength);
    this.resFramer = framer;
    this.keepBackend =
      !this.isUpgrade && res.versionMinor === 1 && framer.framing !== Framing.UntilClose && !res.connectionTokens.includes('close');
    this.record.status = res.status;
    const relayed = this.up.relayed(this.vhost, res, this.req, this.client.protocol === 'h2');
    this.record.answerHeaders = relayed.headers;
    if (!this.client.answerHead(this, relayed, framer)) return;
    if (this.client.dechunk && framer.framing === Framing.Chunked) {
      (framer as DechunkFramer)[kExchange] = this;
      framer.onChunkData = onChunkData;
    }
    this.phase = Phase.RelayingBody;
    if (framer.done) this.completeResponse(rest);
    else if (rest !== undefined) this.relayBody(rest);
  }

  /** @internal Answer body bytes for the client. */
  sendDown(part: Buffer): void {
    if (!this.client.answerBody(part)) this.backendSocket?.pause();
  }

  private relayBody(chunk: Buffer): void {
    const framer = this.resFramer!;
    let n: number;
    try {
      n = framer.consume(chunk, 0, chunk.length);
    } catch (e) {
      this.abort(`malformed response body from backend: ${(e as BodyError).message}`);
      return;
    }
    if (n > 0) {
      this.up.received(n);
      this.record.bytesOut += n;
      if (framer.onChunkData === undefined) this.sendDown(n === chunk.length ? chunk : chunk.subarray(0, n));
    }
    if (this.phase === Phase.Done) return;
    if (framer.done) this.completeResponse(n < chunk.length ? chunk.subarray(n) : undefined);
  }

  private completeResponse(trailing: Buffer | undefined): void {
    const backend = this.backendSocket!;
    this.backendSocket = undefined;
    // Bytes after the response are a protocol error by the backend; never reuse such a socket.
    const reusable = this.keepBackend && trailing === undefined && this.requestSent;
    this.finish();
    releaseBackend(backend);
    if (reusable) this.up.state.release(backend);
    else backend.destroy();
    this.client.answerDone(this, reusable);
  }

  /** @internal */
  onBackendEnd(): void {
    if (this.phase === Phase.RelayingBody && this.resFramer!.framing === Framing.UntilClose) {
      this.completeResponse(undefined);
      return;
    }
    this.onBackendLost('backend closed the connection');
  }

  /** @internal */
  onBackendLost(reason: string): void {
    if (this.phase === Phase.Done) return;
    if (this.phase === Phase.AwaitingHead) {
      // A pooled connection the backend had just closed: try once more on a fresh one, if
      // nothing of the answer arrived and the request had no body that we cannot replay.
      if (this.reused && !this.retried && this.resBuf === undefined && !this.client.hasBody) {
        this.retried = true;
        this.reused = false;
        this.dropBackend();
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timer = undefined;
        this.phase = Phase.Connecting;
        this.requestSent = false;
        this.up.connect(this);
        return;
      }
      this.fail(502, `${reason} before answering`);
      return;
    }
    // Mid-body: the status line is gone already; all we can do is cut the client off.
    this.abort(`${reason} while relaying the response`);
  }

  /** @internal */
  onResponseTimeout(): void {
    this.timer = undefined;
    if (this.phase !== Phase.AwaitingHead) return;
    const reason = `no answer from backend within ${this.up.backend.responseTimeoutMs} ms`;
    this.up.timedOut(reason);
    this.fail(504, reason);
  }

  /** Whether the backend's upgrade `value` is one the route lets through (ProxyPass upgrade=). */
  allows(value: string): boolean {
    const p = this.up.backend.upgrade;
    if (p.kind !== 'tokens') return true;
    return p.tokens.includes(value.toLowerCase());
  }

  /** Answers the client with an error status (nothing was sent yet) and ends the exchange. */
  fail(status: number, reason: string, retryAfterS?: number): void {
    if (this.phase === Phase.Done) return;
    this.up.logFailure(status, reason);
    this.finish();
    this.dropBackend();
    this.client.error(status, this.up.errorFields(retryAfterS, this.req.headers));
  }

  /** Ends the exchange without an answer (the head was sent already, or the client is broken). */
  abort(reason: string): void {
    if (this.phase === Phase.Done) return;
    this.up.logAbort(reason);
    this.finish();
    this.dropBackend();
    this.client.abort();
  }

  private stop(): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Ends the exchange's part; the Upstream slot is released unless a tunnel took it. */
  private finish(): void {
    this.stop();
    this.up.finish();
    // A relayed answer ends here, once its last byte is handed to the client (failures ended the record already).
    if (this.record.status !== 0) this.record.end({ kind: 'answered', status: this.record.status });
  }

  private dropBackend(): void {
    const b = this.backendSocket;
    if (b === undefined) return;
    this.backendSocket = undefined;
    releaseBackend(b);
    b.destroy();
  }
}

/**
 * The answer head at the start of `buf` (`prevLen`: bytes already searched): the head and where
 * it ends, undefined while incomplete, or why it is unusable (the client gets a 502). The same
 * bound applies whether the head came in pieces or at once, on every front.
 */
export function readAnswerHead(buf: Buffer, prevLen = 0): { res: ResponseHead; end: number } | string | undefined {
  // Bytes that cannot start an answer are refused as soon as they come, not after Timeout.
  if (!startsLikeHttp(buf)) return 'backend answer is not HTTP';
  const end = findHeadEnd(buf, prevLen);
  if (end > MAX_HEAD_BYTES || (end === -1 && buf.length > MAX_HEAD_BYTES)) return 'backend response head too large';
  if (end === -1) return undefined;
  try {
    return { res: parseResponseHead(buf, end), end };
  } catch (e) {
    if (!(e instanceof HeadError)) throw e;
    return e.reason ?? 'malformed response head';
  }
}

const HTTP_PREFIX = Buffer.from('HTTP/', 'latin1');

/** Whether `buf` is, so far, the start of "HTTP/" (every answer head begins with it). */
function startsLikeHttp(buf: Buffer): boolean {
  const n = Math.min(buf.length, HTTP_PREFIX.length);
  for (let i = 0; i < n; i++) if (buf[i] !== HTTP_PREFIX[i]) return false;
  return true;
}

/**
 * Why a 101 cannot become a tunnel, or undefined when it can: the request must have asked for an
 * upgrade (`asked`), the backend switch to that protocol, the body be sent, and, where wsgate made
 * the WebSocket key (`wsKey`), the Accept match it.
 */
export function switchRefusal(
  res: ResponseHead,
  asked: string | undefined,
  wsKey: string | undefined,
  bodySent: boolean,
): string | undefined {
  if (asked === undefined) return `unexpected 101 (Upgrade: ${res.upgrade ?? 'none'}) to a request that asked no upgrade`;
  if (res.upgrade === undefined || res.upgrade.toLowerCase() !== asked.toLowerCase())
    return `backend switched to "${res.upgrade ?? ''}" but "${asked}" was asked`;
  if (!bodySent) return 'backend switched protocols before the request body was sent';
  if (wsKey === undefined) return undefined;
  const accept = headerValue(res.headers, 'sec-websocket-accept');
  if (accept === undefined) return 'backend 101 without Sec-WebSocket-Accept';
  if (accept !== webSocketAccept(wsKey)) return `backend 101 with a wrong Sec-WebSocket-Accept "${accept.slice(0, 40)}"`;
  return undefined;
}

/**
 * Where a request becomes a tunnel, on every front: its slot in the backend's counters becomes an
 * open tunnel, its record is stamped, and the gateway takes both ends.
 */
export function becomeTunnel(
  ctx: GatewayContext,
  up: Upstream,
  vhost: VirtualHost,
  res: ResponseHead,
  ends: TunnelEnds,
  wsFlags = websocketFlagsOf(res, vhost.settings.websocketStrict),
): void {
  const counted = up.tunnel();
  up.finish();
  const record = up.record;
  record.tunnelAt = Date.now();
  record.status = res.status;
  record.end({ kind: 'tunnel' });
  ctx.startTunnel({ record, vhost, route: up.route, backend: up.backend, counters: up.counters, counted, ends, wsFlags });
}

function onResponseTimeout(x: Exchange): void {
  x.onResponseTimeout();
}

const kExchange = Symbol('wsgate.exchange');
type ExchangeSocket = Socket & { [kExchange]?: Exchange };
type DechunkFramer = BodyFramer & { [kExchange]?: Exchange };

function onChunkData(this: DechunkFramer, buf: Buffer, start: number, end: number): void {
  this[kExchange]?.sendDown(buf.subarray(start, end));
}

// Backend socket handlers: module-level, finding their exchange through the socket, so a
// request allocates no closures for them.
function backendOnData(this: ExchangeSocket, chunk: Buffer): void {
  this[kExchange]?.onBackendData(chunk);
}
function backendOnEnd(this: ExchangeSocket): void {
  this[kExchange]?.onBackendEnd();
}
function backendOnError(this: ExchangeSocket, err: Error): void {
  this[kExchange]?.onBackendLost(`backend error: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
}
function backendOnClose(this: ExchangeSocket): void {
  this[kExchange]?.onBackendLost('backend connection closed');
}
function backendOnDrain(this: ExchangeSocket): void {
  this[kExchange]?.backendDrained();
}

type Handler = Parameters<NodeJS.EventEmitter['on']>[1];
const BACKEND_HANDLERS: readonly (readonly [string, Handler])[] = [
  ['data', backendOnData],
  ['end', backendOnEnd],
  ['error', backendOnError],
  ['close', backendOnClose],
  ['drain', backendOnDrain],
];

/**
 * Drops this exchange's listeners from a backend socket it is done with (Node's own listeners
 * stay), leaving an error handler so a late error can never become an uncaught exception.
 */
function releaseBackend(socket: Socket): void {
  const s = socket as ExchangeSocket;
  s[kExchange] = undefined;
  for (const [event, handler] of BACKEND_HANDLERS) s.removeListener(event, handler);
  if (s.listenerCount('error') === 0) s.on('error', ignoreError);
}

function ignoreError(): void {}

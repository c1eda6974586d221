// One request that arrived on an HTTP/2 stream, proxied to an HTTP/1.1 backend: a plain request
// (its answer relayed as HTTP/2 headers and DATA), or an RFC 8441 WebSocket (extended CONNECT)
// that becomes an HTTP/1.1 upgrade to the backend and, after a checked 101, a tunnel between the
// stream and the backend socket.
//
// It uses the same layers as the HTTP/1.1 Exchange (routing, connectOrigin and the keep-alive
// pool, the balancer session, forward.ts's head builder, body.ts's framing) but answers on a
// stream instead of writing HTTP/1.1 bytes to a socket, so it is its own small class.

import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { VirtualHost } from '../config/model';
import { type BodyError, type BodyFramer, Framing, responseFraming } from '../http/body';
import { errorBody } from '../http/forward';
import {
  findHeadEnd,
  headerValue,
  type HeadError,
  MAX_HEAD_BYTES,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from '../http/head';
import { webSocketAccept } from '../http/websocket-key';
import { websocketFlagsOf } from '../tunnel/wsframe';
import type { GatewayContext } from './context';
import type { Refusal, Upstream } from './upstream';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_CONNECT_ERROR } = http2.constants;

/** How the request body reaches the backend. */
export const enum H2Body {
  /** The stream ended with its headers (or a WebSocket: its bytes are the tunnel's). */
  None,
  /** `content-length` given: the bytes pass as they are. */
  Length,
  /** No length: sent chunked (the head carries `Transfer-Encoding: chunked`). */
  Chunked,
}

/** For a WebSocket: the key sent to the backend, whose Accept must match. */
export interface H2WebSocket {
  readonly key: string;
}

/**
 * Fields that are connection-specific in HTTP/2 (RFC 9113 §8.2.2) and so never copied from an
 * HTTP/1.1 answer; Node refuses to send them anyway.
 */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'http2-settings',
]);

const enum Phase {
  Connecting,
  AwaitingHead,
  RelayingBody,
  Done,
}

/** Most interim (1xx) answers skipped before the final one, as the HTTP/1.1 exchange. */
const MAX_INTERIM = 10;

const CHUNK_END = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

export class H2Exchange {
  private phase = Phase.Connecting;
  private backendSocket: Socket | undefined;
  private reused = false;
  private retried = false;
  /** Client body bytes that arrived before the backend connection was ready. */
  private pending: Buffer[] = [];
  private clientEnded = false;
  /** The request (head and whole body) has been written to the backend. */
  private requestSent = false;
  private resBuf: Buffer | undefined;
  /** Request body bytes received from the client so far (LimitRequestBody). */
  private received = 0;
  private resFramer: BodyFramer | undefined;
  private keepBackend = false;
  private interim = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly upgradeValue: string | undefined;
  // Stream listeners, kept to be removed when the stream becomes a tunnel.
  private readonly onData = (chunk: Buffer): void => this.onClientData(chunk);
  private readonly onEnd = (): void => this.onClientEnd();
  private readonly onDrain = (): void => {
    this.backendSocket?.resume();
  };
  private readonly onGone = (): void => this.onClientGone();
  private readonly onBackendData = (chunk: Buffer): void => this.backendData(chunk);
  private readonly onBackendEnd = (): void => this.backendEnd();
  private readonly onBackendError = (err: Error): void =>
    this.backendLost(`backend error: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  private readonly onBackendClose = (): void => this.backendLost('backend connection closed');
  private readonly onBackendDrain = (): void => {
    // A WebSocket's stream stays paused until the tunnel takes it.
    if (this.body !== H2Body.None) this.stream.resume();
  };

  constructor(
    private readonly ctx: GatewayContext,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly clientIp: string,
    private readonly vhost: VirtualHost,
    /** The request as an HTTP/1.1 head would give it (pseudo-headers turned into method, target and Host). */
    private readonly req: RequestHead,
    /** The backend or balancer member, the election and failover, the request's slot (shared with the HTTP/1.1 exchange). */
    private readonly up: Upstream,
    private readonly body: H2Body,
    private readonly websocket: H2WebSocket | undefined,
  ) {
    // A plain HTTP/2 request cannot become a tunnel: only an extended CONNECT is sent as an upgrade.
    this.upgradeValue = websocket !== undefined ? up.upgradeValue : undefined;
  }

  start(): void {
    const s = this.stream;
    s.on('close', this.onGone);
    s.on('aborted', this.onGone);
    s.on('error', this.onGone);
    s.on('drain', this.onDrain);
    if (this.body !== H2Body.None) {
      s.on('data', this.onData);
      s.on('end', this.onEnd);
    } else {
      // A WebSocket's early bytes wait in the stream for the tunnel; a bodiless request has none.
      s.pause();
    }
    this.up.choose(this);
  }

  /** @internal A backend is chosen: reuse a pooled connection or connect (at once after a failover). */
  upstreamChosen(failover: boolean): void {
    if (failover) this.up.connect(this);
    else this.proceed();
  }

  /** @internal */
  upstreamRefused(r: Refusal): void {
    this.fail(r.status, r.reason, r.retryAfterS);
  }

  private proceed(): void {
    if (this.upgradeValue === undefined) {
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
  get upstreamOver(): boolean {
    return this.phase === Phase.Done;
  }

  /** @internal */
  upstreamConnected(socket: Socket): void {
    this.attachBackend(socket);
  }

  private attachBackend(socket: Socket): void {
    this.backendSocket = socket;
    socket.on('data', this.onBackendData);
    socket.on('end', this.onBackendEnd);
    socket.on('error', this.onBackendError);
    socket.on('close', this.onBackendClose);
    socket.on('drain', this.onBackendDrain);
    if (this.reused) socket.resume();
    const head = this.up.requestHead(this.vhost, this.req, this.clientIp, this.stream.session?.encrypted === true, true);
    this.up.sent(head.length);
    socket.write(head);
    this.phase = Phase.AwaitingHead;
    this.timer = setTimeout(onResponseTimeout, this.up.backend.responseTimeoutMs, this);
    const pending = this.pending;
    this.pending = [];
    for (const chunk of pending) this.writeBody(chunk);
    if (this.body === H2Body.None) this.requestSent = true;
    else if (this.clientEnded) this.endBody();
    else if (!socket.writableNeedDrain) this.stream.resume();
  }

  private onClientData(chunk: Buffer): void {
    const max = this.vhost.settings.limitRequestBody;
    this.received += chunk.length;
    if (max > 0 && this.received > max) {
      // Only a body of unknown length gets here (a content-length over the limit is refused up front).
      const reason = `request body exceeds LimitRequestBody (${max})`;
      if (this.phase === Phase.RelayingBody) this.abort(reason);
      else this.fail(413, reason);
      return;
    }
    if (this.backendSocket === undefined) {
      this.pending.push(chunk);
      this.stream.pause();
      return;
    }
    if (this.phase === Phase.Done) return;
    if (this.timer !== undefined) this.timer.refresh();
    if (!this.writeBody(chunk)) this.stream.pause();
  }

  /** Writes body bytes to the backend, chunk-framed when the length is unknown; false when it must drain. */
  private writeBody(chunk: Buffer): boolean {
    const b = this.backendSocket!;
    if (this.body !== H2Body.Chunked) {
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

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.backendSocket !== undefined && this.phase !== Phase.Done) this.endBody();
  }

  private endBody(): void {
    if (this.requestSent) return;
    if (this.body === H2Body.Chunked) this.backendSocket!.write(CHUNK_END);
    this.requestSent = true;
  }

  /** The client's stream closed or failed (reset, session gone) while the exchange ran. */
  private onClientGone(): void {
    if (this.phase === Phase.Done) return;
    this.ctx.log.debug('client went away during exchange', { client: this.clientIp, path: this.req.target, protocol: 'h2' });
    this.finish();
    this.dropBackend(true);
  }

  private backendData(chunk: Buffer): void {
    if (this.phase === Phase.AwaitingHead) this.onHeadBytes(chunk);
    else if (this.phase === Phase.RelayingBody) this.relayBody(chunk);
  }

  private onHeadBytes(chunk: Buffer): void {
    const prevLen = this.resBuf === undefined ? 0 : this.resBuf.length;
    const buf = this.resBuf === undefined ? chunk : Buffer.concat([this.resBuf, chunk]);
    const end = findHeadEnd(buf, prevLen);
    // The same bound whether the head came in pieces or at once, as over HTTP/1.1.
    if (end > MAX_HEAD_BYTES || (end === -1 && buf.length > MAX_HEAD_BYTES)) {
      this.fail(502, 'backend response head too large');
      return;
    }
    if (end === -1) {
      this.resBuf = buf;
      return;
    }
    this.resBuf = undefined;
    this.up.received(end);
    let res: ResponseHead;
    try {
      res = parseResponseHead(buf, end);
    } catch (e) {
      this.fail(502, (e as HeadError).reason ?? 'malformed response head');
      return;
    }
    const rest = end < buf.length ? buf.subarray(end) : undefined;
    if (res.status === 101) {
      this.onSwitching(res, rest);
      return;
    }
    if (res.status >= 100 && res.status < 200) {
      // HTTP/2 has its own 100-continue handling; interim answers are not relayed.
      if (++this.interim > MAX_INTERIM) this.fail(502, 'too many interim responses');
      else if (rest !== undefined) this.onHeadBytes(rest);
      return;
    }
    if (this.websocket !== undefined && res.status >= 200 && res.status < 300) {
      this.fail(502, `backend answered ${res.status} to a WebSocket request instead of switching protocols`);
      return;
    }
    this.onFinalResponse(res, rest);
  }

  private onSwitching(res: ResponseHead, rest: Buffer | undefined): void {
    const asked = this.upgradeValue;
    if (asked === undefined || this.websocket === undefined) {
      this.fail(502, `unexpected 101 (Upgrade: ${res.upgrade ?? 'none'}) to a request that asked no upgrade`);
      return;
    }
    if (res.upgrade === undefined || res.upgrade.toLowerCase() !== asked.toLowerCase()) {
      this.fail(502, `backend switched to "${res.upgrade ?? ''}" but "${asked}" was asked`);
      return;
    }
    const accept = headerValue(res.headers, 'sec-websocket-accept');
    if (accept === undefined) {
      this.fail(502, 'backend 101 without Sec-WebSocket-Accept');
      return;
    }
    if (accept !== webSocketAccept(this.websocket.key)) {
      this.fail(502, `backend 101 with a wrong Sec-WebSocket-Accept "${accept.slice(0, 40)}"`);
      return;
    }
    const headers = h2Headers(this.up.relayed(this.vhost, res, this.req, true), 200, DROP_ON_200);
    if (headers === undefined) {
      this.fail(502, 'backend 101 head cannot be sent over HTTP/2');
      return;
    }
    if (!this.respond(headers, false, 'backend 101')) return;
    const stream = this.stream;
    const backend = this.backendSocket!;
    const onTunnelClosed = this.up.tunnel();
    this.finish();
    this.releaseStream();
    this.releaseBackend(backend);
    backend.pause();
    // RFC 9113 §8.5: a TCP failure behind a CONNECT is reported as CONNECT_ERROR. Runs before the
    // tunnel's own handlers (which destroy the stream with no error code).
    backend.prependListener('error', () => closeStream(stream, NGHTTP2_CONNECT_ERROR));
    backend.prependListener('close', () => {
      if (!stream.writableEnded) closeStream(stream, NGHTTP2_CONNECT_ERROR);
    });
    // Node destroys a stream (and emits its 'close') once nghttp2 has closed it and both sides are done, but a write still
    // pending when the stream closes never completes, so 'finish' never comes and neither does 'close': the tunnel would
    // wait for it forever. Once the client's END_STREAM is in, watch for that state.
    stream.once('end', watchStreamClose);
    // A client's RST_STREAM shows as 'aborted', then as an 'end' (Node ends both sides itself): destroy at once so the
    // tunnel sees a reset (and resets the backend) instead of a FIN.
    stream.once('aborted', destroyAborted);
    this.ctx.startTunnel(
      stream as unknown as Socket,
      backend,
      this.vhost,
      this.up.route,
      this.up.backend,
      this.up.counters,
      undefined,
      rest,
      onTunnelClosed,
      {
        clientIp: this.clientIp,
        protocol: 'h2',
      },
      websocketFlagsOf(res, this.vhost.settings.websocketStrict),
    );
  }

  private onFinalResponse(res: ResponseHead, rest: Buffer | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.up.answered(res.status);
    const framer = responseFraming(this.req.method, res.status, res.chunked, res.contentLength);
    this.resFramer = framer;
    this.keepBackend =
      this.upgradeValue === undefined &&
      res.versionMinor === 1 &&
      framer.framing !== Framing.UntilClose &&
      !res.connectionTokens.includes('close');
    const headers = h2Headers(this.up.relayed(this.vhost, res, this.req, true), res.status, undefined);
    if (headers === undefined) {
      this.fail(502, 'backend response head cannot be sent over HTTP/2 (a single-value field repeated)');
      return;
    }
    if (!this.respond(headers, framer.done, 'backend response')) return;
    if (framer.framing === Framing.Chunked) framer.onChunkData = (buf, start, end) => this.sendDown(buf.subarray(start, end));
    this.phase = Phase.RelayingBody;
    if (framer.done) this.completeResponse(rest);
    else if (rest !== undefined) this.relayBody(rest);
  }

  /**
   * Sends the response headers; false (and the exchange ended) when the stream is gone already
   * (its 'close' has not run yet) or Node refuses the head (a field value it cannot send).
   */
  private respond(headers: http2.OutgoingHttpHeaders, endStream: boolean, what: string): boolean {
    const s = this.stream;
    if (s.destroyed || s.closed) {
      this.onClientGone();
      return false;
    }
    try {
      s.respond(headers, { endStream });
      return true;
    } catch (e) {
      this.fail(502, `${what} head cannot be sent over HTTP/2: ${(e as Error).message}`);
      return false;
    }
  }

  private sendDown(part: Buffer): void {
    if (!this.stream.write(part)) this.backendSocket?.pause();
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
    if (n > 0) this.up.received(n);
    if (n > 0 && framer.framing !== Framing.Chunked) this.sendDown(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (framer.done) this.completeResponse(n < chunk.length ? chunk.subarray(n) : undefined);
  }

  private completeResponse(trailing: Buffer | undefined): void {
    const backend = this.backendSocket!;
    const reusable = this.keepBackend && trailing === undefined && this.requestSent;
    this.finish();
    this.releaseStream();
    if (!this.stream.writableEnded) this.stream.end();
    this.endUnreadRequest();
    this.releaseBackend(backend);
    if (reusable) this.up.state.release(backend);
    else backend.destroy();
  }

  private backendEnd(): void {
    if (this.phase === Phase.RelayingBody && this.resFramer!.framing === Framing.UntilClose) {
      this.completeResponse(undefined);
      return;
    }
    this.backendLost('backend closed the connection');
  }

  private backendLost(reason: string): void {
    if (this.phase === Phase.Done) return;
    if (this.phase === Phase.AwaitingHead) {
      // A pooled connection the backend had just closed: once more on a fresh one, if nothing
      // of the answer came and there is no body we could not replay.
      if (this.reused && !this.retried && this.resBuf === undefined && this.body === H2Body.None) {
        this.retried = true;
        this.reused = false;
        this.dropBackend(true);
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timer = undefined;
        this.phase = Phase.Connecting;
        this.up.connect(this);
        return;
      }
      this.fail(502, `${reason} before answering`);
      return;
    }
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

  /** Answers with an error status (no head was sent yet) and ends the exchange. */
  private fail(status: number, reason: string, retryAfterS?: number): void {
    if (this.phase === Phase.Done) return;
    this.up.logFailure(status, reason, this.clientIp, this.req, 'h2');
    this.finish();
    this.releaseStream();
    this.dropBackend(true);
    // Retry-After and `Header always` rules, as over HTTP/1.1.
    respondH2Error(this.stream, status, undefined, this.up.errorFields(retryAfterS, this.req.headers));
  }

  /** Ends the exchange without an answer: the head was sent already. The stream is reset. */
  private abort(reason: string): void {
    if (this.phase === Phase.Done) return;
    this.ctx.log.warn('proxy request aborted', {
      reason,
      client: this.clientIp,
      method: this.req.method,
      path: this.req.target,
      backend: this.up.backend.url,
      protocol: 'h2',
    });
    this.finish();
    this.releaseStream();
    this.dropBackend(true);
    closeStream(this.stream, NGHTTP2_INTERNAL_ERROR);
  }

  /** After the answer: a request body still coming is not wanted any more (RFC 9113 §8.1: NO_ERROR reset). */
  private endUnreadRequest(): void {
    const s = this.stream;
    if (this.clientEnded || s.endAfterHeaders || s.readableEnded || s.closed || s.destroyed) return;
    if (s.writableFinished) closeStream(s, NGHTTP2_NO_ERROR);
    else s.once('finish', () => closeStream(s, NGHTTP2_NO_ERROR));
  }

  private finish(): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.up.finish();
  }

  private releaseStream(): void {
    const s = this.stream;
    s.removeListener('close', this.onGone);
    s.removeListener('aborted', this.onGone);
    s.removeListener('error', this.onGone);
    s.removeListener('drain', this.onDrain);
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
  }

  private releaseBackend(socket: Socket): void {
    socket.removeListener('data', this.onBackendData);
    socket.removeListener('end', this.onBackendEnd);
    socket.removeListener('error', this.onBackendError);
    socket.removeListener('close', this.onBackendClose);
    socket.removeListener('drain', this.onBackendDrain);
    if (socket.listenerCount('error') === 0) socket.on('error', ignoreError);
  }

  private dropBackend(destroy: boolean): void {
    const b = this.backendSocket;
    if (b === undefined) return;
    this.backendSocket = undefined;
    this.releaseBackend(b);
    if (destroy) b.destroy();
  }
}

/** Fields of a 101 that have no place in the HTTP/2 200 (RFC 8441 §5: no key/accept). */
const DROP_ON_200 = new Set(['sec-websocket-accept', 'content-length']);

/** The backend's head as HTTP/2 response headers, or undefined when Node cannot send it. */
function h2Headers(res: ResponseHead, status: number, drop: Set<string> | undefined): http2.OutgoingHttpHeaders | undefined {
  const out: http2.OutgoingHttpHeaders = { ':status': status };
  const h = res.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i].toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || res.connectionTokens.includes(name) || drop?.has(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = h[i + 1];
    else if (Array.isArray(prev)) prev.push(h[i + 1]);
    else out[name] = [String(prev), h[i + 1]];
  }
  for (const name of SINGLE_VALUE) if (Array.isArray(out[name])) return undefined;
  return out;
}

/** Fields Node sends only once (its ERR_HTTP2_HEADER_SINGLE_VALUE list, those a backend may send). */
const SINGLE_VALUE = [
  'content-length',
  'content-type',
  'content-location',
  'content-md5',
  'content-range',
  'etag',
  'expires',
  'last-modified',
  'location',
  'retry-after',
  'age',
  'authorization',
  'from',
  'max-forwards',
  'referer',
  'user-agent',
  'content-disposition',
  'server',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
  'proxy-authorization',
  'range',
];

/** A status answered by wsgate itself on a stream (the same text body as over HTTP/1.1). */
export function respondH2Error(
  stream: http2.ServerHttp2Stream,
  status: number,
  retryAfterS?: number,
  extraFields: readonly string[] = [],
): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    closeStream(stream, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const body = errorBody(status);
  const headers: http2.OutgoingHttpHeaders = {
    ':status': status,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (retryAfterS !== undefined) headers['retry-after'] = String(retryAfterS);
  for (let i = 0; i + 1 < extraFields.length; i += 2) {
    const name = extraFields[i].toLowerCase();
    if (CONNECTION_SPECIFIC.has(name)) continue;
    const prev = headers[name];
    headers[name] =
      prev === undefined || SINGLE_VALUE.includes(name)
        ? extraFields[i + 1]
        : [...(Array.isArray(prev) ? prev : [String(prev)]), extraFields[i + 1]];
  }
  try {
    stream.respond(headers);
  } catch {
    // A `Header always` value Node cannot send: the client gets a reset instead of the status.
    closeStream(stream, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.end(body, () => {
    // The request body, if any, is not wanted: end the stream instead of leaving it half-open.
    if (!stream.endAfterHeaders && !stream.readableEnded) closeStream(stream, NGHTTP2_NO_ERROR);
  });
}

const kClosing = Symbol('wsgate.closing');
type ClosingStream = http2.ServerHttp2Stream & { [kClosing]?: boolean };

/** Resets a stream with `code` (RST_STREAM), unless it is closed already. */
function closeStream(stream: http2.ServerHttp2Stream, code: number): void {
  if (stream.closed || stream.destroyed) return;
  (stream as ClosingStream)[kClosing] = true;
  stream.close(code);
}

function destroyAborted(this: http2.ServerHttp2Stream): void {
  // Node emits 'aborted' for our own close() too: that one must go on to send its RST_STREAM.
  if ((this as ClosingStream)[kClosing] === true) return;
  if (!this.readableEnded) {
    this.destroy(); // the tunnel sees a close without END_STREAM: a client reset
    return;
  }
  // END_STREAM came first (its FIN is forwarded already), then the reset: the backend must be reset too.
  const err = new Error(`client reset the stream after ending it (RST_STREAM ${this.rstCode})`) as NodeJS.ErrnoException;
  err.code = 'RST_STREAM';
  this.destroy(err);
}

/** Destroys a stream nghttp2 has closed whose sides are both ended; checks at growing intervals (at most 1 s apart) until then. */
function watchStreamClose(this: http2.ServerHttp2Stream): void {
  let delayMs = 2;
  const check = (): void => {
    if (this.destroyed) return;
    if (this.closed && this.writableEnded && this.readableEnded) {
      this.destroy();
      return;
    }
    delayMs = Math.min(delayMs * 2, 1000);
    setTimeout(check, delayMs).unref();
  };
  setImmediate(check);
}

function onResponseTimeout(x: H2Exchange): void {
  x.onResponseTimeout();
}

function ignoreError(): void {}

// The client side of an exchange on an HTTP/2 stream: a plain request (its answer relayed as
// HTTP/2 headers and DATA), or an RFC 8441 WebSocket (extended CONNECT) that the exchange sends
// as an HTTP/1.1 upgrade and, after a checked 101, turns into a tunnel between the stream and the
// backend socket.

import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { BodyFramer } from '../http/body';
import type { ResponseHead } from '../http/head';
import type { TunnelClient } from '../tunnel/tunnel';
import { respondH2Error } from './answers';
import type { ClientSide, Exchange } from './exchange';
import { closeStream, DROP_ON_200, destroyAborted, h2Headers, watchStreamClose } from './h2stream';

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

const kClient = Symbol('wsgate.h2client');
type ClientStream = http2.ServerHttp2Stream & { [kClient]?: H2Client };

export class H2Client implements ClientSide {
  readonly protocol = 'h2';
  readonly hasBody: boolean;
  readonly chunkBody: boolean;
  readonly dechunk = true;
  readonly mayUpgrade: boolean;
  readonly secure: boolean;
  /** The exchange this side serves (set once, right after both are made). */
  x!: Exchange;
  private clientEnded = false;
  /** Request body bytes received so far (LimitRequestBody). */
  private received = 0;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    readonly clientIp: string,
    private readonly body: H2Body,
    /** For a WebSocket: the key sent to the backend, whose Accept must match. */
    readonly wsKey: string | undefined,
    /** LimitRequestBody; 0: none. */
    private readonly maxBody: number,
  ) {
    this.hasBody = body !== H2Body.None;
    this.chunkBody = body === H2Body.Chunked;
    this.mayUpgrade = wsKey !== undefined;
    this.secure = stream.session?.encrypted === true;
  }

  start(): void {
    const s = this.stream as ClientStream;
    s[kClient] = this;
    for (const [event, handler] of STREAM_HANDLERS) s.on(event, handler);
    if (this.body !== H2Body.None) {
      for (const [event, handler] of BODY_HANDLERS) s.on(event, handler);
    } else {
      // A WebSocket's early bytes wait in the stream for the tunnel; a bodiless request has none.
      s.pause();
      this.x.bodyEnd();
    }
    this.x.start();
  }

  /** @internal */
  onData(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.maxBody > 0 && this.received > this.maxBody) {
      // Only a body of unknown length gets here (a content-length over the limit is refused up front).
      this.x.clientBodyError(`request body exceeds LimitRequestBody (${this.maxBody})`, 413);
      return;
    }
    if (!this.x.bodyBytes(chunk)) this.stream.pause();
  }

  /** @internal */
  onEnd(): void {
    this.clientEnded = true;
    this.x.bodyEnd();
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    // A WebSocket's stream stays paused until the tunnel takes it.
    if (this.body !== H2Body.None) this.stream.resume();
  }

  backendReady(): void {
    // Body bytes that came before it wait in the exchange, counted and checked already.
  }

  interim(): void {
    // HTTP/2 has its own 100-continue handling; interim answers are not relayed.
  }

  answerHead(x: Exchange, res: ResponseHead, framer: BodyFramer): boolean {
    const headers = h2Headers(res, res.status, undefined);
    if (headers === undefined) {
      x.fail(502, 'backend response head cannot be sent over HTTP/2 (a single-value field repeated)');
      return false;
    }
    return this.respond(x, headers, framer.done, 'backend response');
  }

  /**
   * Sends the response headers; false (and the exchange ended) when the stream is gone already
   * (its 'close' has not run yet) or Node refuses the head (a field value it cannot send).
   */
  private respond(x: Exchange, headers: http2.OutgoingHttpHeaders, endStream: boolean, what: string): boolean {
    const s = this.stream;
    if (s.destroyed || s.closed) {
      x.clientGone('stream closed');
      this.release();
      return false;
    }
    try {
      s.respond(headers, { endStream });
      return true;
    } catch (e) {
      x.fail(502, `${what} head cannot be sent over HTTP/2: ${(e as Error).message}`);
      return false;
    }
  }

  answerBody(part: Buffer): boolean {
    return this.stream.write(part);
  }

  answerDone(): void {
    this.release();
    if (!this.stream.writableEnded) this.stream.end();
    this.endUnreadRequest();
  }

  error(status: number, fields: readonly string[]): void {
    this.release();
    respondH2Error(this.stream, status, undefined, fields);
  }

  abort(): void {
    this.release();
    closeStream(this.stream, NGHTTP2_INTERNAL_ERROR);
  }

  switchHead(x: Exchange, res: ResponseHead): boolean {
    const headers = h2Headers(res, 200, DROP_ON_200);
    if (headers === undefined) {
      x.fail(502, 'backend 101 head cannot be sent over HTTP/2');
      return false;
    }
    return this.respond(x, headers, false, 'backend 101');
  }

  tunnelEnd(backend: Socket): { client: TunnelClient; early: Buffer | undefined } {
    const stream = this.stream;
    this.release();
    // RFC 9113 §8.5: a TCP failure behind a CONNECT is reported as CONNECT_ERROR. Runs before the
    // tunnel's own handlers (which destroy the stream with no error code).
    (backend as TunnelBackend)[kStream] = stream;
    backend.prependListener('error', backendOnConnectError);
    backend.prependListener('close', backendOnConnectClose);
    // Node destroys a stream (and emits its 'close') once nghttp2 has closed it and both sides are done, but a write still
    // pending when the stream closes never completes, so 'finish' never comes and neither does 'close': the tunnel would
    // wait for it forever. Once the client's END_STREAM is in, watch for that state.
    stream.once('end', watchStreamClose);
    // A client's RST_STREAM shows as 'aborted', then as an 'end' (Node ends both sides itself): destroy at once so the
    // tunnel sees a reset (and resets the backend) instead of a FIN.
    stream.once('aborted', destroyAborted);
    return { client: stream, early: undefined };
  }

  /** After the answer: a request body still coming is not wanted any more (RFC 9113 §8.1: NO_ERROR reset). */
  private endUnreadRequest(): void {
    const s = this.stream;
    if (this.clientEnded || s.endAfterHeaders || s.readableEnded || s.closed || s.destroyed) return;
    if (s.writableFinished) closeStream(s, NGHTTP2_NO_ERROR);
    else s.once('finish', closeUnread);
  }

  /** Drops this side's listeners from the stream (the exchange is over, or a tunnel takes it). */
  private release(): void {
    const s = this.stream as ClientStream;
    s[kClient] = undefined;
    for (const [event, handler] of STREAM_HANDLERS) s.removeListener(event, handler);
    for (const [event, handler] of BODY_HANDLERS) s.removeListener(event, handler);
  }
}

// Stream handlers: module-level, finding their client side through the stream.
function streamOnData(this: ClientStream, chunk: Buffer): void {
  this[kClient]?.onData(chunk);
}
function streamOnEnd(this: ClientStream): void {
  this[kClient]?.onEnd();
}
function streamOnDrain(this: ClientStream): void {
  this[kClient]?.x.clientDrained();
}
function streamOnGone(this: ClientStream): void {
  const c = this[kClient];
  if (c === undefined) return;
  c.x.clientGone('stream closed');
}
type Handler = Parameters<NodeJS.EventEmitter['on']>[1];
const STREAM_HANDLERS: readonly (readonly [string, Handler])[] = [
  ['close', streamOnGone],
  ['aborted', streamOnGone],
  ['error', streamOnGone],
  ['drain', streamOnDrain],
];
const BODY_HANDLERS: readonly (readonly [string, Handler])[] = [
  ['data', streamOnData],
  ['end', streamOnEnd],
];

function closeUnread(this: http2.ServerHttp2Stream): void {
  closeStream(this, NGHTTP2_NO_ERROR);
}

const kStream = Symbol('wsgate.h2stream');
type TunnelBackend = Socket & { [kStream]?: http2.ServerHttp2Stream };

function backendOnConnectError(this: TunnelBackend): void {
  const s = this[kStream];
  if (s !== undefined) closeStream(s, NGHTTP2_CONNECT_ERROR);
}
function backendOnConnectClose(this: TunnelBackend): void {
  const s = this[kStream];
  if (s !== undefined && !s.writableEnded) closeStream(s, NGHTTP2_CONNECT_ERROR);
}

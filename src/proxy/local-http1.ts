// wsgate's own handlers (src/handlers/) answering on an HTTP/1.1 connection: the connection gives
// this object the bytes after the head, as it gives them to an exchange, until the answer is
// written. A whole answer has a Content-Length and keeps the connection when the request allows
// it; a streamed one is delimited by closing the connection (server-sent events) or by its
// Content-Length (a file), which keeps the connection when the whole body was written.

import type { RequestHead } from '../http/head';
import { reasonPhrase } from '../http/forward';
import type { LocalResponse, LocalStream } from '../handlers/handler';
import type { ExchangeOwner } from './client-http1';
import type { RequestRecord } from './record';

/** Request bodies kept for a handler: more than this and the handler sees "too large". */
const BODY_CAP = 1 << 20;

export class Http1Local implements LocalResponse {
  /** Body bytes still to come; -1: a chunked body, which handlers do not read (the connection closes after). */
  private bodyLeft: number;
  private readonly parts: Buffer[] = [];
  private got = 0;
  private waiting: ((body: Buffer | undefined) => void) | undefined;
  private waitingMax = 0;
  /** Bytes after the body: the next pipelined request. */
  private leftover: Buffer | undefined;
  private answered = false;
  private stream: Http1Stream | undefined;

  constructor(
    private readonly owner: ExchangeOwner,
    private readonly req: RequestHead,
    private readonly record: RequestRecord,
  ) {
    this.bodyLeft = req.chunked ? -1 : Math.max(0, req.contentLength);
  }

  start(rest: Buffer | undefined): void {
    if (rest !== undefined && rest.length > 0) this.onData(rest);
  }

  /** Bytes from the client while the handler owns the connection. */
  onData(chunk: Buffer): void {
    if (this.bodyLeft > 0) {
      const n = Math.min(this.bodyLeft, chunk.length);
      this.bodyLeft -= n;
      this.got += n;
      if (this.got <= BODY_CAP) this.parts.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      chunk = chunk.subarray(n);
      if (this.bodyLeft === 0) this.bodyComplete();
    }
    if (chunk.length === 0 || this.bodyLeft !== 0 || this.answered) return;
    this.leftover = this.leftover === undefined ? chunk : Buffer.concat([this.leftover, chunk]);
    this.owner.socket.pause();
  }

  onEnd(): void {
    if (this.waiting !== undefined) this.resolveBody(undefined);
    this.stream?.close();
  }

  gone(detail: string): void {
    if (this.waiting !== undefined) this.resolveBody(undefined);
    // A stream (server-sent events) ends when its reader leaves: that is its normal end.
    if (this.stream !== undefined) this.stream.close();
    else this.record.end({ kind: 'client-gone', reason: detail });
  }

  drained(): void {}

  body(max: number): Promise<Buffer | undefined> {
    if (this.bodyLeft === -1) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.waitingMax = max;
      if (this.bodyLeft === 0) this.bodyComplete();
    });
  }

  private bodyComplete(): void {
    if (this.waiting === undefined) return;
    this.resolveBody(this.got > this.waitingMax || this.got > BODY_CAP ? undefined : Buffer.concat(this.parts));
  }

  private resolveBody(body: Buffer | undefined): void {
    const w = this.waiting!;
    this.waiting = undefined;
    w(body);
  }

  send(status: number, fields: readonly string[], body: string | Buffer): void {
    if (this.answered) return;
    this.answered = true;
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    // The connection serves the next request only when this one's body was read to its end.
    const keepAlive = this.keepAlive();
    const withBody = this.req.method !== 'HEAD' && status !== 304;
    // A 304 carries no body and no length of its own (its Content-Length would be the file's).
    const length = status === 304 ? '' : `Content-Length: ${bytes.length}\r\n`;
    const head = headOf(status, fields, `${length}Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n`);
    const socket = this.owner.socket;
    if (socket.writable) socket.write(withBody ? Buffer.concat([head, bytes]) : head);
    this.record.bytesOut = withBody ? bytes.length : 0;
    this.record.end({ kind: 'answered', status });
    this.owner.exchangeDone(keepAlive, this.leftover);
  }

  open(status: number, fields: readonly string[], length?: number): LocalStream {
    this.answered = true;
    const socket = this.owner.socket;
    const keepAlive = length !== undefined && this.keepAlive();
    const framing =
      length === undefined ? 'Connection: close\r\n' : `Content-Length: ${length}\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n`;
    if (socket.writable) socket.write(headOf(status, fields, framing));
    this.record.status = status;
    const headOnly = this.req.method === 'HEAD';
    this.stream = new Http1Stream(this.owner, this.record, headOnly, keepAlive ? (headOnly ? 0 : length!) : -1, () => this.leftover);
    return this.stream;
  }

  /** The connection serves the next request only when this one's body was read to its end. */
  private keepAlive(): boolean {
    return this.bodyLeft === 0 && this.req.versionMinor === 1 && !this.req.connectionTokens.includes('close');
  }
}

/** A close-delimited answer body written as it comes. */
class Http1Stream implements LocalStream {
  private closed = false;
  private readonly closers: (() => void)[] = [];

  /**
   * `keepFor`: the body length after which the connection may serve the next request (-1: it
   * closes after this answer); `leftover`: the pipelined bytes to hand back then.
   */
  constructor(
    private readonly owner: ExchangeOwner,
    private readonly record: RequestRecord,
    private readonly headOnly: boolean,
    private readonly keepFor: number = -1,
    private readonly leftover: () => Buffer | undefined = () => undefined,
  ) {
    if (headOnly) queueMicrotask(() => this.end());
  }

  write(chunk: string | Buffer, next?: () => void): boolean {
    if (this.closed || this.headOnly) return false;
    const socket = this.owner.socket;
    if (!socket.writable) return false;
    this.record.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (socket.write(chunk) || next === undefined) next?.();
    else socket.once('drain', () => this.closed || next());
    return true;
  }

  end(): void {
    if (this.closed) return;
    const whole = this.keepFor >= 0 && this.record.bytesOut === this.keepFor;
    this.close();
    if (whole) this.owner.exchangeDone(true, this.leftover());
    else this.owner.exchangeDone(false, undefined);
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  /** The stream is over (ended, or the client left): the handler hears it once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.record.end({ kind: 'answered', status: this.record.status });
    for (const fn of this.closers.splice(0)) fn();
  }
}

function headOf(status: number, fields: readonly string[], framing: string): Buffer {
  let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nDate: ${new Date().toUTCString()}\r\n`;
  for (let i = 0; i + 1 < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return Buffer.from(`${head}${framing}\r\n`, 'latin1');
}

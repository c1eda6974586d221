// wsgate's own handlers (src/handlers/) answering on an HTTP/2 stream: a whole answer with its
// length, or one written as it comes (server-sent events) until the handler ends it or the client
// resets the stream.

import * as http2 from 'node:http2';
import type { LocalResponse, LocalStream } from '../handlers/handler';
import { CONNECTION_SPECIFIC, closeStream } from './h2stream';
import type { RequestRecord } from './record';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

export class H2Local implements LocalResponse {
  private answered = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly record: RequestRecord,
    private readonly headOnly: boolean,
  ) {}

  send(status: number, fields: readonly string[], body: string | Buffer): void {
    if (this.answered) return;
    this.answered = true;
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const stream = this.stream;
    if (!this.respond(status, fields, status === 304 ? undefined : bytes.length)) return;
    this.record.bytesOut = this.headOnly ? 0 : bytes.length;
    this.record.end({ kind: 'answered', status });
    stream.end(this.headOnly ? undefined : bytes, () => {
      // A request body nobody read: end the stream rather than leave it half-open.
      if (!stream.endAfterHeaders && !stream.readableEnded) closeStream(stream, NGHTTP2_NO_ERROR);
    });
  }

  open(status: number, fields: readonly string[], length?: number): LocalStream {
    this.answered = true;
    const ok = this.respond(status, fields, length);
    this.record.status = status;
    const out = new H2LocalStream(this.stream, this.record, !ok);
    if (ok && this.headOnly) out.end();
    return out;
  }

  body(max: number): Promise<Buffer | undefined> {
    const stream = this.stream;
    return new Promise((resolve) => {
      if (stream.endAfterHeaders || stream.readableEnded) {
        resolve(Buffer.alloc(0));
        return;
      }
      const parts: Buffer[] = [];
      let got = 0;
      stream.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got <= max) parts.push(chunk);
      });
      stream.once('end', () => resolve(got > max ? undefined : Buffer.concat(parts)));
      stream.once('close', () => resolve(undefined));
    });
  }

  /** Sends the head; false when the stream is gone or Node refused a field (then it is reset). */
  private respond(status: number, fields: readonly string[], length: number | undefined): boolean {
    const stream = this.stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return false;
    const headers: http2.OutgoingHttpHeaders = { ':status': status, date: new Date().toUTCString() };
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!.toLowerCase();
      if (!CONNECTION_SPECIFIC.has(name)) headers[name] = fields[i + 1];
    }
    if (length !== undefined) headers['content-length'] = length;
    try {
      stream.respond(headers, { endStream: false });
      return true;
    } catch {
      closeStream(stream, NGHTTP2_INTERNAL_ERROR);
      return false;
    }
  }
}

class H2LocalStream implements LocalStream {
  private closed = false;
  private readonly closers: (() => void)[] = [];

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly record: RequestRecord,
    gone: boolean,
  ) {
    if (gone) this.close();
    else stream.once('close', () => this.close());
  }

  write(chunk: string | Buffer, next?: () => void): boolean {
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) return false;
    this.record.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (stream.write(chunk) || next === undefined) next?.();
    else stream.once('drain', () => this.closed || next());
    return true;
  }

  end(): void {
    if (this.closed) return;
    const stream = this.stream;
    stream.end(() => {
      if (!stream.endAfterHeaders && !stream.readableEnded) closeStream(stream, NGHTTP2_NO_ERROR);
    });
    this.close();
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.record.end({ kind: 'answered', status: this.record.status });
    for (const fn of this.closers.splice(0)) fn();
  }
}

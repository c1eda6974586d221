// HTTP/2 streams as wsgate answers on them: which fields of an HTTP/1.1 head can go out as HTTP/2
// headers, and how a stream is reset or closed so that its owner (an exchange, a tunnel) sees the
// right end.

import type * as http2 from 'node:http2';
import type { ResponseHead } from '../http/head';

/**
 * Fields that are connection-specific in HTTP/2 (RFC 9113 §8.2.2) and so never copied from an
 * HTTP/1.1 answer; Node refuses to send them anyway.
 */
export const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'http2-settings',
]);

/** Fields of a 101 that have no place in the HTTP/2 200 (RFC 8441 §5: no key/accept). */
export const DROP_ON_200 = new Set(['sec-websocket-accept', 'content-length']);

/** The backend's head as HTTP/2 response headers, or undefined when Node cannot send it. */
export function h2Headers(res: ResponseHead, status: number, drop: Set<string> | undefined): http2.OutgoingHttpHeaders | undefined {
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
export const SINGLE_VALUE = [
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

const kClosing = Symbol('wsgate.closing');
type ClosingStream = http2.ServerHttp2Stream & { [kClosing]?: boolean };

/** Resets a stream with `code` (RST_STREAM), unless it is closed already. */
export function closeStream(stream: http2.ServerHttp2Stream, code: number): void {
  if (stream.closed || stream.destroyed) return;
  (stream as ClosingStream)[kClosing] = true;
  stream.close(code);
}

export function destroyAborted(this: http2.ServerHttp2Stream): void {
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
export function watchStreamClose(this: http2.ServerHttp2Stream): void {
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

// Helpers for the error, plain-HTTP and CLI tests (errors.test.ts, http.test.ts, cli.test.ts).
// Additive to harness.ts: raw sockets on 127.0.0.1, port 0 everywhere.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { closeWs, echo, headerIn, openWs, randomBytes, readRequestHead, type RawResponse } from './harness';

/** A port on 127.0.0.1 with nothing listening: bound on port 0, then closed. */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** The Sec-WebSocket-Accept for `key` (RFC 6455 §4.2.2). */
export function wsAccept(key: string): string {
  return createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
}

/** A raw WebSocket upgrade request for `path`. */
export function upgradeRequest(path: string, extra = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

/** Asserts that a raw response is exactly `status` with `Connection: close` and that the peer closed. */
export function assertClosedWith(res: RawResponse, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got: ${JSON.stringify(res.head)}`);
  assert.equal(headerIn(res.head, 'connection')?.toLowerCase(), 'close', `Connection: close expected in ${JSON.stringify(res.head)}`);
  // rawExchange without `until` returns only once the peer closed the connection.
  assert.equal(res.socket.readableEnded || res.socket.destroyed, true, 'connection closed');
  // A wsgate error page: Content-Length matches the body that followed.
  const body = res.data.subarray(res.data.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(headerIn(res.head, 'content-length')), body.length);
  assert.equal(body.toString('latin1'), `${status} ${res.head.split('\r\n')[0].split(' ').slice(2).join(' ')}\n`);
}

/** Opens a WebSocket at `url`, echoes random binary and text messages, and closes it. */
export async function assertEchoWorks(url: string): Promise<void> {
  const ws = await openWs(url);
  try {
    const bin = randomBytes(4096);
    const r = await echo(ws, bin);
    assert.equal(r.isBinary, true);
    assert.deepEqual(r.data, bin);
    const t = await echo(ws, 'still healthy');
    assert.equal(t.data.toString(), 'still healthy');
  } finally {
    await closeWs(ws);
  }
}

/**
 * A raw backend that reads each request head and never answers: `heads` fills as they arrive,
 * `waitHead(n)` resolves when n heads have arrived.
 */
export function silentHandler(): {
  heads: string[];
  onConnection: (s: net.Socket) => void;
  waitHeads: (n: number) => Promise<void>;
} {
  const heads: string[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    heads,
    onConnection(s) {
      // Raw backends are allowHalfOpen: answer wsgate's FIN with ours, so `sockets` empties.
      s.once('end', () => s.end());
      readRequestHead(s).then(
        ({ head }) => {
          heads.push(head);
          s.resume(); // keep reading (and discarding) whatever follows
          for (let i = waiters.length - 1; i >= 0; i--) {
            if (heads.length >= waiters[i].n) {
              waiters[i].resolve();
              waiters.splice(i, 1);
            }
          }
        },
        () => {},
      );
    },
    waitHeads(n) {
      if (heads.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

/** Connects a raw client to 127.0.0.1:port. */
export async function connectRaw(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** Collects data from `socket` until `cond(buffer)` holds; rejects if the socket closes first. */
export function readUntil(socket: net.Socket, cond: (b: Buffer) => boolean, initial: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = initial;
    if (cond(buf)) {
      resolve(buf);
      return;
    }
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (cond(buf)) {
        cleanup();
        resolve(buf);
      }
    };
    const onClose = (): void => {
      cleanup();
      if (cond(buf)) resolve(buf);
      else reject(new Error(`connection closed after ${buf.length} bytes: ${JSON.stringify(buf.subarray(0, 300).toString('latin1'))}`));
    };
    const cleanup = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

/** Resolves when the socket has closed (at once if it is already). */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return once(socket, 'close').then(() => undefined);
}

/** Everything `socket` receives until it closes. */
export function readToClose(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return closed(socket).then(() => Buffer.concat(chunks));
}

/** Splits one raw response into status, head text and body (latin1). */
export function parseRaw(data: Buffer): { status: number; head: string; body: string } {
  const text = data.toString('latin1');
  const i = text.indexOf('\r\n\r\n');
  const head = i === -1 ? text : text.slice(0, i);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : 0, head, body: i === -1 ? '' : text.slice(i + 4) };
}

/** One response as read off the wire by ResponseReader. */
export interface WireResponse {
  status: number;
  /** The head text without its blank line. */
  head: string;
  /** Exactly the body bytes as sent (chunk framing, extensions and trailers included). */
  rawBody: Buffer;
  /** The payload: rawBody decoded when chunked. */
  body: Buffer;
  /** Trailer lines of a chunked body. */
  trailers: string[];
}

/**
 * Reads consecutive HTTP/1.1 responses from a raw client socket, framing them as RFC 9112 says
 * (HEAD, 1xx, 204 and 304 have no body; chunked; Content-Length; else until close).
 */
export class ResponseReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  private async more(what: string): Promise<void> {
    if (this.ended)
      throw new Error(`connection closed while reading ${what}; have ${JSON.stringify(this.buf.subarray(0, 200).toString('latin1'))}`);
    await new Promise<void>((r) => (this.wake = r));
    this.wake = undefined;
  }

  private async take(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n) await this.more(what);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private async line(what: string): Promise<string> {
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) === -1) await this.more(what);
    return (await this.take(i + 2, what)).toString('latin1');
  }

  /** Whether the peer closed the connection and nothing is left unread. */
  get closed(): boolean {
    return this.ended && this.buf.length === 0;
  }

  /** Resolves when the peer has closed; rejects if it sent more bytes before closing. */
  async expectClose(): Promise<void> {
    while (!this.ended) await this.more('close').catch(() => {});
    if (this.buf.length > 0) throw new Error(`unexpected bytes before close: ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
  }

  async next(method = 'GET'): Promise<WireResponse> {
    let i: number;
    while ((i = this.buf.indexOf('\r\n\r\n')) === -1) await this.more('a response head');
    const head = (await this.take(i + 4, 'head')).toString('latin1').slice(0, -4);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(head.slice(0, 100))}`);
    const status = Number(m[1]);
    const te = headerIn(head, 'transfer-encoding');
    const cl = headerIn(head, 'content-length');
    if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) {
      return { status, head, rawBody: Buffer.alloc(0), body: Buffer.alloc(0), trailers: [] };
    }
    if (te !== undefined && /chunked\s*$/i.test(te)) {
      const raw: Buffer[] = [];
      const body: Buffer[] = [];
      const trailers: string[] = [];
      for (;;) {
        const sizeLine = await this.line('a chunk size');
        raw.push(Buffer.from(sizeLine, 'latin1'));
        const size = parseInt(sizeLine, 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(sizeLine)}`);
        if (size === 0) break;
        const data = await this.take(size + 2, 'chunk data');
        raw.push(data);
        body.push(data.subarray(0, size));
      }
      for (;;) {
        const t = await this.line('a trailer');
        raw.push(Buffer.from(t, 'latin1'));
        if (t === '\r\n') break;
        trailers.push(t.slice(0, -2));
      }
      return { status, head, rawBody: Buffer.concat(raw), body: Buffer.concat(body), trailers };
    }
    if (cl !== undefined) {
      const b = await this.take(Number(cl), 'a body');
      return { status, head, rawBody: b, body: b, trailers: [] };
    }
    while (!this.ended) await this.more('body until close').catch(() => {});
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return { status, head, rawBody: b, body: b, trailers: [] };
  }
}

/**
 * A deterministic byte stream of `total` bytes built from a pool of 16 random 64 KiB blocks,
 * so that a sender allocates nothing per chunk (memory measurements stay about the proxy).
 */
export class BlockStream {
  private readonly blocks: Buffer[];
  constructor(
    readonly total: number,
    readonly blockSize = 64 * 1024,
  ) {
    this.blocks = Array.from({ length: 16 }, () => randomBytes(blockSize));
  }
  /** The i-th chunk (the last one may be shorter). */
  chunk(i: number): Buffer | undefined {
    const start = i * this.blockSize;
    if (start >= this.total) return undefined;
    const b = this.blocks[(i * 7 + 3) % 16];
    return start + this.blockSize <= this.total ? b : b.subarray(0, this.total - start);
  }
  sha256(): string {
    const h = createHash('sha256');
    for (let i = 0, c: Buffer | undefined; (c = this.chunk(i)) !== undefined; i++) h.update(c);
    return h.digest('hex');
  }
  /** Writes the whole stream to `w`, waiting for 'drain' whenever write() says so. */
  async writeTo(w: { write(b: Buffer): boolean; once(ev: 'drain', f: () => void): unknown; destroyed?: boolean }): Promise<void> {
    for (let i = 0, c: Buffer | undefined; (c = this.chunk(i)) !== undefined; i++) {
      if (!w.write(c)) await new Promise<void>((r) => w.once('drain', r));
    }
  }
}

/**
 * Samples the process's live ArrayBuffer memory (after a forced GC) while running `during`, and
 * returns the largest growth over the baseline in bytes. wsgate runs in-process, so a proxy
 * that buffers a body shows up here.
 */
export async function arrayBufferGrowth<T>(
  during: () => Promise<T>,
  everyMs = 50,
): Promise<{ result: T; growth: number; samples: number }> {
  const gc = exposedGc();
  gc();
  const base = process.memoryUsage().arrayBuffers;
  let max = base;
  let samples = 0;
  const timer = setInterval(() => {
    gc();
    const ab = process.memoryUsage().arrayBuffers;
    samples++;
    if (ab > max) max = ab;
  }, everyMs);
  try {
    const result = await during();
    return { result, growth: max - base, samples };
  } finally {
    clearInterval(timer);
  }
}

let gcFn: (() => void) | undefined;
function exposedGc(): () => void {
  if (gcFn === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const v8 = require('node:v8') as typeof import('node:v8');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const vm = require('node:vm') as typeof import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  return gcFn;
}

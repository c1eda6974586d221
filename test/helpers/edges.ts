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
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
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

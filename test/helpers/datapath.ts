// Helpers for the data-path e2e tests (websocket.test.ts, tunnel.test.ts): a `ws` backend with
// a per-test connection handler, a raw upgrade client, and a byte collector that hashes what a
// socket receives and timestamps its 'end' and 'close'.

import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { TunnelRecord } from '../../src/gateway';
import { eventually, type RunningGateway, type SeenRequest } from './harness';

export interface WsBackend {
  port: number;
  wss: WebSocketServer;
  upgrades: SeenRequest[];
  close(): Promise<void>;
}

/** A `ws` backend whose connections go to `onConnection` (nothing is echoed unless it does). */
export async function startWsBackend(
  onConnection: (ws: WebSocket, req: http.IncomingMessage) => void,
  wsOptions: Partial<ConstructorParameters<typeof WebSocketServer>[0]> = {},
): Promise<WsBackend> {
  const upgrades: SeenRequest[] = [];
  const server = http.createServer((_req, res) => {
    res.writeHead(404, { 'Content-Length': '0' });
    res.end();
  });
  server.on('upgrade', (req) => {
    upgrades.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders });
  });
  const wss = new WebSocketServer({ server, ...wsOptions });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    onConnection(ws, req);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    wss,
    upgrades,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Value of header `name` (case-insensitive) in a raw header list, or undefined. */
export function rawHeader(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name.toLowerCase()) return raw[i + 1];
  return undefined;
}

/**
 * Collects what a socket receives: bytes (optionally kept), a running SHA-256, and the times
 * of 'end' and 'close'. Attaching it puts the socket in flowing mode.
 */
export class Collector {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly chunks: Buffer[] = [];
  endedAt = 0;
  closedAt = 0;
  error: Error | undefined;
  private waiters: (() => void)[] = [];

  constructor(
    readonly socket: net.Socket,
    private readonly keep = true,
    initial?: Buffer,
  ) {
    if (initial !== undefined && initial.length > 0) this.push(initial);
    socket.on('data', (c: Buffer) => this.push(c));
    socket.on('end', () => {
      this.endedAt = Date.now();
      this.wake();
    });
    socket.on('error', (e) => {
      this.error = e;
    });
    socket.on('close', () => {
      this.closedAt = Date.now();
      this.wake();
    });
    socket.resume();
  }

  private push(c: Buffer): void {
    this.bytes += c.length;
    this.hash.update(c);
    if (this.keep) this.chunks.push(c);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Everything received so far (only when constructed with keep = true). */
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** SHA-256 of everything received (call once, after the last byte). */
  digest(): string {
    return this.hash.digest('hex');
  }

  /** Resolves when `cond()` holds, re-checked on every event; rejects after `timeoutMs`. */
  until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what} (have ${this.bytes} bytes, ended=${this.endedAt > 0}, closed=${this.closedAt > 0})`,
            ),
          ),
        timeoutMs,
      );
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  untilBytes(n: number, timeoutMs = 10_000): Promise<void> {
    return this.until(() => this.bytes >= n, timeoutMs, `${n} bytes`);
  }
  untilEnd(timeoutMs = 5_000): Promise<void> {
    return this.until(() => this.endedAt > 0, timeoutMs, "'end'");
  }
  untilClose(timeoutMs = 5_000): Promise<void> {
    return this.until(() => this.closedAt > 0, timeoutMs, "'close'");
  }
}

export interface RawUpgrade {
  socket: net.Socket;
  /** The response head (without the blank line). */
  head: string;
  status: number;
  /** Bytes that came after the response head in the same reads. */
  rest: Buffer;
  /** When the complete response head arrived. */
  at: number;
}

/** The request head of an upgrade to `proto` for `path`. */
export function upgradeHead(path: string, proto: string, host = 'front.test'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: ${proto}\r\nConnection: Upgrade\r\n\r\n`;
}

/**
 * Connects, writes `head` + `early` in ONE write, and resolves once the response head is in;
 * the socket is paused then, with the bytes after the head in `rest`.
 */
export async function rawUpgrade(
  port: number,
  head: string,
  early?: Buffer,
  opts: { allowHalfOpen?: boolean; afterWrite?: (s: net.Socket) => void } = {},
): Promise<RawUpgrade> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: opts.allowHalfOpen ?? true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(early === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), early]));
  opts.afterWrite?.(socket);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i === -1) return;
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.pause();
      const text = buf.subarray(0, i).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ socket, head: text, status: m ? Number(m[1]) : 0, rest: buf.subarray(i + 4), at: Date.now() });
    };
    const onClose = (): void =>
      reject(new Error(`connection closed before a response head (got ${JSON.stringify(buf.toString('latin1'))})`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** The one live tunnel of a gateway (waits for it to be registered). */
export async function onlyTunnel(g: RunningGateway): Promise<TunnelRecord> {
  await eventually(() => g.gateway.tunnels.size === 1, 5000, 'exactly one tunnel');
  return [...g.gateway.tunnels.values()][0];
}

/** Deterministic-looking but distinct content: `n` bytes derived from `seed`. */
export function pattern(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

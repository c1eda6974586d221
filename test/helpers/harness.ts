// Test harness: a real wsgate (in-process, real sockets on 127.0.0.1), real backends, raw
// clients. Every listener uses port 0, so test files can run in parallel.

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigFile } from '../../src/config/load';
import { Gateway } from '../../src/gateway';
import { createLogger } from '../../src/observe/log';

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export { randomBytes };

export interface RunningGateway {
  gateway: Gateway;
  /** Port of the first Listen, or of the Listen at index i via ports[i]. */
  port: number;
  ports: number[];
  /** Every log line so far. */
  logs: string[];
  /** Resolves when a log line matching `re` has been written (or is already there). */
  waitForLog(re: RegExp): Promise<string>;
  stop(): Promise<void>;
}

/** Writes `text` to a temp file, loads it as wsgate would, and starts a Gateway. */
export async function startGateway(text: string, opts: { level?: 'debug' | 'info' } = {}): Promise<RunningGateway> {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-test-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, text);
  const config = loadConfigFile(file);
  const logs: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const log = createLogger({
    level: opts.level ?? 'debug',
    sink: (line) => {
      logs.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].re.test(line)) {
          waiters[i].resolve(line);
          waiters.splice(i, 1);
        }
      }
      if (process.env.WSGATE_TEST_LOG) process.stderr.write(line + '\n');
    },
  });
  const gateway = new Gateway(config, { log });
  const bound = await gateway.start();
  return {
    gateway,
    port: bound[0].port,
    ports: bound.map((b) => b.port),
    logs,
    waitForLog(re) {
      const hit = logs.find((l) => re.test(l));
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve) => waiters.push({ re, resolve }));
    },
    stop: () => gateway.stop(),
  };
}

/** What a backend saw of one upgrade or request. */
export interface SeenRequest {
  method: string;
  url: string;
  /** Raw header pairs as received: [name, value, …] in order and case. */
  rawHeaders: string[];
}

export interface EchoBackend {
  port: number;
  server: http.Server;
  wss: WebSocketServer;
  /** Upgrade requests in arrival order. */
  upgrades: SeenRequest[];
  /** Plain HTTP requests in arrival order. */
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A `ws` echo backend: echoes every message (text stays text, binary stays binary), and answers
 * plain HTTP requests with `backend:<name> <method> <url>`. Options pass through to the
 * WebSocketServer (e.g. perMessageDeflate, handleProtocols).
 */
export async function startEchoBackend(
  name = 'echo',
  wsOptions: Partial<ConstructorParameters<typeof WebSocketServer>[0]> = {},
): Promise<EchoBackend> {
  const upgrades: SeenRequest[] = [];
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders });
    const body = `backend:${name} ${req.method} ${req.url}`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  const wss = new WebSocketServer({ server, ...wsOptions });
  server.on('upgrade', (req) => {
    upgrades.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders });
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    wss,
    upgrades,
    requests,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A plain HTTP backend answering every request `200 backend`, with the URLs it saw in order. */
export async function startPlainBackend(): Promise<{ port: number; seen: string[]; stop(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'Content-Length': 7 });
    res.end('backend');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Opens a `ws` client and waits for it to be open. */
export async function openWs(
  url: string,
  protocols?: string | string[],
  options: ConstructorParameters<typeof WebSocket>[2] = {},
): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
  return ws;
}

/** Sends `data` and resolves with the next message. */
export function echo(
  ws: WebSocket,
  data: Buffer | string,
  binary = typeof data !== 'string',
): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const onMessage = (d: unknown, isBinary: boolean): void => {
      ws.removeListener('error', onError);
      resolve({ data: d as Buffer, isBinary });
    };
    const onError = (err: Error): void => {
      ws.removeListener('message', onMessage);
      reject(err);
    };
    ws.once('message', onMessage);
    ws.once('error', onError);
    ws.send(data, { binary });
  });
}

/** Closes a ws client and waits for the close to complete. */
export async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close();
  await closed;
}

export interface RawResponse {
  /** Everything received until the connection closed or `until` matched. */
  data: Buffer;
  /** Status code of the first response line, or 0. */
  status: number;
  head: string;
  socket: net.Socket;
}

/**
 * Sends raw bytes on a fresh TCP connection and collects what comes back, until the peer closes
 * or the received bytes satisfy `until` (then the socket is left open for the caller).
 */
export async function rawExchange(port: number, payload: Buffer | string, until?: (received: Buffer) => boolean): Promise<RawResponse> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(payload);
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    const onData = (c: Buffer): void => {
      chunks.push(c);
      if (until?.(Buffer.concat(chunks))) {
        socket.removeListener('data', onData);
        socket.removeListener('close', resolve);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve());
  });
  const data = Buffer.concat(chunks);
  const text = data.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  const head = headEnd === -1 ? text : text.slice(0, headEnd);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { data, status: m ? Number(m[1]) : 0, head, socket };
}

/** True once `received` holds a complete response head. */
export const headComplete = (received: Buffer): boolean => received.includes('\r\n\r\n');

/** A raw TCP backend: `onConnection` gets each accepted socket. */
export async function startRawBackend(
  onConnection: (socket: net.Socket) => void,
): Promise<{ port: number; server: net.Server; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Reads one HTTP request head from a raw socket; resolves with the head text and the bytes after it. */
export function readRequestHead(socket: net.Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i !== -1) {
        socket.removeListener('data', onData);
        socket.pause();
        resolve({ head: buf.subarray(0, i).toString('latin1'), rest: buf.subarray(i + 4) });
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before a request head')));
  });
}

/** The value of header `name` (case-insensitive) in a raw head text, or undefined. */
export function headerIn(head: string, name: string): string | undefined {
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(0, i).toLowerCase() === name.toLowerCase()) return line.slice(i + 1).trim();
  }
  return undefined;
}

/** Resolves when `cond()` is true, checking on each `interval`, failing after `timeoutMs`. */
export async function eventually(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Asserts that wsgate holds no connection or tunnel (after clients and backends closed). */
export async function assertNoOpenSockets(g: RunningGateway): Promise<void> {
  await eventually(() => g.gateway.tunnels.size === 0 && g.gateway.openConnections() === 0, 5000, 'wsgate to close every socket');
}

/** File descriptors this process has open now (entries of /proc/self/fd: sockets, files, epoll, pipes). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** What each open descriptor is (`fd → target`, as /proc/self/fd shows it), for a leak's report. */
export function fdTargets(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '?';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // closed between the listing and the read (the listing's own descriptor): still counted, as openFds() counts it
    }
    out.set(fd, target);
  }
  return out;
}

/**
 * Resolves once the process has at most `baseline.size` descriptors open (polled; the test process
 * runs wsgate, its backends and its clients, so every socket any of them leaks shows here). Fails
 * after `timeoutMs`, naming the descriptors that were not there at the baseline.
 */
export async function fdsBackTo(baseline: Map<string, string>, timeoutMs: number, what: string): Promise<void> {
  try {
    await eventually(() => openFds() <= baseline.size, timeoutMs, what);
  } catch (e) {
    const extra = [...fdTargets()].filter(([fd, target]) => baseline.get(fd) !== target).map(([fd, target]) => `${fd}→${target}`);
    throw new Error(`${(e as Error).message}: ${openFds()} open, ${baseline.size} at the baseline; new: ${extra.join(' ')}`);
  }
}

// Helpers for the end-to-end mapping and upgrade tests: a raw HTTP/1.1 backend that records
// every request exactly as it arrives (request line, header lines in order and case, body),
// and a raw TCP client that buffers everything it receives so a test can read heads, bodies
// and tunnel bytes in turn without losing any.

import { once } from 'node:events';
import * as net from 'node:net';

/** One request as the backend received it. */
export interface Recorded {
  /** Which backend connection it came on (0, 1, … in accept order). */
  conn: number;
  /** `GET /x HTTP/1.1` */
  requestLine: string;
  /** `Name: value` lines exactly as received, in order. */
  headerLines: string[];
  /** The Content-Length body (empty without one). */
  body: Buffer;
}

/**
 * What the backend does after a request: `keep` waits for the next request on the connection,
 * `close` ends it, `tunnel` treats every later byte as tunnel data (echoed by default).
 */
export type Action = 'keep' | 'close' | 'tunnel';
export type Responder = (req: Recorded, socket: net.Socket) => Action;

export interface Recorder {
  name: string;
  port: number;
  /** Requests in arrival order. */
  requests: Recorded[];
  /** Tunnel bytes received per connection (only connections that became tunnels). */
  tunnelBytes: Map<number, Buffer[]>;
  /** Connections accepted so far. */
  connections(): number;
  /** Connections still open now. */
  open(): number;
  close(): Promise<void>;
}

/** Value of header `name` (case-insensitive) among recorded header lines. */
export function header(lines: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(0, i).toLowerCase() === lower) return line.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * The default answer: a request with an `Upgrade` header gets
 * `101` + `Upgrade: <same value>` + `Connection: Upgrade` + `X-Backend: <name>` and becomes an
 * echo tunnel; any other gets `200` with body `<name> <request line>` and stays keep-alive.
 */
export function defaultResponder(name: string): Responder {
  return (req, socket) => {
    const upgrade = header(req.headerLines, 'upgrade');
    if (upgrade !== undefined) {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\nX-Backend: ${name}\r\n\r\n`);
      return 'tunnel';
    }
    const body = `${name} ${req.requestLine}`;
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return 'keep';
  };
}

/** A raw HTTP/1.1 backend: records each request, answers with `respond`, echoes tunnel bytes. */
export async function startRecorder(name: string, respond: Responder = defaultResponder(name)): Promise<Recorder> {
  const requests: Recorded[] = [];
  const tunnelBytes = new Map<number, Buffer[]>();
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn = accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let tunnel: Buffer[] | undefined;
    const onTunnel = (chunk: Buffer): void => {
      tunnel!.push(chunk);
      if (socket.writable) socket.write(chunk);
    };
    socket.on('data', (chunk: Buffer) => {
      if (tunnel !== undefined) {
        onTunnel(chunk);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const cl = Number(header(lines.slice(1), 'content-length') ?? 0);
        if (buf.length < end + 4 + cl) return;
        const req: Recorded = { conn, requestLine: lines[0], headerLines: lines.slice(1), body: buf.subarray(end + 4, end + 4 + cl) };
        buf = buf.subarray(end + 4 + cl);
        requests.push(req);
        const action = respond(req, socket);
        if (action === 'close') {
          socket.end();
          return;
        }
        if (action === 'tunnel') {
          tunnel = [];
          tunnelBytes.set(conn, tunnel);
          if (buf.length > 0) onTunnel(buf);
          return;
        }
      }
    });
    // Half-close is forwarded by the tunnel: answer a FIN with ours once the echo is written.
    socket.on('end', () => socket.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    name,
    port: (server.address() as net.AddressInfo).port,
    requests,
    tunnelBytes,
    connections: () => accepted,
    open: () => sockets.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A parsed response head as the client received it. */
export interface ClientHead {
  status: number;
  statusLine: string;
  /** `Name: value` lines exactly as received, in order. */
  headerLines: string[];
}

/** A raw TCP client that keeps every received byte until the test consumes it. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private ended = false;
  private closed = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const c = new RawClient(socket);
    await once(socket, 'connect');
    return c;
  }

  /** True once the peer sent FIN (or the socket closed). */
  get isEnded(): boolean {
    return this.ended;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(data: Buffer | string): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits (up to `timeoutMs`) until `ready(buffer)` is true; rejects if the peer ends first. */
  private async waitFor(ready: (b: Buffer) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready(this.buf)) {
      if (this.ended) throw new Error(`connection ended while waiting for ${what}; have ${JSON.stringify(this.buf.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Reads and consumes one response head. */
  async readHead(): Promise<ClientHead> {
    await this.waitFor((b) => b.includes('\r\n\r\n'), 'a response head');
    const end = this.buf.indexOf('\r\n\r\n');
    const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    this.buf = this.buf.subarray(end + 4);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    return { status: m ? Number(m[1]) : 0, statusLine: lines[0], headerLines: lines.slice(1) };
  }

  /** Reads and consumes exactly `n` bytes. */
  async take(n: number): Promise<Buffer> {
    await this.waitFor((b) => b.length >= n, `${n} bytes`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads a response head and its body (Content-Length, chunked — returned still chunked — or until close). */
  async readResponse(): Promise<ClientHead & { body: Buffer }> {
    const head = await this.readHead();
    const cl = header(head.headerLines, 'content-length');
    if (cl !== undefined) return { ...head, body: await this.take(Number(cl)) };
    if (/chunked/i.test(header(head.headerLines, 'transfer-encoding') ?? '')) {
      await this.waitFor((b) => b.includes('\r\n0\r\n\r\n') || b.subarray(0, 5).toString() === '0\r\n\r\n', 'the last chunk');
      const i = this.buf.subarray(0, 5).toString() === '0\r\n\r\n' ? 5 : this.buf.indexOf('\r\n0\r\n\r\n') + 7;
      return { ...head, body: await this.take(i) };
    }
    return { ...head, body: await this.readToEnd() };
  }

  /** Everything until the peer's FIN. */
  async readToEnd(): Promise<Buffer> {
    const deadline = Date.now() + 10_000;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the connection to end');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** Bytes received and not yet consumed. */
  pending(): Buffer {
    return this.buf;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A request head with CRLFs from lines (the blank line added). */
export function requestHead(lines: readonly string[]): string {
  return lines.join('\r\n') + '\r\n\r\n';
}

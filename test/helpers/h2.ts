// HTTP/2 clients for the tests: Node's http2 client (plain requests, RFC 8441 extended CONNECT
// with a `ws` WebSocket running on the stream), and a raw frame writer (RawH2) for what Node's
// client refuses to send (missing pseudo-headers, DATA on stream 0 or on a closed stream).

import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { WebSocket } from 'ws';

/** Opens an h2 connection (TLS, ALPN h2, trusting `ca`) and waits for the server's SETTINGS. */
export async function h2Connect(port: number, ca: string, servername = 'localhost'): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername });
  session.on('error', () => {});
  await Promise.race([
    once(session, 'remoteSettings'),
    once(session, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  return session;
}

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; `body` chunks are written one by one (so a body without content-length goes as several DATA frames). */
export async function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer[] = [],
): Promise<H2Response> {
  const stream = session.request(headers, { endStream: body.length === 0 });
  for (const chunk of body) stream.write(chunk);
  if (body.length > 0) stream.end();
  const [resHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  const parts: Buffer[] = [];
  stream.on('data', (c: Buffer) => parts.push(c));
  await once(stream, 'end');
  return { status: Number(resHeaders[':status']), headers: resHeaders, body: Buffer.concat(parts) };
}

export interface H2WebSocketResult {
  stream: http2.ClientHttp2Stream;
  status: number;
  headers: http2.IncomingHttpHeaders;
  /** Set when the status is 200: a `ws` client running on the stream. */
  ws?: WebSocket;
  /** The body of a non-200 answer. */
  body?: Buffer;
}

/** An RFC 8441 extended CONNECT for a WebSocket at `path`; on a 200 a `ws` client (masking, as a client must) runs on the stream. */
export async function h2WebSocket(
  session: http2.ClientHttp2Session,
  path: string,
  extra: http2.OutgoingHttpHeaders = {},
): Promise<H2WebSocketResult> {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':path': path,
    'sec-websocket-version': '13',
    ...extra,
  });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  const status = Number(headers[':status']);
  if (status !== 200) {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    await once(stream, 'close');
    return { stream, status, headers, body: Buffer.concat(parts) };
  }
  // ws takes any Duplex (setSocket); a WebSocket built without an address is a server one, so make it a client's.
  const ws = new WebSocket(null as unknown as string, undefined, {});
  (ws as unknown as { _isServer: boolean })._isServer = false;
  (ws as unknown as { setSocket(s: unknown, head: Buffer, o: object): void }).setSocket(stream, Buffer.alloc(0), {
    maxPayload: 64 * 1024 * 1024,
  });
  ws.on('error', () => {});
  return { stream, status, headers, ws };
}

/** Sends one message and resolves with the first message back. */
export function wsEcho(ws: WebSocket, data: Buffer | string): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (d, isBinary) => resolve({ data: Buffer.isBuffer(d) ? d : Buffer.concat(d as Buffer[]), isBinary }));
    ws.once('close', () => reject(new Error('closed before the echo')));
    ws.send(data, { binary: typeof data !== 'string' });
  });
}

/** Closes a WebSocket cleanly and waits for its 'close'. */
export async function wsClose(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close(1000);
  await closed;
}

// --- raw frames -------------------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Frame types (RFC 9113 §6). */
export const enum FrameType {
  Data = 0x0,
  Headers = 0x1,
  RstStream = 0x3,
  Settings = 0x4,
  Ping = 0x6,
  Goaway = 0x7,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}

/** Frame flags used by the tests. */
export const FLAG_END_STREAM = 0x1;
export const FLAG_END_HEADERS = 0x4;

/** One frame as written on the wire: 9-byte header, then `payload`. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman: enough for short names and values. */
function hpackLiteral(name: string, value: string): Buffer {
  if (name.length > 126 || value.length > 126) throw new Error('hpackLiteral: too long for a one-byte length');
  return Buffer.concat([
    Buffer.from([0x00, name.length]),
    Buffer.from(name, 'latin1'),
    Buffer.from([value.length]),
    Buffer.from(value, 'latin1'),
  ]);
}

/** An HPACK integer with an `n`-bit prefix whose high bits are `first` (RFC 7541 §5.1). */
function hpackInt(first: number, n: number, value: number): Buffer {
  const max = (1 << n) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** One "literal without indexing, new name" field of any length, no Huffman. */
export function hpackField(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), hpackInt(0, 7, n.length), n, hpackInt(0, 7, v.length), v]);
}

/** A header block of `fields`, each an unindexed literal. */
export function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.map(([n, v]) => hpackField(n, v)));
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/**
 * A hand-driven HTTP/2 client connection (TLS with ALPN h2, or h2c with prior knowledge): it
 * writes exactly the frames it is told to, including ones Node's client refuses to send (DATA on
 * stream 0, on a closed stream), acknowledges the server's SETTINGS, and records every frame.
 * Header blocks are unindexed literals, so no HPACK state is needed on our side; the server's
 * header blocks are not decoded.
 */
export class RawH2 {
  readonly frames: ReceivedFrame[] = [];
  /** Resolves when the socket has closed (the server's FIN read, or destroyed). */
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);
  private readonly waiters: { match: (f: ReceivedFrame) => boolean; resolve: (f: ReceivedFrame) => void }[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => this.onData(c));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Connects, sends the preface and an empty SETTINGS. `ca` given: TLS with ALPN h2; else plain (h2c). */
  static async open(port: number, ca?: string): Promise<RawH2> {
    let socket: net.Socket;
    if (ca !== undefined) {
      const t = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      if (t.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(t.alpnProtocol)}`);
      socket = t;
    } else {
      socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      await once(socket, 'connect');
    }
    const c = new RawH2(socket);
    socket.write(Buffer.concat([PREFACE, h2Frame(FrameType.Settings, 0, 0)]));
    return c;
  }

  /** A HEADERS frame (END_HEADERS, and END_STREAM if `endStream`) carrying exactly `fields`. */
  headers(streamId: number, fields: [string, string][], endStream: boolean): void {
    const block = Buffer.concat(fields.map(([n, v]) => hpackLiteral(n, v)));
    this.socket.write(h2Frame(FrameType.Headers, 0x4 | (endStream ? 0x1 : 0), streamId, block));
  }

  /** Writes `bytes` as they are (frames built with h2Frame). */
  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** An RST_STREAM on `streamId` with `code`. */
  rst(streamId: number, code: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    this.write(h2Frame(FrameType.RstStream, 0, streamId, payload));
  }

  /** The first GOAWAY the server sent: its error code, or undefined if none came. */
  goawayCode(): number | undefined {
    const f = this.frames.find((x) => x.type === FrameType.Goaway);
    return f === undefined ? undefined : f.payload.readUInt32BE(4);
  }

  /** The server's SETTINGS (not the ACK) as id → value. */
  serverSettings(): Map<number, number> {
    const out = new Map<number, number>();
    for (const f of this.frames) {
      if (f.type !== FrameType.Settings || (f.flags & 0x1) !== 0) continue;
      for (let i = 0; i + 6 <= f.payload.length; i += 6) out.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
    }
    return out;
  }

  /** A DATA frame on any stream, 0 included. */
  data(streamId: number, payload: Buffer, endStream = false): void {
    this.socket.write(h2Frame(FrameType.Data, endStream ? 0x1 : 0, streamId, payload));
  }

  /** A GOAWAY from the client: no stream accepted (last stream 0), with `code`. */
  goaway(code: number): void {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(code, 4);
    this.socket.write(h2Frame(FrameType.Goaway, 0, 0, payload));
  }

  /** Resolves with the first frame (already received or to come) that `match` accepts; rejects after `timeoutMs`. */
  waitFrame(match: (f: ReceivedFrame) => boolean, what: string, timeoutMs = 10_000): Promise<ReceivedFrame> {
    const seen = this.frames.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`RawH2: no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f: ReceivedFrame = {
        type: this.buf[3],
        flags: this.buf[4],
        streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: this.buf.subarray(9, 9 + len),
      };
      this.buf = this.buf.subarray(9 + len);
      if (f.type === FrameType.Settings && (f.flags & 0x1) === 0 && !this.socket.destroyed)
        this.socket.write(h2Frame(FrameType.Settings, 0x1, 0));
      this.frames.push(f);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].match(f)) {
          this.waiters[i].resolve(f);
          this.waiters.splice(i, 1);
        }
      }
    }
  }
}

/**
 * Sends one HEADERS frame with exactly `fields` (pseudo-headers included, as given) on stream 1
 * of a fresh TLS h2 connection, and resolves with what the server did to that stream: the
 * RST_STREAM error code, or the `:status` it answered (as `status`, undecoded beyond that: the
 * response is only checked for having HEADERS).
 */
export async function rawH2Stream(
  port: number,
  ca: string,
  fields: [string, string][],
): Promise<{ rstCode?: number; gotHeaders: boolean; settings: Map<number, number> }> {
  const c = await RawH2.open(port, ca);
  c.headers(1, fields, true);
  const settings = new Map<number, number>();
  let gotHeaders = false;
  const outcome = await Promise.race([
    c.waitFrame(
      (f) =>
        (f.type === FrameType.RstStream && f.streamId === 1) ||
        (f.type === FrameType.Headers && f.streamId === 1 && (f.flags & 0x1) !== 0) ||
        (f.type === FrameType.Data && f.streamId === 1 && (f.flags & 0x1) !== 0) ||
        // GOAWAY: the server treated it as a connection error.
        f.type === FrameType.Goaway,
      'answer for stream 1',
    ),
    c.closed.then(() => undefined),
  ]);
  c.socket.destroy();
  for (const f of c.frames) {
    if (f.type === FrameType.Settings && (f.flags & 0x1) === 0) {
      for (let i = 0; i + 6 <= f.payload.length; i += 6) settings.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
    }
    if (f.type === FrameType.Headers && f.streamId === 1) gotHeaders = true;
  }
  if (outcome?.type === FrameType.RstStream) return { rstCode: outcome.payload.readUInt32BE(0), gotHeaders, settings };
  if (outcome?.type === FrameType.Goaway) return { rstCode: outcome.payload.readUInt32BE(4), gotHeaders, settings };
  return { gotHeaders, settings };
}

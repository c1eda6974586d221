// HTTP/2 clients for the tests: Node's http2 client (plain requests, RFC 8441 extended CONNECT
// with a `ws` WebSocket running on the stream), and a raw frame writer for requests Node's client
// refuses to send (missing pseudo-headers).

import { once } from 'node:events';
import * as http2 from 'node:http2';
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
export async function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer[] = []): Promise<H2Response> {
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
export async function h2WebSocket(session: http2.ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<H2WebSocketResult> {
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
  (ws as unknown as { setSocket(s: unknown, head: Buffer, o: object): void }).setSocket(stream, Buffer.alloc(0), { maxPayload: 64 * 1024 * 1024 });
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

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
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
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

/**
 * Sends one HEADERS frame with exactly `fields` (pseudo-headers included, as given) on stream 1
 * of a fresh TLS h2 connection, and resolves with what the server did to that stream: the
 * RST_STREAM error code, or the `:status` it answered (as `status`, undecoded beyond that: the
 * response is only checked for having HEADERS).
 */
export async function rawH2Stream(port: number, ca: string, fields: [string, string][]): Promise<{ rstCode?: number; gotHeaders: boolean; settings: Map<number, number> }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(socket.alpnProtocol)}`);
  socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))]));
  const block = Buffer.concat(fields.map(([n, v]) => hpackLiteral(n, v)));
  // END_HEADERS (0x4) | END_STREAM (0x1)
  socket.write(frame(0x1, 0x5, 1, block));
  const settings = new Map<number, number>();
  let buf = Buffer.alloc(0);
  let gotHeaders = false;
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('rawH2Stream: no answer for stream 1 within 10 s'));
    }, 10_000);
    const done = (r: { rstCode?: number; gotHeaders: boolean; settings: Map<number, number> }): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3];
        const flags = buf[4];
        const id = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 0x4 && (flags & 0x1) === 0) {
          for (let i = 0; i + 6 <= payload.length; i += 6) settings.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
          socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
        } else if (type === 0x3 && id === 1) {
          done({ rstCode: payload.readUInt32BE(0), gotHeaders, settings });
          return;
        } else if (type === 0x1 && id === 1) {
          gotHeaders = true;
          if (flags & 0x1) {
            done({ gotHeaders, settings });
            return;
          }
        } else if (type === 0x0 && id === 1 && flags & 0x1) {
          done({ gotHeaders, settings });
          return;
        } else if (type === 0x7) {
          // GOAWAY: the server treated it as a connection error.
          done({ rstCode: payload.readUInt32BE(4), gotHeaders, settings });
          return;
        }
      }
    });
    socket.on('close', () => done({ gotHeaders, settings }));
  });
}

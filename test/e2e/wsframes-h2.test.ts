// Frame tracking on a WebSocket over HTTP/2 (RFC 8441): the client's frames keep their masks
// there as over HTTP/1.1 (RFC 8441 §5 changes only the handshake), so a client frame without a
// mask is a violation. By default it is forwarded byte for byte, logged once and counted (the
// tunnel's counts and the metrics); with ProxyWebsocketStrict On the tunnel is closed with 1002
// toward each side and nothing after the violation reaches the backend.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import { before, test } from 'node:test';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { onlyTunnel, startWsBackend } from '../helpers/datapath';
import { h2Connect } from '../helpers/h2';
import { eventually, headerIn, readRequestHead, sha256, startGateway, startRawBackend } from '../helpers/harness';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

function conf(backendPort: number, extra = ''): string {
  return [
    'Listen 127.0.0.1:0 https',
    'SSLEngine on',
    `SSLCertificateFile ${front.cert}`,
    `SSLCertificateKeyFile ${front.key}`,
    'Protocols h2 http/1.1',
    'H2WebSockets on',
    extra,
    `ProxyPass "/ws/" "ws://127.0.0.1:${backendPort}/"`,
    '',
  ].join('\n');
}

const acceptFor = (key: string): string => createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

/** An unmasked text frame "hello": from a client, a violation. */
const UNMASKED = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello')]);

function masked(text: string): Buffer {
  const key = [9, 8, 7, 6];
  const p = Buffer.from(text);
  for (let i = 0; i < p.length; i++) p[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from([0x81, 0x80 | p.length, ...key]), p]);
}

/** An extended CONNECT for a WebSocket; resolves with the stream once the 200 came. Its bytes are raw frames. */
async function rawH2WebSocket(session: http2.ClientHttp2Session, path: string): Promise<http2.ClientHttp2Stream> {
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, 'sec-websocket-version': '13' });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  assert.equal(Number(headers[':status']), 200);
  return stream;
}

test('HTTP/2, ProxyWebsocketStrict Off: unmasked client frames are forwarded byte for byte, logged once, counted', {
  timeout: 60_000,
}, async () => {
  const got: Buffer[] = [];
  // A backend that reads raw bytes after its 101 (a ws server would refuse the frames itself).
  const backend = await startRawBackend((s: net.Socket) => {
    void readRequestHead(s).then(
      ({ head, rest }) => {
        if (rest.length > 0) got.push(rest);
        s.on('data', (c: Buffer) => got.push(c));
        s.resume(); // readRequestHead paused it
        s.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(headerIn(head, 'sec-websocket-key') ?? '')}\r\n\r\n`,
        );
      },
      () => {},
    );
  });
  const g = await startGateway(conf(backend.port, '<Location "/metrics">\nSetHandler metrics\n</Location>'));
  const session = await h2Connect(g.port, certs.ca.pem);
  try {
    const stream = await rawH2WebSocket(session, '/ws/raw');
    const sent = Buffer.concat([UNMASKED, masked('between'), UNMASKED]);
    stream.write(sent);
    await eventually(() => Buffer.concat(got).length === sent.length, 10_000, 'every byte at the backend');
    assert.equal(sha256(Buffer.concat(got)), sha256(sent));
    const rec = await onlyTunnel(g);
    assert.equal(rec.protocol, 'h2');
    const n = rec.tunnel.wsCounts();
    assert.deepEqual([n?.framesUp, n?.messagesUp, n?.violationsUp], [3, 3, 2]);
    await g.waitForLog(/WebSocket protocol violation.*unmasked client frame/);
    assert.equal(g.logs.filter((l) => /WebSocket protocol violation/.test(l)).length, 1, 'logged once per tunnel');
    stream.close();
    await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to close');
    const { text } = await g.gateway.metrics.render(g.gateway);
    assert.match(text, /^wsgate_websocket_violations_total\{from="client"\} 2$/m);
  } finally {
    session.destroy();
    await g.stop();
    await backend.close();
  }
});

test('HTTP/2, ProxyWebsocketStrict On: an unmasked client frame closes the tunnel with 1002 toward each side', {
  timeout: 60_000,
}, async () => {
  const backendCloses: number[] = [];
  const backendGot: string[] = [];
  const backend = await startWsBackend((ws) => {
    ws.on('message', (d) => backendGot.push(String(d)));
    ws.on('close', (code) => backendCloses.push(code));
  });
  const g = await startGateway(conf(backend.port, 'ProxyWebsocketStrict On'));
  const session = await h2Connect(g.port, certs.ca.pem);
  try {
    const stream = await rawH2WebSocket(session, '/ws/strict');
    const received: Buffer[] = [];
    stream.on('data', (c: Buffer) => received.push(c));
    stream.write(masked('first'));
    await eventually(() => backendGot.length === 1, 10_000, 'the first message at the backend');
    stream.write(Buffer.concat([UNMASKED, masked('never')]));
    await eventually(
      () => {
        const b = Buffer.concat(received);
        return b.length >= 4 && b[0] === 0x88;
      },
      10_000,
      'a close frame toward the client',
    );
    const close = Buffer.concat(received);
    assert.equal(close[1]! & 0x80, 0, 'unmasked toward the client');
    assert.equal(close.readUInt16BE(2), 1002);
    await eventually(() => backendCloses.length === 1, 10_000, 'the backend to see a close');
    assert.equal(backendCloses[0], 1002);
    assert.deepEqual(backendGot, ['first'], 'what came after the violation was not forwarded');
    await g.waitForLog(/WebSocket protocol violation.*unmasked client frame/);
    stream.close();
    await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to close');
  } finally {
    session.destroy();
    await g.stop();
    await backend.close();
  }
});

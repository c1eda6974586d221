// HTTP/2 floods on the front (issue 16, item 1): rapid reset (CVE-2023-44487), CONTINUATION
// without end (CVE-2024-27316 and kin), more streams than H2MaxSessionStreams, a header list
// beyond every bound. Each is written frame by frame with RawH2 on h2c (prior knowledge) or TLS;
// each asserts what the flooding client saw (GOAWAY and its code, the close) and that a second
// client, connected before the flood, is still served afterwards: a request over h2 and a
// WebSocket over HTTP/1.1 on the same port, hash-checked.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { makeCerts, type CertFiles } from '../helpers/certs';
import { FLAG_END_HEADERS, FLAG_END_STREAM, FrameType, h2Connect, h2Frame, h2Request, headerBlock, hpackField, RawH2 } from '../helpers/h2';
import {
  closeWs,
  echo,
  openWs,
  randomBytes,
  readRequestHead,
  sha256,
  startEchoBackend,
  startGateway,
  startRawBackend,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';
import { H2_RESET_BURST } from '../../src/listeners/h2';

const BOUND = { timeout: 60_000 };
const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;
/** SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2). */
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

function get(path: string, scheme = 'http'): [string, string][] {
  return [
    [':method', 'GET'],
    [':scheme', scheme],
    [':authority', 'localhost'],
    [':path', path],
  ];
}

/** The answer HEADERS for `streamId` came (the :status is not decoded: any answer counts). */
function answered(c: RawH2, streamId: number): boolean {
  return c.frames.some((f) => f.type === FrameType.Headers && f.streamId === streamId);
}

let backend: EchoBackend;

before(async () => {
  backend = await startEchoBackend('floods');
});
after(async () => {
  await backend.close();
});

/** A bystander: an h2c session opened before the flood, and after it a request on it plus a WebSocket over HTTP/1.1 (hash-checked). */
async function stillServes(g: RunningGateway, bystander: http2.ClientHttp2Session): Promise<void> {
  const r = await h2Request(bystander, { ':method': 'GET', ':path': '/after', ':authority': 'localhost' });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'backend:floods GET /after');
  const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/after`);
  const payload = randomBytes(64 * 1024);
  const back = await echo(ws, payload);
  assert.equal(sha256(back.data), sha256(payload));
  await closeWs(ws);
}

async function h2cSession(port: number): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  await once(s, 'remoteSettings');
  return s;
}

function proxyPasses(): string {
  return `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/\nProxyPass / http://127.0.0.1:${backend.port}/\n`;
}

function frontConfig(extra = ''): string {
  return `Listen 127.0.0.1:0\nProtocols h2c http/1.1\n${extra}\n${proxyPasses()}`;
}

describe('rapid reset (CVE-2023-44487)', () => {
  test('h2c: 1000 streams opened and reset in one write: GOAWAY ENHANCE_YOUR_CALM and the close; others still served', BOUND, async () => {
    const g = await startGateway(frontConfig());
    const bystander = await h2cSession(g.port);
    try {
      const c = await RawH2.open(g.port);
      const frames: Buffer[] = [];
      const rst = Buffer.alloc(4);
      rst.writeUInt32BE(NGHTTP2_CANCEL);
      for (let i = 0; i < 1000; i++) {
        const id = 1 + 2 * i;
        frames.push(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, id, headerBlock(get('/x'))));
        frames.push(h2Frame(FrameType.RstStream, 0, id, rst));
      }
      c.write(Buffer.concat(frames));
      await c.closed;
      assert.equal(c.goawayCode(), NGHTTP2_ENHANCE_YOUR_CALM);
      await g.waitForLog(/warn HTTP\/2 session closed client=127\.0\.0\.1 reason=".*rapid reset\)" status="GOAWAY ENHANCE_YOUR_CALM"/);
      await stillServes(g, bystander);
    } finally {
      bystander.close();
      await g.stop();
    }
  });

  test('h2 (TLS): the same flood spread over many writes ends the same way', BOUND, async () => {
    const certs = makeCerts();
    const front: CertFiles = certs.issue('front', ['127.0.0.1', 'localhost']);
    const g = await startGateway(
      `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\nProtocols h2 http/1.1\n${proxyPasses()}`,
    );
    const bystander = await h2Connect(g.port, certs.ca.pem);
    try {
      const c = await RawH2.open(g.port, certs.ca.pem);
      for (let i = 0; i < 2000 && !c.socket.destroyed; i++) {
        const id = 1 + 2 * i;
        c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, id, headerBlock(get('/x', 'https'))));
        c.rst(id, NGHTTP2_CANCEL);
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      await c.closed;
      assert.equal(c.goawayCode(), NGHTTP2_ENHANCE_YOUR_CALM);
      const r = await h2Request(bystander, { ':method': 'GET', ':path': '/after', ':authority': 'localhost' });
      assert.equal(r.status, 200);
    } finally {
      bystander.close();
      await g.stop();
    }
  });

  test(`below the burst (${H2_RESET_BURST / 2} resets) the session lives and answers its next request`, BOUND, async () => {
    const g = await startGateway(frontConfig());
    try {
      const c = await RawH2.open(g.port);
      const n = H2_RESET_BURST / 2;
      for (let i = 0; i < n; i++) {
        c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, 1 + 2 * i, headerBlock(get('/x'))));
        c.rst(1 + 2 * i, NGHTTP2_CANCEL);
      }
      const id = 1 + 2 * n;
      c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, id, headerBlock(get('/kept'))));
      await c.waitFrame((f) => f.type === FrameType.Headers && f.streamId === id, `the answer on stream ${id}`);
      assert.equal(c.goawayCode(), undefined);
      c.socket.destroy();
    } finally {
      await g.stop();
    }
  });
});

describe('CONTINUATION flood', () => {
  test(
    'h2c: HEADERS without END_HEADERS, then CONTINUATION frames without end: the connection is closed after a bounded number; others still served',
    BOUND,
    async () => {
      const g = await startGateway(frontConfig());
      const bystander = await h2cSession(g.port);
      try {
        const c = await RawH2.open(g.port);
        // RawH2 acknowledges the server's SETTINGS when they come: before the header block, which
        // no other frame may interrupt.
        await c.waitFrame((f) => f.type === FrameType.Settings && (f.flags & 0x1) === 0, 'SETTINGS');
        c.write(h2Frame(FrameType.Headers, FLAG_END_STREAM, 1, headerBlock(get('/x'))));
        // One small CONTINUATION per turn of the event loop, up to 10,000: a server that kept
        // reading would take them all; the close must come long before.
        let sent = 0;
        while (sent < 10_000 && !c.socket.destroyed) {
          c.write(h2Frame(FrameType.Continuation, 0, 1, hpackField(`x-f${sent}`, 'v'.repeat(64))));
          sent++;
          await new Promise((r) => setTimeout(r, 1));
        }
        await c.closed;
        assert.ok(sent < 10_000, `the connection was still open after ${sent} CONTINUATION frames`);
        assert.equal(answered(c, 1), false);
        // nghttp2 gives up after 8 CONTINUATION frames, a fatal error for the session: Node sends
        // GOAWAY INTERNAL_ERROR and closes.
        assert.ok(sent < 1000, `${sent} CONTINUATION frames were read`);
        const code = c.goawayCode();
        assert.ok(code !== undefined && code !== 0, `GOAWAY ${code}`);
        await g.waitForLog(/HTTP\/2 session error client=127\.0\.0\.1/);
        await stillServes(g, bystander);
      } finally {
        bystander.close();
        await g.stop();
      }
    },
  );
});

describe('header list size', () => {
  test(
    'h2c: a 100 KB header list (over SETTINGS_MAX_HEADER_LIST_SIZE) is refused on its stream; the same connection then answers a normal request',
    BOUND,
    async () => {
      const g = await startGateway(frontConfig());
      const bystander = await h2cSession(g.port);
      try {
        const c = await RawH2.open(g.port);
        await c.waitFrame((f) => f.type === FrameType.Settings && (f.flags & 0x1) !== 0, 'SETTINGS ACK');
        const big = headerBlock([
          ...get('/big'),
          ...Array.from({ length: 12 }, (_, i): [string, string] => [`x-big${i}`, 'b'.repeat(8000)]),
        ]);
        // Split into frames of at most 16 KB (the default SETTINGS_MAX_FRAME_SIZE): 7 of them, within
        // nghttp2's 8 CONTINUATION frames per block (more is the flood above).
        const parts: Buffer[] = [];
        for (let off = 0; off < big.length; off += 16_000) parts.push(big.subarray(off, off + 16_000));
        parts.forEach((p, i) => {
          const last = i === parts.length - 1;
          const type = i === 0 ? FrameType.Headers : FrameType.Continuation;
          const flags = (i === 0 ? FLAG_END_STREAM : 0) | (last ? FLAG_END_HEADERS : 0);
          c.write(h2Frame(type, flags, 1, p));
        });
        const first = await Promise.race([
          c.waitFrame((f) => (f.type === FrameType.RstStream || f.type === FrameType.Headers) && f.streamId === 1, 'an answer on stream 1'),
          c.closed.then(() => undefined),
        ]);
        // Node resets the stream (ENHANCE_YOUR_CALM) before wsgate sees it; never the backend.
        assert.ok(first !== undefined, 'the connection closed instead');
        assert.equal(first.type, FrameType.RstStream);
        assert.equal(first.payload.readUInt32BE(0), NGHTTP2_ENHANCE_YOUR_CALM);
        assert.equal(
          backend.requests.some((r) => r.url === '/big'),
          false,
        );
        c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, 3, headerBlock(get('/small'))));
        await c.waitFrame((f) => f.type === FrameType.Headers && f.streamId === 3, 'the answer on stream 3');
        assert.equal(c.goawayCode(), undefined);
        c.socket.destroy();
        await stillServes(g, bystander);
      } finally {
        bystander.close();
        await g.stop();
      }
    },
  );
});

describe('H2MaxSessionStreams', () => {
  test('advertised in SETTINGS (default 100, per server); one stream over it ends the connection; others still served', BOUND, async () => {
    // A backend that holds every request until told: the streams stay open meanwhile.
    const held: import('node:net').Socket[] = [];
    const hold = await startRawBackend((s) => {
      void readRequestHead(s).then(
        () => held.push(s),
        () => {},
      );
    });
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProtocols h2c http/1.1\nH2MaxSessionStreams 5\nProxyPass /hold/ http://127.0.0.1:${hold.port}/\n${proxyPasses()}`,
    );
    const dflt = await startGateway(frontConfig());
    const bystander = await h2cSession(g.port);
    try {
      const d = await RawH2.open(dflt.port);
      await d.waitFrame((f) => f.type === FrameType.Settings && (f.flags & 0x1) === 0, 'SETTINGS');
      assert.equal(d.serverSettings().get(SETTINGS_MAX_CONCURRENT_STREAMS), 100);
      d.socket.destroy();

      const c = await RawH2.open(g.port);
      await c.waitFrame((f) => f.type === FrameType.Settings && (f.flags & 0x1) !== 0, 'SETTINGS ACK');
      assert.equal(c.serverSettings().get(SETTINGS_MAX_CONCURRENT_STREAMS), 5);
      // Five at once are within the cap: all reach the backend.
      for (let i = 0; i < 5; i++)
        c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, 1 + 2 * i, headerBlock(get(`/hold/${i}`))));
      const deadline = Date.now() + 20_000;
      while (held.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(held.length, 5);
      assert.equal(c.goawayCode(), undefined);
      // A sixth while they are open: a connection error (RFC 9113 §5.1.2).
      c.write(h2Frame(FrameType.Headers, FLAG_END_HEADERS | FLAG_END_STREAM, 11, headerBlock(get('/hold/5'))));
      await c.closed;
      const code = c.goawayCode();
      assert.ok(code !== undefined && code !== 0, `GOAWAY ${code}`);
      assert.equal(held.length, 5);
      await stillServes(g, bystander);
    } finally {
      bystander.close();
      for (const s of held) s.destroy();
      await g.stop();
      await dflt.stop();
      await hold.close();
    }
  });
});

// HTTP/2 on the front (issue 5, part 3): `Protocols h2 http/1.1` on a TLS port, plain requests
// over h2 proxied to HTTP/1.1 backends, and RFC 8441 WebSockets (`H2WebSockets on`): extended
// CONNECT → HTTP/1.1 upgrade with a fresh key → 200 and a tunnel on the stream. Real TLS
// (openssl-made certificates), Node's http2 client, `ws` on both ends of the tunnel.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { expectError, load } from '../config/helpers';
import { h2Connect, h2Request, h2WebSocket, rawH2Stream, wsClose, wsEcho } from '../helpers/h2';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  eventually,
  headerIn,
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

/** Every test is bounded: a hang fails the test instead of the run. */
const BOUND = { timeout: 60_000 };

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

function tlsFront(extra = 'Protocols h2 http/1.1\nH2WebSockets on'): string {
  return `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n${extra}\n`;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptFor = (key: string): string =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/** A raw backend answering each upgrade with `answer(key)` (the whole response, head and body). */
async function answeringBackend(
  answer: (key: string) => string,
): Promise<Awaited<ReturnType<typeof startRawBackend>> & { heads: string[] }> {
  const heads: string[] = [];
  const b = await startRawBackend((s) => {
    void readRequestHead(s).then(
      ({ head }) => {
        heads.push(head);
        s.end(Buffer.from(answer(headerIn(head, 'sec-websocket-key') ?? ''), 'latin1'));
      },
      () => {},
    );
  });
  return Object.assign(b, { heads });
}

describe('WebSockets over HTTP/2 (RFC 8441)', () => {
  let backend: EchoBackend;
  let g: RunningGateway;
  let session: http2.ClientHttp2Session;

  before(async () => {
    backend = await startEchoBackend('h2', { handleProtocols: (p: Set<string>) => (p.has('chat') ? 'chat' : false) });
    g = await startGateway(`${tlsFront()}\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\n`);
    session = await h2Connect(g.port, certs.ca.pem);
  });
  after(async () => {
    session.close();
    await g.stop();
    await backend.close();
  });

  test(
    'the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL; text and binary echo; the backend got an RFC 6455 upgrade; the tunnel is registered as h2',
    BOUND,
    async () => {
      assert.equal(session.remoteSettings.enableConnectProtocol, true);
      const r = await h2WebSocket(session, '/ws/chat?room=1', { 'sec-websocket-protocol': 'other, chat', origin: 'https://localhost' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['sec-websocket-protocol'], 'chat');
      assert.equal(r.headers['sec-websocket-accept'], undefined);
      const ws = r.ws!;
      const text = await wsEcho(ws, 'hello over h2');
      assert.equal(text.data.toString(), 'hello over h2');
      assert.equal(text.isBinary, false);
      const bin = randomBytes(70_000);
      const back = await wsEcho(ws, bin);
      assert.equal(back.isBinary, true);
      assert.equal(sha256(back.data), sha256(bin));

      const recs = [...g.gateway.tunnels.values()];
      assert.equal(recs.length, 1);
      assert.equal(recs[0].protocol, 'h2');
      assert.equal(recs[0].clientIp, '127.0.0.1');
      const seen = backend.upgrades.at(-1)!;
      assert.equal(seen.method, 'GET');
      assert.equal(seen.url, '/chat?room=1');
      const h = (n: string): string | undefined => {
        const i = seen.rawHeaders.findIndex((x, j) => j % 2 === 0 && x.toLowerCase() === n);
        return i === -1 ? undefined : seen.rawHeaders[i + 1];
      };
      assert.equal(h('sec-websocket-version'), '13');
      assert.match(h('sec-websocket-key') ?? '', /^[A-Za-z0-9+/]{22}==$/);
      assert.equal(h('upgrade'), 'websocket');
      assert.equal(h('sec-websocket-protocol'), 'other, chat');
      assert.equal(h('origin'), 'https://localhost');
      assert.equal(h('x-forwarded-for'), '127.0.0.1');
      assert.equal(h(':protocol'), undefined);
      await wsClose(ws);
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the h2 tunnel to close');
      await g.waitForLog(/tunnel closed .*reason=closed.*protocol=h2/);
    },
  );

  test('a 16 MiB message passes both ways unchanged (flow control and backpressure on the stream)', BOUND, async () => {
    const r = await h2WebSocket(session, '/ws/big');
    assert.equal(r.status, 200);
    const big = randomBytes(16 * 1024 * 1024);
    const back = await wsEcho(r.ws!, big);
    assert.equal(back.data.length, big.length);
    assert.equal(sha256(back.data), sha256(big));
    await wsClose(r.ws!);
  });

  test('50 concurrent WebSockets on one HTTP/2 connection, each echo checked', BOUND, async () => {
    const n = 50;
    const opened = await Promise.all(Array.from({ length: n }, (_, i) => h2WebSocket(session, `/ws/many/${i}`)));
    for (const r of opened) assert.equal(r.status, 200);
    await eventually(() => [...g.gateway.tunnels.values()].filter((t) => t.protocol === 'h2').length === n, 10_000, `${n} h2 tunnels`);
    const payloads = opened.map((_, i) => Buffer.concat([Buffer.from(`stream-${i}:`), randomBytes(1000 + i * 97)]));
    const echoes = await Promise.all(opened.map((r, i) => wsEcho(r.ws!, payloads[i])));
    for (const [i, e] of echoes.entries()) assert.equal(sha256(e.data), sha256(payloads[i]), `stream ${i}`);
    await Promise.all(opened.map((r) => wsClose(r.ws!)));
    await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'every tunnel to close');
    const counters = [...g.gateway.origins.all()].find((o) => o.origin.port === backend.port)!.counters;
    assert.equal(counters.openTunnels, 0);
    assert.ok(counters.tunnels >= n + 2);
  });
});

describe('RFC 8441 error mappings', () => {
  let session: http2.ClientHttp2Session | undefined;
  let g: RunningGateway | undefined;
  let b: Awaited<ReturnType<typeof answeringBackend>> | undefined;

  async function setup(answer: (key: string) => string): Promise<void> {
    b = await answeringBackend(answer);
    g = await startGateway(`${tlsFront()}\nProxyPass /ws/ ws://127.0.0.1:${b.port}/\n`);
    session = await h2Connect(g.port, certs.ca.pem);
  }
  async function teardown(): Promise<void> {
    session?.close();
    await g?.stop();
    await b?.close();
  }

  const cases: { name: string; answer: (key: string) => string; status: number; log: RegExp; body?: string }[] = [
    {
      name: 'a 101 with a wrong Sec-WebSocket-Accept → 502',
      answer: () =>
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor('not the key')}\r\n\r\n`,
      status: 502,
      log: /proxy request failed status=502 reason="?backend 101 with a wrong Sec-WebSocket-Accept/,
    },
    {
      name: 'a 101 without Sec-WebSocket-Accept → 502',
      answer: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      status: 502,
      log: /proxy request failed status=502 reason="?backend 101 without Sec-WebSocket-Accept/,
    },
    {
      name: 'a 2xx (not a WebSocket) → 502',
      answer: () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      status: 502,
      log: /proxy request failed status=502 reason="?backend answered 200 to a WebSocket request/,
    },
    {
      name: 'a 403 passes through with its body',
      answer: () => 'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nX-Why: origin\r\n\r\nnot from here',
      status: 403,
      log: /./,
      body: 'not from here',
    },
  ];
  for (const c of cases) {
    test(c.name, BOUND, async () => {
      try {
        await setup(c.answer);
        const r = await h2WebSocket(session!, '/ws/x');
        assert.equal(r.status, c.status);
        if (c.body !== undefined) {
          assert.equal(r.body!.toString(), c.body);
          assert.equal(r.headers['x-why'], 'origin');
        } else {
          assert.equal(r.body!.toString(), `${c.status} Bad Gateway\n`);
        }
        await g!.waitForLog(c.log);
        // The backend was asked with a key of ours, and the check used that key.
        assert.match(headerIn(b!.heads[0], 'sec-websocket-key') ?? '', /^[A-Za-z0-9+/]{22}==$/);
        assert.equal(g!.gateway.tunnels.size, 0);
        // The session survives a failed stream.
        const again = await h2WebSocket(session!, '/ws/y');
        assert.equal(again.status, c.status);
      } finally {
        await teardown();
      }
    });
  }

  test('a good Accept with early bytes after the 101 reaches the client first', BOUND, async () => {
    try {
      // 0x81 0x02 'hi': an unmasked text frame sent with the 101.
      await setup(
        (key) =>
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n\x81\x02hi`,
      );
      const r = await h2WebSocket(session!, '/ws/x');
      assert.equal(r.status, 200);
      const [msg] = (await once(r.ws!, 'message')) as [Buffer];
      assert.equal(msg.toString(), 'hi');
      r.ws!.terminate();
    } finally {
      await teardown();
    }
  });

  test('a :protocol other than websocket → 501; plain CONNECT → 501', BOUND, async () => {
    try {
      await setup(() => 'HTTP/1.1 500 x\r\n\r\n');
      const other = session!.request({ ':method': 'CONNECT', ':protocol': 'webtransport', ':path': '/ws/x' });
      const [h] = (await once(other, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(h[':status'], 501);
      other.resume();
      await g!.waitForLog(/request not proxied status=501 reason="?extended CONNECT for protocol "?\\?"?webtransport/);
      const plain = session!.request({ ':method': 'CONNECT', ':authority': 'example.test:443' });
      const [h2] = (await once(plain, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(h2[':status'], 501);
      plain.resume();
      assert.equal(b!.heads.length, 0, 'nothing reached the backend');
    } finally {
      await teardown();
    }
  });

  test('an extended CONNECT missing :path, :scheme or :authority is reset with PROTOCOL_ERROR', BOUND, async () => {
    try {
      await setup(() => 'HTTP/1.1 500 x\r\n\r\n');
      const full: [string, string][] = [
        [':method', 'CONNECT'],
        [':protocol', 'websocket'],
        [':scheme', 'https'],
        [':path', '/ws/x'],
        [':authority', 'localhost'],
      ];
      for (const missing of [':path', ':scheme', ':authority']) {
        const r = await rawH2Stream(
          g!.port,
          certs.ca.pem,
          full.filter(([n]) => n !== missing),
        );
        assert.equal(r.rstCode, http2.constants.NGHTTP2_PROTOCOL_ERROR, `without ${missing}`);
        assert.equal(r.gotHeaders, false, `without ${missing}: no response`);
      }
      assert.equal(b!.heads.length, 0, 'nothing reached the backend');
    } finally {
      await teardown();
    }
  });
});

describe('tunnels over HTTP/2: half-close, reset, idle limit, shutdown, balancer', () => {
  test(
    "the client's END_STREAM reaches the backend as a FIN, the backend's FIN as END_STREAM; the tunnel closes cleanly",
    BOUND,
    async () => {
      const b = await startRawBackend((s) => {
        void readRequestHead(s).then(
          ({ head }) => {
            s.write(
              `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(headerIn(head, 'sec-websocket-key') ?? '')}\r\n\r\n`,
            );
            const got: Buffer[] = [];
            s.on('data', (c: Buffer) => got.push(c));
            s.resume();
            s.on('end', () => {
              // After the client's FIN: answer with what was received (hashed), then our own FIN.
              s.end(`got ${sha256(Buffer.concat(got))}`);
            });
          },
          () => {},
        );
      });
      const g = await startGateway(`${tlsFront()}\nProxyPass /ws/ ws://127.0.0.1:${b.port}/\n`);
      const session = await h2Connect(g.port, certs.ca.pem);
      try {
        const stream = session.request({
          ':method': 'CONNECT',
          ':protocol': 'websocket',
          ':path': '/ws/raw',
          'sec-websocket-version': '13',
        });
        const [h] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
        assert.equal(h[':status'], 200);
        const sent = randomBytes(300_000);
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c));
        stream.end(sent);
        await once(stream, 'end');
        assert.equal(Buffer.concat(parts).toString(), `got ${sha256(sent)}`);
        await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the tunnel to close');
        await g.waitForLog(/tunnel closed .*reason=closed .*protocol=h2 .*up=300000 down=68/);
      } finally {
        session.close();
        await g.stop();
        await b.close();
      }
    },
  );

  test('a backend reset ends the stream with RST_STREAM(CONNECT_ERROR); a client reset closes the backend socket', BOUND, async () => {
    const backendSockets: net.Socket[] = [];
    const b = await startRawBackend((s) => {
      backendSockets.push(s);
      void readRequestHead(s).then(
        ({ head }) => {
          s.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(headerIn(head, 'sec-websocket-key') ?? '')}\r\n\r\n`,
          );
          // As most servers: a FIN from the proxy closes the connection.
          s.on('end', () => s.end());
          s.resume();
        },
        () => {},
      );
    });
    const g = await startGateway(`${tlsFront()}\nProxyPass /ws/ ws://127.0.0.1:${b.port}/\n`);
    const session = await h2Connect(g.port, certs.ca.pem);
    try {
      const one = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/ws/1', 'sec-websocket-version': '13' });
      one.on('error', () => {});
      await once(one, 'response');
      await eventually(() => backendSockets.length === 1 && g.gateway.tunnels.size === 1, 5000, 'tunnel one');
      const oneClosed = new Promise((r) => one.once('close', r));
      backendSockets[0].resetAndDestroy();
      await oneClosed;
      assert.equal(one.rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
      await g.waitForLog(/tunnel closed .*reason=backend-(reset|error).*protocol=h2/);

      const two = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/ws/2', 'sec-websocket-version': '13' });
      two.on('error', () => {});
      await once(two, 'response');
      await eventually(() => backendSockets.length === 2 && g.gateway.tunnels.size === 1, 5000, 'tunnel two');
      const closed = once(backendSockets[1], 'close');
      two.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
      await g.waitForLog(/tunnel closed .*reason=client-(reset|error).*protocol=h2/);
      assert.equal(session.closed, false, 'the session outlives its streams');
    } finally {
      session.close();
      await g.stop();
      await b.close();
    }
  });

  test('backpressure both ways: a client that stops reading stops the backend (and the reverse); nothing is lost', BOUND, async () => {
    const CHUNK = 64 * 1024;
    /** Writes `chunk` until write() returns false and no 'drain' comes for 1.5 s: the other end stopped taking bytes. */
    async function writeUntilBlocked(
      w: { write(b: Buffer): boolean; once(e: 'drain', f: () => void): unknown },
      sent: Buffer[],
      limit: number,
    ): Promise<number> {
      let total = 0;
      for (;;) {
        const chunk = randomBytes(CHUNK);
        sent.push(chunk);
        total += chunk.length;
        if (total >= limit) return total;
        if (!w.write(chunk)) {
          const drained = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), 1500);
            w.once('drain', () => {
              clearTimeout(t);
              resolve(true);
            });
          });
          if (!drained) return total;
        }
      }
    }
    let backendSocket: net.Socket | undefined;
    const b = await startRawBackend((s) => {
      void readRequestHead(s).then(
        ({ head }) => {
          s.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(headerIn(head, 'sec-websocket-key') ?? '')}\r\n\r\n`,
          );
          backendSocket = s; // paused by readRequestHead: it reads nothing yet
        },
        () => {},
      );
    });
    const g = await startGateway(`${tlsFront()}\nProxyPass /ws/ ws://127.0.0.1:${b.port}/\n`);
    const session = await h2Connect(g.port, certs.ca.pem);
    const LIMIT = 64 * 1024 * 1024;
    try {
      const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/ws/bp', 'sec-websocket-version': '13' });
      const [h] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(h[':status'], 200);
      stream.pause();
      await eventually(() => backendSocket !== undefined, 5000, 'the backend connection');
      const be = backendSocket!;

      // Down: the client reads nothing; the backend must end up blocked long before LIMIT.
      const down: Buffer[] = [];
      const downSent = await writeUntilBlocked(be, down, LIMIT);
      assert.ok(downSent < LIMIT, `the backend was stopped (sent ${downSent} bytes)`);
      const got: Buffer[] = [];
      let gotBytes = 0;
      stream.on('data', (c: Buffer) => {
        got.push(c);
        gotBytes += c.length;
      });
      stream.resume();
      await eventually(() => gotBytes === downSent, 20_000, 'every byte the backend sent');
      assert.equal(sha256(Buffer.concat(got)), sha256(Buffer.concat(down)));

      // Up: the backend reads nothing (paused); the client must end up blocked.
      const up: Buffer[] = [];
      const upSent = await writeUntilBlocked(stream, up, LIMIT);
      assert.ok(upSent < LIMIT, `the client was stopped (sent ${upSent} bytes)`);
      const seen: Buffer[] = [];
      let seenBytes = 0;
      be.on('data', (c: Buffer) => {
        seen.push(c);
        seenBytes += c.length;
      });
      be.resume();
      await eventually(() => seenBytes === upSent, 20_000, 'every byte the client sent');
      assert.equal(sha256(Buffer.concat(seen)), sha256(Buffer.concat(up)));
      stream.close();
    } finally {
      session.close();
      await g.stop();
      await b.close();
    }
  });

  test('an HTTP/2 connection with no stream is closed after the keep-alive timeout (GOAWAY)', BOUND, async () => {
    const backend = await startEchoBackend('keepalive');
    const g = await startGateway(`${tlsFront()}\nProxyPass / http://127.0.0.1:${backend.port}/\n`);
    const session = await h2Connect(g.port, certs.ca.pem);
    try {
      const r = await h2Request(session, { ':path': '/one' });
      assert.equal(r.status, 200);
      const started = Date.now();
      await once(session, 'goaway');
      const waited = Date.now() - started;
      assert.ok(waited >= 4000 && waited < 30_000, `closed after ${waited} ms`);
      await assertNoOpenSockets(g);
    } finally {
      session.destroy();
      await g.stop();
      await backend.close();
    }
  });

  test('ProxyWebsocketIdleTimeout closes an idle h2 tunnel; stopping the gateway closes sessions and tunnels', BOUND, async () => {
    const backend = await startEchoBackend('idle');
    const g = await startGateway(`${tlsFront()}\nProxyWebsocketIdleTimeout 1\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\n`);
    const session = await h2Connect(g.port, certs.ca.pem);
    try {
      const r = await h2WebSocket(session, '/ws/idle');
      assert.equal(r.status, 200);
      await once(r.ws!, 'close');
      await g.waitForLog(/tunnel closed .*reason=idle-timeout.*protocol=h2/);
      const r2 = await h2WebSocket(session, '/ws/live');
      assert.equal((await wsEcho(r2.ws!, 'x')).data.toString(), 'x');
      const sessionClosed = once(session, 'close');
      await g.stop();
      await sessionClosed;
      // A tunnel ends when both of its sockets have closed, which may be after the session's 'close'.
      await assertNoOpenSockets(g);
    } finally {
      session.destroy();
      await g.stop();
      await backend.close();
    }
  });

  test('balancer:// routes work over h2 (WebSocket and plain), with failover from a dead member', BOUND, async () => {
    const one = await startEchoBackend('one');
    const dead = await startRawBackend(() => {});
    const deadPort = dead.port;
    await dead.close();
    const g = await startGateway(
      `${tlsFront()}\n<Proxy "balancer://pool">\n  BalancerMember "ws://127.0.0.1:${deadPort}"\n  BalancerMember "ws://127.0.0.1:${one.port}"\n  ProxySet lbmethod=byrequests\n</Proxy>\n` +
        `ProxyPass "/ws/" "balancer://pool/"\n<Proxy "balancer://web">\n  BalancerMember "http://127.0.0.1:${one.port}/app"\n</Proxy>\nProxyPass "/" "balancer://web/"\n`,
    );
    const session = await h2Connect(g.port, certs.ca.pem);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await h2WebSocket(session, `/ws/room${i}`);
        assert.equal(r.status, 200);
        assert.equal((await wsEcho(r.ws!, `m${i}`)).data.toString(), `m${i}`);
        await wsClose(r.ws!);
      }
      assert.deepEqual(
        one.upgrades.map((u) => u.url),
        ['/room0', '/room1', '/room2'],
      );
      const res = await h2Request(session, { ':path': '/page?q=1' });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:one GET /app/page?q=1');
    } finally {
      session.close();
      await g.stop();
      await one.close();
    }
  });
});

describe('plain HTTP over h2 to HTTP/1.1 backends', () => {
  let server: http.Server;
  let port: number;
  let g: RunningGateway;
  let session: http2.ClientHttp2Session;
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; bodyHash: string; bodyLength: number }[] = [];

  before(async () => {
    // Answers with a chunked body (several writes) made from the request: its hash and a fixed pattern.
    server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, bodyHash: sha256(body), bodyLength: body.length });
        if (req.url === '/missing') {
          res.writeHead(404, { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
          res.end('no such thing');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-request-hash': sha256(body), connection: 'keep-alive' });
        for (let i = 0; i < 8; i++) res.write(Buffer.alloc(100_000, i));
        res.end();
      });
    });
    server.keepAliveTimeout = 10_000;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
    g = await startGateway(
      `${tlsFront('Protocols h2 http/1.1')}\nHeader set X-Gateway wsgate\nProxyPass /api/ http://127.0.0.1:${port}/\n`,
    );
    session = await h2Connect(g.port, certs.ca.pem);
  });
  after(async () => {
    session.close();
    await g.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const expected = sha256(Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.alloc(100_000, i))));

  test('GET: the chunked answer arrives as DATA, unchanged; headers and Host as for HTTP/1.1', BOUND, async () => {
    const r = await h2Request(session, { ':path': '/api/get?x=1', cookie: 'a=1', 'x-custom': 'v' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.equal(r.headers.connection, undefined);
    assert.equal(r.headers['x-gateway'], 'wsgate', 'Header rules apply as over HTTP/1.1');
    assert.equal(sha256(r.body), expected);
    const s = seen.at(-1)!;
    assert.equal(s.method, 'GET');
    assert.equal(s.url, '/get?x=1');
    assert.equal(s.headers.host, `127.0.0.1:${port}`);
    assert.equal(s.headers['x-custom'], 'v');
    assert.equal(s.headers['x-forwarded-host'], 'localhost:' + g.port);
    assert.equal(s.headers['transfer-encoding'], undefined);
  });

  test('POST with content-length and POST of unknown length (sent chunked) reach the backend unchanged', BOUND, async () => {
    const body = randomBytes(1_000_000);
    const withLength = await h2Request(session, { ':method': 'POST', ':path': '/api/upload', 'content-length': String(body.length) }, [
      body,
    ]);
    assert.equal(withLength.status, 200);
    assert.equal(withLength.headers['x-request-hash'], sha256(body));
    assert.equal(sha256(withLength.body), expected);
    assert.equal(seen.at(-1)!.headers['content-length'], String(body.length));

    const parts = [randomBytes(70_000), randomBytes(1), randomBytes(300_000)];
    const streamed = await h2Request(session, { ':method': 'POST', ':path': '/api/stream' }, parts);
    assert.equal(streamed.status, 200);
    assert.equal(streamed.headers['x-request-hash'], sha256(Buffer.concat(parts)));
    assert.equal(seen.at(-1)!.headers['transfer-encoding'], 'chunked');
    assert.equal(seen.at(-1)!.bodyLength, 370_001);
  });

  test(
    'cookies are joined into one field; a 404 passes through with its body and both Set-Cookie values; 404 for no route; HEAD',
    BOUND,
    async () => {
      const r = await h2Request(session, { ':path': '/api/missing', cookie: ['a=1', 'b=2'] });
      assert.equal(r.status, 404);
      assert.equal(r.body.toString(), 'no such thing');
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(seen.at(-1)!.headers.cookie, 'a=1; b=2');
      const none = await h2Request(session, { ':path': '/elsewhere' });
      assert.equal(none.status, 404);
      assert.equal(none.body.toString(), '404 Not Found\n');
      await g.waitForLog(/request not proxied status=404 .*protocol=h2/);
      const head = await h2Request(session, { ':method': 'HEAD', ':path': '/api/h' });
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
    },
  );

  test('20 concurrent requests on one connection, each body checked; backend connections are reused', BOUND, async () => {
    const before = seen.length;
    const bodies = Array.from({ length: 20 }, (_, i) => randomBytes(10_000 + i));
    const results = await Promise.all(
      bodies.map((b, i) => h2Request(session, { ':method': 'PUT', ':path': `/api/c${i}`, 'content-length': String(b.length) }, [b])),
    );
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-request-hash'], sha256(bodies[i]));
      assert.equal(sha256(r.body), expected);
    });
    assert.equal(seen.length - before, 20);
  });

  test(
    'a backend that does not answer within ProxyTimeout → 504; an upgrade=NONE route answering 101 to a plain h2 request → 502',
    BOUND,
    async () => {
      const silent = await startRawBackend((s) => s.resume());
      const switching = await startRawBackend((s) => {
        void readRequestHead(s).then(
          () => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
          () => {},
        );
      });
      const g2 = await startGateway(
        `${tlsFront('Protocols h2 http/1.1')}\nProxyTimeout 1\nProxyPass /forced/ ws://127.0.0.1:${switching.port}/ upgrade=NONE\nProxyPass / http://127.0.0.1:${silent.port}/\n`,
      );
      const s2 = await h2Connect(g2.port, certs.ca.pem);
      try {
        const r = await h2Request(s2, { ':path': '/slow' });
        assert.equal(r.status, 504);
        await g2.waitForLog(/proxy request failed status=504 .*protocol=h2/);
        const f = await h2Request(s2, { ':path': '/forced/x' });
        assert.equal(f.status, 502);
        await g2.waitForLog(/proxy request failed status=502 reason="?unexpected 101/);
        assert.equal(g2.gateway.tunnels.size, 0);
      } finally {
        s2.close();
        await g2.stop();
        await silent.close();
        await switching.close();
      }
    },
  );

  test('an unreachable backend → 503, as over HTTP/1.1', BOUND, async () => {
    const dead = await startRawBackend(() => {});
    const deadPort = dead.port;
    await dead.close();
    const g2 = await startGateway(
      `${tlsFront('Protocols h2 http/1.1')}\nHeader always set X-Failed yes\nProxyPass / http://127.0.0.1:${deadPort}/\n`,
    );
    const s2 = await h2Connect(g2.port, certs.ca.pem);
    try {
      const r = await h2Request(s2, { ':path': '/x' });
      assert.equal(r.status, 503);
      assert.equal(r.body.toString(), '503 Service Unavailable\n');
      assert.equal(r.headers['x-failed'], 'yes', "`Header always` applies to wsgate's own answers");
      await g2.waitForLog(/proxy request failed status=503 .*protocol=h2/);
    } finally {
      s2.close();
      await g2.stop();
    }
  });
});

describe('H2WebSockets off, and Protocols', () => {
  test(
    'H2WebSockets off: SETTINGS_ENABLE_CONNECT_PROTOCOL is not sent; an HTTP/1.1 WebSocket still works on the same port',
    BOUND,
    async () => {
      const backend = await startEchoBackend('off');
      const g = await startGateway(
        `${tlsFront('Protocols h2 http/1.1')}\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\nProxyPass / http://127.0.0.1:${backend.port}/\n`,
      );
      const session = await h2Connect(g.port, certs.ca.pem);
      try {
        assert.notEqual(session.remoteSettings.enableConnectProtocol, true);
        const raw = await rawH2Stream(g.port, certs.ca.pem, [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':path', '/x'],
          [':authority', 'localhost'],
        ]);
        assert.equal(raw.settings.get(0x8) ?? 0, 0, 'SETTINGS_ENABLE_CONNECT_PROTOCOL absent or 0');
        assert.equal(raw.gotHeaders, true);
        // Plain h2 still proxied.
        const r = await h2Request(session, { ':path': '/page' });
        assert.equal(r.body.toString(), 'backend:off GET /page');
        // HTTP/1.1 WebSocket (ws offers no ALPN) on the same port.
        const ws = await openWs(`wss://localhost:${g.port}/ws/h1`, undefined, { ca: certs.ca.pem });
        const e = await echo(ws, 'over h1');
        assert.equal(e.data.toString(), 'over h1');
        assert.deepEqual(
          [...g.gateway.tunnels.values()].map((t) => t.protocol),
          ['http/1.1'],
        );
        await closeWs(ws);
      } finally {
        session.close();
        await g.stop();
        await backend.close();
      }
    },
  );

  test('without Protocols h2 (the default), ALPN selects http/1.1 and a client offering h2 and http/1.1 gets HTTP/1.1', BOUND, async () => {
    const backend = await startEchoBackend('h1only');
    const g = await startGateway(`${tlsFront('')}\nProxyPass / http://127.0.0.1:${backend.port}/\n`);
    try {
      const { connect } = await import('node:tls');
      const s = connect({ host: '127.0.0.1', port: g.port, ca: certs.ca.pem, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] });
      await once(s, 'secureConnect');
      assert.equal(s.alpnProtocol, 'http/1.1');
      s.end('GET /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      await once(s, 'end');
      assert.match(Buffer.concat(parts).toString(), /^HTTP\/1\.1 200 [\s\S]*backend:h1only GET \/a$/);
      s.destroy();
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('per virtual host: Protocols and H2WebSockets follow the server SNI selects', BOUND, async () => {
    const a = certs.issue('h2a', ['a.test']);
    const bcert = certs.issue('h2b', ['b.test']);
    const backend = await startEchoBackend('vh');
    const g = await startGateway(
      `Listen 127.0.0.1:0 https\n` +
        `<VirtualHost *:*>\nServerName a.test\nSSLEngine on\nSSLCertificateFile ${a.cert}\nSSLCertificateKeyFile ${a.key}\nProtocols h2 http/1.1\nH2WebSockets on\nProxyPass / ws://127.0.0.1:${backend.port}/\n</VirtualHost>\n` +
        `<VirtualHost *:*>\nServerName b.test\nSSLEngine on\nSSLCertificateFile ${bcert.cert}\nSSLCertificateKeyFile ${bcert.key}\nProxyPass / ws://127.0.0.1:${backend.port}/\n</VirtualHost>\n`,
    );
    try {
      const sa = await h2Connect(g.port, certs.ca.pem, 'a.test');
      assert.equal(sa.remoteSettings.enableConnectProtocol, true);
      sa.close();
      const { connect } = await import('node:tls');
      const sb = connect({ host: '127.0.0.1', port: g.port, ca: certs.ca.pem, servername: 'b.test', ALPNProtocols: ['h2', 'http/1.1'] });
      await once(sb, 'secureConnect');
      assert.equal(sb.alpnProtocol, 'http/1.1');
      sb.destroy();
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('a session offered RFC 8441 by its SNI server, a request for a server with H2WebSockets off → 501', BOUND, async () => {
    const a = certs.issue('h2on', ['on.test']);
    const backend = await startEchoBackend('vhoff');
    const g = await startGateway(
      `Listen 127.0.0.1:0 https\nProtocols h2 http/1.1\n` +
        `<VirtualHost *:*>\nServerName on.test\nSSLEngine on\nSSLCertificateFile ${a.cert}\nSSLCertificateKeyFile ${a.key}\nH2WebSockets on\nProxyPass / ws://127.0.0.1:${backend.port}/\n</VirtualHost>\n` +
        `<VirtualHost *:*>\nServerName off.test\nSSLEngine on\nSSLCertificateFile ${a.cert}\nSSLCertificateKeyFile ${a.key}\nProxyPass / ws://127.0.0.1:${backend.port}/\n</VirtualHost>\n`,
    );
    const session = await h2Connect(g.port, certs.ca.pem, 'on.test');
    try {
      assert.equal(session.remoteSettings.enableConnectProtocol, true);
      const ok = await h2WebSocket(session, '/a', { ':authority': 'on.test' });
      assert.equal(ok.status, 200);
      await wsClose(ok.ws!);
      const refused = await h2WebSocket(session, '/b', { ':authority': 'off.test' });
      assert.equal(refused.status, 501);
      await g.waitForLog(/request not proxied status=501 reason="?H2WebSockets is off for this server/);
      assert.deepEqual(
        backend.upgrades.map((u) => u.url),
        ['/a'],
      );
    } finally {
      session.close();
      await g.stop();
      await backend.close();
    }
  });

  test('config: Protocols and H2WebSockets are read per server; bad values are FILE:LINE errors', BOUND, () => {
    const { config } = load({
      'wsgate.conf':
        'Listen 80\nProtocols h2c http/1.1\nH2WebSockets on\n<VirtualHost *:80>\nProtocols http/1.1\nProtocolsHonorOrder off\n</VirtualHost>\n',
    });
    assert.deepEqual(config.mainServer.settings.protocols, ['h2c', 'http/1.1']);
    assert.equal(config.mainServer.settings.h2WebSockets, true);
    assert.deepEqual(config.virtualHosts[0].settings.protocols, ['http/1.1']);
    assert.equal(config.virtualHosts[0].settings.h2WebSockets, true, 'inherited');
    assert.equal(config.virtualHosts[0].settings.protocolsHonorOrder, false);
    const tuned = load({ 'wsgate.conf': 'Listen 80\nH2Direct on\nH2MaxWorkers 50\nH2MaxSessionStreams 50\n' }).config;
    assert.ok(
      tuned.notices.some((n) => /wsgate\.conf:2: H2Direct is ignored/.test(n)),
      tuned.notices.join('\n'),
    );
    assert.ok(
      tuned.notices.some((n) => /wsgate\.conf:3: H2MaxWorkers is ignored/.test(n)),
      tuned.notices.join('\n'),
    );
    assert.equal(tuned.mainServer.settings.h2MaxSessionStreams, 50);
    assert.equal(config.mainServer.settings.h2MaxSessionStreams, 100);
    expectError({ 'wsgate.conf': 'Listen 80\nH2MaxSessionStreams 0\n' }, { line: 2, message: /H2MaxSessionStreams: 0 is out of range/ });
    expectError({ 'wsgate.conf': 'Listen 80\nH2MaxSessionStreams many\n' }, { line: 2, message: /H2MaxSessionStreams/ });
    expectError({ 'wsgate.conf': 'Listen 80\n\nProtocols h3 http/1.1\n' }, { line: 3, message: /Protocols: unknown protocol "h3"/ });
    expectError({ 'wsgate.conf': 'Listen 80\nH2WebSockets maybe\n' }, { line: 2, message: /H2WebSockets/ });
    expectError({ 'wsgate.conf': 'Listen 80\n<Location /x>\nH2WebSockets on\n</Location>\n' }, { line: 3, message: /H2WebSockets/ });
  });
});

describe('h2c: HTTP/2 with prior knowledge on a plain port (Protocols h2c)', () => {
  test('plain requests and RFC 8441 WebSockets over h2c; HTTP/1.1 keeps working on the same port', BOUND, async () => {
    const backend = await startEchoBackend('h2c');
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProtocols h2c http/1.1\nH2WebSockets on\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\nProxyPass / http://127.0.0.1:${backend.port}/\n`,
    );
    const session = http2.connect(`http://127.0.0.1:${g.port}`);
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      assert.equal(session.remoteSettings.enableConnectProtocol, true);
      const r = await h2Request(session, { ':path': '/plain?x=1' });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'backend:h2c GET /plain?x=1');
      const ws = await h2WebSocket(session, '/ws/c');
      assert.equal(ws.status, 200);
      const msg = randomBytes(200_000);
      assert.equal(sha256((await wsEcho(ws.ws!, msg)).data), sha256(msg));
      assert.deepEqual(
        [...g.gateway.tunnels.values()].map((t) => t.protocol),
        ['h2'],
      );
      await wsClose(ws.ws!);
      // HTTP/1.1 and its WebSockets on the same port.
      const h1 = await openWs(`ws://127.0.0.1:${g.port}/ws/h1`);
      assert.equal((await echo(h1, 'h1')).data.toString(), 'h1');
      await closeWs(h1);
    } finally {
      session.destroy();
      await g.stop();
      await backend.close();
    }
  });

  test('without h2c in Protocols the preface is a bad HTTP/1 request (505), as before', BOUND, async () => {
    const backend = await startEchoBackend('noh2c');
    const g = await startGateway(`Listen 127.0.0.1:0\nProtocols h2 http/1.1\nProxyPass / http://127.0.0.1:${backend.port}/\n`);
    try {
      const { connect } = await import('node:net');
      const s = connect(g.port, '127.0.0.1');
      s.on('error', () => {});
      await once(s, 'connect');
      s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      await once(s, 'close');
      assert.match(Buffer.concat(parts).toString('latin1'), /^HTTP\/1\.1 505 /);
      assert.equal(backend.requests.length, 0);
    } finally {
      await g.stop();
      await backend.close();
    }
  });
});

test("RewriteCond %{HTTP:Upgrade} sees an extended CONNECT as an upgrade (Socket.IO's documented config over h2)", BOUND, async () => {
  const backend = await startEchoBackend('rw');
  const page = http.createServer((_req, res) => res.end('not the websocket backend'));
  page.listen(0, '127.0.0.1');
  await once(page, 'listening');
  const pagePort = (page.address() as net.AddressInfo).port;
  const g = await startGateway(
    `${tlsFront()}\nRewriteEngine On\nRewriteCond %{HTTP:Upgrade} =websocket [NC]\nRewriteCond %{HTTP:Connection} upgrade [NC]\n` +
      `RewriteRule /(.*) ws://127.0.0.1:${backend.port}/$1 [P,L]\nProxyPass / http://127.0.0.1:${pagePort}/\n`,
  );
  const session = await h2Connect(g.port, certs.ca.pem);
  try {
    const r = await h2WebSocket(session, '/socket.io/?EIO=4&transport=websocket');
    assert.equal(r.status, 200, 'the rewrite sent it to the WebSocket backend');
    const data = randomBytes(20_000);
    const back = await wsEcho(r.ws!, data);
    assert.equal(sha256(back.data), sha256(data));
    assert.equal(backend.upgrades.at(-1)!.url, '/socket.io/?EIO=4&transport=websocket');
    // A plain request over the same connection still takes ProxyPass.
    const plain = await h2Request(session, { ':method': 'GET', ':path': '/index' });
    assert.equal(plain.status, 200);
    assert.equal(plain.body.toString(), 'not the websocket backend');
    await wsClose(r.ws!);
  } finally {
    session.close();
    await g.stop();
    await backend.close();
    page.close();
  }
});

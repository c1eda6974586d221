// WebSocket abuse limits on the wire, on every front: HTTP/1.1 (the native front unless
// WSGATE_NATIVE_FRONT=0) and HTTP/2 with RFC 8441. Clients come from 127.0.0.1 and 127.0.0.2;
// each refusal is checked for its status, for the backend never being contacted, and a normal
// WebSocket must still echo afterwards.

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { makeCerts, type Certs } from '../helpers/certs';
import { h2WebSocket, wsClose, wsEcho } from '../helpers/h2';
import { eventually, randomBytes, sha256, startEchoBackend, startGateway, type EchoBackend, type RunningGateway } from '../helpers/harness';

const BOUND = { timeout: 60_000 };

let certs: Certs;
let backend: EchoBackend & { connections: number };

interface Front {
  name: string;
  g: RunningGateway;
  h2: boolean;
  sessions: Map<string, http2.ClientHttp2Session>;
}

interface Attempt {
  status: number;
  retryAfter?: string;
  ws?: WebSocket;
}

/** One upgrade to `path` from `from`; a success (101, or 200 over HTTP/2) comes with its open WebSocket. */
async function upgrade(front: Front, path: string, opts: { from?: string; origin?: string } = {}): Promise<Attempt> {
  const from = opts.from ?? '127.0.0.1';
  if (front.h2) {
    let session = front.sessions.get(from);
    if (session === undefined || session.closed || session.destroyed) {
      const port = front.g.port;
      session = http2.connect(`https://127.0.0.1:${port}`, {
        createConnection: () =>
          tls.connect({
            socket: net.connect({ host: '127.0.0.1', port, localAddress: from }),
            ca: certs.ca.pem,
            servername: 'localhost',
            ALPNProtocols: ['h2'],
          }),
      });
      session.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        session!.once('remoteSettings', () => resolve());
        session!.once('error', reject);
      });
      front.sessions.set(from, session);
    }
    const r = await h2WebSocket(session, path, opts.origin === undefined ? {} : { origin: opts.origin });
    const retry = r.headers['retry-after'];
    return {
      status: r.status === 200 ? 101 : r.status,
      ...(retry !== undefined ? { retryAfter: String(retry) } : {}),
      ...(r.ws ? { ws: r.ws } : {}),
    };
  }
  const ws = new WebSocket(`ws://127.0.0.1:${front.g.port}${path}`, {
    localAddress: from,
    headers: opts.origin === undefined ? {} : { Origin: opts.origin },
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      const retry = res.headers['retry-after'];
      res.resume();
      ws.on('error', () => {});
      ws.terminate();
      resolve({ status: res.statusCode ?? 0, ...(retry !== undefined ? { retryAfter: String(retry) } : {}) });
    });
    ws.once('error', reject);
  });
}

/** Echoes a random payload through `ws` (hash-checked). */
async function assertEchoes(ws: WebSocket): Promise<void> {
  const payload = randomBytes(32 * 1024);
  const back = await wsEcho(ws, payload);
  assert.equal(sha256(back.data), sha256(payload));
}

async function closeAll(front: Front, list: (WebSocket | undefined)[]): Promise<void> {
  for (const ws of list) if (ws !== undefined) await wsClose(ws);
  await eventually(() => front.g.gateway.tunnels.size === 0, 10_000, 'tunnels to close');
}

/** `expect` refused with `status`, with no new backend connection; the log says why once. */
async function assertRefused(
  front: Front,
  status: number,
  path: string,
  opts: { from?: string; origin?: string },
  log: RegExp,
): Promise<Attempt> {
  const before = backend.connections;
  const logged = front.g.logs.length;
  const r = await upgrade(front, path, opts);
  assert.equal(r.status, status, `${front.name} ${path}: expected ${status}`);
  assert.equal(backend.connections, before, 'a refused upgrade must not reach the backend');
  const lines = front.g.logs.slice(logged).filter((l) => log.test(l));
  assert.equal(lines.length, 1, `one log line for the refusal: ${JSON.stringify(front.g.logs.slice(logged))}`);
  return r;
}

async function assertStillServes(front: Front): Promise<void> {
  const r = await upgrade(front, '/ws/after', { from: '127.0.0.2' });
  assert.equal(r.status, 101);
  await assertEchoes(r.ws!);
  await closeAll(front, [r.ws]);
}

const CAPS = [
  'ProxyWebsocketMaxTunnels 3',
  'ProxyWebsocketMaxTunnelsPerClient 2',
  'ProxyWebsocketAllowedOrigins https://app.example http://localhost:8080',
  '<Location "/open/">',
  '  ProxyWebsocketAllowedOrigins *',
  '</Location>',
  '<Location "/strict/">',
  '  ProxyWebsocketAllowedOrigins https://other.example',
  '</Location>',
].join('\n');

function routes(): string {
  return [`ProxyPass "/route/" "ws://127.0.0.1:${backend.port}/" maxtunnels=1`, `ProxyPass "/" "ws://127.0.0.1:${backend.port}/"`].join(
    '\n',
  );
}

const TLS_FRONT = (): string => {
  const front = certs.issue('front', ['127.0.0.1', 'localhost']);
  return `SSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\nProtocols h2 http/1.1\nH2WebSockets on\n`;
};

const fronts: { caps: Front; rate: Front }[] = [];

before(async () => {
  certs = makeCerts();
  const b = await startEchoBackend('limits');
  backend = Object.assign(b, { connections: 0 });
  b.server.on('connection', () => backend.connections++);
  const make = async (name: string, h2: boolean, body: string): Promise<Front> => ({
    name,
    h2,
    sessions: new Map(),
    g: await startGateway(h2 ? `Listen 127.0.0.1:0 https\n${TLS_FRONT()}${body}` : `Listen 127.0.0.1:0\n${body}`, { level: 'info' }),
  });
  for (const h2 of [false, true]) {
    const name = h2 ? 'h2' : 'http/1.1';
    fronts.push({
      caps: await make(name, h2, `${CAPS}\n${routes()}\n`),
      rate: await make(name, h2, `ProxyWebsocketRate 3\n${routes()}\n`),
    });
  }
});

after(async () => {
  for (const f of fronts) {
    for (const front of [f.caps, f.rate]) {
      for (const s of front.sessions.values()) s.destroy();
      await front.g.stop();
    }
  }
  await backend?.close();
});

for (const index of [0, 1]) {
  const label = index === 0 ? 'HTTP/1.1' : 'HTTP/2 (RFC 8441)';
  describe(label, () => {
    test('maxtunnels= on a route: the second tunnel of the route gets 503, other routes and a later one go through', BOUND, async () => {
      const front = fronts[index]!.caps;
      const first = await upgrade(front, '/route/a');
      assert.equal(first.status, 101);
      await assertRefused(front, 503, '/route/b', { from: '127.0.0.2' }, /maxtunnels=1/);
      const other = await upgrade(front, '/ws/other', { from: '127.0.0.2' });
      assert.equal(other.status, 101);
      await assertEchoes(first.ws!);
      await closeAll(front, [first.ws, other.ws]);
      const again = await upgrade(front, '/route/c');
      assert.equal(again.status, 101, 'the route takes a tunnel again once the first closed');
      await assertEchoes(again.ws!);
      await closeAll(front, [again.ws]);
    });

    test(
      'ProxyWebsocketMaxTunnelsPerClient 2 and ProxyWebsocketMaxTunnels 3: 503 over either, other addresses unaffected',
      BOUND,
      async () => {
        const front = fronts[index]!.caps;
        const a1 = await upgrade(front, '/ws/1');
        const a2 = await upgrade(front, '/ws/2');
        assert.deepEqual([a1.status, a2.status], [101, 101]);
        await assertRefused(front, 503, '/ws/3', { from: '127.0.0.1' }, /ProxyWebsocketMaxTunnelsPerClient 2/);
        const b1 = await upgrade(front, '/ws/4', { from: '127.0.0.2' });
        assert.equal(b1.status, 101, 'another address still gets its tunnel');
        await assertRefused(front, 503, '/ws/5', { from: '127.0.0.2' }, /ProxyWebsocketMaxTunnels 3/);
        for (const ws of [a1.ws, a2.ws, b1.ws]) await assertEchoes(ws!);
        await closeAll(front, [a1.ws, a2.ws, b1.ws]);
        await assertStillServes(front);
      },
    );

    test(
      'ProxyWebsocketAllowedOrigins: 403 for an unlisted Origin; listed (any case), missing, and a <Location> with * go through',
      BOUND,
      async () => {
        const front = fronts[index]!.caps;
        await assertRefused(front, 403, '/ws/x', { origin: 'https://evil.example' }, /not in ProxyWebsocketAllowedOrigins/);
        await assertRefused(front, 403, '/ws/x', { origin: 'https://app.example.evil.example' }, /not in ProxyWebsocketAllowedOrigins/);
        await assertRefused(front, 403, '/strict/x', { origin: 'https://app.example' }, /not in ProxyWebsocketAllowedOrigins/);
        const opened: (WebSocket | undefined)[] = [];
        for (const [path, origin] of [
          ['/ws/y', 'https://app.example'],
          ['/ws/y', 'HTTPS://App.Example'],
          ['/ws/y', 'http://localhost:8080'],
          ['/ws/y', undefined],
          ['/open/y', 'https://evil.example'],
          ['/strict/y', 'https://other.example'],
        ] as const) {
          const r = await upgrade(front, path, origin === undefined ? { from: '127.0.0.2' } : { origin, from: '127.0.0.2' });
          assert.equal(r.status, 101, `${path} Origin ${origin}`);
          await assertEchoes(r.ws!);
          await closeAll(front, [r.ws]);
          opened.push(r.ws);
        }
        await assertStillServes(front);
      },
    );

    test(
      'ProxyWebsocketRate 3: 429 with Retry-After, never more than 2×3 in a burst of 10; other addresses and a later retry go through',
      BOUND,
      async () => {
        const front = fronts[index]!.rate;
        const before = backend.connections;
        const results: Attempt[] = [];
        for (let i = 0; i < 10; i++) results.push(await upgrade(front, `/ws/r${i}`));
        const passed = results.filter((r) => r.status === 101);
        const refused = results.filter((r) => r.status === 429);
        assert.equal(passed.length + refused.length, 10, JSON.stringify(results.map((r) => r.status)));
        assert.ok(passed.length >= 3 && passed.length <= 6, `passed ${passed.length}`);
        assert.equal(backend.connections - before, passed.length, 'only the accepted handshakes reached the backend');
        for (const r of refused) assert.equal(r.retryAfter, '1');
        await closeAll(
          front,
          passed.map((r) => r.ws),
        );
        await assertStillServes(front);
        await sleep(Number(refused[0]!.retryAfter) * 1000);
        const later = await upgrade(front, '/ws/later');
        assert.equal(later.status, 101, 'after Retry-After the address is served again');
        await assertEchoes(later.ws!);
        await closeAll(front, [later.ws]);
      },
    );
  });
}

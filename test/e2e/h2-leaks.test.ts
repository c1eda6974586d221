// HTTP/2 sessions and RFC 8441 tunnels that end badly must give back every descriptor (issue 15,
// items 2 and 4). A client that breaks its connection (DATA on stream 0 or on a half-closed
// stream: a connection error, GOAWAY) with a stream open, then sends its FIN; a WebSocket client
// over h2 that stops reading while the backend sends, then vanishes. The gateway runs in this
// process with its backends and clients, so /proc/self/fd counts every socket any of them keeps.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { FrameType, h2Connect, h2WebSocket, RawH2, wsClose, wsEcho } from '../helpers/h2';
import { FIN_TIMEOUT_MS } from '../../src/tunnel/native';
import { nativeEngine } from '../../src/tunnel/native';
import { webSocketAccept } from '../../src/http/websocket-key';
import { H2_CLOSE_GRACE_MS, H2_PING_TIMEOUT_MS, H2_PROBE_AFTER_MS } from '../../src/listeners/h2';
import {
  eventually,
  fdsBackTo,
  fdTargets,
  headerIn,
  readRequestHead,
  startEchoBackend,
  startGateway,
  startRawBackend,
  type RunningGateway,
} from '../helpers/harness';

const BOUND = { timeout: 120_000 };
/** How long the gateway may take to give everything back once the client has done its part. */
const RELEASE_MS = 15_000;

let certs: Certs;
let front: CertFiles;

before(() => {
  // The native engine opens its epoll descriptor once, at first use: open it before any baseline.
  nativeEngine();
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

type Front = 'h2' | 'h2c';

function frontConfig(kind: Front): string {
  if (kind === 'h2c') return 'Listen 127.0.0.1:0\nProtocols h2c http/1.1\nH2WebSockets on\n';
  return `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\nProtocols h2 http/1.1\nH2WebSockets on\n`;
}

async function openRaw(g: RunningGateway, kind: Front): Promise<RawH2> {
  return RawH2.open(g.port, kind === 'h2' ? certs.ca.pem : undefined);
}

function requestFields(kind: Front, path: string): [string, string][] {
  return [
    [':method', 'GET'],
    [':scheme', kind === 'h2' ? 'https' : 'http'],
    [':authority', 'localhost'],
    [':path', path],
  ];
}

function connectFields(kind: Front, path: string): [string, string][] {
  return [
    [':method', 'CONNECT'],
    [':protocol', 'websocket'],
    [':scheme', kind === 'h2' ? 'https' : 'http'],
    [':authority', 'localhost'],
    [':path', path],
    ['sec-websocket-version', '13'],
  ];
}

/** How the client breaks its connection after its stream is open. */
type Breakage = 'data-on-stream-0' | 'data-on-half-closed-stream';

function breakConnection(c: RawH2, how: Breakage): void {
  // Stream 1 is half-closed (remote) for the server once END_STREAM came; stream 0 never carries DATA.
  if (how === 'data-on-stream-0') c.data(0, Buffer.from('boom'));
  else c.data(1, Buffer.from('late'));
}

/** Connections per variant (4 variants per front, all at once: one fd baseline, one wait). */
const PER_VARIANT = 5;
/** A session nghttp2 stopped reading is found by the silence probe: silence, PING, no ACK, then the close. */
const PROBE_BOUND_MS = H2_PROBE_AFTER_MS + H2_PING_TIMEOUT_MS + H2_CLOSE_GRACE_MS + 10_000;

/** Resolves when every client socket has closed (the server's FIN came); fails after `timeoutMs`. */
async function allClosed(conns: RawH2[], timeoutMs: number): Promise<void> {
  let n = 0;
  for (const c of conns) void c.closed.then(() => n++);
  await eventually(() => n === conns.length, timeoutMs, `the gateway to close every client connection (${n} of ${conns.length} closed)`);
}

describe('an HTTP/2 connection error with a stream open closes the session, its streams and their backends', () => {
  for (const kind of ['h2', 'h2c'] as const) {
    test(
      `${kind}: plain requests waiting for their backend and RFC 8441 tunnels, broken by DATA on stream 0 or on their half-closed stream, then FIN`,
      BOUND,
      async () => {
        // A backend that reads the request and never answers: the request's stream stays open.
        const slow = await startRawBackend((s) => {
          void readRequestHead(s).then(
            () => s.resume(),
            () => {},
          );
          s.on('end', () => s.destroy());
        });
        // A `ws` backend for tunnels broken by DATA on stream 0.
        const ws = await startEchoBackend('ws');
        const wsOpen = new Set<WebSocket>();
        ws.wss.on('connection', (w) => {
          wsOpen.add(w);
          w.on('close', () => wsOpen.delete(w));
        });
        // For tunnels the client half-closes first (END_STREAM), then breaks with DATA on that
        // stream: a backend that goes on sending after the client's FIN (a `ws` server would close
        // at once), a few bytes every 100 ms, so that it learns when wsgate closes its side.
        let tickFins = 0;
        const ticking = await startRawBackend((s) => {
          void readRequestHead(s).then(
            ({ head }) => {
              s.write(
                `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(headerIn(head, 'sec-websocket-key') ?? '')}\r\n\r\n`,
              );
              s.resume();
              const tick = setInterval(() => s.write('tick'), 100);
              s.on('end', () => tickFins++);
              s.on('close', () => clearInterval(tick));
              s.on('error', () => s.destroy());
            },
            () => {},
          );
        });
        const g = await startGateway(
          `${frontConfig(kind)}ProxyPass /slow/ http://127.0.0.1:${slow.port}/\nProxyPass /ws/ ws://127.0.0.1:${ws.port}/\nProxyPass /tick/ ws://127.0.0.1:${ticking.port}/\n`,
        );
        try {
          const baseline = fdTargets();
          const conns: RawH2[] = [];
          const breakages: Breakage[] = [];
          for (const how of ['data-on-stream-0', 'data-on-half-closed-stream'] as const) {
            for (let i = 0; i < PER_VARIANT; i++) {
              // END_STREAM: a GET, so stream 1 is half-closed (remote) at the server.
              const c = await openRaw(g, kind);
              c.headers(1, requestFields(kind, `/slow/${how}/${i}`), true);
              conns.push(c);
              breakages.push(how);
              const t = await openRaw(g, kind);
              t.headers(1, connectFields(kind, how === 'data-on-stream-0' ? `/ws/${i}` : `/tick/${i}`), false);
              const h = await t.waitFrame((f) => f.type === FrameType.Headers && f.streamId === 1, 'the 200 for the CONNECT');
              assert.equal(h.flags & 0x1, 0, 'the tunnel stream stays open');
              // The client's half-close: an empty DATA frame with END_STREAM (its FIN reaches the backend).
              if (how === 'data-on-half-closed-stream') t.data(1, Buffer.alloc(0), true);
              conns.push(t);
              breakages.push(how);
            }
          }
          // A healthy client with an idle tunnel, open the whole time: the probe asks it a PING,
          // which it answers, and its session and tunnel survive.
          const healthy = await h2Connect2(kind, g);
          let pings = 0;
          healthy.on('ping', () => pings++);
          const idle = await h2WebSocket(healthy, '/ws/healthy');
          assert.equal(idle.status, 200);
          const n = 2 * PER_VARIANT;
          await eventually(
            () =>
              slow.sockets.size === n && wsOpen.size === PER_VARIANT + 1 && tickFins === PER_VARIANT && g.gateway.tunnels.size === n + 1,
            10_000,
            'every request at its backend, every tunnel open, every half-close at the backend',
          );
          for (let i = 0; i < conns.length; i++) {
            breakConnection(conns[i], breakages[i]);
            await conns[i].waitFrame((f) => f.type === FrameType.Goaway, 'GOAWAY');
            conns[i].socket.end();
          }
          // The gateway closes each connection (the client's socket sees the server's FIN), every
          // backend sees its connection closed, and no descriptor stays behind.
          await allClosed(conns, PROBE_BOUND_MS);
          await eventually(
            () => slow.sockets.size === 0 && wsOpen.size === 1 && ticking.sockets.size === 0,
            RELEASE_MS,
            'every backend connection to close',
          );
          await eventually(
            () => g.gateway.tunnels.size === 1 && g.gateway.openConnections() === 1,
            RELEASE_MS,
            'every broken tunnel and session to end',
          );
          await g.waitForLog(/HTTP\/2 session closed .*reason="no PING ACK within/);
          // The healthy session was silent for longer than the probe's delay: it was asked, it answered.
          await eventually(() => pings >= 1, PROBE_BOUND_MS, 'a PING to the healthy client');
          assert.equal(healthy.closed || healthy.destroyed, false);
          assert.equal((await wsEcho(idle.ws!, 'still here')).data.toString(), 'still here');
          await wsClose(idle.ws!);
          healthy.close();
          await eventually(
            () => g.gateway.tunnels.size === 0 && g.gateway.openConnections() === 0 && wsOpen.size === 0,
            RELEASE_MS,
            'every tunnel and session to end',
          );
          await fdsBackTo(baseline, RELEASE_MS, 'the descriptors to be given back');
        } finally {
          await g.stop();
          await ws.close();
          await slow.close();
          await ticking.close();
        }
      },
    );
  }
});

describe('a session the client ends with GOAWAY, FIN or a reset ends its streams at once', () => {
  for (const kind of ['h2', 'h2c'] as const) {
    test(
      `${kind}: GOAWAY(PROTOCOL_ERROR), a FIN and an abrupt close (a TCP reset on h2c), each with a tunnel and a request open`,
      BOUND,
      async () => {
        const slow = await startRawBackend((s) => {
          void readRequestHead(s).then(
            () => s.resume(),
            () => {},
          );
          s.on('end', () => s.destroy());
        });
        const ws = await startEchoBackend('ws');
        const wsOpen = new Set<WebSocket>();
        ws.wss.on('connection', (w) => {
          wsOpen.add(w);
          w.on('close', () => wsOpen.delete(w));
        });
        const g = await startGateway(
          `${frontConfig(kind)}ProxyPass /slow/ http://127.0.0.1:${slow.port}/\nProxyPass /ws/ ws://127.0.0.1:${ws.port}/\n`,
        );
        try {
          const baseline = fdTargets();
          const conns: RawH2[] = [];
          for (let i = 0; i < 3; i++) {
            const c = await openRaw(g, kind);
            c.headers(1, connectFields(kind, `/ws/${i}`), false);
            await c.waitFrame((f) => f.type === FrameType.Headers && f.streamId === 1, 'the 200 for the CONNECT');
            c.headers(3, requestFields(kind, `/slow/${i}`), true);
            conns.push(c);
          }
          await eventually(
            () => slow.sockets.size === 3 && wsOpen.size === 3 && g.gateway.tunnels.size === 3,
            10_000,
            'every tunnel and request open',
          );
          const started = Date.now();
          conns[0].goaway(http2.constants.NGHTTP2_PROTOCOL_ERROR);
          conns[1].socket.end();
          // A TCP reset (a TLS socket cannot send one from Node: it is closed without close_notify).
          if (kind === 'h2c') conns[2].socket.resetAndDestroy();
          else conns[2].socket.destroy();
          // Node sees each of these: no silence probe is needed, so all is over well before one would run.
          const fast = H2_PROBE_AFTER_MS - 2_000;
          await eventually(() => slow.sockets.size === 0 && wsOpen.size === 0, fast, 'every backend connection to close');
          await eventually(
            () => g.gateway.tunnels.size === 0 && g.gateway.openConnections() === 0,
            fast,
            'every tunnel and session to end',
          );
          await allClosed(conns, fast);
          await fdsBackTo(baseline, fast, 'the descriptors to be given back');
          assert.ok(Date.now() - started < H2_PROBE_AFTER_MS, 'ended without the silence probe');
        } finally {
          await g.stop();
          await ws.close();
          await slow.close();
        }
      },
    );
  }
});

describe('an RFC 8441 tunnel whose client stopped reading and then vanished', () => {
  for (const kind of ['h2', 'h2c'] as const) {
    test(`${kind}: the backend connection closes, the max=1 slot is free again, no descriptor stays`, BOUND, async () => {
      // A backend that sends as fast as it may: 64 KiB messages while less than 4 MiB is queued.
      const backend = await startEchoBackend('flood');
      const backendOpen = new Set<WebSocket>();
      const backendClosedAt: number[] = [];
      backend.wss.on('connection', (ws, req) => {
        backendOpen.add(ws);
        ws.on('close', () => {
          backendOpen.delete(ws);
          backendClosedAt.push(Date.now());
        });
        if (req.url !== '/flood') return;
        const chunk = Buffer.alloc(64 * 1024, 7);
        const pump = setInterval(() => {
          while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4 * 1024 * 1024) ws.send(chunk);
        }, 5);
        ws.on('close', () => clearInterval(pump));
      });
      const g = await startGateway(`${frontConfig(kind)}ProxyPass /ws/ ws://127.0.0.1:${backend.port}/ max=1\n`);
      try {
        const baseline = fdTargets();
        const { session, socket } = await connectOwningSocket(kind, g);
        const stream = session.request({
          ':method': 'CONNECT',
          ':protocol': 'websocket',
          ':path': '/ws/flood',
          'sec-websocket-version': '13',
        });
        stream.on('error', () => {});
        const [h] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
        assert.equal(h[':status'], 200);
        // The client reads nothing: its stream window fills, wsgate stops reading the backend,
        // and the backend's own buffer fills.
        stream.pause();
        await eventually(
          () => [...backendOpen].some((ws) => ws.bufferedAmount >= 4 * 1024 * 1024),
          20_000,
          'the backend to be blocked by backpressure',
        );
        // With the slot held, another WebSocket is refused.
        const probe = await h2Connect2(kind, g);
        const refused = await h2WebSocket(probe, '/ws/other');
        assert.equal(refused.status, 503);
        probe.destroy();
        // The client vanishes (its socket closed under the session, no GOAWAY, no RST_STREAM).
        const vanishedAt = Date.now();
        socket.destroy();
        // The stream closed without its side drained: the tunnel ends, the backend sees its
        // connection closed well within the FIN timeout.
        await eventually(() => backendOpen.size === 0, FIN_TIMEOUT_MS, 'the backend connection to close');
        assert.ok(
          backendClosedAt[0] - vanishedAt < FIN_TIMEOUT_MS,
          `the backend closed ${backendClosedAt[0] - vanishedAt} ms after the client vanished`,
        );
        await eventually(() => g.gateway.tunnels.size === 0, RELEASE_MS, 'the tunnel to end');
        await g.waitForLog(/tunnel closed .*reason=client-(reset|error).*protocol=h2/);
        // The max=1 slot is free: a new WebSocket works.
        const again = await h2Connect2(kind, g);
        const ok = await h2WebSocket(again, '/ws/again');
        assert.equal(ok.status, 200);
        assert.equal((await wsEcho(ok.ws!, 'after')).data.toString(), 'after');
        await wsClose(ok.ws!);
        again.close();
        await eventually(() => g.gateway.openConnections() === 0 && g.gateway.tunnels.size === 0, RELEASE_MS, 'every session to close');
        await fdsBackTo(baseline, RELEASE_MS, 'the descriptors to be given back');
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }
});

/** A session on a socket of ours (Node's session hides its socket), so the test can make the client vanish. */
async function connectOwningSocket(kind: Front, g: RunningGateway): Promise<{ session: http2.ClientHttp2Session; socket: net.Socket }> {
  const socket =
    kind === 'h2'
      ? tls.connect({ host: '127.0.0.1', port: g.port, ca: certs.ca.pem, servername: 'localhost', ALPNProtocols: ['h2'] })
      : net.connect({ host: '127.0.0.1', port: g.port });
  socket.on('error', () => {});
  const session = http2.connect(`${kind === 'h2' ? 'https' : 'http'}://127.0.0.1:${g.port}`, { createConnection: () => socket });
  session.on('error', () => {});
  await once(session, 'remoteSettings');
  return { session, socket };
}

async function h2cConnect(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await once(session, 'remoteSettings');
  return session;
}

function h2Connect2(kind: Front, g: RunningGateway): Promise<http2.ClientHttp2Session> {
  return kind === 'h2' ? h2Connect(g.port, certs.ca.pem) : h2cConnect(g.port);
}

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
import { FIN_TIMEOUT_MS } from '../../src/tunnel/tunnel';
import { eventually, fdsBackTo, openFds, readRequestHead, startEchoBackend, startGateway, startRawBackend, type RunningGateway } from '../helpers/harness';

const BOUND = { timeout: 90_000 };
/** How long the gateway may take to give everything back once the client has done its part. */
const RELEASE_MS = 15_000;

let certs: Certs;
let front: CertFiles;

before(() => {
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

const CONNECTIONS = 10;

/** Resolves when every client socket has closed (the server's FIN came); fails after RELEASE_MS. */
async function allClosed(conns: RawH2[]): Promise<void> {
  let n = 0;
  for (const c of conns) void c.closed.then(() => n++);
  await eventually(() => n === conns.length, RELEASE_MS, 'the gateway to close every client connection');
}

describe('an HTTP/2 connection error with a stream open closes the session, its streams and their backends', () => {
  for (const kind of ['h2', 'h2c'] as const) {
    for (const how of ['data-on-stream-0', 'data-on-half-closed-stream'] as const) {
      test(`${kind}: a plain request waiting for its backend, then ${how}, then FIN`, BOUND, async () => {
        // A backend that reads the request and never answers: the stream stays open.
        const b = await startRawBackend((s) => {
          void readRequestHead(s).catch(() => {});
        });
        const g = await startGateway(`${frontConfig(kind)}ProxyPass / http://127.0.0.1:${b.port}/\n`);
        try {
          const baseline = openFds();
          const conns: RawH2[] = [];
          for (let i = 0; i < CONNECTIONS; i++) {
            const c = await openRaw(g, kind);
            // END_STREAM: a GET, so stream 1 is half-closed (remote) at the server.
            c.headers(1, requestFields(kind, `/slow/${i}`), true);
            conns.push(c);
          }
          await eventually(() => b.sockets.size === CONNECTIONS, 10_000, 'every request at the backend');
          for (const c of conns) {
            breakConnection(c, how);
            await c.waitFrame((f) => f.type === FrameType.Goaway, 'GOAWAY');
            c.socket.end();
          }
          // The gateway closes each connection (the client's socket sees the server's FIN), the
          // backend sees its request's connection closed, and no descriptor stays behind.
          await allClosed(conns);
          await eventually(() => b.sockets.size === 0, RELEASE_MS, 'the backend connections to close');
          await eventually(() => g.gateway.openConnections() === 0, RELEASE_MS, 'every session to close');
          await fdsBackTo(baseline, RELEASE_MS, 'the descriptors to be given back');
        } finally {
          await g.stop();
          await b.close();
        }
      });

      test(`${kind}: an RFC 8441 WebSocket tunnel, then ${how}, then FIN`, BOUND, async () => {
        const backend = await startEchoBackend('ws');
        const backendOpen = new Set<WebSocket>();
        backend.wss.on('connection', (ws) => {
          backendOpen.add(ws);
          ws.on('close', () => backendOpen.delete(ws));
        });
        const g = await startGateway(`${frontConfig(kind)}ProxyPass /ws/ ws://127.0.0.1:${backend.port}/\n`);
        try {
          const baseline = openFds();
          const conns: RawH2[] = [];
          for (let i = 0; i < CONNECTIONS; i++) {
            const c = await openRaw(g, kind);
            // An extended CONNECT has no END_STREAM; send one with an empty DATA frame when the
            // breakage needs the stream half-closed.
            c.headers(1, connectFields(kind, `/ws/${i}`), false);
            const h = await c.waitFrame((f) => f.type === FrameType.Headers && f.streamId === 1, 'the 200 for the CONNECT');
            assert.equal(h.flags & 0x1, 0, 'the tunnel stream stays open');
            if (how === 'data-on-half-closed-stream') c.data(1, Buffer.alloc(0), true);
            conns.push(c);
          }
          await eventually(() => backendOpen.size === CONNECTIONS && g.gateway.tunnels.size === CONNECTIONS, 10_000, 'every tunnel open');
          for (const c of conns) {
            breakConnection(c, how);
            await c.waitFrame((f) => f.type === FrameType.Goaway, 'GOAWAY');
            c.socket.end();
          }
          await allClosed(conns);
          await eventually(() => g.gateway.tunnels.size === 0, RELEASE_MS, 'every tunnel to end');
          await eventually(() => backendOpen.size === 0, RELEASE_MS, 'the backend WebSockets to close');
          await eventually(() => g.gateway.openConnections() === 0, RELEASE_MS, 'every session to close');
          await fdsBackTo(baseline, RELEASE_MS, 'the descriptors to be given back');
        } finally {
          await g.stop();
          await backend.close();
        }
      });
    }
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
        const baseline = openFds();
        const { session, socket } = await connectOwningSocket(kind, g);
        const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/ws/flood', 'sec-websocket-version': '13' });
        stream.on('error', () => {});
        const [h] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
        assert.equal(h[':status'], 200);
        // The client reads nothing: its stream window fills, wsgate stops reading the backend,
        // and the backend's own buffer fills.
        stream.pause();
        await eventually(() => [...backendOpen].some((ws) => ws.bufferedAmount >= 4 * 1024 * 1024), 20_000, 'the backend to be blocked by backpressure');
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
        assert.ok(backendClosedAt[0] - vanishedAt < FIN_TIMEOUT_MS, `the backend closed ${backendClosedAt[0] - vanishedAt} ms after the client vanished`);
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

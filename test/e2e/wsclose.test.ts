// Close frames instead of dead sockets: when a side of a WebSocket tunnel vanishes, the tunnel
// reaches its idle limit, or wsgate stops, the surviving peers get a real close frame (1011 for a
// backend failure, 1001 going away for idle and shutdown, with a reason) instead of a dropped TCP
// connection that `ws` reports as 1006. On the native engine (a plain front, when the addon is
// loaded) and on the JavaScript pump (a TLS front with WSGATE_NATIVE_TLS=0, or no engine).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { before, test } from 'node:test';
import { WebSocket } from 'ws';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { onlyTunnel, startWsBackend } from '../helpers/datapath';
import { eventually, type RunningGateway, startGateway } from '../helpers/harness';
import { tunnelOnEngine } from '../helpers/native-tls';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});

function conf(port: number, tls: boolean, extra = ''): string {
  const listen = tls
    ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n`
    : 'Listen 127.0.0.1:0\n';
  return `${listen}${extra}ProxyPass "/ws/" "ws://127.0.0.1:${port}/"\n`;
}

interface Closed {
  code: number;
  reason: string;
}

function closeOf(ws: WebSocket): Promise<Closed> {
  return once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
}

async function open(g: RunningGateway, tls: boolean): Promise<WebSocket> {
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${g.port}/ws/x`, { perMessageDeflate: true, ca: certs.ca.pem });
  ws.on('error', () => {});
  await once(ws, 'open');
  return ws;
}

/** The echo of `text` (the tunnel is up both ways). */
async function roundTrip(ws: WebSocket, text: string): Promise<void> {
  const got = once(ws, 'message');
  ws.send(text);
  assert.equal(String((await got)[0]), text);
}

for (const tls of [false, true]) {
  const engine = !tunnelOnEngine(tls) ? 'the JavaScript pump' : 'the native engine';

  test(`${engine}: a backend killed with a reset gives the client 1011, not 1006`, { timeout: 30_000 }, async () => {
    const backend = await startWsBackend(
      (ws) => {
        ws.on('message', (d) => {
          if (String(d) === 'die') (ws as unknown as { _socket: import('node:net').Socket })._socket.resetAndDestroy();
          else ws.send(d);
        });
      },
      { perMessageDeflate: true },
    );
    const g = await startGateway(conf(backend.port, tls));
    try {
      const ws = await open(g, tls);
      const rec = await onlyTunnel(g);
      await roundTrip(ws, 'hello');
      const closed = closeOf(ws);
      ws.send('die');
      const c = await closed;
      assert.deepEqual(c, { code: 1011, reason: 'backend error' });
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to finish');
      assert.match(rec.tunnel.closeReason ?? '', /^backend-(reset|error)$/);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: the idle limit closes both sides with 1001`, { timeout: 30_000 }, async () => {
    const backendClosed: Closed[] = [];
    const backend = await startWsBackend((ws) => {
      ws.on('message', (d) => ws.send(d));
      ws.on('close', (code, reason) => backendClosed.push({ code, reason: String(reason) }));
    });
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketIdleTimeout 300ms\n'));
    try {
      const ws = await open(g, tls);
      const rec = await onlyTunnel(g);
      await roundTrip(ws, 'hello');
      const c = await closeOf(ws);
      assert.deepEqual(c, { code: 1001, reason: 'idle timeout' });
      await eventually(() => backendClosed.length === 1, 10_000, 'the backend to see its close');
      assert.deepEqual(backendClosed[0], { code: 1001, reason: 'idle timeout' });
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to finish');
      assert.equal(rec.tunnel.closeReason, 'idle-timeout');
      assert.equal(rec.tunnel.wsCloseCode, 1001);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: stopping wsgate sends 1001 with a reason to both sides`, { timeout: 30_000 }, async () => {
    const backendClosed: Closed[] = [];
    const backend = await startWsBackend((ws) => {
      ws.on('message', (d) => ws.send(d));
      ws.on('close', (code, reason) => backendClosed.push({ code, reason: String(reason) }));
    });
    const g = await startGateway(conf(backend.port, tls));
    try {
      const clients = await Promise.all([open(g, tls), open(g, tls), open(g, tls)]);
      await eventually(() => g.gateway.tunnels.size === 3, 5000, 'three tunnels');
      for (const ws of clients) await roundTrip(ws, 'hi');
      const closes = clients.map(closeOf);
      await g.stop();
      // stop() resolved: every tunnel finished (each peer answered, or the grace passed).
      assert.equal(g.gateway.tunnels.size, 0);
      for (const c of await Promise.all(closes)) assert.deepEqual(c, { code: 1001, reason: 'server shutting down' });
      await eventually(() => backendClosed.length === 3, 10_000, 'every backend connection to see its close');
      for (const c of backendClosed) assert.deepEqual(c, { code: 1001, reason: 'server shutting down' });
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: the record and the log line have each side's close code and who closed first`, { timeout: 30_000 }, async () => {
    const backend = await startWsBackend((ws) => ws.on('message', (d) => ws.send(d)));
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketIdleTimeout 400ms\n'));
    try {
      // The client closes: the backend answers with the same code (as `ws` does).
      const ws = await open(g, tls);
      const rec = await onlyTunnel(g);
      await roundTrip(ws, 'hello');
      const closed = closeOf(ws);
      ws.close(4001, 'bye');
      assert.equal((await closed).code, 4001);
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to finish');
      assert.deepEqual(rec.tunnel.wsCloseCodes(), { client: 4001, backend: 4001, wsgate: 0, first: 'client' });
      const line = await g.waitForLog(new RegExp(`tunnel closed tunnel=${rec.tunnel.id} `));
      assert.match(line, / close_client=4001 close_backend=4001 close_first=client/);
      // The idle limit: wsgate closes first, and each peer answers its 1001.
      const ws2 = await open(g, tls);
      const rec2 = await onlyTunnel(g);
      assert.equal((await closeOf(ws2)).code, 1001);
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the second tunnel to finish');
      assert.deepEqual(rec2.tunnel.wsCloseCodes(), { client: 1001, backend: 1001, wsgate: 1001, first: 'wsgate' });
    } finally {
      await g.stop();
      await backend.close();
    }
  });
}

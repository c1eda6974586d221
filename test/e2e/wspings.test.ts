// Keep-alive pings (ProxyWebsocketPingInterval): wsgate pings a silent side of a WebSocket tunnel
// and consumes the pong it provoked, so neither peer ever sees wsgate's pings answered on its
// wire; a peer's own pings and pongs still pass. A backend that completes the handshake and then
// never writes again is found dead, and the client gets 1011. Messages pass intact (hashes) while
// pings are put between their frames. On the native engine (a plain front, when the addon is
// loaded) and on the JavaScript pump (a TLS front with WSGATE_NATIVE_TLS=0, or no engine).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { before, test } from 'node:test';
import { WebSocket } from 'ws';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { onlyTunnel, sleep, startWsBackend } from '../helpers/datapath';
import { upgradeRequest, wsAccept } from '../helpers/edges';
import {
  eventually,
  headerIn,
  randomBytes,
  type RunningGateway,
  readRequestHead,
  sha256,
  startGateway,
  startRawBackend,
} from '../helpers/harness';
import { tunnelOnEngine } from '../helpers/native-tls';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});

function tlsConnect(port: number): net.Socket {
  return tls.connect({ port, host: '127.0.0.1', ca: certs.ca.pem, servername: '127.0.0.1' });
}

function conf(port: number, tls: boolean, extra = ''): string {
  const listen = tls
    ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n`
    : 'Listen 127.0.0.1:0\n';
  return `${listen}${extra}ProxyPass "/ws/" "ws://127.0.0.1:${port}/"\n`;
}

async function open(g: RunningGateway, tls: boolean, perMessageDeflate = false): Promise<WebSocket> {
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${g.port}/ws/x`, { perMessageDeflate, ca: certs.ca.pem });
  ws.on('error', () => {});
  await once(ws, 'open');
  return ws;
}

for (const tls of [false, true]) {
  const engine = !tunnelOnEngine(tls) ? 'the JavaScript pump' : 'the native engine';

  test(`${engine}: silent sides are pinged, wsgate's pongs are consumed, a peer's own ping and pong pass`, {
    timeout: 30_000,
  }, async () => {
    const backendPings: Buffer[] = [];
    let backendPongs = 0;
    const backend = await startWsBackend((ws) => {
      ws.on('ping', (d) => backendPings.push(d));
      ws.on('pong', () => backendPongs++);
      ws.on('message', (d) => ws.send(d));
    });
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketPingInterval 150ms\n'));
    try {
      const ws = await open(g, tls);
      const rec = await onlyTunnel(g);
      assert.equal(rec.tunnel.usedNative, tunnelOnEngine(tls));
      const clientPings: Buffer[] = [];
      const clientPongs: Buffer[] = [];
      ws.on('ping', (d) => clientPings.push(d));
      ws.on('pong', (d) => clientPongs.push(d));
      await eventually(() => backendPings.length >= 3 && clientPings.length >= 3, 10_000, 'three pings each way');
      for (const p of [...backendPings, ...clientPings]) assert.equal(p.length, 8, "wsgate's ping payload");
      // A peer's own ping, with a payload as long as wsgate's: its pong is not wsgate's, and passes.
      const mine = Buffer.from('mine-123');
      for (let i = 0; i < 5; i++) {
        const pong = once(ws, 'pong');
        ws.ping(mine);
        assert.deepEqual((await pong)[0], mine);
        await sleep(100);
      }
      assert.deepEqual(clientPongs, [mine, mine, mine, mine, mine], 'only the client’s own pongs reach it');
      assert.equal(backendPongs, 0, 'the client’s pongs to wsgate never reach the backend');
      const echoed = once(ws, 'message');
      ws.send('still open');
      assert.equal(String((await echoed)[0]), 'still open');
      assert.equal(g.gateway.tunnels.size, 1);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: a backend that stops answering is found dead: the client gets 1011`, { timeout: 30_000 }, async () => {
    // Completes the handshake, then reads and never writes again.
    const backend = await startRawBackend((s: net.Socket) => {
      void readRequestHead(s).then(({ head }) => {
        const key = headerIn(head, 'sec-websocket-key') ?? '';
        s.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`,
        );
        s.resume();
      });
    });
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketPingInterval 200ms\n'));
    try {
      const ws = await open(g, tls);
      const rec = await onlyTunnel(g);
      const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
      assert.deepEqual({ code, reason: String(reason) }, { code: 1011, reason: 'backend not answering' });
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to finish');
      assert.equal(rec.tunnel.closeReason, 'ping-timeout');
      assert.match(rec.tunnel.closeDetail ?? '', /the backend did not answer a ping within 200 ms/);
      assert.equal(rec.tunnel.wsCloseCodes()?.wsgate, 1011);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: a client that stops answering is found dead: the backend gets 1001`, { timeout: 30_000 }, async () => {
    const closed: Array<{ code: number; reason: string }> = [];
    const backend = await startWsBackend((ws) => ws.on('close', (code, reason) => closed.push({ code, reason: String(reason) })));
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketPingInterval 200ms\n'));
    // A raw client: it completes the handshake, then reads and never writes again.
    const sock: net.Socket = tls ? tlsConnect(g.port) : net.connect(g.port, '127.0.0.1');
    sock.on('error', () => {});
    sock.resume();
    try {
      sock.write(upgradeRequest('/ws/x'));
      const rec = await onlyTunnel(g);
      await eventually(() => closed.length === 1, 10_000, 'the backend to get a close frame');
      assert.deepEqual(closed[0], { code: 1001, reason: 'client not answering' });
      await eventually(() => g.gateway.tunnels.size === 0, 10_000, 'the tunnel to finish');
      assert.equal(rec.tunnel.closeReason, 'ping-timeout');
      assert.match(rec.tunnel.closeDetail ?? '', /the client did not answer a ping/);
    } finally {
      sock.destroy();
      await g.stop();
      await backend.close();
    }
  });

  test(`${engine}: messages pass intact both ways while pings go between their frames`, { timeout: 60_000 }, async () => {
    // The backend is silent while the client sends, then sends while the client is silent: each
    // in turn is pinged between the frames flowing to it, and answers between its own.
    const atBackend: string[] = [];
    let backendPings = 0;
    let backendPongs = 0;
    const toClient: Buffer[] = [];
    let backendWs: WebSocket | undefined;
    const backend = await startWsBackend(
      (ws) => {
        backendWs = ws;
        ws.on('ping', () => backendPings++);
        ws.on('pong', () => backendPongs++);
        ws.on('message', (d) => atBackend.push(sha256(d as Buffer)));
      },
      { perMessageDeflate: true },
    );
    // An interval long enough that a busy machine (a GC pause, other tests) does not look like a
    // dead peer; the pauses below are longer, so each side is pinged.
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketPingInterval 300ms\n'));
    try {
      const ws = await open(g, tls, true);
      const rec = await onlyTunnel(g);
      let clientPings = 0;
      let clientPongs = 0;
      const atClient: string[] = [];
      ws.on('ping', () => clientPings++);
      ws.on('pong', () => clientPongs++);
      ws.on('message', (d) => atClient.push(sha256(d as Buffer)));
      const sizes = [0, 1, 125, 126, 8, 10, 14, 65_536, 200_000, 3000];
      const sent: string[] = [];
      for (let i = 0; i < 30; i++) {
        const data = randomBytes(sizes[i % sizes.length]);
        sent.push(sha256(data));
        ws.send(data, { binary: true });
        if (i % 3 === 0) await sleep(450);
      }
      await eventually(() => atBackend.length === sent.length, 20_000, 'every message at the backend');
      assert.deepEqual(atBackend, sent);
      for (let i = 0; i < 30; i++) {
        const data = randomBytes(sizes[(i + 3) % sizes.length]);
        toClient.push(data);
        backendWs!.send(data, { binary: true });
        if (i % 3 === 0) await sleep(450);
      }
      await eventually(() => atClient.length === toClient.length, 20_000, 'every message at the client');
      assert.deepEqual(atClient, toClient.map(sha256));
      assert.ok(backendPings > 0 && clientPings > 0, `pinged both ways (${backendPings}, ${clientPings})`);
      assert.equal(backendPongs + clientPongs, 0, 'no pong of wsgate’s reached a peer');
      const counts = rec.tunnel.wsCounts()!;
      assert.equal(counts.violationsUp + counts.violationsDown, 0, 'the trackers stayed in step');
      assert.equal(counts.messagesUp, 30);
      assert.equal(counts.messagesDown, 30);
    } finally {
      await g.stop();
      await backend.close();
    }
  });
}

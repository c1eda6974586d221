// The end-to-end checks of the WebSocket lifecycle at full size, on the native engine (a plain
// front, when the addon is loaded) and on the JavaScript pump (a TLS front with WSGATE_NATIVE_TLS=0, or no engine):
// - a graceful stop at ProxyWebsocketDrainRate 100 drains 500 tunnels in about 5 s, every client
//   getting 1001 with a reason;
// - with pings every second, a tunnel idle for 10 s through idle-cutting relays (3 s) on both
//   sides of wsgate stays open, while the same tunnels without pings are cut (and wsgate turns
//   the cut it sees into a close frame toward the survivor);
// - a real browser (Debian's chromium, headless, driven by playwright-core) with pings,
//   ProxyWebsocketStrict On and a backend negotiating permessage-deflate: messages of several
//   sizes echo intact (hashes computed in the page), and a graceful stop reaches the page as 1001.
// A backend that stops answering pings is checked in wspings.test.ts.
//
// The browser test is skipped only when /usr/bin/chromium is missing outside CI (.ci/run installs it).

import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { mapLimit, pattern, sleep, startWsBackend } from '../helpers/datapath';
import { eventually, randomBytes, type RunningGateway, sha256, startEchoBackend, startGateway } from '../helpers/harness';
import { tunnelOnEngine } from '../helpers/native-tls';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});

function listen(tls: boolean): string {
  return tls
    ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n`
    : 'Listen 127.0.0.1:0\n';
}

function engineName(tls: boolean): string {
  return !tunnelOnEngine(tls) ? 'the JavaScript pump' : 'the native engine';
}

interface Closed {
  code: number;
  reason: string;
  at: number;
}

function closeOf(ws: WebSocket): Promise<Closed> {
  return once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), at: Date.now() }));
}

function client(tls: boolean, port: number, p: string): WebSocket {
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}${p}`, { ca: certs.ca.pem });
  ws.on('error', () => {});
  return ws;
}

/** Sends `data` and checks that its echo has the same hash. */
async function echoIntact(ws: WebSocket, data: Buffer): Promise<void> {
  const got = once(ws, 'message');
  ws.send(data, { binary: true });
  assert.equal(sha256((await got)[0] as Buffer), sha256(data), 'the echo has the hash of what was sent');
}

// ---------------------------------------------------------------------------------------------
// 1. Paced drain of 500 tunnels.

for (const tls of [false, true]) {
  test(`${engineName(tls)}: a graceful stop at ProxyWebsocketDrainRate 100 drains 500 tunnels in about 5 s, each client gets 1001`, {
    timeout: 180_000,
  }, async () => {
    const N = 500;
    const backendCloses: Array<{ code: number; reason: string }> = [];
    const backend = await startWsBackend((ws) => {
      ws.on('message', (d) => ws.send(d));
      ws.on('close', (code, reason) => backendCloses.push({ code, reason: String(reason) }));
    });
    const g = await startGateway(`${listen(tls)}ProxyWebsocketDrainRate 100\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`, {
      level: 'info',
    });
    try {
      const closes: Promise<Closed>[] = [];
      const clients = await mapLimit(
        Array.from({ length: N }, (_, i) => i),
        50,
        async (i) => {
          const ws = client(tls, g.port, `/ws/${i}`);
          closes.push(closeOf(ws));
          await once(ws, 'open');
          return ws;
        },
      );
      await eventually(() => g.gateway.tunnels.size === N, 30_000, `${N} tunnels`);
      const wantNative = tunnelOnEngine(tls);
      for (const rec of g.gateway.tunnels.values()) assert.equal(rec.tunnel.usedNative, wantNative);
      // Every tunnel carries data both ways before the stop.
      await Promise.all(clients.map((ws, i) => echoIntact(ws, pattern(i, 64 + (i % 7) * 100))));

      const started = Date.now();
      await g.gateway.stop({ graceMs: 30_000 });
      const stopTook = Date.now() - started;
      assert.equal(g.gateway.tunnels.size, 0, 'stop() resolved once every tunnel finished');
      const got = await Promise.all(closes);
      const wrong = got.filter((c) => c.code !== 1001 || c.reason !== 'server shutting down');
      assert.deepEqual(wrong, [], 'every client got 1001 "server shutting down"');
      await eventually(() => backendCloses.length === N, 10_000, 'every backend connection to see its close');
      assert.ok(
        backendCloses.every((c) => c.code === 1001 && c.reason === 'server shutting down'),
        'every backend connection got 1001 too',
      );
      const times = got.map((c) => c.at).sort((a, b) => a - b);
      const spread = times[N - 1] - times[0];
      // 500 at 100 a second: about 5 s from the first close to the last (all at once: a few ms).
      assert.ok(spread >= 3500 && spread <= 15_000, `the closes were spread over ${spread} ms (stop took ${stopTook} ms)`);
      const firstSecond = times.filter((t) => t - times[0] < 1000).length;
      assert.ok(firstSecond <= 250, `${firstSecond} of ${N} closed in the first second`);
    } finally {
      await g.stop();
      await backend.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 2. Pings keep a tunnel open through intermediaries that cut idle connections.

interface IdleCutter {
  port: number;
  /** Connections cut for being idle. */
  cuts: number;
  close(): Promise<void>;
}

/**
 * A TCP relay to `targetPort` that cuts a connection silent for `idleMs` in both directions, with
 * a reset each way (as a firewall, NAT or load balancer that forgets an idle flow does).
 */
async function startIdleCutter(targetPort: number, idleMs: number): Promise<IdleCutter> {
  const sockets = new Set<net.Socket>();
  const relay: IdleCutter = {
    port: 0,
    cuts: 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
    let cut = false;
    const onIdle = (): void => {
      if (cut) return;
      cut = true;
      relay.cuts++;
      inbound.resetAndDestroy();
      outbound.resetAndDestroy();
    };
    inbound.setTimeout(idleMs, onIdle);
    outbound.setTimeout(idleMs, onIdle);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  relay.port = (server.address() as net.AddressInfo).port;
  return relay;
}

for (const tls of [false, true]) {
  test(`${engineName(tls)}: pings every 1 s keep a tunnel idle for 10 s open through relays that cut idle connections after 3 s`, {
    timeout: 90_000,
  }, async () => {
    const backendPings = new Map<string, number>();
    const backendCloses = new Map<string, { code: number; reason: string }>();
    const backend = await startWsBackend((ws, req) => {
      const name = req.url ?? '';
      backendPings.set(name, 0);
      ws.on('ping', () => backendPings.set(name, (backendPings.get(name) ?? 0) + 1));
      ws.on('message', (d) => ws.send(d));
      ws.on('close', (code, reason) => backendCloses.set(name, { code, reason: String(reason) }));
    });
    // wsgate → backend goes through `toBackend`; the client reaches wsgate through `toGateway`.
    const toBackend = await startIdleCutter(backend.port, 3000);
    // Pings for the server; the control routes turn them off (the ProxyPass key wspinginterval=0).
    const g = await startGateway(
      `${listen(tls)}ProxyWebsocketPingInterval 1\n` +
        `ProxyPass "/relayed/" "ws://127.0.0.1:${toBackend.port}/"\n` +
        `ProxyPass "/quiet-relayed/" "ws://127.0.0.1:${toBackend.port}/" wspinginterval=0\n` +
        `ProxyPass "/quiet-direct/" "ws://127.0.0.1:${backend.port}/" wspinginterval=0\n`,
    );
    const toGateway = await startIdleCutter(g.port, 3000);
    try {
      // The tunnel under test: client → relay → wsgate → relay → backend, pinged both ways.
      const pinged = client(tls, toGateway.port, '/relayed/pinged');
      const pingedClosed = closeOf(pinged);
      let clientPings = 0;
      pinged.on('ping', () => clientPings++);
      // Control 1: no pings, the relay cuts between wsgate and the backend: wsgate saw the backend
      // reset and tells the client so.
      const backendCut = client(tls, g.port, '/quiet-relayed/backend-cut');
      const backendCutClosed = closeOf(backendCut);
      // Control 2: no pings, the relay cuts between the client and wsgate: the client's connection
      // is dropped under it (1006 is all it can see), wsgate tells the backend the client went away.
      const clientCut = client(tls, toGateway.port, '/quiet-direct/client-cut');
      const clientCutClosed = closeOf(clientCut);
      await Promise.all([once(pinged, 'open'), once(backendCut, 'open'), once(clientCut, 'open')]);
      await eventually(() => g.gateway.tunnels.size === 3, 10_000, 'three tunnels');
      const wantNative = tunnelOnEngine(tls);
      for (const rec of g.gateway.tunnels.values()) assert.equal(rec.tunnel.usedNative, wantNative);
      const pingedRec = [...g.gateway.tunnels.values()].find((r) => r.request.path === '/relayed/pinged');
      assert.ok(pingedRec, 'the pinged tunnel is registered');
      for (const ws of [pinged, backendCut, clientCut]) await echoIntact(ws, randomBytes(1000));

      // Ten seconds of silence from both peers.
      const silentFrom = Date.now();
      const c1 = await backendCutClosed;
      assert.deepEqual({ code: c1.code, reason: c1.reason }, { code: 1011, reason: 'backend error' });
      const c2 = await clientCutClosed;
      assert.equal(c2.code, 1006, 'the client-side relay dropped the connection');
      await eventually(() => backendCloses.has('/client-cut'), 10_000, 'the backend of the client-cut tunnel to see a close');
      assert.deepEqual(backendCloses.get('/client-cut'), { code: 1001, reason: 'client went away' });
      assert.ok(c1.at - silentFrom >= 2500 && c2.at - silentFrom >= 2500, 'the controls were cut for being idle');
      assert.equal(toBackend.cuts, 1, 'the backend-side relay cut only the control tunnel');
      assert.equal(toGateway.cuts, 1, 'the client-side relay cut only the control tunnel');
      await sleep(10_000 - (Date.now() - silentFrom));

      assert.equal(pinged.readyState, WebSocket.OPEN, 'the pinged tunnel is still open');
      assert.equal(toBackend.cuts + toGateway.cuts, 2, 'no relay cut the pinged tunnel');
      await echoIntact(pinged, randomBytes(70_000));
      // Once a second each way while idle (a side whose pong was all it sent is pinged again); a
      // ping every other interval would leave the wire silent for up to 2 s, near the relays' 3 s.
      assert.ok(clientPings >= 7, `the client was pinged ${clientPings} times in 10 s`);
      assert.ok((backendPings.get('/pinged') ?? 0) >= 7, `the backend was pinged ${backendPings.get('/pinged')} times in 10 s`);
      assert.equal(g.gateway.tunnels.size, 1, 'only the pinged tunnel is left');
      const counts = pingedRec.tunnel.wsCounts()!;
      assert.equal(counts.violationsUp + counts.violationsDown, 0, 'the trackers stayed in step');
      assert.equal(counts.messagesUp, 2);
      assert.equal(counts.messagesDown, 2);
      pinged.close(1000, 'done');
      assert.equal((await pingedClosed).code, 1000);
    } finally {
      await g.stop();
      await toGateway.close();
      await toBackend.close();
      await backend.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 4. A real browser with all of it on.

const CHROMIUM = '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)` : false;

/**
 * The page: `run(url, items)` opens a WebSocket, sends each item (a binary `pattern(seed, size)`,
 * made as test/helpers/datapath.ts makes it, or a text repeated `times` times) after its pause,
 * waits for the echo and hashes it with crypto.subtle; `wsClosed` is the close event once it comes.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>wsgate ws</title><script>
window.wsClosed = null;
function pattern(seed, n) {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; }
  return b;
}
async function hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}
window.run = async (url, items) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onclose = (e) => { window.wsClosed = { code: e.code, reason: e.reason, wasClean: e.wasClean }; };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('WebSocket error')); });
  const queue = [];
  let wake = null;
  ws.onmessage = (e) => { queue.push(e.data); if (wake) wake(); };
  const next = async () => {
    while (queue.length === 0) {
      if (window.wsClosed) throw new Error('closed: ' + JSON.stringify(window.wsClosed));
      await new Promise((r) => { wake = r; setTimeout(r, 100); });
    }
    return queue.shift();
  };
  const out = [];
  for (const it of items) {
    if (it.pauseMs) await new Promise((r) => setTimeout(r, it.pauseMs));
    ws.send(it.text !== undefined ? it.text.repeat(it.times) : pattern(it.seed, it.size));
    const got = await next();
    const bytes = typeof got === 'string' ? new TextEncoder().encode(got) : new Uint8Array(got);
    out.push({ text: typeof got === 'string', length: bytes.byteLength, sha256: await hex(bytes) });
  }
  return { extensions: ws.extensions, out };
};
</script>`;

type Item = { pauseMs?: number } & ({ seed: number; size: number } | { text: string; times: number });

const ITEMS: Item[] = [
  { seed: 1, size: 0 },
  { seed: 2, size: 1 },
  { seed: 3, size: 125 },
  { seed: 4, size: 126, pauseMs: 1000 },
  { seed: 5, size: 65_535 },
  { text: 'hello wsgate', times: 1 },
  { seed: 6, size: 65_536, pauseMs: 1000 },
  { seed: 7, size: 300_000 },
  // A megabyte that deflates to little: the compressed frames (RSV1) pass the strict tracker.
  { text: 'wsgate compresses nothing, it forwards ', times: 26_000, pauseMs: 1000 },
  { seed: 8, size: 10 },
];

function expected(it: Item): { text: boolean; length: number; sha256: string } {
  const bytes = 'text' in it ? Buffer.from(it.text.repeat(it.times)) : pattern(it.seed, it.size);
  return { text: 'text' in it, length: bytes.length, sha256: sha256(bytes) };
}

function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

describe('a real browser (chromium) with pings, ProxyWebsocketStrict On and permessage-deflate', { skip }, () => {
  for (const tls of [false, true]) {
    test(`${tls ? 'wss://' : 'ws://'} (${engineName(tls)}): messages of every size echo intact, and a graceful stop reaches the page as 1001`, {
      timeout: 120_000,
    }, async () => {
      const backend = await startEchoBackend('browser', { perMessageDeflate: true });
      backend.server.removeAllListeners('request');
      backend.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(PAGE) });
        res.end(PAGE);
      });
      const atBackend: Array<{ text: boolean; length: number; sha256: string }> = [];
      let backendPings = 0;
      let backendPongs = 0;
      let backendExtensions = '';
      let backendClosed: { code: number; reason: string } | undefined;
      backend.wss.on('connection', (ws) => {
        backendExtensions = ws.extensions;
        ws.on('message', (d, isBinary) => {
          const b = d as Buffer;
          atBackend.push({ text: !isBinary, length: b.length, sha256: sha256(b) });
        });
        ws.on('ping', () => backendPings++);
        ws.on('pong', () => backendPongs++);
        ws.on('close', (code, reason) => {
          backendClosed = { code, reason: String(reason) };
        });
      });
      // An interval short enough that the page's pauses are pinged, long enough that a busy
      // machine is not taken for a dead peer.
      const g: RunningGateway = await startGateway(
        `${listen(tls)}ProxyWebsocketPingInterval 300ms\nProxyWebsocketStrict On\n` +
          `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/\nProxyPass / http://127.0.0.1:${backend.port}/\n`,
      );
      const userDataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-chromium-'));
      const { chromium } = await import('playwright-core');
      let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
      try {
        context = await chromium.launchPersistentContext(userDataDir, {
          executablePath: CHROMIUM,
          headless: true,
          timeout: 60_000,
          args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            // The front's certificate (made by openssl, for 127.0.0.1) is accepted by its key's hash.
            `--ignore-certificate-errors-spki-list=${spkiHash(front.certPem)}`,
          ],
        });
        const page = await context.newPage();
        page.setDefaultTimeout(30_000);
        const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${g.port}`;
        const response = await page.goto(`${origin}/`, { timeout: 30_000 });
        assert.equal(response?.status(), 200);
        const wsUrl = `${tls ? 'wss' : 'ws'}://127.0.0.1:${g.port}/ws/echo`;
        const result = (await page.evaluate(
          ([u, items]) => (globalThis as unknown as { run(u: string, i: unknown): Promise<unknown> }).run(u, items),
          [wsUrl, ITEMS] as const,
        )) as { extensions: string; out: Array<{ text: boolean; length: number; sha256: string }> };

        const want = ITEMS.map(expected);
        assert.deepEqual(atBackend, want, 'the backend got every message intact');
        assert.deepEqual(result.out, want, 'the page got every echo intact');
        assert.match(result.extensions, /^permessage-deflate/, 'the page negotiated permessage-deflate');
        assert.match(backendExtensions, /^permessage-deflate/, 'the backend negotiated permessage-deflate');

        assert.equal(g.gateway.tunnels.size, 1, 'one live tunnel');
        const rec = [...g.gateway.tunnels.values()][0];
        assert.equal(rec.tunnel.usedNative, tunnelOnEngine(tls));
        assert.equal(rec.tunnel.closeReason, undefined, 'the tunnel is still running');
        const counts = rec.tunnel.wsCounts()!;
        assert.equal(counts.violationsUp + counts.violationsDown, 0, 'the strict trackers found nothing wrong');
        assert.equal(counts.messagesUp, ITEMS.length);
        assert.equal(counts.messagesDown, ITEMS.length);
        // The megabyte of text crossed compressed (each way): the binary messages alone are more.
        const binaryBytes = want.filter((w) => !w.text).reduce((n, w) => n + w.length, 0);
        assert.ok(rec.tunnel.bytesUp < binaryBytes + 100_000, `${rec.tunnel.bytesUp} bytes up: the text went compressed`);
        assert.ok(rec.tunnel.bytesDown < binaryBytes + 100_000, `${rec.tunnel.bytesDown} bytes down: the text went compressed`);
        // The pauses were pinged: the backend saw wsgate's pings and none of the page's pongs (the
        // page answered too: a client that does not would have been cut as dead).
        assert.ok(backendPings >= 1, `the backend was pinged ${backendPings} times`);
        assert.equal(backendPongs, 0, 'no pong reached the backend');

        await g.gateway.stop({ graceMs: 10_000 });
        await page.waitForFunction(() => (globalThis as unknown as { wsClosed: unknown }).wsClosed !== null, undefined, {
          timeout: 15_000,
        });
        const closed = await page.evaluate(() => (globalThis as unknown as { wsClosed: unknown }).wsClosed);
        assert.deepEqual(closed, { code: 1001, reason: 'server shutting down', wasClean: true });
        await eventually(() => backendClosed !== undefined, 10_000, 'the backend to see its close');
        assert.deepEqual(backendClosed, { code: 1001, reason: 'server shutting down' });
      } finally {
        await context?.close().catch(() => {});
        await g.stop();
        await backend.close();
        rmSync(userDataDir, { recursive: true, force: true });
      }
    });
  }
});

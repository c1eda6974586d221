// WebSockets end to end through wsgate (`ProxyPass "/ws/" "ws://127.0.0.1:PORT/"`) to a real
// `ws` backend: every message size class, fragmentation, control frames, close codes,
// subprotocols, permessage-deflate, bulk data both ways, and 1,000 concurrent tunnels.
// wsgate never parses frames on this path: all of this must pass through byte for byte.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket, type WebSocketServer } from 'ws';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  eventually,
  openWs,
  randomBytes,
  sha256,
  startEchoBackend,
  startGateway,
  type RunningGateway,
} from '../helpers/harness';
import { mapLimit, pattern, rawHeader, startWsBackend } from '../helpers/datapath';

const conf = (port: number): string => `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${port}/"\n`;

const MiB = 1024 * 1024;

/** wsgate holds no connection or tunnel, and the backend no client. */
async function allClosed(g: RunningGateway, wss: WebSocketServer): Promise<void> {
  await assertNoOpenSockets(g);
  await eventually(() => wss.clients.size === 0, 5000, 'the backend to have no client');
}

async function cleanup(
  g: RunningGateway | undefined,
  backend: { close(): Promise<void> } | undefined,
  clients: WebSocket[] = [],
): Promise<void> {
  for (const c of clients) c.terminate();
  await g?.stop();
  await backend?.close();
}

test('text and binary echo at every size class, content and type preserved', { timeout: 60_000 }, async () => {
  const backend = await startEchoBackend('echo');
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = await openWs(`ws://127.0.0.1:${g.port}/ws/echo`);
    for (const size of [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB]) {
      const bin = randomBytes(size);
      const r1 = await echo(ws, bin, true);
      assert.equal(r1.isBinary, true, `binary ${size}: type`);
      assert.equal(r1.data.length, size, `binary ${size}: length`);
      assert.equal(sha256(r1.data), sha256(bin), `binary ${size}: content`);

      // Text of exactly `size` UTF-8 bytes: printable ASCII, ending where it fits with 2-, 3-
      // and 4-byte characters (9 bytes).
      let text = randomBytes(size).toString('base64').slice(0, size);
      if (size >= 9) text = text.slice(0, size - 9) + 'é€😀';
      assert.equal(Buffer.byteLength(text), size);
      const r2 = await echo(ws, text, false);
      assert.equal(r2.isBinary, false, `text ${size}: type`);
      assert.equal(r2.data.length, size, `text ${size}: length`);
      assert.equal(sha256(r2.data), sha256(Buffer.from(text, 'utf8')), `text ${size}: content`);
      assert.equal(r2.data.toString('utf8'), text);
    }
    const rec = [...g.gateway.tunnels.values()][0];
    assert.ok(rec.tunnel.bytesUp > 2 * 16 * MiB && rec.tunnel.bytesDown > 2 * 16 * MiB, 'the bytes went through the tunnel');
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('fragmented messages arrive whole and identical, both ways', { timeout: 30_000 }, async () => {
  const seen: { data: Buffer; isBinary: boolean }[] = [];
  const backend = await startWsBackend((ws) => {
    ws.on('message', (data, isBinary) => {
      seen.push({ data: data as Buffer, isBinary });
      if (!isBinary && (data as Buffer).toString() === 'fragment-to-me') {
        // Backend → client: a binary message in three frames, then a text one in two with a
        // UTF-8 character split across the frames.
        ws.send(Buffer.from('server-'), { binary: true, fin: false });
        ws.send(Buffer.from('frag-'), { binary: true, fin: false });
        ws.send(Buffer.from('mented'), { binary: true, fin: true });
        const euro = Buffer.from('x€y', 'utf8');
        ws.send(euro.subarray(0, 2), { binary: false, fin: false });
        ws.send(euro.subarray(2), { binary: false, fin: true });
      }
    });
  });
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = await openWs(`ws://127.0.0.1:${g.port}/ws/frag`);
    const rec = [...g.gateway.tunnels.values()][0];
    // Client → backend: each fragment is waited for at the tunnel before the next is sent, so
    // they cross wsgate as separate reads.
    const pieces = [randomBytes(10), randomBytes(70_000), randomBytes(1), randomBytes(200_000)];
    for (let i = 0; i < pieces.length; i++) {
      const before = rec.tunnel.bytesUp;
      ws.send(pieces[i], { binary: true, fin: i === pieces.length - 1 });
      await eventually(() => rec.tunnel.bytesUp >= before + pieces[i].length, 5000, `fragment ${i} through the tunnel`);
    }
    const text = Buffer.from('añb€c😀d', 'utf8');
    const cuts = [0, 2, 6, 9, text.length]; // cuts inside ñ, € and 😀
    for (let i = 0; i + 1 < cuts.length; i++) {
      const before = rec.tunnel.bytesUp;
      ws.send(text.subarray(cuts[i], cuts[i + 1]), { binary: false, fin: i + 2 === cuts.length });
      await eventually(() => rec.tunnel.bytesUp > before, 5000, `text fragment ${i} through the tunnel`);
    }
    await eventually(() => seen.length === 2, 5000, 'the backend to receive both messages');
    assert.equal(seen[0].isBinary, true);
    assert.equal(sha256(seen[0].data), sha256(Buffer.concat(pieces)));
    assert.equal(seen[1].isBinary, false);
    assert.equal(seen[1].data.toString('utf8'), 'añb€c😀d');

    const got: { data: Buffer; isBinary: boolean }[] = [];
    ws.on('message', (d, isBinary) => got.push({ data: d as Buffer, isBinary }));
    ws.send('fragment-to-me');
    await eventually(() => got.length === 2, 5000, 'the client to receive both fragmented messages');
    assert.deepEqual(got[0], { data: Buffer.from('server-frag-mented'), isBinary: true });
    assert.equal(got[1].isBinary, false);
    assert.equal(got[1].data.toString('utf8'), 'x€y');
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('ping/pong with payload both ways', { timeout: 30_000 }, async () => {
  let server: WebSocket | undefined;
  const backendPings: Buffer[] = [];
  const backendPongs: Buffer[] = [];
  const backend = await startWsBackend((ws) => {
    server = ws;
    ws.on('ping', (d) => backendPings.push(d));
    ws.on('pong', (d) => backendPongs.push(d));
  });
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = await openWs(`ws://127.0.0.1:${g.port}/ws/ping`);
    await eventually(() => server !== undefined, 5000, 'the backend connection');
    for (const payload of [Buffer.alloc(0), Buffer.from('ping-from-client'), randomBytes(125)]) {
      // Client ping → backend auto-pong → client.
      const pong = once(ws, 'pong');
      ws.ping(payload);
      const [p] = (await pong) as [Buffer];
      assert.deepEqual(p, payload, 'the pong carries the ping payload');
      assert.deepEqual(backendPings.at(-1), payload, 'the backend saw the ping payload');

      // Backend ping → client (auto-pong) → backend.
      const sp = payload.length === 0 ? payload : Buffer.concat([Buffer.from('S'), payload.subarray(1)]);
      const ping = once(ws, 'ping');
      const n = backendPongs.length;
      server!.ping(sp);
      const [q] = (await ping) as [Buffer];
      assert.deepEqual(q, sp, 'the client saw the backend ping payload');
      await eventually(() => backendPongs.length === n + 1, 5000, 'the pong back at the backend');
      assert.deepEqual(backendPongs.at(-1), sp);
    }
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('close codes and reasons both ways', { timeout: 30_000 }, async () => {
  const closes: { code: number; reason: string }[] = [];
  const servers: WebSocket[] = [];
  const backend = await startWsBackend((ws) => {
    servers.push(ws);
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
  });
  const g = await startGateway(conf(backend.port));
  const clients: WebSocket[] = [];
  try {
    // Client closes 4001 "bye-client": the backend sees exactly that.
    const c1 = await openWs(`ws://127.0.0.1:${g.port}/ws/c1`);
    clients.push(c1);
    const c1closed = once(c1, 'close');
    c1.close(4001, 'bye-client');
    await eventually(() => closes.length === 1, 5000, 'the backend to see the close');
    assert.deepEqual(closes[0], { code: 4001, reason: 'bye-client' });
    const [code1] = (await c1closed) as [number, Buffer];
    assert.equal(code1, 4001, 'the backend echoed the close code');

    // Backend closes 4002 "bye-server": the client sees exactly that.
    const c2 = await openWs(`ws://127.0.0.1:${g.port}/ws/c2`);
    clients.push(c2);
    await eventually(() => servers.length === 2, 5000, 'the second backend connection');
    const c2closed = once(c2, 'close');
    servers[1].close(4002, 'bye-server');
    const [code2, reason2] = (await c2closed) as [number, Buffer];
    assert.equal(code2, 4002);
    assert.equal(reason2.toString(), 'bye-server');
    await eventually(() => closes.length === 2, 5000, 'the backend side to finish closing');
    assert.equal(closes[1].code, 4002);
    await allClosed(g, backend.wss);
    await eventually(() => backend.wss.clients.size === 0, 5000, 'the backend to have no client');
  } finally {
    await cleanup(g, backend, clients);
  }
});

test('subprotocol negotiated end to end', { timeout: 30_000 }, async () => {
  const backendProtocols: string[] = [];
  const backend = await startWsBackend(
    (ws) => {
      backendProtocols.push(ws.protocol);
      ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
    },
    { handleProtocols: (protocols: Set<string>) => (protocols.has('b') ? 'b' : false) },
  );
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = await openWs(`ws://127.0.0.1:${g.port}/ws/proto`, ['a', 'b']);
    assert.equal(ws.protocol, 'b', 'the client sees the protocol the backend picked');
    assert.deepEqual(backendProtocols, ['b']);
    const offered = rawHeader(backend.upgrades[0].rawHeaders, 'Sec-WebSocket-Protocol');
    assert.deepEqual(
      offered?.split(',').map((s) => s.trim()),
      ['a', 'b'],
      'the backend saw the offer unchanged',
    );
    const r = await echo(ws, 'over b');
    assert.equal(r.data.toString(), 'over b');
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('permessage-deflate negotiated end to end; compressed frames pass through', { timeout: 30_000 }, async () => {
  const backendExt: string[] = [];
  const backend = await startWsBackend(
    (ws) => {
      backendExt.push(ws.extensions);
      ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
    },
    { perMessageDeflate: { threshold: 0 } },
  );
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = await openWs(`ws://127.0.0.1:${g.port}/ws/deflate`, undefined, { perMessageDeflate: { threshold: 0 } });
    assert.match(ws.extensions, /permessage-deflate/, 'client side negotiated permessage-deflate');
    assert.equal(backendExt.length, 1);
    assert.match(backendExt[0], /permessage-deflate/, 'backend side negotiated permessage-deflate');
    assert.match(rawHeader(backend.upgrades[0].rawHeaders, 'Sec-WebSocket-Extensions') ?? '', /permessage-deflate/);

    const rec = [...g.gateway.tunnels.values()][0];
    const line = 'the quick brown fox jumps over the lazy dog 0123456789\n';
    const text = line.repeat(Math.ceil(MiB / line.length)).slice(0, MiB);
    const r = await echo(ws, text, false);
    assert.equal(r.isBinary, false);
    assert.equal(sha256(r.data), sha256(text));
    const bin = Buffer.alloc(512 * 1024, 7);
    const r2 = await echo(ws, bin, true);
    assert.equal(sha256(r2.data), sha256(bin));
    // The frames crossed wsgate compressed, untouched: far fewer bytes than the messages.
    assert.ok(rec.tunnel.bytesUp < 200_000, `compressed upstream bytes: ${rec.tunnel.bytesUp}`);
    assert.ok(rec.tunnel.bytesDown < 200_000, `compressed downstream bytes: ${rec.tunnel.bytesDown}`);
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('10 MiB of random data each way, concurrently, in many messages', { timeout: 60_000 }, async () => {
  const TOTAL = 10 * MiB;
  const up = randomBytes(TOTAL);
  const down = randomBytes(TOTAL);
  // Message sizes from 1 B to 128 KiB, summing to TOTAL.
  const sizes: number[] = [];
  for (let left = TOTAL, i = 0; left > 0; i++) {
    const s = Math.min(left, 1 + ((i * 7919) % (128 * 1024)));
    sizes.push(s);
    left -= s;
  }
  const send = (ws: WebSocket, data: Buffer): void => {
    let off = 0;
    for (const s of sizes) {
      ws.send(data.subarray(off, off + s), { binary: true });
      off += s;
    }
  };
  const backendHash = createHash('sha256');
  let backendBytes = 0;
  let backendMessages = 0;
  const backend = await startWsBackend((ws) => {
    ws.on('message', (d) => {
      backendHash.update(d as Buffer);
      backendBytes += (d as Buffer).length;
      backendMessages++;
    });
    send(ws, down);
  });
  const g = await startGateway(conf(backend.port));
  let ws: WebSocket | undefined;
  try {
    ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/bulk`);
    const clientHash = createHash('sha256');
    let clientBytes = 0;
    let clientMessages = 0;
    ws.on('message', (d) => {
      clientHash.update(d as Buffer);
      clientBytes += (d as Buffer).length;
      clientMessages++;
    });
    await once(ws, 'open');
    send(ws, up);
    await eventually(() => backendBytes >= TOTAL && clientBytes >= TOTAL, 30_000, '10 MiB each way');
    assert.equal(backendBytes, TOTAL);
    assert.equal(clientBytes, TOTAL);
    assert.equal(backendMessages, sizes.length);
    assert.equal(clientMessages, sizes.length);
    assert.equal(backendHash.digest('hex'), sha256(up), 'client → backend content');
    assert.equal(clientHash.digest('hex'), sha256(down), 'backend → client content');
    await closeWs(ws);
    await allClosed(g, backend.wss);
  } finally {
    await cleanup(g, backend, ws ? [ws] : []);
  }
});

test('1,000 concurrent tunnels echo distinct content; all closed afterwards', { timeout: 120_000 }, async () => {
  const N = 1000;
  const backend = await startEchoBackend('many');
  const g = await startGateway(conf(backend.port), { level: 'info' });
  let clients: WebSocket[] = [];
  try {
    clients = await mapLimit(
      Array.from({ length: N }, (_, i) => i),
      100,
      (i) => openWs(`ws://127.0.0.1:${g.port}/ws/t${i}`),
    );
    assert.equal(g.gateway.tunnels.size, N, 'all tunnels open at once');
    await eventually(() => backend.wss.clients.size === N, 10_000, 'all backend connections');
    assert.equal(backend.upgrades.length, N);
    assert.deepEqual(new Set(backend.upgrades.map((u) => u.url)).size, N, 'each upgrade went to its own path');
    // Every client sends its own content at the same time; each must get exactly its own back.
    const results = await Promise.all(
      clients.map(async (ws, i) => {
        const mine = pattern(i + 1, 1000 + i);
        const r = await echo(ws, mine, true);
        return { sent: sha256(mine), got: sha256(r.data), isBinary: r.isBinary };
      }),
    );
    for (let i = 0; i < N; i++) {
      assert.equal(results[i].got, results[i].sent, `tunnel ${i} content`);
      assert.equal(results[i].isBinary, true);
    }
    assert.equal(new Set(results.map((r) => r.sent)).size, N, 'contents were distinct');
    await Promise.all(clients.map((ws) => closeWs(ws)));
    await allClosed(g, backend.wss);
    await eventually(() => backend.wss.clients.size === 0, 10_000, 'the backend to have no client');
    assert.equal(g.gateway.tunnels.size, 0);
    assert.equal(g.gateway.openConnections(), 0);
  } finally {
    await cleanup(g, backend, clients);
  }
});

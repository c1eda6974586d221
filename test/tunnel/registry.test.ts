// The tunnel registry and the primitives the proxy uses to speak into a live tunnel, end to end
// on real sockets and on whichever engine this run uses (the native engine by default, the
// JavaScript pump with WSGATE_NATIVE=0; the native front or Node accepting): bytes written into
// one direction land after everything already accepted for it, a half-closed direction delivers
// its FIN right after them, and the other direction keeps flowing.
//
// Each stream is a sequence of framed records ([length u32][seq u32][payload from seq]), written
// one record per write, so a record that is cut, reordered or has bytes inside it fails to parse.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type * as net from 'node:net';
import { test } from 'node:test';
import type { Route } from '../../src/config/model';
import type { TunnelRecord } from '../../src/gateway';
import { TunnelRegistry } from '../../src/tunnel/registry';
import { Tunnel, type TunnelSide } from '../../src/tunnel/tunnel';
import { Collector, pattern, rawUpgrade, upgradeHead } from '../helpers/datapath';
import { eventually, readRequestHead, type RunningGateway, startGateway, startRawBackend } from '../helpers/harness';

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto\r\nConnection: Upgrade\r\n\r\n';
const INJECTED = 0x80000000;

/** One record: [payload length][seq][payload derived from seq and length]. */
function record(seq: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(8 + len);
  b.writeUInt32BE(len, 0);
  b.writeUInt32BE(seq >>> 0, 4);
  pattern(seq + 1, len).copy(b, 8);
  return b;
}

/** Records `from`..`from + count - 1`, of sizes 1..24 KiB that vary with seq. */
function records(from: number, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let seq = from; seq < from + count; seq++) out.push(record(seq, 1 + ((seq * 7919) % (24 * 1024))));
  return out;
}

/** Parses a whole stream into its records' seqs; throws at the first byte that is not a valid record. */
function parse(data: Buffer): number[] {
  const seqs: number[] = [];
  let off = 0;
  while (off < data.length) {
    assert.ok(off + 8 <= data.length, `a cut record header at ${off}`);
    const len = data.readUInt32BE(off);
    const seq = data.readUInt32BE(off + 4);
    assert.ok(off + 8 + len <= data.length, `record ${seq} at ${off} cut short (length ${len}, stream ${data.length})`);
    assert.ok(data.subarray(off + 8, off + 8 + len).equals(pattern(seq + 1, len)), `record ${seq} at ${off} has foreign bytes inside`);
    seqs.push(seq);
    off += 8 + len;
  }
  return seqs;
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Writes each buffer with its own write(), waiting for 'drain' when the socket asks to. */
async function writeEach(s: net.Socket, bufs: Buffer[]): Promise<void> {
  for (const b of bufs) {
    if (!s.write(b)) await new Promise<void>((r) => s.once('drain', r));
  }
}

const total = (bufs: Buffer[]): number => bufs.reduce((n, b) => n + b.length, 0);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Open {
  g: RunningGateway;
  backendPort: number;
  client: net.Socket;
  clientRest: Buffer;
  backend: net.Socket;
  backendRest: Buffer;
  close(): Promise<void>;
}

/** A gateway with `/t/` → a raw backend behind a 101, and one tunnel through it (both ends paused). */
async function openTunnel(): Promise<Open> {
  let resolveBackend!: (v: { s: net.Socket; rest: Buffer }) => void;
  const backendSide = new Promise<{ s: net.Socket; rest: Buffer }>((r) => (resolveBackend = r));
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ rest }) => {
        s.write(SWITCH);
        resolveBackend({ s, rest });
      },
      () => {},
    );
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/t/" "http://127.0.0.1:${backend.port}/" upgrade=myproto\n`, {
    level: 'info',
  });
  const r = await rawUpgrade(g.port, upgradeHead('/t/x', 'myproto'));
  assert.equal(r.status, 101, r.head);
  const b = await backendSide;
  await eventually(() => g.gateway.tunnels.size === 1, 5000, 'the tunnel to be registered');
  return {
    g,
    backendPort: backend.port,
    client: r.socket,
    clientRest: r.rest,
    backend: b.s,
    backendRest: b.rest,
    async close() {
      r.socket.destroy();
      await g.stop();
      await backend.close();
    },
  };
}

/** The tunnel's record, found through the registry by backend URL and by route (both must agree). */
function lookUp(o: Open): TunnelRecord {
  const reg = o.g.gateway.tunnels;
  const byBackend = reg.byBackendOf(`http://127.0.0.1:${o.backendPort}/`);
  assert.equal(byBackend.length, 1, 'one tunnel to the backend');
  const route = o.g.gateway.config.mainServer.routes[0];
  const byRoute = reg.byRouteOf(route);
  assert.equal(byRoute.length, 1, 'one tunnel on the route');
  assert.equal(byRoute[0], byBackend[0]);
  return byBackend[0];
}

const other = (side: TunnelSide): TunnelSide => (side === 'client' ? 'backend' : 'client');

for (const closed of ['client', 'backend'] as const) {
  test(`bytes injected both ways land between whole records, then endToward('${closed}') gives that side EOF right after them while the other direction flows`, async () => {
    const o = await openTunnel();
    try {
      const rec = lookUp(o);
      const t = rec.tunnel;
      const rx = { client: new Collector(o.client, true, o.clientRest), backend: new Collector(o.backend, true, o.backendRest) };
      const tx = { client: o.client, backend: o.backend };
      // Phase A: both directions at once, then wait until each side has everything.
      const aUp = records(0, 150);
      const aDown = records(0, 150);
      await Promise.all([writeEach(o.client, aUp), writeEach(o.backend, aDown)]);
      await Promise.all([rx.backend.untilBytes(total(aUp)), rx.client.untilBytes(total(aDown))]);
      assert.equal(t.bytesUp, total(aUp));
      assert.equal(t.bytesDown, total(aDown));

      const injUp = record(INJECTED + 1, 3000);
      const injDown = record(INJECTED + 2, 5000);
      assert.equal(t.send('backend', injUp), true);
      assert.equal(t.send('client', injDown), true);
      assert.equal(t.endToward(closed), true);
      assert.equal(t.endToward(closed), false, 'a direction ends once');
      assert.equal(t.send(closed, record(INJECTED + 3, 10)), false, 'nothing more goes toward an ended side');

      // Phase B: the open direction goes on; what is sent toward the ended side is dropped.
      const open = other(closed);
      const b = records(150, 300);
      const dropped = records(1000, 100);
      const opener = writeEach(tx[closed], b).then(() => tx[closed].end());
      const dropper = writeEach(tx[open], dropped).then(() => tx[open].end());

      await rx[closed].untilEnd(10_000);
      const inj = { client: injDown, backend: injUp };
      const a = { client: aDown, backend: aUp };
      assert.deepEqual(parse(rx[closed].data()), [...range(0, 150), INJECTED + (closed === 'client' ? 2 : 1)]);
      assert.equal(rx[closed].bytes, total(a[closed]) + inj[closed].length, 'EOF right after the injected record');

      await Promise.all([opener, dropper]);
      await rx[open].untilEnd(20_000);
      const seqs = parse(rx[open].data());
      assert.deepEqual(seqs, [...range(0, 150), INJECTED + (open === 'client' ? 2 : 1), ...range(150, 300)]);
      assert.equal(sha(rx[open].data()), sha(Buffer.concat([...a[open], inj[open], ...b])));

      await eventually(() => o.g.gateway.tunnels.size === 0, 10_000, 'the tunnel to end');
      assert.equal(t.closeReason, 'closed');
      // Injected and dropped bytes are not forwarded bytes.
      const forwardedTowardClosed = closed === 'client' ? t.bytesDown : t.bytesUp;
      assert.equal(forwardedTowardClosed, total(a[closed]));
      assert.equal(o.g.gateway.tunnels.byBackendOf(`http://127.0.0.1:${o.backendPort}/`).length, 0);
      assert.equal(o.g.gateway.tunnels.countRoute(rec.route), 0);
      assert.equal(t.send(open, injUp), false, 'an ended tunnel takes nothing');
    } finally {
      await o.close();
    }
  });

  test(`bytes sent toward the ${closed} while it does not read go after every byte already accepted`, async () => {
    const o = await openTunnel();
    try {
      const t = lookUp(o).tunnel;
      const receiver = closed === 'client' ? o.client : o.backend;
      const sender = closed === 'client' ? o.backend : o.client;
      const accepted = (): number => (closed === 'client' ? t.bytesDown : t.bytesUp);
      const stream = records(0, 600); // about 7 MiB: far more than the socket buffers hold
      const writing = writeEach(sender, stream).then(() => sender.end());
      // The receiver is paused: wsgate reads what fits and then holds the rest back.
      await eventually(() => accepted() >= 512 * 1024, 10_000, 'half a MiB through the tunnel');
      const at = accepted();
      const inj = record(INJECTED + 7, 4096);
      assert.equal(t.send(closed, inj), true);
      const rx = new Collector(receiver, true, closed === 'client' ? o.clientRest : o.backendRest);
      await writing;
      await rx.untilEnd(30_000);
      const data = rx.data();
      assert.equal(data.length, total(stream) + inj.length);
      assert.ok(data.subarray(at, at + inj.length).equals(inj), `the injected bytes at offset ${at}, the count when they were sent`);
      assert.equal(sha(Buffer.concat([data.subarray(0, at), data.subarray(at + inj.length)])), sha(Buffer.concat(stream)));
    } finally {
      await o.close();
    }
  });
}

for (const closed of ['client', 'backend'] as const) {
  test(`endToward('${closed}') while bytes wait for it: the FIN comes after them, and the rest of the stream is dropped`, async () => {
    const o = await openTunnel();
    try {
      const t = lookUp(o).tunnel;
      const receiver = closed === 'client' ? o.client : o.backend;
      const sender = closed === 'client' ? o.backend : o.client;
      const accepted = (): number => (closed === 'client' ? t.bytesDown : t.bytesUp);
      const stream = records(0, 600);
      const writing = writeEach(sender, stream).then(() => sender.end());
      await eventually(() => accepted() >= 512 * 1024, 10_000, 'half a MiB through the tunnel');
      const at = accepted();
      const inj = record(INJECTED + 8, 2048);
      assert.equal(t.send(closed, inj), true);
      assert.equal(t.endToward(closed), true);
      const rx = new Collector(receiver, true, closed === 'client' ? o.clientRest : o.backendRest);
      await rx.untilEnd(30_000);
      const data = rx.data();
      assert.equal(
        sha(data),
        sha(Buffer.concat([Buffer.concat(stream).subarray(0, at), inj])),
        'the stream up to the send, then the injected bytes, then EOF',
      );
      // What the sender still had is read and dropped: it is never stuck, and the tunnel ends cleanly.
      await writing;
      receiver.end();
      await eventually(() => o.g.gateway.tunnels.size === 0, 10_000, 'the tunnel to end');
      assert.equal(t.closeReason, 'closed');
      assert.equal(accepted(), at, 'dropped bytes are not counted as forwarded');
    } finally {
      await o.close();
    }
  });
}

test('the registry lists live tunnels by route and by backend, and forgets them when they close', async () => {
  const backends = await Promise.all(
    [0, 1].map(() =>
      startRawBackend((s) => {
        readRequestHead(s).then(
          () => s.write(SWITCH),
          () => {},
        );
      }),
    ),
  );
  const [x, y] = backends.map((b) => `http://127.0.0.1:${b.port}/`);
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass "/a/" "${x}" upgrade=myproto\nProxyPass "/b/" "${y}" upgrade=myproto\nProxyPass "/c/" "${x}" upgrade=myproto\n`,
    { level: 'info' },
  );
  const clients: net.Socket[] = [];
  try {
    for (const p of ['/a/1', '/a/2', '/b/1', '/c/1']) {
      const r = await rawUpgrade(g.port, upgradeHead(p, 'myproto'));
      assert.equal(r.status, 101);
      clients.push(r.socket);
    }
    const reg = g.gateway.tunnels;
    await eventually(() => reg.size === 4, 5000, 'four tunnels');
    const routes = g.gateway.config.mainServer.routes;
    const route = (prefix: string): Route => routes.find((r) => r.match.kind === 'prefix' && r.match.prefix === prefix)!;
    assert.equal(reg.byRouteOf(route('/a/')).length, 2);
    assert.equal(reg.byRouteOf(route('/b/')).length, 1);
    assert.equal(reg.countRoute(route('/c/')), 1);
    assert.equal(reg.byBackendOf(x).length, 3, 'a backend named by two routes');
    assert.equal(reg.countBackend(y), 1);
    assert.deepEqual(
      [...reg].map((r) => r.tunnel),
      [...reg.keys()],
    );
    for (const r of reg.byRouteOf(route('/b/'))) assert.equal(r.backend.url, y);

    // The client of /a/1 goes away (a reset): its tunnel leaves every list. Tunnels are listed in
    // the order they were made: the first of /a/ is that client's.
    const gone = reg.byRouteOf(route('/a/'))[0];
    clients[0].resetAndDestroy();
    await eventually(() => reg.size === 3, 5000, 'the tunnel to leave the registry');
    assert.equal(reg.get(gone.tunnel), undefined);
    assert.equal(reg.byRouteOf(route('/a/')).length, 1);
    assert.equal(reg.byBackendOf(x).length, 2);
    // Closing every tunnel of one backend (what a member drain does) empties its list only.
    for (const r of reg.byBackendOf(x)) r.tunnel.close('shutdown');
    await eventually(() => reg.size === 1, 5000, 'the tunnels to x to end');
    assert.equal(reg.countBackend(x), 0);
    assert.equal(reg.countBackend(y), 1);
  } finally {
    for (const c of clients) c.destroy();
    await g.stop();
    for (const b of backends) await b.close();
  }
});

test('a tunnel is registered once and unregistered once', () => {
  const reg = new TunnelRegistry();
  const route = { source: { file: 'f', line: 1 } } as unknown as Route;
  const backend = { url: 'ws://127.0.0.1:1/' } as TunnelRecord['backend'];
  const t = new Tunnel(undefined, undefined, { idleTimeoutMs: 0, onClose: () => {} });
  const rec = { tunnel: t, route, backend };
  reg.add(rec);
  assert.throws(() => reg.add(rec), /already registered/);
  assert.equal(reg.size, 1);
  assert.equal(reg.remove(t), rec);
  assert.equal(reg.remove(t), undefined);
  assert.equal(reg.size, 0);
  assert.equal(reg.countRoute(route), 0);
  assert.equal(reg.countBackend(backend), 0);
  assert.equal(t.send('client', Buffer.from('x')), false, 'a tunnel that never started takes nothing');
  assert.equal(t.endToward('backend'), false);
});

test('the indexes by route, backend and client are made when first asked and stay right as tunnels come, move and go', () => {
  const reg = new TunnelRegistry();
  const routes = [1, 2].map((line) => ({ source: { file: 'f', line } }) as unknown as Route);
  const backends = ['ws://127.0.0.1:1/', 'ws://127.0.0.1:2/'].map((url) => ({ url }) as TunnelRecord['backend']);
  const make = (i: number) => ({
    tunnel: new Tunnel(undefined, undefined, { idleTimeoutMs: 0, onClose: () => {} }),
    route: routes[i % 2]!,
    backend: backends[i % 2]!,
    clientIp: i % 3 === 0 ? '10.0.0.1' : '10.0.0.2',
  });
  const recs = Array.from({ length: 6 }, (_, i) => make(i));
  for (const r of recs.slice(0, 3)) reg.add(r);
  // Asked after three tunnels: built from them. Then kept up to date by every add and remove.
  assert.equal(reg.countRoute(routes[0]!), 2);
  assert.deepEqual(reg.byRouteOf(routes[1]!), [recs[1]]);
  assert.equal(reg.countClient('10.0.0.1'), 1);
  for (const r of recs.slice(3)) reg.add(r);
  reg.remove(recs[0]!.tunnel);
  // Never asked before now: built from the five left.
  assert.equal(reg.countBackend(backends[0]!), 2);
  assert.deepEqual(reg.byBackendOf(backends[1]!.url), [recs[1], recs[3], recs[5]]);
  assert.equal(reg.countRoute(routes[0]!), 2);
  assert.equal(reg.countRoute(routes[1]!), 3);
  assert.deepEqual(reg.byRouteOf(routes[0]!), [recs[2], recs[4]]);
  assert.equal(reg.countClient('10.0.0.1'), 1, 'recs[3] (recs[0] is gone)');
  assert.equal(reg.countClient('10.0.0.2'), 4);
  // A reload moves a tunnel to another route and backend: every index follows.
  assert.equal(reg.replace({ ...recs[2]!, route: routes[1]!, backend: backends[1]! }), true);
  assert.equal(reg.countRoute(routes[0]!), 1);
  assert.equal(reg.countRoute(routes[1]!), 4);
  assert.equal(reg.countBackend(backends[1]!), 4);
  assert.equal(reg.byRouteOf(routes[1]!).length, 4);
  assert.equal(reg.byBackendOf(backends[0]!).length, 1);
  for (const r of recs.slice(1)) reg.remove(r.tunnel);
  assert.equal(reg.size, 0);
  for (const r of routes) assert.equal(reg.countRoute(r), 0);
  for (const b of backends) assert.deepEqual(reg.byBackendOf(b), []);
  assert.equal(reg.countClient('10.0.0.2'), 0);
});

// Raw tunnels with a custom protocol: `ProxyPass "/t/" "http://127.0.0.1:PORT/" upgrade=myproto`
// to a raw TCP backend that answers a 101 and then does what each test needs. Checks the
// hand-over (bytes in the same write as the request head or the 101), the idle limit, half-close,
// abrupt close, backpressure, and that nothing is left open.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type * as net from 'node:net';
import { test } from 'node:test';
import type { Tunnel } from '../../src/tunnel/tunnel';
import {
  assertNoOpenSockets,
  eventually,
  headerIn,
  randomBytes,
  readRequestHead,
  sha256,
  startGateway,
  startRawBackend,
  type RunningGateway,
} from '../helpers/harness';
import { Collector, rawUpgrade, sleep, upgradeHead } from '../helpers/datapath';

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto\r\nConnection: Upgrade\r\n\r\n';
const MiB = 1024 * 1024;

type Handler = (s: net.Socket, head: string, rest: Buffer) => void;

interface Setup {
  g: RunningGateway;
  backend: Awaited<ReturnType<typeof startRawBackend>>;
  /** Request heads the backend received, in order. */
  heads: string[];
  /** Opens a tunnel to `path`; resolves with the client side and the wsgate Tunnel. */
  open(
    path: string,
    opts?: { early?: Buffer; allowHalfOpen?: boolean; afterWrite?: (s: net.Socket) => void },
  ): Promise<{ socket: net.Socket; head: string; rest: Buffer; at: number; tunnel: Tunnel }>;
  /** wsgate holds no connection or tunnel, and the backend no socket. */
  assertAllClosed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A gateway routing /t/ to a raw backend. The backend reads the request head, then calls
 * `handlers[path]` (path as the backend sees it) with the socket and the bytes after the head.
 */
async function setup(handlers: Record<string, Handler>, extraConf = ''): Promise<Setup> {
  const heads: string[] = [];
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ head, rest }) => {
        heads.push(head);
        const path = head.split(' ')[1];
        const h = handlers[path];
        if (h === undefined) s.destroy();
        else h(s, head, rest);
      },
      () => {},
    );
  });
  const g = await startGateway(`Listen 127.0.0.1:0\n${extraConf}ProxyPass "/t/" "http://127.0.0.1:${backend.port}/" upgrade=myproto\n`);
  const clients: net.Socket[] = [];
  return {
    g,
    backend,
    heads,
    async open(path, opts = {}) {
      const known = new Set(g.gateway.tunnels.keys());
      const r = await rawUpgrade(g.port, upgradeHead(`/t${path}`, 'myproto'), opts.early, {
        allowHalfOpen: opts.allowHalfOpen ?? false,
        afterWrite: opts.afterWrite,
      });
      clients.push(r.socket);
      assert.equal(r.status, 101, `upgrade of ${path}: ${r.head}`);
      assert.equal(headerIn(r.head, 'Upgrade'), 'myproto');
      assert.match(headerIn(r.head, 'Connection') ?? '', /upgrade/i);
      let tunnel: Tunnel | undefined;
      await eventually(() => (tunnel = [...g.gateway.tunnels.keys()].find((t) => !known.has(t))) !== undefined, 5000, 'the new tunnel');
      return { ...r, tunnel: tunnel! };
    },
    async assertAllClosed() {
      await assertNoOpenSockets(g);
      await eventually(() => backend.sockets.size === 0, 5000, 'the backend to have no socket');
    },
    async close() {
      for (const c of clients) c.destroy();
      await g.stop();
      await backend.close();
    },
  };
}

/** Collects what the backend receives after the head, starting with `rest`. */
const collect = (s: net.Socket, rest: Buffer, keep = true): Collector => new Collector(s, keep, rest);

/** Writes `data` in `chunk`-sized writes, honouring backpressure; resolves when all is written. */
async function writeAll(s: net.Socket, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!s.write(data.subarray(off, off + chunk))) await once(s, 'drain');
  }
}

test('client bytes in the same write as the head, and before the 101, reach the backend after the head, in order', {
  timeout: 30_000,
}, async () => {
  let backendIn: Collector | undefined;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let gotHead!: () => void;
  const headSeen = new Promise<void>((r) => (gotHead = r));
  let beforeSwitch = -1;
  const st = await setup({
    '/early': (s, _head, rest) => {
      backendIn = collect(s, rest);
      gotHead();
      void released.then(() => {
        beforeSwitch = backendIn!.bytes;
        s.write(SWITCH);
        // Echo everything after the head back to the client.
        s.write(backendIn!.data());
        s.on('data', (c: Buffer) => s.write(c));
        s.on('end', () => s.end());
      });
    },
  });
  try {
    const inHeadWrite = Buffer.concat([Buffer.from('EARLY-IN-HEAD-WRITE|'), randomBytes(100 * 1024)]);
    const beforeSwitchBytes = Buffer.from('|WRITTEN-BEFORE-101|');
    const after = Buffer.concat([Buffer.from('|AFTER-101|'), randomBytes(50_000)]);
    // The 101 is held back until the backend has the head and the client's second write has
    // had time to reach wsgate.
    let client!: net.Socket;
    const opening = st.open('/early', { early: inHeadWrite, afterWrite: (c) => (client = c) });
    await headSeen;
    client.write(beforeSwitchBytes);
    await sleep(100);
    release();
    const r = await opening;
    r.socket.write(after);
    const expected = Buffer.concat([inHeadWrite, beforeSwitchBytes, after]);
    await backendIn!.untilBytes(expected.length);
    assert.equal(backendIn!.bytes, expected.length);
    assert.equal(sha256(backendIn!.data()), sha256(expected), 'the backend got the early bytes after the head, in order');
    assert.equal(beforeSwitch, 0, 'wsgate holds early bytes until the 101 (as Apache)');
    const head = st.heads[0];
    assert.match(head, /^GET \/early HTTP\/1\.1\r\n/);
    assert.equal(headerIn(head, 'Upgrade'), 'myproto');
    assert.match(headerIn(head, 'Connection') ?? '', /^upgrade$/i);
    // And the echo comes back whole, right after the 101.
    const clientIn = collect(r.socket, r.rest);
    await clientIn.untilBytes(expected.length);
    assert.equal(sha256(clientIn.data()), sha256(expected));
    r.socket.end();
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('client head + early bytes + FIN before the 101: bytes then the FIN reach the backend', { timeout: 30_000 }, async () => {
  let backendIn: Collector | undefined;
  const reply = randomBytes(300_000);
  const st = await setup({
    '/early-fin': (s, _head, rest) => {
      // Answer only once the client has written and half-closed (give it time to arrive).
      setTimeout(() => {
        s.write(SWITCH);
        backendIn = collect(s, rest);
        backendIn.untilEnd().then(
          () => s.end(reply),
          () => {},
        );
      }, 100);
    },
  });
  try {
    const early = Buffer.concat([Buffer.from('EARLY+FIN|'), randomBytes(20_000)]);
    const r = await st.open('/early-fin', { early, allowHalfOpen: true, afterWrite: (c) => c.end() });
    await eventually(() => backendIn !== undefined, 5000, 'the backend to switch');
    await backendIn!.untilEnd(3000);
    assert.equal(sha256(backendIn!.data()), sha256(early), 'early bytes, then the FIN');
    const clientIn = collect(r.socket, r.rest);
    await clientIn.untilEnd(3000);
    assert.equal(sha256(clientIn.data()), sha256(reply), 'the backend reply after the client FIN');
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('backend bytes in the same write as its 101 reach the client right after the 101', { timeout: 30_000 }, async () => {
  const withSwitch = Buffer.concat([Buffer.from('HELLO-WITH-101|'), randomBytes(200 * 1024)]);
  const later = Buffer.from('|LATER');
  const st = await setup({
    '/greet': (s) => {
      s.write(Buffer.concat([Buffer.from(SWITCH, 'latin1'), withSwitch]));
      s.resume();
      s.on('data', (c: Buffer) => {
        if (c.toString() === 'more') s.write(later);
      });
      s.on('end', () => s.end());
    },
  });
  try {
    const r = await st.open('/greet');
    const clientIn = collect(r.socket, r.rest);
    await clientIn.untilBytes(withSwitch.length);
    assert.equal(clientIn.bytes, withSwitch.length);
    assert.equal(sha256(clientIn.data()), sha256(withSwitch), 'exactly the bytes that came with the 101');
    assert.equal(r.tunnel.bytesDown, withSwitch.length, 'counted as tunnel bytes');
    r.socket.write('more');
    await clientIn.untilBytes(withSwitch.length + later.length);
    assert.deepEqual(clientIn.data().subarray(withSwitch.length), later);
    r.socket.end();
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('4 MiB written with the head, before the 101: all of it reaches the backend, in order', { timeout: 30_000 }, async () => {
  let backendIn: Collector | undefined;
  const st = await setup({
    '/big-early': (s, _head, rest) => {
      backendIn = collect(s, rest, false);
      s.on('end', () => s.end());
      setTimeout(() => s.write(SWITCH), 100);
    },
  });
  try {
    const early = randomBytes(4 * MiB);
    const r = await st.open('/big-early', { early });
    await eventually(() => backendIn !== undefined, 5000, 'backend');
    await backendIn!.untilBytes(early.length);
    assert.equal(backendIn!.bytes, early.length);
    assert.equal(backendIn!.digest(), sha256(early));
    r.socket.end();
    await backendIn!.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('backend 101 + bytes + FIN in one write: the client gets the bytes, then the FIN, and can still send', {
  timeout: 30_000,
}, async () => {
  const bye = Buffer.concat([Buffer.from('BYE-WITH-101|'), randomBytes(30_000)]);
  let backendIn: Collector | undefined;
  const st = await setup({
    '/bye': (s, _head, rest) => {
      backendIn = collect(s, rest);
      s.end(Buffer.concat([Buffer.from(SWITCH, 'latin1'), bye]));
    },
  });
  try {
    const r = await st.open('/bye', { allowHalfOpen: true });
    const clientIn = collect(r.socket, r.rest);
    await clientIn.untilEnd(1000);
    assert.equal(sha256(clientIn.data()), sha256(bye), 'the bytes with the 101, then the FIN');
    const up = randomBytes(100_000);
    r.socket.end(up);
    await backendIn!.untilEnd(1000);
    assert.equal(sha256(backendIn!.data()), sha256(up), 'client → backend still flowed after the backend FIN');
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

/** Idle limit check: one idle and one busy (backend → client only) tunnel on the same gateway. */
async function idleCase(directive: string, limitMs: number): Promise<void> {
  const tickMs = Math.round(limitMs / 3);
  const busyChunks = 12; // 4 limits' worth of activity
  const sentBusy = createHash('sha256');
  let busyLastWrite = 0;
  const backendClosed: Record<string, number> = {};
  const st = await setup(
    {
      '/idle': (s) => {
        s.write(SWITCH);
        s.resume();
        s.on('end', () => s.end());
        s.on('close', () => (backendClosed.idle = Date.now()));
      },
      '/busy': (s) => {
        s.write(SWITCH);
        s.resume();
        s.on('end', () => s.end());
        s.on('close', () => (backendClosed.busy = Date.now()));
        let n = 0;
        const timer = setInterval(() => {
          if (s.destroyed) return clearInterval(timer);
          const c = Buffer.from(`busy-${n}-${'x'.repeat(1000)}|`);
          sentBusy.update(c);
          s.write(c);
          busyLastWrite = Date.now();
          if (++n === busyChunks) clearInterval(timer);
        }, tickMs);
      },
    },
    `ProxyWebsocketIdleTimeout ${directive}\n`,
  );
  try {
    const [idle, busy] = await Promise.all([st.open('/idle'), st.open('/busy')]);
    const idleIn = collect(idle.socket, idle.rest);
    const busyIn = collect(busy.socket, busy.rest);
    const upper = limitMs * 3 + 1000;
    const tolerance = 25; // measured from the client's receipt of the 101, just after the timer starts

    await idleIn.untilClose(upper + 1000);
    const idleAfter = idleIn.closedAt - idle.at;
    assert.ok(idleAfter >= limitMs - tolerance, `idle tunnel closed after ${idleAfter} ms, limit ${limitMs}`);
    assert.ok(idleAfter <= upper, `idle tunnel closed after ${idleAfter} ms, bound ${upper}`);
    assert.equal(idleIn.bytes, 0);
    await eventually(() => backendClosed.idle !== undefined, 5000, 'the backend of the idle tunnel to close');
    assert.ok(backendClosed.idle - idle.at <= upper + 1000);
    assert.equal(idle.tunnel.closeReason, 'idle-timeout');
    await eventually(() => idle.tunnel.endedAt > 0, 5000, 'the idle tunnel to finish');
    assert.ok(
      idle.tunnel.endedAt - idle.tunnel.startedAt >= limitMs - 5,
      `tunnel's own duration ${idle.tunnel.endedAt - idle.tunnel.startedAt}`,
    );

    // The busy tunnel (bytes backend → client only, every limit/3) outlives several limits.
    await busyIn.until(
      () =>
        busyIn.bytes > 0 &&
        busyLastWrite > 0 &&
        busyIn
          .data()
          .toString()
          .includes(`busy-${busyChunks - 1}-`),
      busyChunks * tickMs + 5000,
      'all busy chunks',
    );
    assert.equal(busyIn.closedAt, 0, 'the busy tunnel was not closed while active');
    assert.ok(Date.now() - busy.at >= 3 * limitMs, 'the busy tunnel lived past three limits');
    assert.equal(busyIn.digest(), sentBusy.digest('hex'), 'busy content intact');
    // Once the backend falls silent, the idle limit applies to it too.
    await busyIn.untilClose(upper + 1000);
    const quiet = busyIn.closedAt - busyLastWrite;
    assert.ok(quiet >= limitMs - tolerance && quiet <= upper, `busy tunnel closed ${quiet} ms after its last byte`);
    assert.equal(busy.tunnel.closeReason, 'idle-timeout');
    await eventually(() => backendClosed.busy !== undefined, 5000, 'the backend of the busy tunnel to close');
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
}

test('ProxyWebsocketIdleTimeout 1 (seconds): idle tunnel closed, busy one-way tunnel survives', { timeout: 30_000 }, () =>
  idleCase('1', 1000),
);

test('ProxyWebsocketIdleTimeout 300ms: idle tunnel closed, busy one-way tunnel survives', { timeout: 30_000 }, () =>
  idleCase('300ms', 300),
);

test('no idle limit configured: a silent tunnel stays open', { timeout: 30_000 }, async () => {
  const st = await setup({
    '/quiet': (s) => {
      s.write(SWITCH);
      s.resume();
      s.on('data', (c: Buffer) => s.write(c));
      s.on('end', () => s.end());
    },
  });
  try {
    const r = await st.open('/quiet');
    const clientIn = collect(r.socket, r.rest);
    await sleep(1500);
    assert.equal(clientIn.closedAt, 0, 'still open after 1.5 s of silence');
    const ping = randomBytes(1000);
    r.socket.write(ping);
    await clientIn.untilBytes(ping.length);
    assert.deepEqual(clientIn.data(), ping, 'and still carries bytes');
    r.socket.end();
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('half-close from the client: FIN reaches the backend, backend → client keeps flowing, then its FIN', { timeout: 30_000 }, async () => {
  const upData = randomBytes(256 * 1024);
  const downData = randomBytes(MiB);
  let backendIn: Collector | undefined;
  let backendSocket: net.Socket | undefined;
  const st = await setup({
    '/hc': (s, _h, rest) => {
      backendSocket = s;
      s.write(SWITCH);
      backendIn = collect(s, rest);
    },
  });
  try {
    const r = await st.open('/hc', { allowHalfOpen: true });
    const clientIn = collect(r.socket, r.rest);
    await eventually(() => backendIn !== undefined, 5000, 'backend');
    r.socket.write(upData);
    const endAt = Date.now();
    r.socket.end();
    await backendIn!.untilEnd(1000);
    assert.ok(backendIn!.endedAt - endAt < 1000, 'the FIN reached the backend within a second');
    assert.equal(sha256(backendIn!.data()), sha256(upData), 'all bytes before the FIN');
    // The other direction still flows after the client's FIN.
    await writeAll(backendSocket!, downData);
    await clientIn.untilBytes(downData.length);
    assert.equal(clientIn.endedAt, 0, 'the client has not seen a FIN yet');
    const backendEndAt = Date.now();
    backendSocket!.end();
    await clientIn.untilEnd(1000);
    assert.ok(clientIn.endedAt - backendEndAt < 1000, "the backend's FIN reached the client within a second");
    assert.equal(sha256(clientIn.data()), sha256(downData), 'backend → client complete after the half-close');
    await clientIn.untilClose();
    await backendIn!.untilClose();
    await eventually(() => r.tunnel.endedAt > 0, 5000, 'the tunnel to finish');
    assert.equal(r.tunnel.closeReason, 'closed');
    assert.equal(r.tunnel.bytesUp, upData.length);
    assert.equal(r.tunnel.bytesDown, downData.length);
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

test('half-close from the backend: FIN reaches the client, client → backend keeps flowing, then its FIN', { timeout: 30_000 }, async () => {
  const downData = randomBytes(256 * 1024);
  const upData = randomBytes(MiB);
  let backendIn: Collector | undefined;
  let backendSocket: net.Socket | undefined;
  const st = await setup({
    '/hc': (s, _h, rest) => {
      backendSocket = s;
      s.write(SWITCH);
      backendIn = collect(s, rest);
    },
  });
  try {
    const r = await st.open('/hc', { allowHalfOpen: true });
    const clientIn = collect(r.socket, r.rest);
    await eventually(() => backendIn !== undefined, 5000, 'backend');
    backendSocket!.write(downData);
    const endAt = Date.now();
    backendSocket!.end();
    await clientIn.untilEnd(1000);
    assert.ok(clientIn.endedAt - endAt < 1000, 'the FIN reached the client within a second');
    assert.equal(sha256(clientIn.data()), sha256(downData), 'all bytes before the FIN');
    await writeAll(r.socket, upData);
    await backendIn!.untilBytes(upData.length);
    assert.equal(backendIn!.endedAt, 0, 'the backend has not seen a FIN yet');
    const clientEndAt = Date.now();
    r.socket.end();
    await backendIn!.untilEnd(1000);
    assert.ok(backendIn!.endedAt - clientEndAt < 1000, "the client's FIN reached the backend within a second");
    assert.equal(sha256(backendIn!.data()), sha256(upData), 'client → backend complete after the half-close');
    await clientIn.untilClose();
    await backendIn!.untilClose();
    await eventually(() => r.tunnel.endedAt > 0, 5000, 'the tunnel to finish');
    assert.equal(r.tunnel.closeReason, 'closed');
    await st.assertAllClosed();
  } finally {
    await st.close();
  }
});

type Side = 'client' | 'backend';
type Abrupt = 'destroy' | 'resetAndDestroy';

/**
 * One side closes abruptly; the other must see its socket close within a second and wsgate
 * must drop the tunnel. `peer`: 'normal' ends when it gets a FIN (as a default net.Socket);
 * 'streaming' is half-open-capable, ignores FINs and keeps writing every 20 ms, so only a
 * torn-down tunnel (a reset or an error) closes it.
 */
async function abruptCase(side: Side, how: Abrupt, peer: 'normal' | 'streaming'): Promise<void> {
  let backendSocket: net.Socket | undefined;
  let backendIn: Collector | undefined;
  const timers: NodeJS.Timeout[] = [];
  const stream = (s: net.Socket): void => {
    const t = setInterval(() => {
      if (s.destroyed || !s.writable) return clearInterval(t);
      s.write(randomBytes(16 * 1024));
    }, 20);
    timers.push(t);
  };
  const st = await setup({
    '/ab': (s, _h, rest) => {
      backendSocket = s;
      s.write(SWITCH);
      backendIn = collect(s, rest, false);
      if (side === 'client') {
        if (peer === 'normal') s.on('end', () => s.end());
        else stream(s);
      }
    },
  });
  try {
    const r = await st.open('/ab', { allowHalfOpen: !(side === 'backend' && peer === 'normal') });
    const clientIn = collect(r.socket, r.rest, false);
    await eventually(() => backendIn !== undefined, 5000, 'backend');
    if (side === 'backend' && peer === 'streaming') stream(r.socket);
    // Some traffic first, so the tunnel is in full flow.
    r.socket.write('hello');
    backendSocket!.write('hello');
    await backendIn!.untilBytes(5);
    await clientIn.untilBytes(5);

    const victim = side === 'client' ? r.socket : backendSocket!;
    const other = side === 'client' ? backendIn! : clientIn;
    const at = Date.now();
    if (how === 'destroy') victim.destroy();
    else victim.resetAndDestroy();
    await other.untilClose(1000);
    assert.ok(other.closedAt - at < 1000, `the ${side === 'client' ? 'backend' : 'client'} saw the close within a second`);
    await eventually(() => st.g.gateway.tunnels.size === 0, 5000, 'the tunnel registry to empty');
    if (how === 'resetAndDestroy') {
      assert.ok(
        r.tunnel.closeReason === `${side}-error` || r.tunnel.closeReason === `${side}-reset`,
        `close reason ${r.tunnel.closeReason}`,
      );
    }
    await st.assertAllClosed();
  } finally {
    for (const t of timers) clearInterval(t);
    await st.close();
  }
}

for (const side of ['client', 'backend'] as const) {
  for (const how of ['destroy', 'resetAndDestroy'] as const) {
    for (const peer of ['normal', 'streaming'] as const) {
      test(`abrupt close: ${side} ${how}() reaches a ${peer} peer within a second`, { timeout: 30_000 }, () => abruptCase(side, how, peer));
    }
  }
}

test('backpressure: a client that stops reading while the backend writes 64 MiB; memory bounded, all bytes arrive', {
  timeout: 60_000,
}, async (t) => {
  const TOTAL = 64 * MiB;
  const CHUNK = 64 * 1024;
  const sent = createHash('sha256');
  let written = 0;
  let lastProgress = 0;
  let done = false;
  const st = await setup({
    '/bp': (s) => {
      s.write(SWITCH);
      s.resume();
      s.on('end', () => s.end());
      void (async () => {
        for (let i = 0; i < TOTAL / MiB; i++) {
          const block = randomBytes(MiB);
          sent.update(block);
          for (let off = 0; off < MiB; off += CHUNK) {
            if (s.destroyed) return;
            const ok = s.write(block.subarray(off, off + CHUNK));
            written += CHUNK;
            lastProgress = Date.now();
            if (!ok) await Promise.race([once(s, 'drain'), once(s, 'close')]);
          }
        }
        done = true;
      })();
    },
  });
  let sampler: NodeJS.Timeout | undefined;
  try {
    const r = await st.open('/bp'); // the client socket stays paused: it reads nothing
    const rss0 = process.memoryUsage.rss();
    let maxRss = rss0;
    let maxClientWritable = 0;
    let maxBackendReadable = 0;
    const sample = (): void => {
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      // The JavaScript pump: what wsgate holds for the client, and what it read ahead from the backend
      // (`usedNative`, not `native`: the latter turns false when the tunnel ends, and the sampler
      // runs until the test's last line).
      const { client, backend } = r.tunnel;
      if (!r.tunnel.usedNative && client !== undefined && backend !== undefined) {
        maxClientWritable = Math.max(maxClientWritable, client.writableLength);
        maxBackendReadable = Math.max(maxBackendReadable, backend.readableLength);
      }
    };
    sampler = setInterval(sample, 5);
    // Wait until the backend is held back (no write progress for 500 ms) or has written it all.
    await eventually(() => done || (written > 0 && Date.now() - lastProgress > 500), 30_000, 'the backend to stall');
    sample();
    const writtenWhilePaused = written;
    const limit = 4 * MiB;
    assert.ok(maxClientWritable < limit, `wsgate buffered ${maxClientWritable} bytes for the paused client`);
    assert.ok(maxBackendReadable < limit, `wsgate read ${maxBackendReadable} bytes ahead from the backend`);
    assert.ok(done === false, `backpressure reached the backend: it stalled after ${writtenWhilePaused} of ${TOTAL} bytes`);
    // (The stall above bounds every buffer on the way, the engine's included: all of them
    // together hold what the backend wrote. Process RSS, which also holds the test's own
    // 1 MiB blocks and GC slack, is only reported.)
    const rssPaused = maxRss - rss0;
    // Resume: every byte arrives, in order.
    const clientIn = collect(r.socket, r.rest, false);
    await clientIn.untilBytes(TOTAL, 30_000);
    assert.ok(done);
    assert.equal(clientIn.bytes, TOTAL);
    assert.equal(clientIn.digest(), sent.digest('hex'), '64 MiB intact after resuming');
    sample();
    assert.ok(maxClientWritable < limit, `wsgate buffered ${maxClientWritable} bytes for the client while draining`);
    t.diagnostic(
      `engine=${r.tunnel.native ? 'native' : 'js'}: backend stalled after ${(writtenWhilePaused / MiB).toFixed(1)} MiB; ` +
        `max client writableLength ${maxClientWritable}, backend readableLength ${maxBackendReadable}; RSS +${(rssPaused / MiB).toFixed(1)} MiB paused`,
    );
    r.socket.end();
    await clientIn.untilClose();
    await st.assertAllClosed();
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    await st.close();
  }
});

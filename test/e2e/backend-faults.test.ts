// Backend faults not covered by errors/resets/tunnel/framing tests: a 101 split over many
// packets, a 101 with 100 KB of headers, binary garbage instead of HTTP, a backend that ends
// mid-stream, and a backend that reads slowly while the client floods. Each gives the client the
// right status or close and one log line, and a normal WebSocket echoes afterwards. Runs on the
// native front and with WSGATE_NATIVE_FRONT=0 (and WSGATE_NATIVE=0 for the JS pump).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type * as net from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertClosedWith, assertEchoWorks, upgradeRequest, wsAccept, WS_KEY } from '../helpers/edges';
import {
  headComplete,
  randomBytes,
  rawExchange,
  readRequestHead,
  sha256,
  startEchoBackend,
  startGateway,
  startRawBackend,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';

const BOUND = { timeout: 60_000 };
const MiB = 1024 * 1024;

let g: RunningGateway;
let echoBackend: EchoBackend;
let raw: Awaited<ReturnType<typeof startRawBackend>>;
/** The slow backend's socket, once its tunnel is up. */
let slowSocket: ((s: net.Socket) => void) | undefined;

const ok101 = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(WS_KEY)}\r\n`;

async function onBackend(s: net.Socket): Promise<void> {
  s.setNoDelay(true);
  const { head } = await readRequestHead(s).catch(() => ({ head: '' }));
  const path = head.split(' ')[1] ?? '';
  if (path.startsWith('/split/')) {
    // One byte per write, each after the previous one was handed to the kernel.
    for (const byte of Buffer.from(ok101 + '\r\n', 'latin1')) {
      await new Promise<void>((r) => s.write(Buffer.of(byte), () => r()));
      await new Promise((r) => setImmediate(r));
    }
    s.resume();
    s.on('data', (c: Buffer) => s.write(c)); // raw echo
  } else if (path.startsWith('/big/')) {
    s.write(ok101 + `X-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`);
    s.resume();
  } else if (path.startsWith('/garbage/')) {
    s.write(randomBytes(4096));
    s.resume();
  } else if (path.startsWith('/fin/')) {
    s.write(ok101 + '\r\nbye');
    s.end();
    s.resume();
  } else if (path.startsWith('/slow/')) {
    s.write(ok101 + '\r\n');
    slowSocket?.(s);
  }
}

before(async () => {
  echoBackend = await startEchoBackend('faults');
  raw = await startRawBackend((s) => void onBackend(s));
  g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `ProxyPass /echo/ ws://127.0.0.1:${echoBackend.port}/ timeout=5`,
      `ProxyPass / ws://127.0.0.1:${raw.port}/ timeout=5`,
      '',
    ].join('\n'),
    { level: 'info' },
  );
});

after(async () => {
  await g?.stop();
  await raw?.close();
  await echoBackend?.close();
});

function logsSince(n: number, re: RegExp): string[] {
  return g.logs.slice(n).filter((l) => re.test(l));
}

test('a 101 written one byte per packet makes a working tunnel', BOUND, async () => {
  const res = await rawExchange(g.port, upgradeRequest('/split/x'), headComplete);
  assert.equal(res.status, 101, res.head);
  const payload = randomBytes(8192);
  const got: Buffer[] = [];
  let n = res.data.length - (res.data.indexOf('\r\n\r\n') + 4);
  res.socket.on('data', (c: Buffer) => {
    got.push(c);
    n += c.length;
  });
  res.socket.write(payload);
  while (n < payload.length) await once(res.socket, 'data');
  assert.equal(sha256(Buffer.concat(got)), sha256(payload));
  res.socket.destroy();
  await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/`);
});

test('a 101 with 100 KB of headers is 502, one log line, and the connection closed', BOUND, async () => {
  const mark = g.logs.length;
  const res = await rawExchange(g.port, upgradeRequest('/big/x'));
  assertClosedWith(res, 502);
  assert.equal(logsSince(mark, /502/).length, 1, JSON.stringify(g.logs.slice(mark)));
  await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/`);
});

// Bytes that can never begin `HTTP/` are refused as soon as they come (on every front: the
// native engine hands them over at once too), not after the route's timeout=5.
test('binary garbage instead of an HTTP answer is 502 at once, one log line', BOUND, async () => {
  const mark = g.logs.length;
  const started = Date.now();
  const res = await rawExchange(g.port, upgradeRequest('/garbage/x'));
  assertClosedWith(res, 502);
  assert.ok(Date.now() - started < 2500, `answered after ${Date.now() - started} ms, not at once`);
  assert.equal(logsSince(mark, /502/).length, 1, JSON.stringify(g.logs.slice(mark)));
  await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/`);
});

test('a backend that ends mid-stream: the client gets its bytes, then a clean FIN (no reset)', BOUND, async () => {
  const res = await rawExchange(g.port, upgradeRequest('/fin/x'), (b) => b.includes('bye'));
  assert.equal(res.status, 101);
  let reset = false;
  res.socket.on('error', () => (reset = true));
  if (!res.socket.readableEnded) await once(res.socket, 'end');
  assert.equal(reset, false);
  res.socket.end();
  await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/`);
});

test(
  'a backend that reads slowly while the client floods 64 MiB: wsgate holds a bounded amount, every byte arrives in order',
  BOUND,
  async () => {
    const backendSide = new Promise<net.Socket>((resolve) => (slowSocket = resolve));
    const res = await rawExchange(g.port, upgradeRequest('/slow/x'), headComplete);
    assert.equal(res.status, 101);
    const s = await backendSide;
    s.pause();
    const payload = randomBytes(64 * MiB);
    // Write until the client's socket refuses, and stays refused for a second: the flow stalled.
    let written = 0;
    const CHUNK = 256 * 1024;
    while (written < payload.length) {
      const more = res.socket.write(payload.subarray(written, written + CHUNK));
      written += CHUNK;
      if (!more) {
        const drained = await Promise.race([once(res.socket, 'drain').then(() => true), sleep(1000).then(() => false)]);
        if (!drained) break;
      }
    }
    const accepted = written - res.socket.writableLength;
    // Kernel buffers on both legs take several MiB; an unbounded buffer in wsgate would take all 64.
    assert.ok(written < payload.length, 'the flow stalled before the whole payload was accepted');
    assert.ok(accepted < 32 * MiB, `accepted ${accepted} bytes before stalling`);
    // The backend reads now: everything arrives, in order.
    const hash = (await import('node:crypto')).createHash('sha256');
    let got = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      got += c.length;
    });
    s.resume();
    if (written < payload.length) res.socket.write(payload.subarray(written));
    while (got < payload.length) await once(s, 'data');
    assert.equal(hash.digest('hex'), sha256(payload));
    res.socket.destroy();
    await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/`);
  },
);

// Paced drain (ProxyWebsocketDrainRate): a stop closes its WebSocket tunnels a few per second
// with 1001 frames, spread out in time (measured where it matters: when the close frames reach
// the clients), and the stop's deadline closes the rest at once.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { startWsBackend } from '../helpers/datapath';
import { eventually, type RunningGateway, startGateway } from '../helpers/harness';

interface Closed {
  code: number;
  reason: string;
  at: number;
}

async function openMany(g: RunningGateway, n: number): Promise<Promise<Closed>[]> {
  const closes: Promise<Closed>[] = [];
  const opening: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/${i}`);
    ws.on('error', () => {});
    closes.push(once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), at: Date.now() })));
    opening.push(once(ws, 'open'));
  }
  await Promise.all(opening);
  await eventually(() => g.gateway.tunnels.size === n, 10_000, `${n} tunnels`);
  return closes;
}

test('a stop at ProxyWebsocketDrainRate 20 spreads 50 tunnels’ 1001 frames over seconds', { timeout: 60_000 }, async () => {
  const backend = await startWsBackend((ws) => ws.on('message', (d) => ws.send(d)));
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyWebsocketDrainRate 20\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  try {
    const closes = await openMany(g, 50);
    // A graceful stop (the CLI passes GracefulShutdownTimeout): the pacing runs within its grace.
    await g.gateway.stop({ graceMs: 30_000 });
    assert.equal(g.gateway.tunnels.size, 0, 'stop() resolved once every tunnel finished');
    const got = await Promise.all(closes);
    for (const c of got) assert.deepEqual({ code: c.code, reason: c.reason }, { code: 1001, reason: 'server shutting down' });
    const times = got.map((c) => c.at).sort((a, b) => a - b);
    const spread = times[times.length - 1] - times[0];
    // 50 at 20 a second: about 2.5 s from the first to the last (all at once would be a few ms).
    assert.ok(spread >= 1500, `the closes were spread over ${spread} ms`);
    const firstSecond = times.filter((t) => t - times[0] < 1000).length;
    assert.ok(firstSecond <= 35, `${firstSecond} of 50 closed in the first second`);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('the end of the grace time closes the rest at once', { timeout: 60_000 }, async () => {
  const backend = await startWsBackend((ws) => ws.on('message', (d) => ws.send(d)));
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyWebsocketDrainRate 1\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  try {
    const closes = await openMany(g, 10);
    const started = Date.now();
    await g.gateway.stop({ graceMs: 800 });
    const got = await Promise.all(closes);
    for (const c of got) assert.equal(c.code, 1001);
    // At 1 a second the last would close after about 10 s; the deadline cut that short.
    const last = Math.max(...got.map((c) => c.at)) - started;
    assert.ok(last < 6000, `the last close came ${last} ms after the stop began`);
  } finally {
    await g.stop();
    await backend.close();
  }
});

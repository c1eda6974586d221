// WSGATE_WS_TRACK=0 (a bench and diagnostic switch, read once at start): wsgate warns that frame
// tracking is off, data still flows byte for byte, and a backend reset reaches the client as a
// dropped connection (1006), where with tracking on it gets a 1011 close frame
// (test/e2e/wsclose.test.ts): the tunnels are plain byte tunnels.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type * as net from 'node:net';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { reap, startCli, started, writeConf } from './helpers/cli';
import { startWsBackend } from './helpers/datapath';
import { randomBytes, sha256 } from './helpers/harness';

test('WSGATE_WS_TRACK=0: a warning at start, bytes intact, a backend reset is not turned into a close frame', {
  timeout: 60_000,
}, async () => {
  const backend = await startWsBackend((ws) => ws.on('message', (d, binary) => ws.send(d, { binary })));
  const conf = writeConf(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  const s = startCli(['-f', conf], { ...process.env, WSGATE_WS_TRACK: '0' });
  try {
    const line = await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/);
    const port = Number(/:(\d+)$/.exec(line)![1]);
    await s.waitForStderr(/WebSocket frame tracking is off \(WSGATE_WS_TRACK=0\)/);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/x`);
    ws.on('error', () => {});
    await once(ws, 'open');
    const data = randomBytes(100_000);
    const echoed = once(ws, 'message');
    ws.send(data);
    assert.equal(sha256((await echoed)[0] as Buffer), sha256(data));
    const closed = once(ws, 'close');
    for (const c of backend.wss.clients) (c as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    assert.equal((await closed)[0], 1006, 'no close frame: the tunnel did not follow frames');
  } finally {
    s.child.kill('SIGTERM');
    const t = setTimeout(() => reap(s), 10_000);
    await s.exited;
    clearTimeout(t);
    await backend.close();
    assert.equal(started.size, 0);
  }
});

// A reset that arrives together with data: the bytes are delivered (or dropped) and the reset is
// acted on at once, in every state of a connection — a live tunnel on either side, and a backend
// answering an upgrade. Both engines and both fronts: the peers are on this process's event loop,
// so a write and a reset in the same tick reach wsgate's socket before it looks, as one event.

import assert from 'node:assert/strict';
import type * as net from 'node:net';
import { test } from 'node:test';
import { Collector, rawUpgrade, upgradeHead } from '../helpers/datapath';
import { closed } from '../helpers/edges';
import { assertNoOpenSockets, randomBytes, readRequestHead, sha256, startGateway, startRawBackend } from '../helpers/harness';

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n';

/**
 * Resolves when wsgate ends `socket` (a FIN or a reset: these peers allow half-open sockets),
 * rejects after `ms`: a reset that is not acted on leaves it open.
 */
function endsWithin(socket: net.Socket, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.readableEnded || socket.closed) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`${what} still open after ${ms} ms`)), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    socket.once('end', done);
    socket.once('close', done);
  });
}

test('the client writes then resets mid-tunnel: the backend connection closes at once and its max=1 slot is free again', {
  timeout: 30_000,
}, async () => {
  const accepted: net.Socket[] = [];
  const received: Buffer[] = [];
  // Answers with a 101 and keeps what it receives; never writes after that (it only answers a
  // FIN with its own), so nothing but the reset itself can end the tunnel.
  const backend = await startRawBackend((s) => {
    accepted.push(s);
    void readRequestHead(s).then(({ rest }) => {
      const inbox: Buffer[] = [rest];
      received.push(Buffer.alloc(0));
      const i = received.length - 1;
      s.on('data', (c: Buffer) => {
        inbox.push(c);
        received[i] = Buffer.concat(inbox);
      });
      s.on('end', () => s.end());
      s.write(SWITCH);
      s.resume();
    });
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo max=1\n`);
  try {
    const first = await rawUpgrade(g.port, upgradeHead('/e/1', 'echo'));
    assert.equal(first.status, 101);
    const busy = await rawUpgrade(g.port, upgradeHead('/e/busy', 'echo'));
    assert.equal(busy.status, 503, 'max=1: the open tunnel holds the only slot');
    busy.socket.destroy();
    const data = randomBytes(1000);
    first.socket.write(data);
    first.socket.resetAndDestroy();
    await endsWithin(accepted[0], 5000, 'the backend connection');
    assert.ok(
      received[0].length <= data.length && sha256(received[0]) === sha256(data.subarray(0, received[0].length)),
      'what arrived is a prefix of what was sent',
    );
    await assertNoOpenSockets(g);
    const next = await rawUpgrade(g.port, upgradeHead('/e/2', 'echo'));
    assert.equal(next.status, 101, 'the slot was freed');
    next.socket.end();
    await closed(next.socket);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('the backend writes a partial answer head then resets: 502 at once, not 504 after Timeout', { timeout: 30_000 }, async () => {
  const backend = await startRawBackend((s) => {
    void readRequestHead(s).then(() => {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: ech');
      s.resetAndDestroy();
    });
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nTimeout 20\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`);
  try {
    const started = Date.now();
    const r = await rawUpgrade(g.port, upgradeHead('/e/x', 'echo'));
    assert.equal(r.status, 502);
    assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
    r.socket.destroy();
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('the backend writes then resets mid-tunnel: the client connection closes at once', { timeout: 30_000 }, async () => {
  const last = randomBytes(2000);
  const backend = await startRawBackend((s) => {
    void readRequestHead(s).then(() => {
      s.write(SWITCH);
      // The client's first bytes are the cue: data, then a reset, in one tick.
      s.once('data', () => {
        s.write(last);
        s.resetAndDestroy();
      });
      s.resume();
    });
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`);
  try {
    const r = await rawUpgrade(g.port, upgradeHead('/e/x', 'echo'));
    assert.equal(r.status, 101);
    const inbox = new Collector(r.socket, true, r.rest);
    r.socket.write('go');
    await endsWithin(r.socket, 5000, 'the client connection');
    r.socket.destroy();
    const got = inbox.data();
    assert.ok(
      got.length <= last.length && sha256(got) === sha256(last.subarray(0, got.length)),
      'what arrived is a prefix of what was sent',
    );
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

// The native front (native/front.cc + src/listeners/native-front.ts): on plain-TCP ports the
// engine accepts, reads heads and runs bodiless upgrades itself; everything else goes to the
// HTTP/1 path as a Node socket. The rest of the e2e suite runs through it too (it is the default
// with the engine); these tests cover what is particular to it. Skipped on the JavaScript engine.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import type * as net from 'node:net';
import { test } from 'node:test';
import { Collector, rawUpgrade, upgradeHead } from '../helpers/datapath';
import { closed, connectRaw, readToClose, readUntil } from '../helpers/edges';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  eventually,
  openWs,
  randomBytes,
  readRequestHead,
  sha256,
  startEchoBackend,
  startGateway,
  startRawBackend,
} from '../helpers/harness';
import { nativeEngine } from '../../src/tunnel/native';

const skip = nativeEngine() === undefined || process.env.WSGATE_NATIVE_FRONT === '0' ? 'the native front is off in this run' : false;

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n';

/** A raw backend answering every upgrade with a 101 and echoing what follows. */
async function startRawEcho(): Promise<Awaited<ReturnType<typeof startRawBackend>>> {
  return startRawBackend((s) => {
    void readRequestHead(s).then(({ rest }) => {
      s.write(SWITCH);
      if (rest.length > 0) s.write(rest);
      s.on('data', (c: Buffer) => s.write(c));
      s.on('end', () => s.end());
      s.resume();
    });
  });
}

test('an upgrade on a plain port becomes a tunnel with no Node socket; plain HTTP on the same port still works', {
  skip,
  timeout: 30_000,
}, async () => {
  const wsBackend = await startEchoBackend('nf');
  const page = http.createServer((_req, res) => res.end('page body'));
  page.listen(0, '127.0.0.1');
  await new Promise((r) => page.once('listening', r));
  const pagePort = (page.address() as net.AddressInfo).port;
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${wsBackend.port}/"\nProxyPass "/page" "http://127.0.0.1:${pagePort}/page"\n`,
  );
  try {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/nf`);
    const data = randomBytes(256 * 1024);
    const r = await echo(ws, data);
    assert.equal(sha256(r.data), sha256(data));
    const rec = [...g.gateway.tunnels.values()][0];
    assert.equal(rec.tunnel.native, true, 'the engine runs the tunnel');
    assert.equal(rec.tunnel.client, undefined, 'no Node socket was made for the client');
    assert.equal(rec.tunnel.backend, undefined, 'no Node socket was made for the backend');
    assert.equal(rec.clientIp, '127.0.0.1');
    // Plain HTTP on the same port: handed to the HTTP/1 path with the bytes already read.
    const body = await new Promise<string>((resolve, reject) => {
      // agent: false (Connection: close): Node's global agent would hold the connection for its
      // 5 s keep-alive, as long as the bound of the check below that every socket is closed.
      http
        .get(`http://127.0.0.1:${g.port}/page`, { agent: false }, (res) => {
          let s = '';
          res
            .setEncoding('utf8')
            .on('data', (c: string) => (s += c))
            .on('end', () => resolve(s));
        })
        .on('error', reject);
    });
    assert.equal(body, 'page body');
    await closeWs(ws);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await wsBackend.close();
    page.close();
  }
});

test('a request head written one byte at a time, then tunnel bytes both ways, in order', { skip, timeout: 30_000 }, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`);
  try {
    const s = await connectRaw(g.port);
    const head = Buffer.from(upgradeHead('/e/x', 'echo'), 'latin1');
    for (const byte of head) {
      s.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const response = await readUntil(s, (b) => b.includes('\r\n\r\n'));
    assert.match(response.toString('latin1'), /^HTTP\/1\.1 101 /);
    const rest = response.subarray(response.indexOf('\r\n\r\n') + 4);
    const data = randomBytes(1024 * 1024);
    const inbox = new Collector(s, true, rest);
    s.write(data);
    await inbox.untilBytes(data.length);
    assert.equal(sha256(inbox.data()), sha256(data));
    s.end();
    await closed(s);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('the client resets while the backend has not answered: the handshake ends, nothing stays counted or open', {
  skip,
  timeout: 30_000,
}, async () => {
  let asked: net.Socket | undefined;
  const backend = await startRawBackend((s) => {
    asked = s; // never answers
    s.on('end', () => s.end());
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/slow/" "ws://127.0.0.1:${backend.port}/"\n`);
  try {
    const s = await connectRaw(g.port);
    s.write(upgradeHead('/slow/x', 'websocket'));
    await eventually(() => asked !== undefined, 5000, 'the backend to be asked');
    await readRequestHead(asked!);
    asked!.resume();
    assert.equal(g.gateway.openConnections(), 1, 'the handshake is a connection');
    s.resetAndDestroy();
    await closed(asked!);
    await assertNoOpenSockets(g);
    const counters = [...g.gateway.origins.all()][0].counters;
    assert.equal(counters.inFlight, 0);
    assert.equal(counters.openTunnels, 0);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('Timeout bounds the first head: a partial head gets 408 with a log line, a silent connection is dropped without one', {
  skip,
  timeout: 30_000,
}, async () => {
  const g = await startGateway(`Listen 127.0.0.1:0\nTimeout 1\nProxyPass "/ws/" "ws://127.0.0.1:9/"\n`);
  try {
    const partial = await connectRaw(g.port);
    partial.write('GET /ws/x HTTP/1.1\r\nHost: a\r\n');
    const silent = await connectRaw(g.port);
    const [answer] = await Promise.all([readToClose(partial), readToClose(silent)]);
    assert.match(answer.toString('latin1'), /^HTTP\/1\.1 408 /, 'the request line was in: 408, as Apache');
    await g.waitForLog(/warn request head timed out status=408 client=127\.0\.0\.1/);
    // The engine closes a connection before its event reaches JavaScript: wait for the count.
    await assertNoOpenSockets(g);
    assert.equal(g.logs.filter((l) => l.includes('request head timed out')).length, 1, 'one line, for the partial head only');
  } finally {
    await g.stop();
  }
});

test('stop() closes connections still sending their head and handshakes waiting for the backend', { skip, timeout: 30_000 }, async () => {
  const asked: net.Socket[] = [];
  const backend = await startRawBackend((s) => {
    asked.push(s); // never answers
    s.on('end', () => s.end());
    s.resume();
  });
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/slow/" "ws://127.0.0.1:${backend.port}/"\n`);
  try {
    const reading = await connectRaw(g.port);
    reading.write('GET /slow/a HTTP/1.1\r\n');
    const waiting = await connectRaw(g.port);
    waiting.write(upgradeHead('/slow/b', 'websocket'));
    await eventually(() => asked.length === 1, 5000, 'the backend to be asked');
    await g.stop();
    await Promise.all([closed(reading), closed(waiting), closed(asked[0])]);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('bytes the client sends with its head reach the backend after the 101, and those the backend sends with the 101 reach the client', {
  skip,
  timeout: 30_000,
}, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`);
  try {
    const early = randomBytes(300 * 1024);
    const r = await rawUpgrade(g.port, upgradeHead('/e/y', 'echo'), early);
    assert.equal(r.status, 101);
    const inbox = new Collector(r.socket, true, r.rest);
    await inbox.untilBytes(early.length);
    assert.equal(sha256(inbox.data()), sha256(early), 'the early bytes, echoed, in order');
    const rec = [...g.gateway.tunnels.values()][0];
    assert.equal(rec.tunnel.bytesUp, early.length);
    r.socket.end();
    await closed(r.socket);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('two gateways in one process: each front gets its own handshakes and log lines', { skip, timeout: 30_000 }, async () => {
  const backend = await startRawEcho();
  const conf = `Listen 127.0.0.1:0\nTimeout 1\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`;
  const g1 = await startGateway(conf);
  const g2 = await startGateway(conf);
  try {
    // Handshakes on both at once, interleaved.
    const ups = await Promise.all([g1, g2, g1, g2].map((g, i) => rawUpgrade(g.port, upgradeHead(`/e/${i}`, 'echo'))));
    for (const r of ups) assert.equal(r.status, 101);
    assert.equal(g1.gateway.tunnels.size, 2);
    assert.equal(g2.gateway.tunnels.size, 2);
    for (const [i, r] of ups.entries()) {
      const data = randomBytes(10_000 + i);
      const inbox = new Collector(r.socket, true, r.rest);
      r.socket.write(data);
      await inbox.untilBytes(data.length);
      assert.equal(sha256(inbox.data()), sha256(data));
      r.socket.end();
      await closed(r.socket);
    }
    // A head timeout on the second is logged by the second only.
    const partial = await connectRaw(g2.port);
    partial.write('GET /e/x HTTP/1.1\r\n');
    await readToClose(partial);
    await g2.waitForLog(/request head timed out/);
    assert.equal(
      g1.logs.some((l) => l.includes('request head timed out')),
      false,
    );
    await assertNoOpenSockets(g1);
    await assertNoOpenSockets(g2);
  } finally {
    await g1.stop();
    await g2.stop();
    await backend.close();
  }
});

test('a backend named by host name (localhost) is resolved and reached', { skip, timeout: 30_000 }, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/e/" "http://localhost:${backend.port}/" upgrade=echo\n`);
  try {
    const r = await rawUpgrade(g.port, upgradeHead('/e/l', 'echo'));
    assert.equal(r.status, 101);
    const data = randomBytes(4096);
    const inbox = new Collector(r.socket, true, r.rest);
    r.socket.write(data);
    await inbox.untilBytes(data.length);
    assert.equal(sha256(inbox.data()), sha256(data));
    r.socket.end();
    await closed(r.socket);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

// Not only the native front's: on every path Timeout limits silence while a head arrives.
test('Timeout bounds silence, not the whole head: a head sent a few bytes every 300 ms for 2.5 s is answered', {
  timeout: 30_000,
}, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(`Listen 127.0.0.1:0\nTimeout 1\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`);
  try {
    const s = await connectRaw(g.port);
    const head = Buffer.from(upgradeHead('/e/slow', 'echo'), 'latin1');
    const step = Math.ceil(head.length / 9);
    for (let off = 0; off < head.length; off += step) {
      assert.equal(s.destroyed, false, 'still connected while bytes keep coming');
      s.write(head.subarray(off, off + step));
      await new Promise((r) => setTimeout(r, 300));
    }
    const response = await readUntil(s, (b) => b.includes('\r\n\r\n'));
    assert.match(response.toString('latin1'), /^HTTP\/1\.1 101 /);
    s.end();
    await closed(s);
    assert.equal(
      g.logs.some((l) => l.includes('request head timed out')),
      false,
    );
  } finally {
    await g.stop();
    await backend.close();
  }
});

// RequestReadTimeout (mod_reqtimeout): a head that trickles in is cut at the header stage's
// deadline, a head arriving at MinRate gets its extension, a request body that stalls or trickles
// below MinRate is cut at the body stage's (408), one that keeps MinRate passes whole, a TLS handshake is bounded by the
// handshake stage, the first HEADERS of an HTTP/2 connection by the header stage, and a tunnel is
// never subject to any of it. The suite runs on the native front (default) and on Node's path
// (WSGATE_NATIVE=0), so each HTTP/1 test covers both.

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { before, test } from 'node:test';
import { Collector, upgradeHead } from '../helpers/datapath';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { closed, connectRaw, readToClose } from '../helpers/edges';
import { eventually, randomBytes, readRequestHead, sha256, startGateway, startRawBackend } from '../helpers/harness';

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n';

let certs: Certs;
let front: CertFiles;
before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

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

/** Writes `bytes` one at a time, `everyMs` apart, until the socket closes; resolves with how many went out. */
function trickle(s: net.Socket, bytes: Buffer, everyMs: number): Promise<number> {
  return new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      if (s.destroyed || s.writableEnded || i >= bytes.length) {
        clearInterval(timer);
        resolve(i);
        return;
      }
      s.write(bytes.subarray(i, i + 1));
      i++;
    }, everyMs);
    s.once('close', () => {
      clearInterval(timer);
      resolve(i);
    });
  });
}

/** Everything `socket` receives until it closes, whether by a FIN or a reset (wsgate may drop a trickler either way). */
function receivedUntilClose(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  return new Promise((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))));
}

const SLOW_FIELDS = Buffer.from('X-Slow: ' + 'a'.repeat(200) + '\r\n\r\n', 'latin1');

test('a head trickled a byte every 200 ms after its request line: 408 at the header deadline, one log line, closed', {
  timeout: 30_000,
}, async () => {
  const g = await startGateway(
    `Listen 127.0.0.1:0\nTimeout 20\nRequestReadTimeout header=1-2,MinRate=500\nProxyPass "/ws/" "ws://127.0.0.1:9/"\n`,
  );
  try {
    const s = await connectRaw(g.port);
    const started = Date.now();
    s.write('GET /ws/x HTTP/1.1\r\nHost: a\r\n');
    const answer = readToClose(s);
    void trickle(s, SLOW_FIELDS, 200);
    const got = (await answer).toString('latin1');
    const ms = Date.now() - started;
    assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(got, /\r\nConnection: close\r\n/);
    // 1 s, extended by a few bytes at 500 B/s; the native front checks once a second.
    assert.ok(ms >= 900 && ms < 5000, `cut after ${ms} ms`);
    await g.waitForLog(/warn request head timed out status=408 client=127\.0\.0\.1/);
    assert.equal(g.logs.filter((l) => l.includes('request head timed out')).length, 1);
    await eventuallyNoConnections(g.gateway);
  } finally {
    await g.stop();
  }
});

test('a request line that never ends: closed without an answer at the header deadline, one log line', { timeout: 30_000 }, async () => {
  const g = await startGateway(
    `Listen 127.0.0.1:0\nTimeout 20\nRequestReadTimeout header=1-2,MinRate=500\nProxyPass "/ws/" "ws://127.0.0.1:9/"\n`,
  );
  try {
    const s = await connectRaw(g.port);
    const started = Date.now();
    const answer = receivedUntilClose(s);
    void trickle(s, Buffer.from('GET /ws/' + 'x'.repeat(100), 'latin1'), 200);
    assert.equal((await answer).length, 0, 'no answer before the request line is in (as Apache)');
    const ms = Date.now() - started;
    assert.ok(ms >= 900 && ms < 5000, `cut after ${ms} ms`);
    await g.waitForLog(/warn request head timed out client=127\.0\.0\.1/);
    assert.equal(g.logs.filter((l) => l.includes('request head timed out')).length, 1);
  } finally {
    await g.stop();
  }
});

test('a head that takes longer than the initial time but keeps MinRate is accepted; the tunnel then outlives every stage', {
  timeout: 30_000,
}, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(
    `Listen 127.0.0.1:0\nTimeout 20\nRequestReadTimeout header=1-4,MinRate=500\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`,
  );
  try {
    const s = await connectRaw(g.port);
    const started = Date.now();
    // About 2,400 bytes at about 1,000 B/s: 2.4 s, past the initial 1 s, within what MinRate earns.
    const head = Buffer.from(upgradeHead('/e/steady', 'echo').replace('\r\n\r\n', `\r\nX-Pad: ${'p'.repeat(2300)}\r\n\r\n`), 'latin1');
    for (let off = 0; off < head.length; off += 200) {
      assert.equal(s.destroyed, false);
      s.write(head.subarray(off, off + 200));
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(Date.now() - started > 1500, 'the head took longer than the initial timeout');
    const inbox = new Collector(s, true);
    await inbox.until(() => inbox.data().includes('\r\n\r\n'), 5000, 'the 101');
    assert.match(inbox.data().toString('latin1'), /^HTTP\/1\.1 101 /);
    // Idle for longer than the header stage's maximum: a tunnel is not a head.
    await new Promise((r) => setTimeout(r, 5000));
    const before = inbox.data().length;
    const data = randomBytes(5000);
    s.write(data);
    await inbox.untilBytes(before + data.length);
    assert.equal(sha256(inbox.data().subarray(before)), sha256(data));
    assert.equal(
      g.logs.some((l) => l.includes('timed out')),
      false,
    );
    s.end();
    await closed(s);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('TLS: handshake= bounds the handshake; header= then bounds the head (408)', { timeout: 30_000 }, async () => {
  const g = await startGateway(
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n` +
      `Timeout 20\nRequestReadTimeout handshake=1 header=1-2,MinRate=500\nProxyPass "/ws/" "ws://127.0.0.1:9/"\n`,
  );
  try {
    // A TCP connection that never starts its handshake.
    const mute = await connectRaw(g.port);
    const t0 = Date.now();
    await closed(mute);
    const ms = Date.now() - t0;
    assert.ok(ms >= 900 && ms < 5000, `handshake cut after ${ms} ms`);
    await g.waitForLog(/TLS handshake with client timed out client=127\.0\.0\.1/);
    // A finished handshake, then a head that trickles.
    const s = tls.connect({ port: g.port, host: '127.0.0.1', ca: certs.ca.pem, servername: 'localhost' });
    s.on('error', () => {});
    await new Promise((r) => s.once('secureConnect', r));
    const t1 = Date.now();
    s.write('GET /ws/x HTTP/1.1\r\nHost: a\r\n');
    const answer = readToClose(s as unknown as net.Socket);
    void trickle(s as unknown as net.Socket, SLOW_FIELDS, 200);
    const got = (await answer).toString('latin1');
    assert.match(got, /^HTTP\/1\.1 408 /);
    const ms2 = Date.now() - t1;
    assert.ok(ms2 >= 900 && ms2 < 5000, `head cut after ${ms2} ms`);
  } finally {
    await g.stop();
  }
});

test('HTTP/2: a connection that sends no request within header= is closed, one log line', { timeout: 30_000 }, async () => {
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProtocols h2c http/1.1\nTimeout 20\nRequestReadTimeout header=1-2,MinRate=500\nProxyPass "/ws/" "ws://127.0.0.1:9/"\n`,
  );
  try {
    const session = http2.connect(`http://127.0.0.1:${g.port}`);
    session.on('error', () => {});
    await new Promise((r) => session.once('remoteSettings', r));
    const t0 = Date.now();
    await new Promise((r) => session.once('close', r));
    const ms = Date.now() - t0;
    assert.ok(ms >= 500 && ms < 5000, `closed after ${ms} ms`);
    await g.waitForLog(/warn request head timed out client=127\.0\.0\.1 protocol=h2/);
    assert.equal(g.logs.filter((l) => l.includes('request head timed out')).length, 1);
  } finally {
    await g.stop();
  }
});

/** A backend that reads a request head and its Content-Length body, then answers 200 with the body's sha256; `seen` records what each connection got. */
async function startBodyHasher(): Promise<Awaited<ReturnType<typeof startRawBackend>> & { seen: { head: string; bytes: number }[] }> {
  const seen: { head: string; bytes: number }[] = [];
  const b = await startRawBackend((s) => {
    void readRequestHead(s).then(
      ({ head, rest }) => {
        const entry = { head, bytes: rest.length };
        seen.push(entry);
        const want = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? '0');
        const parts = [rest];
        const done = (): void => {
          const body = Buffer.concat(parts);
          const text = sha256(body.subarray(0, want));
          s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`);
        };
        if (rest.length >= want) return done();
        s.on('data', (c: Buffer) => {
          parts.push(c);
          entry.bytes += c.length;
          if (entry.bytes >= want) done();
        });
        s.on('end', () => s.destroy());
        s.resume();
      },
      () => {},
    );
  });
  return Object.assign(b, { seen });
}

const BODY_STAGE = 'RequestReadTimeout header=20-40,MinRate=500 body=1,MinRate=200';

test('body=: a request body that stops after its first bytes is cut at the body deadline: 408, one failure line, the backend connection closed', {
  timeout: 30_000,
}, async () => {
  const backend = await startBodyHasher();
  const g = await startGateway(`Listen 127.0.0.1:0\nTimeout 20\n${BODY_STAGE}\nProxyPass "/" "http://127.0.0.1:${backend.port}/"\n`);
  try {
    const s = await connectRaw(g.port);
    const started = Date.now();
    const answer = readToClose(s);
    s.write('POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(10));
    const got = (await answer).toString('latin1');
    const ms = Date.now() - started;
    assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(got, /\r\nConnection: close\r\n/);
    assert.ok(ms >= 900 && ms < 8000, `cut after ${ms} ms`);
    await g.waitForLog(/request body timed out \(RequestReadTimeout body=1,MinRate=200\)/);
    assert.equal(g.logs.filter((l) => l.includes('request body timed out')).length, 1);
    // The backend had the head and the 10 bytes, never an answer it could mistake for a whole body.
    assert.equal(backend.seen.length, 1);
    assert.equal(backend.seen[0].bytes, 10);
    await eventually(() => backend.sockets.size === 0, 5000, 'the backend connection to close');
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('body=: a body trickled below MinRate is cut (408); the same body at a steady rate above MinRate passes whole past the initial time', {
  timeout: 40_000,
}, async () => {
  const backend = await startBodyHasher();
  const g = await startGateway(`Listen 127.0.0.1:0\nTimeout 20\n${BODY_STAGE}\nProxyPass "/" "http://127.0.0.1:${backend.port}/"\n`);
  try {
    // 5 bytes a second against MinRate 200: the deadline moves 25 ms a second.
    const slow = await connectRaw(g.port);
    const slowAnswer = readToClose(slow);
    slow.write('POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 400\r\n\r\n');
    void trickle(slow, Buffer.alloc(400, 0x61), 200);
    assert.match((await slowAnswer).toString('latin1'), /^HTTP\/1\.1 408 /);

    // About 1,000 B/s for 2.4 s (well over MinRate): past the initial 1 s, within what the bytes earn.
    const body = randomBytes(2400);
    const s = await connectRaw(g.port);
    const answer = readToClose(s);
    const started = Date.now();
    s.write(`POST /steady HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let off = 0; off < body.length; off += 200) {
      s.write(body.subarray(off, off + 200));
      await new Promise((r) => setTimeout(r, 200));
    }
    const got = (await answer).toString('latin1');
    assert.ok(Date.now() - started > 1500, 'the body took longer than the initial timeout');
    assert.match(got, /^HTTP\/1\.1 200 /);
    assert.ok(got.endsWith(sha256(body)), got);
    assert.equal(g.logs.filter((l) => l.includes('request body timed out')).length, 1);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('body=: an upgrade without a body and its tunnel are not subject to the body stage', { timeout: 30_000 }, async () => {
  const backend = await startRawEcho();
  const g = await startGateway(
    `Listen 127.0.0.1:0\nTimeout 20\n${BODY_STAGE}\nProxyPass "/e/" "http://127.0.0.1:${backend.port}/" upgrade=echo\n`,
  );
  try {
    const s = await connectRaw(g.port);
    s.write(upgradeHead('/e/quiet', 'echo'));
    const inbox = new Collector(s, true);
    await inbox.until(() => inbox.data().includes('\r\n\r\n'), 5000, 'the 101');
    assert.match(inbox.data().toString('latin1'), /^HTTP\/1\.1 101 /);
    // Silent three times the body stage, then a trickle far below MinRate: a tunnel has no body.
    await new Promise((r) => setTimeout(r, 3000));
    const before = inbox.data().length;
    const data = Buffer.from('abcdef');
    await trickle(s, data, 300);
    await inbox.untilBytes(before + data.length);
    assert.equal(sha256(inbox.data().subarray(before)), sha256(data));
    assert.equal(
      g.logs.some((l) => l.includes('timed out')),
      false,
    );
    s.end();
    await closed(s);
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('RequestReadTimeout is checked as Apache checks it', async () => {
  const cases: Array<[string, RegExp]> = [
    ['RequestReadTimeout header=20-40', /wsgate\.conf:2: RequestReadTimeout: header=20-40: a timeout range needs MinRate/],
    [
      'RequestReadTimeout header=40-20,MinRate=500',
      /wsgate\.conf:2: RequestReadTimeout: header=40-20,MinRate=500: the maximum timeout must be larger/,
    ],
    [
      'RequestReadTimeout header=20,MinRate=0',
      /wsgate\.conf:2: RequestReadTimeout: header=20,MinRate=0: the minimum data rate must be larger than 0/,
    ],
    ['RequestReadTimeout headers=20', /wsgate\.conf:2: RequestReadTimeout: unknown parameter "headers"/],
    ['RequestReadTimeout header', /wsgate\.conf:2: RequestReadTimeout: "header" is not in the form key=value/],
    ['RequestReadTimeout header=x', /wsgate\.conf:2: RequestReadTimeout: header=x: "x" is not a whole number of seconds/],
    [
      '<VirtualHost *:*>\nRequestReadTimeout header=5\n</VirtualHost>',
      /wsgate\.conf:3: RequestReadTimeout in <VirtualHost> is not supported/,
    ],
  ];
  for (const [config, message] of cases) {
    await assert.rejects(startGateway(`Listen 127.0.0.1:0\n${config}\n`), message);
  }
  const g = await startGateway('Listen 127.0.0.1:0\nRequestReadTimeout Header=5 BODY=10,minrate=100\n');
  try {
    const t = g.gateway.config.mainServer.settings.requestReadTimeouts;
    assert.deepEqual(t.header, { timeoutMs: 5000, maxTimeoutMs: 0, minRate: 0 });
    assert.deepEqual(t.body, { timeoutMs: 10_000, maxTimeoutMs: 0, minRate: 100 });
    assert.deepEqual(t.handshake, { timeoutMs: 0, maxTimeoutMs: 0, minRate: 0 });
  } finally {
    await g.stop();
  }
  const d = await startGateway('Listen 127.0.0.1:0\n');
  try {
    assert.deepEqual(d.gateway.config.mainServer.settings.requestReadTimeouts.header, {
      timeoutMs: 20_000,
      maxTimeoutMs: 40_000,
      minRate: 500,
    });
  } finally {
    await d.stop();
  }
});

async function eventuallyNoConnections(gateway: { openConnections(): number }): Promise<void> {
  const start = Date.now();
  while (gateway.openConnections() !== 0) {
    if (Date.now() - start > 5000) throw new Error('connections still open');
    await new Promise((r) => setTimeout(r, 20));
  }
}

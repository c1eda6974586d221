// REFERENCE §4: every error status wsgate produces, with its log line, `Connection: close`, the
// backend socket released, and the process still healthy afterwards (a normal echo works).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import {
  assertClosedWith,
  assertEchoWorks,
  closed,
  connectRaw,
  deadPort,
  parseRaw,
  readToClose,
  readUntil,
  silentHandler,
  upgradeRequest,
  WS_KEY,
  wsAccept,
} from '../helpers/edges';
import {
  assertNoOpenSockets,
  eventually,
  headComplete,
  headerIn,
  openWs,
  rawExchange,
  readRequestHead,
  startEchoBackend,
  startGateway,
  startRawBackend,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';

/**
 * Runs `body` against a gateway whose config is `lines` followed by a healthy route
 * (`/echo/` → a ws echo backend), then checks the echo still works and nothing is left open.
 */
async function withGateway(lines: string, body: (g: RunningGateway, echoBackend: EchoBackend) => Promise<void>): Promise<void> {
  const backend = await startEchoBackend('healthy');
  let g: RunningGateway;
  try {
    g = await startGateway(`Listen 127.0.0.1:0\n${lines}\nProxyPass "/echo/" "ws://127.0.0.1:${backend.port}/"\n`);
  } catch (e) {
    await backend.close();
    throw e;
  }
  try {
    await body(g, backend);
    await assertEchoWorks(`ws://127.0.0.1:${g.port}/echo/after`);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('503 when the backend refuses the connection (upgrade and plain HTTP)', { timeout: 30_000 }, async () => {
  const port = await deadPort();
  await withGateway(`ProxyPass "/dead/" "ws://127.0.0.1:${port}/"\nProxyPass "/deadhttp/" "http://127.0.0.1:${port}/"`, async (g) => {
    const up = await rawExchange(g.port, upgradeRequest('/dead/ws'));
    assertClosedWith(up, 503);
    await g.waitForLog(/warn proxy request failed status=503 reason="backend unreachable: ECONNREFUSED.* path=\/dead\/ws /);
    // A ws:// route's fallback to plain HTTP, and an http:// route.
    const plain = await rawExchange(g.port, 'GET /dead/page HTTP/1.1\r\nHost: a\r\n\r\n');
    assertClosedWith(plain, 503);
    await g.waitForLog(/status=503 reason="backend unreachable: ECONNREFUSED.* path=\/dead\/page /);
    const http = await rawExchange(g.port, 'POST /deadhttp/p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello');
    assertClosedWith(http, 503);
    await g.waitForLog(/status=503 reason="backend unreachable: ECONNREFUSED.* method=POST path=\/deadhttp\/p /);
  });
});

// A connect timeout cannot be made deterministic with plain TCP on 127.0.0.0/8 (a refused port
// answers RST at once; a full accept queue depends on kernel settings). A wss:// backend that
// accepts TCP but never answers the TLS ClientHello is deterministic, and connectiontimeout=
// bounds "the TCP/TLS connect" (REFERENCE §4).
test('503 when the backend is unreachable within connectiontimeout= (TLS handshake never completes)', { timeout: 30_000 }, async () => {
  const mute = await startRawBackend((s) => {
    s.resume();
    s.once('end', () => s.end());
  });
  try {
    await withGateway(
      `SSLProxyEngine on\nProxyTimeout 30\nProxyPass "/mute/" "wss://127.0.0.1:${mute.port}/" connectiontimeout=300ms timeout=30\n` +
        `ProxyPass "/mute2/" "wss://127.0.0.1:${mute.port}/" timeout=300ms`,
      async (g) => {
        const t0 = Date.now();
        const res = await rawExchange(g.port, upgradeRequest('/mute/ws'));
        const elapsed = Date.now() - t0;
        assertClosedWith(res, 503);
        assert.ok(elapsed >= 250, `503 after ${elapsed} ms, before connectiontimeout=300ms`);
        assert.ok(elapsed < 20_000, `503 after ${elapsed} ms: timeout=30 must not apply to the connect`);
        await g.waitForLog(/status=503 reason="backend unreachable: ETIMEDOUT connect timed out after 300 ms".* path=\/mute\/ws /);
        // Without connectiontimeout=, timeout= bounds the connect too (Apache's order, research §3.2).
        const res2 = await rawExchange(g.port, upgradeRequest('/mute2/ws'));
        assertClosedWith(res2, 503);
        await g.waitForLog(/status=503 reason="backend unreachable: ETIMEDOUT connect timed out after 300 ms".* path=\/mute2\/ws /);
        // wsgate let go of the half-open backend connections.
        await eventually(() => mute.sockets.size === 0, 5000, 'backend sockets to close');
      },
    );
  } finally {
    await mute.close();
  }
});

for (const v of [
  { name: 'timeout=', lines: (p: number) => `ProxyTimeout 30\nProxyPass "/slow/" "ws://127.0.0.1:${p}/" timeout=300ms` },
  { name: 'ProxyTimeout', lines: (p: number) => `Timeout 30\nProxyTimeout 300ms\nProxyPass "/slow/" "ws://127.0.0.1:${p}/"` },
  { name: 'Timeout (fallback)', lines: (p: number) => `Timeout 300ms\nProxyPass "/slow/" "ws://127.0.0.1:${p}/"` },
]) {
  test(`504 when the backend accepts but never answers the upgrade within ${v.name}`, { timeout: 30_000 }, async () => {
    const silent = silentHandler();
    const backend = await startRawBackend(silent.onConnection);
    try {
      await withGateway(v.lines(backend.port), async (g) => {
        const t0 = Date.now();
        const res = await rawExchange(g.port, upgradeRequest('/slow/ws'));
        const elapsed = Date.now() - t0;
        assertClosedWith(res, 504);
        assert.ok(elapsed >= 250, `504 after ${elapsed} ms, before the 300 ms timeout`);
        assert.ok(elapsed < 20_000, `504 after ${elapsed} ms: the 30 s setting must not apply`);
        await g.waitForLog(/warn proxy request failed status=504 reason="no answer from backend within 300 ms".* path=\/slow\/ws /);
        // The backend did get the upgrade, and its connection was closed by wsgate.
        assert.equal(silent.heads.length, 1);
        assert.match(silent.heads[0], /^GET \/ws HTTP\/1\.1\r\n/);
        assert.match(silent.heads[0], /\r\nUpgrade: websocket(\r\n|$)/);
        await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close');
        // Plain HTTP has the same bound.
        const plain = await rawExchange(g.port, 'GET /slow/page HTTP/1.1\r\nHost: a\r\n\r\n');
        assertClosedWith(plain, 504);
        await g.waitForLog(/status=504 reason="no answer from backend within 300 ms".* path=\/slow\/page /);
      });
    } finally {
      await backend.close();
    }
  });
}

/** What a misbehaving backend answers, by request path. */
const BAD_ANSWERS: Record<string, { reply: string | null; log: RegExp; request: string }> = {
  '/wrong-token': {
    request: upgradeRequest('/bad/wrong-token'),
    reply: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`,
    log: /status=502 reason="backend switched to \\"h2c\\" but \\"websocket\\" was asked"/,
  },
  '/no-upgrade-header': {
    request: upgradeRequest('/bad/no-upgrade-header'),
    reply: `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(WS_KEY)}\r\n\r\n`,
    log: /status=502 reason="backend switched to \\"\\" but \\"websocket\\" was asked"/,
  },
  '/unasked': {
    request: 'GET /bad/unasked HTTP/1.1\r\nHost: a\r\n\r\n',
    reply: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello`,
    log: /status=502 reason="unexpected 101 \(Upgrade: websocket\) to a request that asked no upgrade"/,
  },
  '/malformed-status': {
    request: upgradeRequest('/bad/malformed-status'),
    reply: `HTTP/1.1 1O1 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    log: /status=502 reason="malformed status line from backend"/,
  },
  '/closes': {
    request: upgradeRequest('/bad/closes'),
    reply: null,
    log: /status=502 reason="backend closed the connection before answering"/,
  },
};

test('502 for a bad 101 (wrong Upgrade, no Upgrade, 101 when none asked, malformed status line, close without answer)', {
  timeout: 30_000,
}, async () => {
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ head }) => {
        const path = head.split(' ')[1];
        const a = BAD_ANSWERS[path];
        s.resume();
        s.once('end', () => s.end());
        if (a === undefined || a.reply === null) s.end();
        else s.write(a.reply, 'latin1');
      },
      () => {},
    );
  });
  try {
    await withGateway(
      `ProxyPass "/bad/unasked" "http://127.0.0.1:${backend.port}/unasked"\nProxyPass "/bad/" "ws://127.0.0.1:${backend.port}/"`,
      async (g) => {
        for (const [path, a] of Object.entries(BAD_ANSWERS)) {
          const res = await rawExchange(g.port, a.request);
          // Nothing of the backend's answer reaches the client: exactly wsgate's 502 page.
          assertClosedWith(res, 502);
          assert.ok(!res.data.includes('101'), `${path}: the 101 leaked: ${res.data.toString('latin1')}`);
          const line = await g.waitForLog(a.log);
          assert.match(line, new RegExp(` path=${escapeRe('/bad' + path)} `), line);
        }
        await eventually(() => backend.sockets.size === 0, 5000, 'backend sockets to close');
      },
    );
  } finally {
    await backend.close();
  }
});

const tooManyFields = (n: number): string => {
  let h = 'GET /echo/x HTTP/1.1\r\nHost: a\r\n';
  for (let i = 1; i < n; i++) h += `X-F${i}: ${i}\r\n`;
  return h + '\r\n';
};

for (const c of [
  { name: 'bad request line', req: 'GET /echo/x\r\nHost: a\r\n\r\n', status: 400, reason: 'malformed request line' },
  {
    name: 'bad header name',
    req: 'GET /echo/x HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n',
    status: 400,
    reason: 'malformed header name \\"Bad Name\\"',
  },
  {
    name: 'space before colon',
    req: 'GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n',
    status: 400,
    reason: 'malformed header name \\"X-A \\"',
  },
  { name: 'obs-fold', req: 'GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n', status: 400, reason: 'malformed header' },
  {
    name: 'Content-Length with Transfer-Encoding',
    req: 'POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    status: 400,
    reason: 'both Transfer-Encoding and Content-Length',
  },
  { name: 'two Host headers', req: 'GET /echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', status: 400, reason: 'more than one Host header' },
  {
    name: 'HTTP/1.1 without Host',
    req: 'GET /echo/x HTTP/1.1\r\nAccept: */*\r\n\r\n',
    status: 400,
    reason: 'HTTP/1.1 request without Host',
  },
  {
    name: 'an upgrade with a malformed header',
    req: upgradeRequest('/echo/x', 'Bad\x01Name: 1\r\n'),
    status: 400,
    reason: 'malformed header name',
  },
  {
    name: 'HTTP/2.0 in the request line',
    req: 'GET /echo/x HTTP/2.0\r\nHost: a\r\n\r\n',
    status: 505,
    reason: 'unsupported protocol version HTTP/2.0',
  },
  // One field over LimitRequestFieldSize is Apache's 400; a head over the cap made of fields within it is 431.
  {
    name: 'a field over 8190 bytes (complete)',
    req: `GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
    status: 400,
    reason: 'request header field exceeds LimitRequestFieldSize (8190)',
  },
  {
    name: 'a field over 8190 bytes (never ending)',
    req: `GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(17 * 1024)}`,
    status: 400,
    reason: 'request header field exceeds LimitRequestFieldSize (8190)',
  },
  {
    name: 'an oversize head (> 16 KiB of fields within their limit, complete)',
    req: `GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: ${'a'.repeat(6000)}\r\nX-B: ${'b'.repeat(6000)}\r\nX-C: ${'c'.repeat(6000)}\r\n\r\n`,
    status: 431,
    reason: 'request head too large',
  },
  {
    name: 'an oversize head (> 16 KiB of fields within their limit, never ending)',
    req: `GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: ${'a'.repeat(6000)}\r\nX-B: ${'b'.repeat(6000)}\r\nX-C: ${'c'.repeat(6000)}`,
    status: 431,
    reason: 'request head too large',
  },
  { name: 'too many header fields (101)', req: tooManyFields(101), status: 400, reason: 'too many header fields (LimitRequestFields)' },
]) {
  test(`${c.status} for ${c.name}, and the connection closed`, { timeout: 30_000 }, async () => {
    await withGateway('', async (g, backend) => {
      const res = await rawExchange(g.port, c.req);
      assertClosedWith(res, c.status);
      const line = await g.waitForLog(new RegExp(`warn bad request status=${c.status} reason="${escapeRe(c.reason)}`));
      assert.match(line, /client=127\.0\.0\.1/);
      assert.equal(backend.upgrades.length + backend.requests.length, 0, 'nothing reached the backend');
    });
  });
}

test('100 header fields are accepted (Apache LimitRequestFields 100)', { timeout: 30_000 }, async () => {
  const backend = await startEchoBackend('fields');
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/echo/" "http://127.0.0.1:${backend.port}/"\n`);
  try {
    const res = await rawExchange(
      g.port,
      tooManyFields(100).replace('Host: a\r\n', 'Host: a\r\nConnection: close\r\n').replace('X-F1: 1\r\n', ''),
    );
    assert.equal(res.status, 200, res.head);
    assert.equal(backend.requests.length, 1);
    assert.equal(
      backend.requests[0].rawHeaders.filter((_, i) => i % 2 === 0 && /^X-F\d+$/.test(backend.requests[0].rawHeaders[i])).length,
      98,
    );
  } finally {
    await g.stop();
    await backend.close();
  }
});

test('400 for a malformed chunked body on a proxied POST; the backend connection is dropped', { timeout: 30_000 }, async () => {
  const silent = silentHandler();
  const backend = await startRawBackend(silent.onConnection);
  try {
    await withGateway(`ProxyPass "/up/" "http://127.0.0.1:${backend.port}/"`, async (g) => {
      const client = await connectRaw(g.port);
      client.write('POST /up/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      await silent.waitHeads(1);
      client.write('zz\r\nnot hex\r\n');
      const res = parseRaw(await readToClose(client));
      assert.equal(res.status, 400, res.head);
      assert.equal(headerIn(res.head, 'connection'), 'close');
      assert.equal(res.body, '400 Bad Request\n');
      await g.waitForLog(/status=400 reason="malformed request body: malformed chunk size".* path=\/up\/x /);
      await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close');
    });
  } finally {
    await backend.close();
  }
});

test('max=1: a second concurrent tunnel gets 503 while the first is open, and is allowed after it closes', {
  timeout: 30_000,
}, async () => {
  const echoBackend = await startEchoBackend('limited');
  try {
    await withGateway(`ProxyPass "/one/" "ws://127.0.0.1:${echoBackend.port}/" max=1`, async (g) => {
      const first = await openWs(`ws://127.0.0.1:${g.port}/one/a`);
      const second = await rawExchange(g.port, upgradeRequest('/one/b'));
      assertClosedWith(second, 503);
      await g.waitForLog(/warn proxy request failed status=503 reason="max=1 connections reached".* path=\/one\/b /);
      assert.equal(echoBackend.upgrades.length, 1, 'the refused upgrade never reached the backend');
      // The first tunnel is unaffected.
      const closedFirst = once(first, 'close');
      first.send('first still works');
      const [msg] = (await once(first, 'message')) as [Buffer];
      assert.equal(msg.toString(), 'first still works');
      first.close();
      await closedFirst;
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the first tunnel to end');
      await assertEchoWorks(`ws://127.0.0.1:${g.port}/one/c`);
      assert.deepEqual(
        echoBackend.upgrades.map((u) => u.url),
        ['/a', '/c'],
      );
    });
  } finally {
    await echoBackend.close();
  }
});

test('a client that disconnects mid-handshake leaves no socket open on either side', { timeout: 30_000 }, async () => {
  const silent = silentHandler();
  const backend = await startRawBackend(silent.onConnection);
  try {
    await withGateway(`ProxyPass "/hang/" "ws://127.0.0.1:${backend.port}/"`, async (g) => {
      for (let i = 1; i <= 3; i++) {
        const client = await connectRaw(g.port);
        client.write(upgradeRequest(`/hang/${i}`));
        await silent.waitHeads(i);
        assert.equal(backend.sockets.size, 1);
        // A real disconnect (RST). A FIN alone is a half-close: see the next two tests.
        client.resetAndDestroy();
        await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close after the client left');
        await assertNoOpenSockets(g);
      }
      await g.waitForLog(/debug client went away during exchange .*path=\/hang\/3 /);
      const state = [...g.gateway.origins.all()].find((o) => o.origin.port === backend.port);
      assert.equal(state?.counters.inFlight, 0);
    });
  } finally {
    await backend.close();
  }
});

test('a client FIN during the handshake is bounded by timeout= (504) when the backend never answers', { timeout: 30_000 }, async () => {
  const silent = silentHandler();
  const backend = await startRawBackend(silent.onConnection);
  try {
    await withGateway(`ProxyPass "/hang/" "ws://127.0.0.1:${backend.port}/" timeout=300ms`, async (g) => {
      const client = await connectRaw(g.port);
      const all = readToClose(client);
      client.end(upgradeRequest('/hang/fin'));
      const res = parseRaw(await all);
      assert.equal(res.status, 504, res.head);
      await g.waitForLog(/status=504 .*path=\/hang\/fin /);
      await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close');
    });
  } finally {
    await backend.close();
  }
});

test('a client FIN during the handshake reaches the backend once the tunnel starts (half-close)', { timeout: 30_000 }, async () => {
  let backendSawEnd = false;
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ head }) => {
        const key = /\r\nSec-WebSocket-Key: (\S+)/i.exec(head)?.[1] ?? '';
        s.once('end', () => {
          backendSawEnd = true;
          // The other direction still flows after the client's FIN: a text frame "bye", then our FIN.
          s.end(Buffer.from([0x81, 0x03, 0x62, 0x79, 0x65]));
        });
        s.resume();
        // Answer only after the client's FIN has reached wsgate.
        setTimeout(
          () =>
            s.write(
              `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`,
            ),
          200,
        );
      },
      () => {},
    );
  });
  try {
    await withGateway(`ProxyPass "/hc/" "ws://127.0.0.1:${backend.port}/"`, async (g) => {
      const client = await connectRaw(g.port);
      const all = readToClose(client);
      client.end(upgradeRequest('/hc/x'));
      const data = await all;
      const res = parseRaw(data);
      assert.equal(res.status, 101, res.head);
      assert.equal(backendSawEnd, true, 'the backend saw the client FIN');
      assert.deepEqual(Buffer.from(res.body, 'latin1'), Buffer.from([0x81, 0x03, 0x62, 0x79, 0x65]));
      await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close');
    });
  } finally {
    await backend.close();
  }
});

test('garbage from the client after the 101 ends the tunnel cleanly (backend closes with 1002)', { timeout: 30_000 }, async () => {
  await withGateway('', async (g, backend) => {
    const client = await connectRaw(g.port);
    client.write(upgradeRequest('/echo/garbage'));
    const head = await readUntil(client, headComplete);
    assert.match(head.toString('latin1'), /^HTTP\/1\.1 101 /);
    const rest = head.subarray(head.indexOf('\r\n\r\n') + 4);
    // Not a valid client frame (RSV bits set, unmasked); the ws backend must reject it.
    client.write('this is not a websocket frame\r\n');
    const all = await readUntil(client, (b) => b.length >= 4, rest);
    // A close frame (FIN + opcode 8) with status 1002 (protocol error), from the backend through the tunnel.
    assert.equal(all[0], 0x88);
    assert.equal(all.readUInt16BE(2), 1002);
    client.end();
    await closed(client);
    assert.equal(backend.upgrades.length, 1);
  });
});

test('garbage from the backend after the 101 ends the tunnel cleanly (client errors out)', { timeout: 30_000 }, async () => {
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ head }) => {
        const key = /\r\nSec-WebSocket-Key: (\S+)/i.exec(head)?.[1] ?? '';
        s.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`,
        );
        s.write(Buffer.from([0x83, 0x03, 0x01, 0x02, 0x03])); // reserved opcode 3
        s.resume();
        s.on('end', () => s.end());
      },
      () => {},
    );
  });
  try {
    await withGateway(`ProxyPass "/rawws/" "ws://127.0.0.1:${backend.port}/"`, async (g) => {
      const ws = new WebSocket(`ws://127.0.0.1:${g.port}/rawws/x`);
      const [err] = (await once(ws, 'error')) as [Error];
      assert.match(err.message, /invalid opcode 3/);
      if (ws.readyState !== WebSocket.CLOSED) await once(ws, 'close');
      await eventually(() => backend.sockets.size === 0, 5000, 'backend socket to close');
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'tunnel to end');
    });
  } finally {
    await backend.close();
  }
});

test('503 with Retry-After when no balancer member is usable', { timeout: 30_000 }, async () => {
  const port = await deadPort();
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember "ws://127.0.0.1:${port}/"\n</Proxy>\nProxyPass "/pool/" "balancer://pool/"`,
    async (g) => {
      const res = await rawExchange(g.port, upgradeRequest('/pool/x'));
      assertClosedWith(res, 503);
      assert.ok(headerIn(res.head, 'retry-after') !== undefined, 'Retry-After');
    },
  );
});

// Where a message ends must be read the same way by wsgate and by whoever is behind it: request
// smuggling through chunked trailers, bad framing from a backend on a pooled connection, one
// bound for answer heads on every path, optional whitespace, Host validation, an HTTP/2 CONNECT
// with a content-length, and Apache's LimitRequest* limits — on the native front (the default),
// Node's path (WSGATE_NATIVE_FRONT=0), TLS and HTTP/2.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import { after, describe, test } from 'node:test';
import { type Answer, collect, FRONTS, FrontKit, type Front } from '../helpers/fronts';
import { h2Connect, h2Request, h2WebSocket } from '../helpers/h2';
import { eventually, headerIn, readRequestHead, startEchoBackend, startRawBackend } from '../helpers/harness';

const BOUND = { timeout: 60_000 };
const kit = new FrontKit();
const gatewayOn = kit.gatewayOn.bind(kit);
const connect = kit.connect.bind(kit);

/** Sends `payload` on a new connection through `front` and reads until the peer closes. */
async function exchange(front: Front, port: number, payload: string | Buffer, until?: (text: string) => boolean): Promise<Answer> {
  const s = await connect(front, port);
  const answer = collect(s, until);
  s.write(typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload);
  return answer;
}

/** A backend that records every byte it receives and never answers. */
async function recordingBackend(): Promise<{ port: number; received: () => string; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  const b = await startRawBackend((s) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end());
  });
  return { port: b.port, sockets: b.sockets, received: () => Buffer.concat(chunks).toString('latin1'), close: () => b.close() };
}

const SMUGGLED = 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n';

describe('request smuggling through chunked trailers (issue 15 item 1)', () => {
  for (const front of FRONTS) {
    test(`${front}: a bare LF after the last chunk is 400 and the hidden GET /admin never reaches the backend`, BOUND, async () => {
      const backend = await recordingBackend();
      // Timeout 5: before the fix the silent backend would leave the client a 504 after it.
      const g = await gatewayOn(front, `Timeout 5\nProxyPass "/admin" "!"\nProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      try {
        const direct = await exchange(front, g.port, 'GET /admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        assert.equal(direct.status, 404, 'a direct request is refused by ProxyPass !');

        const res = await exchange(front, g.port, SMUGGLED);
        assert.equal(res.status, 400, res.data);
        assert.equal(res.closed, true);
        assert.equal(headerIn(res.data.split('\r\n\r\n')[0], 'connection'), 'close');
        await g.waitForLog(/status=400 reason="malformed request body: malformed trailer"/);
        await eventually(() => backend.sockets.size === 0, 10_000, 'the backend connection to be closed');
        assert.match(backend.received(), /^POST \/x HTTP\/1\.1\r\n/);
        assert.doesNotMatch(backend.received(), /GET \/admin/);

        // The same bytes with the head (and the last chunk) in an earlier packet than the bare LF.
        const s = await connect(front, g.port);
        const answer = collect(s);
        s.write(SMUGGLED.slice(0, SMUGGLED.indexOf('\n\nGET') + 1));
        await eventually(() => backend.received().split('POST /x').length === 3, 10_000, 'the second POST head at the backend');
        s.write(SMUGGLED.slice(SMUGGLED.indexOf('\n\nGET') + 1));
        const split = await answer;
        assert.equal(split.status, 400, split.data);
        await eventually(() => backend.sockets.size === 0, 10_000, 'the backend connection to be closed');
        assert.doesNotMatch(backend.received(), /GET \/admin/);
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }

  test('a backend answer whose trailer hides a second response: the client is cut off, the pooled connection dropped', BOUND, async () => {
    let conns = 0;
    const backend = await startRawBackend((s) => {
      conns++;
      s.on('end', () => s.end());
      const serve = (): void => {
        readRequestHead(s).then(
          ({ head }) => {
            if (head.startsWith('GET /bad')) {
              s.write(
                'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled',
              );
            } else {
              s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood');
            }
            serve();
            s.resume();
          },
          () => {},
        );
      };
      serve();
    });
    const g = await gatewayOn('node', `ProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
    try {
      const bad = await exchange('node', g.port, 'GET /bad HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(bad.status, 200);
      assert.equal(bad.closed, true, 'the client connection is closed');
      assert.doesNotMatch(bad.data, /Content-Length: 8|smuggled/, 'nothing after the bad byte is relayed');
      await g.waitForLog(/proxy request aborted reason="malformed response body from backend: malformed trailer"/);
      await eventually(() => backend.sockets.size === 0, 10_000, 'the backend connection to be closed');
      const good = await exchange('node', g.port, 'GET /good HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      assert.equal(good.status, 200);
      assert.match(good.data, /\r\n\r\ngood$/);
      assert.equal(conns, 2, 'a new backend connection, not the one that sent bad framing');
    } finally {
      await g.stop();
      await backend.close();
    }
  });
});

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptFor = (key: string): string =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/** A backend answering every upgrade with a 101 whose head is ~19 KB, in one write. */
async function bigSwitchBackend(): Promise<{ port: number; close(): Promise<void> }> {
  return startRawBackend((s) => {
    readRequestHead(s).then(
      ({ head }) => {
        const key = headerIn(head, 'sec-websocket-key') ?? '';
        s.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Big: ${'b'.repeat(19 * 1024)}\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`,
        );
      },
      () => {},
    );
  });
}

describe('one rule for answer heads: over 16 KiB is 502 on every path (issue 15 item 8)', () => {
  for (const front of FRONTS) {
    test(`${front}: a complete 19 KB 101 head is 502`, BOUND, async () => {
      const backend = await bigSwitchBackend();
      const g = await gatewayOn(front, `ProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"`);
      try {
        const res = await exchange(
          front,
          g.port,
          `GET /ws/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          (t) => t.includes('\r\n\r\n'),
        );
        assert.equal(res.status, 502, res.data.slice(0, 200));
        await g.waitForLog(/status=502 reason="backend response head too large"/);
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }

  test('h2: a 19 KB 101 head behind an RFC 8441 WebSocket is 502', BOUND, async () => {
    const backend = await bigSwitchBackend();
    const g = await gatewayOn('tls', `Protocols h2 http/1.1\nH2WebSockets on\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"`);
    const session = await h2Connect(g.port, kit.certs.ca.pem);
    try {
      const r = await h2WebSocket(session, '/ws/x');
      assert.equal(r.status, 502);
      await g.waitForLog(/status=502 reason="backend response head too large"/);
    } finally {
      session.close();
      await g.stop();
      await backend.close();
    }
  });
});

describe('HTTP/2: CONNECT with a content-length, and :authority (issue 15 item 8)', () => {
  test('an extended CONNECT with content-length: 5 is 400 and never reaches the backend', BOUND, async () => {
    const backend = await startEchoBackend('h2c-l');
    const g = await gatewayOn('tls', `Protocols h2 http/1.1\nH2WebSockets on\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"`);
    const session = await h2Connect(g.port, kit.certs.ca.pem);
    try {
      const r = await h2WebSocket(session, '/ws/x', { 'content-length': '5' });
      assert.equal(r.status, 400);
      await g.waitForLog(/status=400 reason="content-length on an extended CONNECT"/);
      assert.equal(backend.upgrades.length, 0);
      // Without it, the same WebSocket works.
      const ok = await h2WebSocket(session, '/ws/y');
      assert.equal(ok.status, 200);
      ok.ws?.terminate();
    } finally {
      session.close();
      await g.stop();
      await backend.close();
    }
  });

  test('a bad :authority is 400 (a good one passes)', BOUND, async () => {
    const backend = await startEchoBackend('h2-auth');
    const g = await gatewayOn('tls', `Protocols h2 http/1.1\nProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
    const session = await h2Connect(g.port, kit.certs.ca.pem);
    try {
      for (const bad of ['a@c', '1234', 'a..b', 'a:0']) {
        const r = await h2Request(session, { ':method': 'GET', ':path': '/p', ':authority': bad });
        assert.equal(r.status, 400, bad);
      }
      const ok = await h2Request(session, { ':method': 'GET', ':path': '/p', ':authority': 'a.example:8443' });
      assert.equal(ok.status, 200);
      assert.equal(backend.requests.length, 1);
    } finally {
      session.close();
      await g.stop();
      await backend.close();
    }
  });
});

describe('optional whitespace and Host on HTTP/1.1 (issue 15 item 8)', () => {
  for (const front of ['native', 'node'] as const) {
    test(`${front}: VT, FF and NBSP around values are not whitespace; a bad Host is 400`, BOUND, async () => {
      const backend = await startEchoBackend('ows');
      const g = await gatewayOn(
        front,
        `ProxyPass "/" "http://127.0.0.1:${backend.port}/"\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"`,
      );
      try {
        for (const [req, status] of [
          ['GET /p HTTP/1.1\r\nHost: a\r\nX-A: \x0bv\r\n\r\n', 400],
          ['GET /p HTTP/1.1\r\nHost: a\r\nX-A: v\x0c\r\n\r\n', 400],
          ['POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\x0c\r\n\r\nhello', 400],
          ['POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: \xa05\r\n\r\nhello', 400],
          ['POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n', 400],
          ['GET /p HTTP/1.1\r\nHost: a/b@c\r\n\r\n', 400],
          ['GET /p HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
          ['GET /p HTTP/1.1\r\nHost: 1234\r\n\r\n', 400],
          ['GET /p HTTP/1.1\r\nHost: a.example:0\r\n\r\n', 400],
          [
            'GET /ws/x HTTP/1.1\r\nHost: a/b@c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
            400,
          ],
        ] as const) {
          const res = await exchange(front, g.port, req);
          assert.equal(res.status, status, JSON.stringify(req));
          assert.equal(res.closed, true);
        }
        assert.equal(backend.requests.length + backend.upgrades.length, 0, 'nothing reached the backend');
        const ok = await exchange(front, g.port, 'GET /p HTTP/1.1\r\nHost: A.Example.:8080\r\nX-A: \t v \t\r\nConnection: close\r\n\r\n');
        assert.equal(ok.status, 200);
        assert.deepEqual(
          backend.requests[0].rawHeaders.slice(
            backend.requests[0].rawHeaders.indexOf('X-A'),
            backend.requests[0].rawHeaders.indexOf('X-A') + 2,
          ),
          ['X-A', 'v'],
        );
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }
});

const LIMITS = 'LimitRequestLine 100\nLimitRequestFieldSize 50\nLimitRequestFields 3\nLimitRequestBody 10';

/** A request line of exactly `n` bytes. */
const lineOf = (n: number): string => `GET /${'a'.repeat(n - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
/** A `X-F: …` field line of exactly `n` bytes. */
const fieldOf = (n: number): string => `X-F: ${'f'.repeat(n - 5)}`;

describe('LimitRequestLine, LimitRequestFieldSize, LimitRequestFields, LimitRequestBody (issue 16 item 1)', () => {
  for (const front of ['native', 'node'] as const) {
    test(`${front}: each limit at its value passes, over it gets Apache's status, then the connection closes`, BOUND, async () => {
      const backend = await startEchoBackend('limits');
      const g = await gatewayOn(front, `${LIMITS}\nProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      try {
        const cases: [string, number][] = [
          [`${lineOf(100)}\r\nHost: a\r\nConnection: close\r\n\r\n`, 200],
          [`${lineOf(101)}\r\nHost: a\r\nConnection: close\r\n\r\n`, 414],
          [`GET /p HTTP/1.1\r\nHost: a\r\n${fieldOf(50)}\r\nConnection: close\r\n\r\n`, 200],
          [`GET /p HTTP/1.1\r\nHost: a\r\n${fieldOf(51)}\r\nConnection: close\r\n\r\n`, 400],
          // Repeated names are merged before the size check, as Apache does: "X-F: <20>, <30>" is 57 bytes.
          [`GET /p HTTP/1.1\r\nHost: a\r\nX-F: ${'f'.repeat(20)}\r\nX-F: ${'f'.repeat(30)}\r\n\r\n`, 400],
          [`GET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nConnection: close\r\n\r\n`, 200],
          [`GET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nConnection: close\r\n\r\n`, 400],
          ['POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789', 200],
          ['POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\n0123456789a', 413],
          [
            'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n',
            200,
          ],
          [
            'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n',
            413,
          ],
          // A chunk-size line is a line too (LimitRequestFieldSize).
          [
            `POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1;${'e'.repeat(60)}\r\nx\r\n0\r\n\r\n`,
            400,
          ],
        ];
        for (const [req, status] of cases) {
          const res = await exchange(front, g.port, req);
          assert.equal(res.status, status, req.slice(0, 120));
          assert.equal(res.closed, true);
        }
        // Within the limits: 5. A chunked body is streamed, so its head reached the backend before the
        // body was found over a limit (2 more); that backend connection was dropped at the bad chunk.
        assert.equal(backend.requests.length, 7);
        await g.waitForLog(/status=414 reason="request line exceeds LimitRequestLine \(100\)"/);
        await g.waitForLog(/status=413 reason="request body of 11 bytes exceeds LimitRequestBody \(10\)"/);

        if (front === 'node') {
          // A line over its limit is answered before the head is complete (nothing else arrives).
          // The native front hands a head to JavaScript only once it is complete or over 16 KiB.
          const s = await connect(front, g.port);
          const early = collect(s);
          s.write(`GET /p HTTP/1.1\r\nHost: a\r\n${fieldOf(60)}`);
          assert.equal((await early).status, 400);
        }
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }

  test(
    'defaults: a field of 8190 bytes passes, 8191 is 400; 100 fields pass, 101 are 400; a head over 16 KiB of small fields is 431',
    BOUND,
    async () => {
      const backend = await startEchoBackend('defaults');
      const g = await gatewayOn('native', `ProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      try {
        assert.equal(
          (await exchange('native', g.port, `GET /p HTTP/1.1\r\nHost: a\r\n${fieldOf(8190)}\r\nConnection: close\r\n\r\n`)).status,
          200,
        );
        assert.equal(
          (await exchange('native', g.port, `GET /p HTTP/1.1\r\nHost: a\r\n${fieldOf(8191)}\r\nConnection: close\r\n\r\n`)).status,
          400,
        );
        const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
        assert.equal(
          (await exchange('native', g.port, `GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${fields(98)}\r\n`)).status,
          200,
        );
        assert.equal(
          (await exchange('native', g.port, `GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${fields(99)}\r\n`)).status,
          400,
        );
        const wide = Array.from({ length: 3 }, (_, i) => `X-${i}: ${'w'.repeat(6000)}\r\n`).join('');
        assert.equal((await exchange('native', g.port, `GET /p HTTP/1.1\r\nHost: a\r\n${wide}\r\n`)).status, 431);
      } finally {
        await g.stop();
        await backend.close();
      }
    },
  );

  test(
    'h2: a pseudo-header over LimitRequestLine is 414, a field over LimitRequestFieldSize or too many fields 431, a body over LimitRequestBody 413',
    BOUND,
    async () => {
      const backend = await startEchoBackend('h2-limits');
      const g = await gatewayOn('tls', `Protocols h2 http/1.1\n${LIMITS}\nProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      const session = await h2Connect(g.port, kit.certs.ca.pem);
      const req = (headers: http2.OutgoingHttpHeaders, body: Buffer[] = []) =>
        h2Request(session, { ':method': body.length > 0 ? 'POST' : 'GET', ':authority': 'a', ...headers }, body).then((r) => r.status);
      try {
        assert.equal(await req({ ':path': `/${'a'.repeat(99)}` }), 200);
        assert.equal(await req({ ':path': `/${'a'.repeat(100)}` }), 414);
        // "x-f: " + value: 50 bytes pass, 51 do not.
        assert.equal(await req({ ':path': '/p', 'x-f': 'f'.repeat(45) }), 200);
        assert.equal(await req({ ':path': '/p', 'x-f': 'f'.repeat(46) }), 431);
        assert.equal(await req({ ':path': '/p', 'x-a': '1', 'x-b': '2', 'x-c': '3' }), 200);
        assert.equal(await req({ ':path': '/p', 'x-a': '1', 'x-b': '2', 'x-c': '3', 'x-d': '4' }), 431);
        assert.equal(await req({ ':path': '/p', 'content-length': '10' }, [Buffer.from('0123456789')]), 200);
        assert.equal(await req({ ':path': '/p', 'content-length': '11' }, [Buffer.from('0123456789a')]), 413);
        assert.equal(await req({ ':path': '/p' }, [Buffer.from('01234'), Buffer.from('56789')]), 200);
        assert.equal(await req({ ':path': '/p' }, [Buffer.from('01234'), Buffer.from('56789a')]), 413);
        // 5 within the limits, and the streamed body found too large at its second DATA frame.
        assert.equal(backend.requests.length, 6);
      } finally {
        session.close();
        await g.stop();
        await backend.close();
      }
    },
  );
});

after(() => {
  delete process.env.WSGATE_NATIVE_FRONT;
});

// Request smuggling and malformed HTTP, tried on real sockets on the native front, Node's path
// (WSGATE_NATIVE_FRONT=0) and TLS against a raw backend that records every byte: each bad
// request gets Apache's status (or a clean close) and nothing of it reaches the backend; a
// request behind an upgrade request is never read as a request; and on the answer side, a
// backend's bad framing never leaves a pooled connection out of step (the next request on the
// pool gets its own answer).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type * as net from 'node:net';
import { describe, test } from 'node:test';
import { type Answer, collect, FRONTS, FrontKit, type Front } from '../helpers/fronts';
import { eventually, headerIn, startRawBackend } from '../helpers/harness';

const BOUND = { timeout: 60_000 };
const kit = new FrontKit();
const gatewayOn = kit.gatewayOn.bind(kit);
const connect = kit.connect.bind(kit);

/** Sends `payload` and collects the answer until the peer closes (or `until` holds). */
async function exchange(front: Front, port: number, payload: string, until?: (text: string) => boolean): Promise<Answer> {
  const s = await connect(front, port);
  const done = collect(s, until);
  s.write(Buffer.from(payload, 'latin1'));
  const a = await done;
  if (!a.closed) s.destroy();
  return a;
}

/**
 * A backend that records every byte and answers each request head it reads with `200 ok`
 * (Content-Length 2), ignoring bodies: what it received is the evidence.
 */
async function recordingBackend(): Promise<{ port: number; received: () => string; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  const b = await startRawBackend((s) => {
    let text = '';
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      text += c.toString('latin1');
      if (text.includes('\r\n\r\n') && !/^POST \/p /.test(text)) {
        text = '';
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
        s.end();
      }
    });
    s.on('end', () => s.end());
  });
  return { port: b.port, sockets: b.sockets, received: () => Buffer.concat(chunks).toString('latin1'), close: () => b.close() };
}

const UPGRADE = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/**
 * [what, request bytes, Apache's status (0: closed without an answer), 'body' when the head is
 * good and the body's framing is not]. wsgate streams bodies, so for those the backend may get
 * the head and the body up to the bad byte, never that byte, and its connection is closed.
 */
const REFUSED: readonly (readonly [string, string, number, 'body'?])[] = [
  [
    'Content-Length and Transfer-Encoding',
    'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    400,
  ],
  [
    'Transfer-Encoding and Content-Length',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    400,
  ],
  ['two different Content-Lengths', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
  ['the same Content-Length twice', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400],
  ['a Content-Length list', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello', 400],
  ['a signed Content-Length', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello', 400],
  ['a hex Content-Length', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello', 400],
  ['Transfer-Encoding: chunked, gzip', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding: identity', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nhello', 400],
  ['Transfer-Encoding: gzip', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello', 400],
  [
    'chunked then another coding in a second header',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n',
    400,
  ],
  ['Transfer-Encoding: xchunked', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding with a space inside', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding on HTTP/1.0', 'POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  [
    'Transfer-Encoding with whitespace before its colon',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
    400,
  ],
  ['a negative chunk size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n', 400, 'body'],
  ['a 0x chunk size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n', 400, 'body'],
  [
    'a blank before the chunk size',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n',
    400,
    'body',
  ],
  ['junk after the chunk size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n', 400, 'body'],
  ['a chunk size past 2^48', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\nx\r\n', 400, 'body'],
  ['a chunk shorter than its size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel\r\n0\r\n\r\n', 400, 'body'],
  ['a bare LF after a chunk size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n', 400, 'body'],
  [
    'a control in a chunk extension',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n',
    400,
    'body',
  ],
  [
    'an unclosed quoted chunk extension',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="b\r\nhello\r\n0\r\n\r\n',
    400,
    'body',
  ],
  [
    'a bare LF inside a chunk extension',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n',
    400,
    'body',
  ],
  ['obs-fold', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n', 400],
  ['obs-fold of Transfer-Encoding', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n', 400],
  ['a bare LF ending a header', 'GET /p HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n', 400],
  ['a bare CR inside a header', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A: b\rX-B: c\r\n\r\n', 400],
  ['a bare LF ending the request line', 'GET /p HTTP/1.1\nHost: a\r\n\r\n', 400],
  ['a header name with a space', 'GET /p HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n', 400],
  ['a header name with a non-token character', 'GET /p HTTP/1.1\r\nHost: a\r\nX{A}: b\r\n\r\n', 400],
  ['a header without a colon', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n', 400],
  ['an empty header name', 'GET /p HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n', 400],
  ['a control character in a value', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n', 400],
  ['DEL in a value', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n', 400],
  ['a NUL in a value', 'GET /p HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n', 400],
  ['a NUL in a name', 'GET /p HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n', 400],
  ['a NUL in the target', 'GET /p\x00q HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['a NUL in the method', 'G\x00T /p HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  // The three below are well framed: the router refuses them (Apache's core: "Invalid URI in request").
  ['authority-form on GET', 'GET a:80 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 400],
  ['authority-form CONNECT', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n', 400],
  ['a target that is neither origin- nor absolute-form', 'GET p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 400],
  ['HTTP/1.1 without Host', 'GET /p HTTP/1.1\r\nX-A: b\r\n\r\n', 400],
  ['two Host headers', 'GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  ['two Host headers, the same', 'GET /p HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n', 400],
  ['HTTP/0.9', 'GET /p\r\n\r\n', 400],
  ['HTTP/2.0 in a request line', 'GET /p HTTP/2.0\r\nHost: a\r\n\r\n', 505],
  ['a lower-case version', 'GET /p http/1.1\r\nHost: a\r\n\r\n', 400],
  ['two spaces in the request line', 'GET  /p HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['a tab in the request line', 'GET\t/p HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['eleven empty lines before the request line', `${'\r\n'.repeat(11)}GET /p HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
  [
    'an upgrade request with Content-Length and Transfer-Encoding',
    `GET /ws HTTP/1.1\r\nHost: a\r\n${UPGRADE}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
];

describe('malformed requests get Apache status and never reach the backend (issue 16 item 2)', () => {
  for (const front of FRONTS) {
    test(`${front}: every malformed request is refused before the backend`, BOUND, async () => {
      const backend = await recordingBackend();
      const g = await gatewayOn(
        front,
        `ProxyPass "/ws" "ws://127.0.0.1:${backend.port}/ws"\nProxyPass "/" "http://127.0.0.1:${backend.port}/"`,
      );
      try {
        for (const [what, req, status, body] of REFUSED) {
          const seen = backend.received().length;
          const res = await exchange(front, g.port, req);
          assert.equal(res.status, status, `${what}: ${JSON.stringify(res.data.slice(0, 200))}`);
          assert.equal(res.closed, true, `${what}: the connection is closed`);
          if (status !== 0) assert.equal(headerIn(res.data.split('\r\n\r\n')[0], 'connection'), 'close', what);
          if (body === undefined) {
            assert.equal(backend.received().length, seen, `${what}: nothing reached the backend`);
            continue;
          }
          await eventually(() => backend.sockets.size === 0, 10_000, `${what}: the backend connection closed`);
          const got = backend.received().slice(seen);
          const sentBody = req.slice(req.indexOf('\r\n\r\n') + 4);
          const gotBody = got.slice(got.indexOf('\r\n\r\n') + 4);
          assert.ok(got === '' || (sentBody.startsWith(gotBody) && gotBody.length < sentBody.length), `${what}: ${JSON.stringify(got)}`);
        }
        // One log line per refused request.
        const refusals = g.logs.filter((l) => /status=(400|505)/.test(l));
        assert.equal(refusals.length, REFUSED.length, refusals.join('\n'));
        // Still serving: a good request passes.
        const at = backend.received().length;
        const ok = await exchange(front, g.port, 'GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        assert.equal(ok.status, 200);
        assert.match(backend.received().slice(at), /^GET \/p HTTP\/1\.1\r\n/);
      } finally {
        await g.stop();
        await backend.close();
      }
    });

    test(`${front}: accepted edge forms reach the backend in one reading only`, BOUND, async () => {
      const backend = await recordingBackend();
      const g = await gatewayOn(front, `ProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      try {
        // A final chunked after another coding is chunked (Apache's ap_is_chunked); forwarded as is.
        const gz = await exchange(
          front,
          g.port,
          'POST /gz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x="a;b"\r\nhello\r\n0\r\nT: v\r\n\r\n',
        );
        assert.equal(gz.status, 200, gz.data);
        assert.match(backend.received(), /\r\nTransfer-Encoding: gzip, chunked\r\n/);
        assert.ok(backend.received().endsWith('\r\n\r\n5;x="a;b"\r\nhello\r\n0\r\nT: v\r\n\r\n'), JSON.stringify(backend.received()));
        assert.doesNotMatch(backend.received(), /Content-Length/i);

        // Absolute-form: routed by its path, as Apache does with ProxyRequests Off.
        const before = backend.received().length;
        const abs = await exchange(front, g.port, 'GET http://a/abs?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        assert.equal(abs.status, 200, abs.data);
        assert.match(backend.received().slice(before), /^GET \/abs\?q HTTP\/1\.1\r\n/);

        // Up to ten empty lines before a request line are skipped, as Apache skips them.
        const at = backend.received().length;
        const blank = await exchange(front, g.port, '\r\n\r\n\r\nGET /blank HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        assert.equal(blank.status, 200, blank.data);
        assert.match(backend.received().slice(at), /^GET \/blank HTTP\/1\.1\r\n/);
      } finally {
        await g.stop();
        await backend.close();
      }
    });

    for (const answer of ['101', '200'] as const) {
      test(
        `${front}: a request pipelined behind an upgrade request is never read as a request (backend answers ${answer})`,
        BOUND,
        async () => {
          let beforeAnswer = '';
          let afterAnswer = '';
          let heads = 0;
          const backend = await startRawBackend((s) => {
            let answered = false;
            s.on('data', (c: Buffer) => {
              const t = c.toString('latin1');
              if (answered) {
                afterAnswer += t;
                return;
              }
              beforeAnswer += t;
              if (beforeAnswer.includes('\r\n\r\n')) {
                heads++;
                answered = true;
                s.write(
                  answer === '101'
                    ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n'
                    : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno',
                );
              }
            });
            s.on('end', () => s.end());
          });
          const g = await gatewayOn(front, `ProxyPass "/admin" "!"\nProxyPass "/" "ws://127.0.0.1:${backend.port}/"`);
          try {
            const hidden = 'GET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n';
            const res = await exchange(front, g.port, `GET /ws HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n${hidden}`, (t) =>
              answer === '101' ? t.includes('\r\n\r\n') : false,
            );
            assert.equal(res.status, Number(answer), res.data);
            // The pipelined bytes were not in the upgrade request the backend answered.
            assert.equal(heads, 1);
            assert.doesNotMatch(beforeAnswer, /admin/);
            assert.equal(beforeAnswer.split('\r\n\r\n').length, 2, 'exactly one head, nothing after it, before the answer');
            if (answer === '101') {
              // After the 101 they are tunnel bytes, as Apache forwards early bytes.
              await eventually(() => afterAnswer === hidden, 10_000, 'the early bytes in the tunnel');
            } else {
              // A refused upgrade closes the client connection: the hidden GET is never answered (no 404).
              assert.equal(res.closed, true);
              assert.equal((res.data.match(/HTTP\/1\.1 /g) ?? []).length, 1, res.data);
              assert.equal(afterAnswer, '');
            }
            assert.ok(!g.logs.some((l) => /admin/.test(l)), 'wsgate never read the hidden request');
          } finally {
            await g.stop();
            await backend.close();
          }
        },
      );
    }
  }
});

/** [what, the bad answer the backend gives to GET /bad]. */
const BAD_ANSWERS: readonly (readonly [string, string])[] = [
  ['Content-Length and Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nbad'],
  ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\nbad\r\n0\r\n\r\n'],
  ['a 100 with a body', 'HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\nbadHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad'],
  ['a 204 with a body', 'HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale'],
  ['a 304 with a body', 'HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale'],
  ['a 204 with a chunked body', 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstale\r\n0\r\n\r\n'],
];

describe("a backend's bad framing never desynchronises a pooled connection (issue 16 item 2)", () => {
  for (const front of FRONTS) {
    test(`${front}: after each bad answer, the next request on the pool gets its own answer`, BOUND, async () => {
      let bad = '';
      let conns = 0;
      const backend = await startRawBackend((s) => {
        conns++;
        let buf = '';
        s.on('data', (c: Buffer) => {
          buf += c.toString('latin1');
          for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
            const head = buf.slice(0, i);
            buf = buf.slice(i + 4);
            const path = /^GET (\S+)/.exec(head)?.[1] ?? '';
            s.write(path === '/bad' ? bad : `HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`);
          }
        });
        s.on('end', () => s.end());
      });
      const g = await gatewayOn(front, `ProxyPass "/" "http://127.0.0.1:${backend.port}/"`);
      try {
        for (const [what, answer] of BAD_ANSWERS) {
          bad = answer;
          // A keep-alive client: the bad answer, then its own next request on the same connection.
          const s = await connect(front, g.port);
          let got = '';
          s.on('data', (c: Buffer) => (got += c.toString('latin1')));
          const closed = once(s, 'close');
          s.write('GET /bad HTTP/1.1\r\nHost: a\r\n\r\n');
          await eventually(() => /^HTTP\/1\.1 \d{3}/.test(got) || s.destroyed, 10_000, `${what}: an answer`);
          // Whatever the first answer, nothing of "stale" is ever seen as an answer.
          if (!s.destroyed && !s.writableEnded) s.write('GET /next-on-client HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
          await closed;
          assert.doesNotMatch(got, /stale/, `${what}: ${JSON.stringify(got)}`);
          // A fresh client's request gets its own answer, whatever connection the pool gives it.
          for (const p of ['/one', '/two']) {
            const res = await exchange(front, g.port, `GET ${p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
            assert.equal(res.status, 200, `${what}: ${JSON.stringify(res.data)}`);
            assert.ok(res.data.endsWith(`\r\n\r\n${p}`), `${what}: ${p} got ${JSON.stringify(res.data)}`);
          }
        }
        assert.ok(conns >= 2, 'bad answers cost their backend connection');
      } finally {
        await g.stop();
        await backend.close();
      }
    });
  }
});

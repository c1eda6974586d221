import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_LIMITS,
  findHeadEnd,
  HeadError,
  isValidHost,
  parseRequestHead,
  parseResponseHead,
  PartialHeadCheck,
  requestHeadCap,
  trimOws,
} from '../../src/http/head';

function req(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf);
  assert.notEqual(end, -1, 'head must be complete');
  return parseRequestHead(buf, end);
}

function rejects(text: string, status: number) {
  assert.throws(
    () => req(text),
    (e: unknown) => e instanceof HeadError && e.status === status,
  );
}

test('parses a WebSocket upgrade request keeping header order and case', () => {
  const r = req(
    'GET /chat?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc\r\n\r\n',
  );
  assert.equal(r.method, 'GET');
  assert.equal(r.target, '/chat?x=1');
  assert.equal(r.host, 'a.example:8080');
  assert.equal(r.upgrade, 'WebSocket');
  assert.deepEqual(r.connectionTokens, ['keep-alive', 'upgrade']);
  assert.deepEqual(r.headers, [
    'Host',
    'a.example:8080',
    'Upgrade',
    'WebSocket',
    'Connection',
    'keep-alive, Upgrade',
    'Sec-WebSocket-Key',
    'abc',
  ]);
  assert.equal(r.versionMinor, 1);
  assert.equal(r.contentLength, -1);
  assert.equal(r.chunked, false);
});

test('finds the end of a head split across chunks', () => {
  const buf = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY');
  assert.equal(findHeadEnd(buf.subarray(0, 25)), -1);
  assert.equal(findHeadEnd(buf, 24), 27);
});

test('framing headers', () => {
  assert.equal(req('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n').contentLength, 12);
  assert.equal(req('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n').chunked, true);
  // Apache merges a repeated Content-Length into `5, 5`: 400 even when the values agree.
  assert.throws(() => req('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n'), /more than one Content-Length/);
});

test('malformed requests get 400, 431 or 505', () => {
  rejects('GET / HTTP/1.1\r\n\r\n', 400); // HTTP/1.1 without Host
  rejects('GET /\r\nHost: x\r\n\r\n', 400);
  rejects('G(T / HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nName : y\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\n folded: y\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 400);
  rejects('GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505);
  rejects('GET / FOO/1.1\r\nHost: x\r\n\r\n', 400);
  rejects('GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  const many = Array.from({ length: 101 }, (_, i) => `X-${i}: v\r\n`).join('');
  // Apache answers 400 for too many fields (LimitRequestFields), not 431.
  rejects(`GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n`, 400);
});

test('only SP and HTAB are optional whitespace around a value; VT, FF and NBSP are kept (and controls refused)', () => {
  assert.equal(trimOws(' \t a b \t'), 'a b');
  assert.equal(trimOws('\xa0a\xa0'), '\xa0a\xa0');
  // NBSP is obs-text: kept in the value, so it is not a Content-Length or a chunked coding.
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xa05\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\xa0\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nX-A: \x0bv\r\n\r\n', 400);
  rejects('GET / HTTP/1.1\r\nHost: x\r\nX-A: v\x0c\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n', 400);
  rejects('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n', 400);
  assert.deepEqual(req('GET / HTTP/1.1\r\nHost: x\r\nX-A: \t v \r\n\r\n').headers, ['Host', 'x', 'X-A', 'v']);
});

test('Host values as Apache takes them (strict fix_hostname)', () => {
  for (const ok of [
    '',
    'a',
    'a.example',
    'A.Example.:8080',
    'x_y-z.example',
    '127.0.0.1',
    '127.0.0.1:80',
    '[::1]',
    '[::1]:8443',
    '[::ffff:1.2.3.4]',
    'a.b.c.d.example',
  ]) {
    assert.equal(isValidHost(ok), true, ok);
  }
  for (const bad of [
    'a/b@c',
    'a@c',
    'a b',
    'a\\b',
    'a..b',
    'a:',
    ':80',
    'a:0',
    'a:65536',
    '1234',
    '1.2.3',
    '01.2.3.4',
    'a.1b',
    '[::1',
    '[zz]',
    '[fe80::1%1]',
    'a:b:80',
    'a,b',
    'é.example',
  ]) {
    assert.equal(isValidHost(bad), false, bad);
  }
  rejects('GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n', 400);
  rejects('GET / HTTP/1.0\r\nHost: a b\r\n\r\n', 400);
});

test('LimitRequestLine, LimitRequestFieldSize and LimitRequestFields, at and over the limit', () => {
  const limits = { line: 20, fieldSize: 10, fields: 2 };
  const parse = (t: string) => {
    const b = Buffer.from(t, 'latin1');
    return parseRequestHead(b, findHeadEnd(b), limits);
  };
  const status = (t: string) => {
    try {
      parse(t);
      return 0;
    } catch (e) {
      return (e as HeadError).status;
    }
  };
  assert.equal(status(`GET /${'a'.repeat(6)} HTTP/1.1\r\nHost: x\r\n\r\n`), 0); // 20 bytes
  assert.equal(status(`GET /${'a'.repeat(7)} HTTP/1.1\r\nHost: x\r\n\r\n`), 414);
  assert.equal(status('GET / HTTP/1.1\r\nHost: x\r\nX: 1234567\r\n\r\n'), 0); // 10 bytes
  assert.equal(status('GET / HTTP/1.1\r\nHost: x\r\nX: 12345678\r\n\r\n'), 400);
  // Repeats are merged as Apache does ("X: 1234, 56" is 11 bytes).
  assert.equal(status('GET / HTTP/1.1\r\nHost: x\r\nX: 1234\r\nx: 56\r\n\r\n'.replace('Host: x\r\n', '')), 400);
  assert.equal(status('GET / HTTP/1.0\r\nX: 1234\r\nx: 5\r\n\r\n'), 0);
  assert.equal(status('GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n'), 0); // 2 fields
  assert.equal(status('GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n'), 400);
  assert.equal(requestHeadCap(DEFAULT_LIMITS), 16386);
  assert.equal(requestHeadCap(limits), 16384);
});

test('an incomplete head is refused as soon as a line is over its limit', () => {
  const limits = { line: 20, fieldSize: 10, fields: 2 };
  const status = (t: string) => {
    const c = new PartialHeadCheck();
    try {
      // Byte by byte, as a trickling client sends it.
      for (let i = 1; i <= t.length; i++) c.check(Buffer.from(t.slice(0, i), 'latin1'), limits);
      return 0;
    } catch (e) {
      return (e as HeadError).status;
    }
  };
  assert.equal(status(`GET /${'a'.repeat(6)} HTTP/1.1\r`), 0);
  assert.equal(status(`GET /${'a'.repeat(30)}`), 414);
  assert.equal(status('GET / HTTP/1.1\r\nX: 1234567\r\n'), 0);
  assert.equal(status('GET / HTTP/1.1\r\nX: 12345678'), 400);
  assert.equal(status('GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC'), 400);
});

test('a reason phrase with a control character is a malformed answer (502)', () => {
  const bad = Buffer.from('HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n', 'latin1');
  assert.throws(
    () => parseResponseHead(bad, findHeadEnd(bad)),
    (e: unknown) => e instanceof HeadError && e.status === 502,
  );
});

test('HTTP/1.0 without Host is accepted', () => {
  const r = req('GET / HTTP/1.0\r\n\r\n');
  assert.equal(r.versionMinor, 0);
  assert.equal(r.host, undefined);
});

test('parses response heads, including an empty reason phrase', () => {
  const text =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
  const buf = Buffer.from(text);
  const r = parseResponseHead(buf, findHeadEnd(buf));
  assert.equal(r.status, 101);
  assert.equal(r.reason, 'Switching Protocols');
  assert.equal(r.upgrade, 'websocket');
  const b2 = Buffer.from('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n');
  assert.equal(parseResponseHead(b2, findHeadEnd(b2)).reason, '');
  const bad = Buffer.from('HTTP/1.1 2000 OK\r\n\r\n');
  assert.throws(
    () => parseResponseHead(bad, findHeadEnd(bad)),
    (e: unknown) => e instanceof HeadError && e.status === 502,
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findHeadEnd, HeadError, parseRequestHead, parseResponseHead } from '../../src/http/head';

function req(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf);
  assert.notEqual(end, -1, 'head must be complete');
  return parseRequestHead(buf, end);
}

function rejects(text: string, status: number) {
  assert.throws(() => req(text), (e: unknown) => e instanceof HeadError && e.status === status);
}

test('parses a WebSocket upgrade request keeping header order and case', () => {
  const r = req('GET /chat?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc\r\n\r\n');
  assert.equal(r.method, 'GET');
  assert.equal(r.target, '/chat?x=1');
  assert.equal(r.host, 'a.example:8080');
  assert.equal(r.upgrade, 'WebSocket');
  assert.deepEqual(r.connectionTokens, ['keep-alive', 'upgrade']);
  assert.deepEqual(r.headers, ['Host', 'a.example:8080', 'Upgrade', 'WebSocket', 'Connection', 'keep-alive, Upgrade', 'Sec-WebSocket-Key', 'abc']);
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
  assert.equal(req('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n').contentLength, 5);
});

test('malformed requests get 400, 431, 501 or 505', () => {
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
  rejects('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501);
  rejects('GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505);
  rejects('GET / FOO/1.1\r\nHost: x\r\n\r\n', 400);
  rejects('GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  const many = Array.from({ length: 101 }, (_, i) => `X-${i}: v\r\n`).join('');
  rejects(`GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n`, 431);
});

test('HTTP/1.0 without Host is accepted', () => {
  const r = req('GET / HTTP/1.0\r\n\r\n');
  assert.equal(r.versionMinor, 0);
  assert.equal(r.host, undefined);
});

test('parses response heads, including an empty reason phrase', () => {
  const text = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
  const buf = Buffer.from(text);
  const r = parseResponseHead(buf, findHeadEnd(buf));
  assert.equal(r.status, 101);
  assert.equal(r.reason, 'Switching Protocols');
  assert.equal(r.upgrade, 'websocket');
  const b2 = Buffer.from('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n');
  assert.equal(parseResponseHead(b2, findHeadEnd(b2)).reason, '');
  const bad = Buffer.from('HTTP/1.1 2000 OK\r\n\r\n');
  assert.throws(() => parseResponseHead(bad, findHeadEnd(bad)), (e: unknown) => e instanceof HeadError && e.status === 502);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyError, BodyFramer, Framing, requestFraming, responseFraming } from '../../src/http/body';

/** Feeds `data` to a framer in pieces of `step` bytes; returns how many bytes it took. */
function feed(f: BodyFramer, data: Buffer, step: number): number {
  let taken = 0;
  for (let i = 0; i < data.length && !f.done; i += step) {
    const end = Math.min(i + step, data.length);
    const n = f.consume(data, i, end);
    taken += n;
    if (n < end - i) break;
  }
  return taken;
}

const chunked = Buffer.from('5;ext=1\r\nhello\r\n1A\r\n' + 'x'.repeat(26) + '\r\n0\r\nTrailer: t\r\n\r\nNEXT');

test('chunked body ends exactly after its trailer, whatever the split', () => {
  for (const step of [1, 2, 3, 7, 1000]) {
    const f = new BodyFramer(Framing.Chunked);
    assert.equal(feed(f, chunked, step), chunked.length - 4, `step ${step}`);
    assert.equal(f.done, true);
  }
});

test('chunked body without trailer', () => {
  const b = Buffer.from('3\r\nabc\r\n0\r\n\r\nGET');
  const f = new BodyFramer(Framing.Chunked);
  assert.equal(f.consume(b, 0, b.length), b.length - 3);
  assert.equal(f.done, true);
});

test('malformed chunked framing throws', () => {
  for (const bad of ['zz\r\n', '3\r\nabcX\r\n', '3\nabc', '3\r\nabc\r\n0\r\n\rX']) {
    const f = new BodyFramer(Framing.Chunked);
    const b = Buffer.from(bad);
    assert.throws(() => f.consume(b, 0, b.length), BodyError, bad);
  }
});

test('Content-Length body takes exactly its length', () => {
  const f = requestFraming(false, 10);
  const b = Buffer.from('0123456789GET / ');
  assert.equal(feed(f, b, 4), 10);
  assert.equal(f.done, true);
});

test('framing rules for requests and responses', () => {
  assert.equal(requestFraming(false, -1).done, true);
  assert.equal(requestFraming(false, 0).done, true);
  assert.equal(responseFraming('HEAD', 200, false, 100).done, true);
  assert.equal(responseFraming('GET', 204, false, -1).done, true);
  assert.equal(responseFraming('GET', 304, false, -1).done, true);
  assert.equal(responseFraming('GET', 200, false, -1).framing, Framing.UntilClose);
  assert.equal(responseFraming('GET', 200, true, -1).framing, Framing.Chunked);
});

/** The status a chunked body gets (0 when it is accepted whole), fed one byte at a time. */
function chunkedStatus(text: string, limits?: { lineSize: number; trailerFields: number; maxBody: number }): number {
  const f = new BodyFramer(Framing.Chunked, 0, limits);
  const b = Buffer.from(text, 'latin1');
  try {
    for (let i = 0; i < b.length; i++) f.consume(b, i, i + 1);
    return f.done ? 0 : -1;
  } catch (e) {
    return (e as BodyError).status;
  }
}

test('chunk-size lines, extensions and trailers: only CRLF ends a line, and no control is taken', () => {
  for (const ok of [
    '5\r\nhello\r\n0\r\n\r\n',
    '000005\r\nhello\r\n0\r\n\r\n',
    '5 \t ;a=b\r\nhello\r\n0\r\n\r\n',
    '5;a="x;\\"y"; b\r\nhello\r\n0;z\r\nT: v\r\nU:\r\n\r\n',
    'A\r\n0123456789\r\n0\r\nX-T: \xa0ok\xa0\r\n\r\n',
  ]) {
    assert.equal(chunkedStatus(ok), 0, JSON.stringify(ok));
  }
  for (const bad of [
    '0\r\n\nGET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n', // the smuggling shape: a bare LF ends nothing
    '0\r\nX: a\nGET / HTTP/1.1\r\n\r\n',
    '0\r\nX: a\rb\r\n\r\n',
    '0\r\nX: a\x00\r\n\r\n',
    '0\r\nX: a\x0b\r\n\r\n',
    '0\r\n folded: x\r\n\r\n',
    '0\r\nBad Name: x\r\n\r\n',
    '0\r\n: x\r\n\r\n',
    '0\r\n\r\r\n',
    '5\nhello\r\n0\r\n\r\n',
    '5\rhello\r\n0\r\n\r\n',
    ' 5\r\nhello\r\n0\r\n\r\n',
    '+5\r\nhello\r\n0\r\n\r\n',
    '0x5\r\nhello\r\n0\r\n\r\n',
    '5 6\r\nhello\r\n0\r\n\r\n',
    '5' + ' '.repeat(11) + '\r\nhello\r\n0\r\n\r\n',
    '5;a\x00\r\nhello\r\n0\r\n\r\n',
    '5;a\nb\r\nhello\r\n0\r\n\r\n',
    '5;a="x\r\nhello"\r\nhello\r\n0\r\n\r\n',
    '5;a=\x7f\r\nhello\r\n0\r\n\r\n',
    '1000000000000\r\n', // 13 significant hex digits
    '5\r\nhello\n0\r\n\r\n',
  ]) {
    assert.equal(chunkedStatus(bad), 400, JSON.stringify(bad));
  }
});

test('chunked limits: line size, trailer count, and the payload (413)', () => {
  const limits = { lineSize: 10, trailerFields: 1, maxBody: 8 };
  assert.equal(chunkedStatus('5;abcdefgh\r\nhello\r\n0\r\n\r\n', limits), 0); // a 10-byte line
  assert.equal(chunkedStatus('5;abcdefghi\r\nhello\r\n0\r\n\r\n', limits), 400);
  assert.equal(chunkedStatus('0\r\nA: 1234567\r\n\r\n', limits), 0); // a 10-byte trailer line
  assert.equal(chunkedStatus('0\r\nA: 12345678\r\n\r\n', limits), 400);
  assert.equal(chunkedStatus('0\r\nA: 1\r\nB: 2\r\n\r\n', limits), 400);
  assert.equal(chunkedStatus('5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n', limits), 0); // 8 bytes
  assert.equal(chunkedStatus('5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\n', limits), 413);
});

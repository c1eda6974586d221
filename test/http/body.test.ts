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

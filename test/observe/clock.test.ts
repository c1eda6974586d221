// The ticks that records and tunnels keep their timestamps as: exact both ways, 0 stays "not yet",
// and small integers in the range a process lives in most of the time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { small, ticksNow, toEpochMs, toTicks } from '../../src/observe/clock';
import { RequestRecord } from '../../src/proxy/record';

test('ticks turn back into the same epoch milliseconds; 0 stays 0', () => {
  const now = Date.now();
  for (const ms of [now, now + 1, now - 5000, now + 86_400_000 * 30, 1_000]) assert.equal(toEpochMs(toTicks(ms)), ms);
  assert.equal(toTicks(0), 0);
  assert.equal(toEpochMs(0), 0);
  const t = ticksNow();
  assert.ok(t > 0 && Number.isInteger(t));
  assert.ok(Math.abs(toEpochMs(t) - Date.now()) < 1000);
});

test('small() keeps the value and makes a small integer of it when it fits in 31 bits', () => {
  for (const n of [0, 1, 0x3fffffff, 0x40000000, 2 ** 40, -1]) assert.equal(small(n), n);
  // 2^30 + a fraction-free double: unchanged value either way.
  assert.equal(small(1.5e9), 1.5e9);
});

test('a request record reads back the epoch times it was given and stamped with', () => {
  const listen = { host: '127.0.0.1', port: 80, protocol: 'http' } as never;
  // Not before the clock module loaded: ticks count from then, and a time just before it reads back as 0, "not yet".
  const accepted = Date.now();
  const rec = new RequestRecord(
    { clientIp: '10.0.0.1', clientPort: 1, listen, tls: false, alpn: undefined, protocol: 'http/1.1' },
    { method: 'GET', target: '/', upgrade: 'websocket' },
    accepted,
    accepted + 5,
  );
  assert.equal(rec.acceptedAt, accepted);
  assert.equal(rec.headAt, accepted + 5);
  assert.equal(rec.connectedAt, 0);
  rec.connectedAt = accepted + 7;
  rec.answeredAt = accepted + 9;
  rec.tunnelAt = accepted + 10;
  assert.deepEqual([rec.connectedAt, rec.answeredAt, rec.tunnelAt, rec.finishedAt], [accepted + 7, accepted + 9, accepted + 10, 0]);
  rec.end({ kind: 'tunnel' });
  assert.equal(rec.finishedAt, 0, 'a tunnel keeps its record open');
  assert.equal(rec.outcome?.kind, 'tunnel');
  assert.equal(rec.listener, '127.0.0.1:80');
  const other = new RequestRecord(
    { clientIp: '10.0.0.2', clientPort: 2, listen, tls: false, alpn: undefined, protocol: 'http/1.1' },
    { method: 'POST', target: '/x', upgrade: undefined },
    Date.now(),
  );
  other.end({ kind: 'answered', status: 204 });
  assert.ok(Math.abs(other.finishedAt - Date.now()) < 1000);
  assert.equal(other.status, 204);
});

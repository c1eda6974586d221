// The numbers C++ and TypeScript share (front events, close reasons, limits) are defined once in
// the addon and exported as `contract`; the loader refuses an addon that disagrees. This test
// fails when either side changes one without the other.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_HEAD_BYTES } from '../../src/http/head';
import { contractDrift, nativeEngine, type NativeContract } from '../../src/tunnel/native';

const engine = nativeEngine();

test('the addon and the TypeScript side agree on every shared number', {
  skip: engine === undefined && 'no native engine in this run',
}, () => {
  const c = engine!.contract;
  assert.deepEqual(contractDrift(c, MAX_HEAD_BYTES), []);
  assert.equal(c.limits.maxHead, MAX_HEAD_BYTES + 4);
  assert.ok(c.limits.maxUnreadHeads >= 64, 'at least 64 connections may be reading a head');
});

test('a drift is named: event numbers, reasons and limits', { skip: engine === undefined && 'no native engine in this run' }, () => {
  const c = engine!.contract;
  const moved: NativeContract = {
    ...c,
    events: { ...c.events, answer: 9, extra: 10 },
    reasons: [...c.reasons].reverse(),
    wsViolations: c.wsViolations.slice(1),
    limits: { ...c.limits, maxHead: 1, wsEvent: 7, pingPayload: 4 },
  };
  const drift = contractDrift(moved, MAX_HEAD_BYTES).join('\n');
  assert.match(drift, /front event "answer" is 9 in C\+\+, 3 in TypeScript/);
  assert.match(drift, /front event "extra" \(10\) is unknown to TypeScript/);
  assert.match(drift, /close reasons are \[ping-timeout, fin-timeout, /);
  assert.match(drift, /the head limit is 1 in C\+\+/);
  assert.match(drift, /WebSocket violations are \[unmasked client frame, /);
  assert.match(drift, /the WebSocket events are 7\/101\/103 in C\+\+, 100\/101\/103 in TypeScript/);
  assert.match(drift, /the ping payload is 4 bytes in C\+\+, 8 in TypeScript/);
  assert.deepEqual(contractDrift(undefined, MAX_HEAD_BYTES), ['the addon exports no contract']);
});

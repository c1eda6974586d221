// Backend counters (src/upstream/counters.ts) and the registries that keep them by key: a reloaded
// config finds the counters of the previous one; prune(config) drops those of backends gone from
// it, once nothing holds them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendCounters, connectFailureClass } from '../../src/upstream/counters';
import { BalancerRegistry, configMembers } from '../../src/upstream/balancer/state';
import { OriginRegistry } from '../../src/upstream/origins';
import { load } from '../config/helpers';

const lines = (...l: string[]): string => l.join('\n') + '\n';

test('max= is full at busy >= max (tunnels and requests alike); 0 is no limit; a slot moves from in flight to an open tunnel', () => {
  const c = new BackendCounters();
  assert.equal(c.full(0), false);
  c.claim();
  assert.equal(c.full(1), true);
  assert.equal(c.full(2), false);
  c.tunnelOpened();
  assert.deepEqual([c.inFlight, c.openTunnels, c.busy, c.requests, c.tunnels], [0, 1, 1, 1, 1]);
  assert.equal(c.full(1), true);
  c.tunnelClosed();
  assert.equal(c.full(1), false);
  assert.equal(c.idle, true);
  assert.equal(connectFailureClass('ECONNREFUSED'), 'refused');
  assert.equal(connectFailureClass('ETIMEDOUT'), 'connectTimeout');
  assert.equal(connectFailureClass('EHOSTUNREACH'), 'connect');
  assert.equal(connectFailureClass(undefined), 'connect');
});

test('a reloaded config finds the counters by key; prune(config) drops backends gone from it, and keeps busy ones until they are idle', () => {
  // A balancer reached only through RewriteRule [P], in both configs.
  const rewritten = [
    'RewriteEngine On',
    'RewriteRule ^/rw/(.*) balancer://rw/$1 [P]',
    '<Proxy balancer://rw>',
    '  BalancerMember http://127.0.0.1:1006',
    '</Proxy>',
  ];
  const before = load({
    'wsgate.conf': lines(
      'Listen 0',
      '<Proxy balancer://pool>',
      '  BalancerMember http://127.0.0.1:1001',
      '  BalancerMember http://127.0.0.1:1002',
      '</Proxy>',
      'ProxyPass /lb/ balancer://pool/',
      'ProxyPass /c/ http://127.0.0.1:1003/',
      'ProxyPass /e/ http://127.0.0.1:1005/',
      ...rewritten,
    ),
  }).config;
  const after = load({
    'wsgate.conf': lines(
      'Listen 0',
      '<Proxy balancer://pool>',
      '  BalancerMember http://127.0.0.1:1001',
      '</Proxy>',
      'ProxyPass /lb/ balancer://pool/',
      'ProxyPass /d/ http://127.0.0.1:1004/',
      ...rewritten,
    ),
  }).config;
  // A balancer reached only through RewriteRule [P] is in the config's members too.
  assert.deepEqual([...configMembers(before).keys()].sort(), [
    'balancer://pool|http://127.0.0.1:1001',
    'balancer://pool|http://127.0.0.1:1002',
    'balancer://rw|http://127.0.0.1:1006',
  ]);

  const members = new BalancerRegistry();
  const origins = new OriginRegistry();
  const pool = before.mainServer.routes.find((r) => r.balancer !== undefined)!.balancer!.balancer;
  const [m1, m2] = pool.members as [(typeof pool.members)[0], (typeof pool.members)[0]];
  const s1 = members.state(m1, 0);
  s1.counters.bytesDown = 1234;
  members.state(m2, 0).counters.claim(); // a request still in flight on the member that goes away
  for (const o of before.origins) origins.get(o).counters.bytesUp = 1;
  origins.get(before.origins.find((o) => o.key === 'http://127.0.0.1:1005')!).counters.claim();

  members.prune(after);
  origins.prune(after);
  const m1After = after.mainServer.routes.find((r) => r.balancer !== undefined)!.balancer!.balancer.members[0]!;
  assert.equal(members.state(m1After, 0), s1, 'the same state object under the same key');
  assert.equal(s1.counters.bytesDown, 1234);
  assert.ok(members.peek(m2.key) !== undefined, 'busy: kept until idle');
  assert.ok(origins.peek('http://127.0.0.1:1001') !== undefined, 'a member origin still in the config');
  assert.equal(origins.peek('http://127.0.0.1:1003'), undefined, 'an idle origin gone from the config');
  assert.ok(origins.peek('http://127.0.0.1:1005') !== undefined, 'busy: kept until idle');

  members.peek(m2.key)!.counters.release();
  origins.peek('http://127.0.0.1:1005')!.counters.release();
  members.prune(after);
  origins.prune(after);
  assert.equal(members.peek(m2.key), undefined);
  assert.equal(origins.peek('http://127.0.0.1:1005'), undefined);
  assert.ok(members.peek(m1.key) !== undefined);
});

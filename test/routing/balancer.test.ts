// Routing of balancer:// rules (router.ts takeBalancer): which requests a balancer rule takes,
// in which mode, and the request-target below the balancer URL; the member's path in front of it
// (session.ts memberPath).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VirtualHost } from '../../src/config/model';
import { routeRequest, type RouteResult } from '../../src/routing/router';
import { memberPath } from '../../src/upstream/balancer/session';
import { lines, load } from '../config/helpers';

function server(...body: string[]): VirtualHost {
  return load({ 'wsgate.conf': lines('Listen 0', ...body) }).config.mainServer;
}

function go(vh: VirtualHost, target: string, upgrade?: string): RouteResult {
  return routeRequest(vh, { method: 'GET', target, headers: [], ...(upgrade !== undefined ? { upgrade } : {}) });
}

const WS_POOL = ['<Proxy balancer://ws>', 'BalancerMember ws://a:1/app', 'BalancerMember ws://b:1', '</Proxy>'];
const MIXED = ['<Proxy balancer://mixed>', 'BalancerMember http://a:1', 'BalancerMember http://b:1 upgrade=websocket', '</Proxy>'];

test('a ws:// balancer takes upgrades; the path below the balancer URL, query kept, canonicalised', () => {
  const vh = server(...WS_POOL, 'ProxyPass /lb/ balancer://ws/sub/');
  const r = go(vh, '/lb/a%20b/c?x=1', 'websocket');
  assert.equal(r.kind, 'balance');
  assert.ok(r.kind === 'balance');
  assert.equal(r.mode, 'upgrade');
  assert.equal(r.upgradeValue, 'websocket');
  assert.equal(r.path, '/sub/a%20b/c?x=1');
  assert.equal(r.balancer.name, 'ws');
  const [a, b] = r.balancer.members;
  assert.equal(memberPath(a!, r.path), '/app/sub/a%20b/c?x=1');
  assert.equal(memberPath(b!, r.path), '/sub/a%20b/c?x=1');
});

test('a plain request to a ws://-only balancer goes on to the next rule, else falls back to HTTP (or 404 with fallback Off)', () => {
  const next = server(...WS_POOL, 'ProxyPass /lb/ balancer://ws/', 'ProxyPass /lb/ http://h:1/');
  const r1 = go(next, '/lb/x');
  assert.equal(r1.kind === 'proxy' && r1.backend.url, 'http://h:1/');
  const fallback = go(server(...WS_POOL, 'ProxyPass /lb/ balancer://ws/'), '/lb/x');
  assert.equal(fallback.kind === 'balance' && fallback.mode, 'http');
  const off = go(server(...WS_POOL, 'ProxyWebsocketFallbackToProxyHttp Off', 'ProxyPass /lb/ balancer://ws/'), '/lb/x');
  assert.equal(off.kind === 'local' && off.status, 404);
});

test('a mixed balancer: upgrades when one member accepts them, plain requests through its http:// members', () => {
  const vh = server(...MIXED, 'ProxyPass / balancer://mixed/');
  const up = go(vh, '/x', 'WebSocket');
  assert.ok(up.kind === 'balance' && up.mode === 'upgrade' && up.upgradeValue === 'WebSocket');
  const plain = go(vh, '/x');
  assert.ok(plain.kind === 'balance' && plain.mode === 'http');
  const other = go(vh, '/x', 'h2c');
  assert.ok(other.kind === 'balance' && other.mode === 'http', 'an upgrade no member accepts is served as plain HTTP');
});

test('ProxyPassMatch to a balancer substitutes $N in the balancer URL path', () => {
  const vh = server(...WS_POOL, 'ProxyPassMatch ^/v(\\d+)/(.*)$ balancer://ws/api/v$1/$2');
  const r = go(vh, '/v2/chat?room=1', 'websocket');
  assert.ok(r.kind === 'balance');
  assert.equal(r.path, '/api/v2/chat?room=1');
});

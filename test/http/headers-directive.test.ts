// `Header` rules applied to response fields (src/http/headers-directive.ts): the actions, env=
// conditions, %{VAR}e / %{Name}i formatting, always vs onsuccess, and the BALANCER_* environment a
// balancer election sets (upstream/balancer/session.ts) feeding Socket.IO's Set-Cookie rule.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeaderRule } from '../../src/config/headers';
import { applyHeaderRules } from '../../src/http/headers-directive';
import { BalancerSession } from '../../src/upstream/balancer/session';
import { BalancerRegistry } from '../../src/upstream/balancer/state';
import { lines, load } from '../config/helpers';

function rules(...headerLines: string[]): readonly HeaderRule[] {
  return load({ 'wsgate.conf': lines('Listen 0', ...headerLines) }).config.mainServer.headerRules ?? [];
}

const SOCKET_IO_RULE = 'Header add Set-Cookie "SERVERID=sticky.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED';

test('add, set, append, merge, setifempty and unset act on the fields in order, names without case', () => {
  const r = rules(
    'Header add Set-Cookie "b=2"',
    'Header set x-one "1"',
    'Header append Vary Cookie',
    'Header merge Cache-Control no-store',
    'Header merge Cache-Control private',
    'Header setifempty X-Kept new',
    'Header setifempty X-New new',
    'Header unset Server',
    'Header set X-Pct "100%% %{X-Req}i %{Nope}i"',
  );
  const out = applyHeaderRules(
    r,
    ['Set-Cookie', 'a=1', 'X-One', 'old', 'Vary', 'Accept', 'Cache-Control', 'private', 'X-Kept', 'old', 'Server', 'be', 'X-ONE', 'old2'],
    new Map(),
    ['X-Req', 'r1'],
    true,
  );
  assert.deepEqual(out, [
    'Set-Cookie',
    'a=1',
    'Vary',
    'Accept, Cookie',
    'Cache-Control',
    'private, no-store',
    'X-Kept',
    'old',
    'Set-Cookie',
    'b=2',
    'x-one',
    '1',
    'X-New',
    'new',
    'X-Pct',
    '100% r1 (null)',
  ]);
});

test('env=VAR applies when VAR is set (even empty), env=!VAR when it is not; %{VAR}e of an unset VAR is (null)', () => {
  const r = rules('Header add X-Set "%{A}e" env=A', 'Header add X-Unset "%{B}e" env=!B', 'Header add X-Never y env=B');
  assert.deepEqual(applyHeaderRules(r, [], new Map([['A', '']]), [], true), ['X-Set', '', 'X-Unset', '(null)']);
  assert.deepEqual(applyHeaderRules(r, [], new Map([['B', 'b']]), [], true), ['X-Never', 'y']);
});

test("onsuccess rules touch relayed responses only; always rules also wsgate's own", () => {
  const r = rules('Header set X-Plain 1', 'Header always set X-Always 1', 'Header onsuccess set X-Success 1');
  assert.deepEqual(applyHeaderRules(r, [], new Map(), [], true), ['X-Plain', '1', 'X-Always', '1', 'X-Success', '1']);
  assert.deepEqual(applyHeaderRules(r, ['Retry-After', '5'], new Map(), [], false), ['Retry-After', '5', 'X-Always', '1']);
});

test("BALANCER_* from an election drive Socket.IO's rule: a cookie when the route changes, none when the session keeps it", () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      SOCKET_IO_RULE,
      '<Proxy balancer://nodes>',
      '  BalancerMember http://127.0.0.1:1 route=app01',
      '  BalancerMember http://127.0.0.1:2 route=app02',
      '  ProxySet stickysession=SERVERID',
      '</Proxy>',
      'ProxyPass / balancer://nodes/',
    ),
  });
  const balancer = config.mainServer.routes[0]!.balancer!.balancer;
  const rule = config.mainServer.headerRules!;
  const registry = new BalancerRegistry();
  const elect = (headers: string[], path = '/'): { env: ReadonlyMap<string, string>; cookie: string[] } => {
    const s = new BalancerSession(registry, balancer, path, undefined, headers);
    const e = s.next();
    assert.ok(!('reason' in e));
    e.counters.release(); // the request ends
    return { env: new Map(s.env), cookie: applyHeaderRules(rule, [], s.env, headers, true) };
  };

  const first = elect([]);
  assert.equal(first.env.get('BALANCER_NAME'), 'balancer://nodes');
  assert.equal(first.env.get('BALANCER_WORKER_NAME'), 'http://127.0.0.1:1');
  assert.equal(first.env.get('BALANCER_WORKER_ROUTE'), 'app01');
  assert.equal(first.env.get('BALANCER_ROUTE_CHANGED'), '1', 'no route in the request: changed');
  assert.equal(first.env.has('BALANCER_SESSION_ROUTE'), false);
  assert.deepEqual(first.cookie, ['Set-Cookie', 'SERVERID=sticky.app01; path=/']);

  const kept = elect(['Cookie', 'io=x; SERVERID=sticky.app02']);
  assert.equal(kept.env.get('BALANCER_WORKER_ROUTE'), 'app02');
  assert.equal(kept.env.get('BALANCER_SESSION_STICKY'), 'SERVERID');
  assert.equal(kept.env.get('BALANCER_SESSION_ROUTE'), 'app02');
  assert.equal(kept.env.has('BALANCER_ROUTE_CHANGED'), false);
  assert.deepEqual(kept.cookie, [], 'the session keeps its member: no new cookie');

  const viaUrl = elect([], '/x?SERVERID=s.app01');
  assert.equal(viaUrl.env.get('BALANCER_SESSION_STICKY'), 'SERVERID');
  assert.equal(viaUrl.env.get('BALANCER_WORKER_ROUTE'), 'app01');

  const unknown = elect(['Cookie', 'SERVERID=sticky.gone']);
  assert.equal(unknown.env.get('BALANCER_SESSION_ROUTE'), 'gone');
  assert.equal(unknown.env.get('BALANCER_ROUTE_CHANGED'), '1', 'an unknown route: another member, changed');
  assert.match(unknown.cookie[1]!, /^SERVERID=sticky\.app0[12]; path=\/$/);
});

test('BALANCER_ROUTE_CHANGED after a redirect= to another route; not set by a balancer without stickiness', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      '<Proxy balancer://s>',
      '  BalancerMember ws://127.0.0.1:1 route=a redirect=b status=+D',
      '  BalancerMember ws://127.0.0.1:2 route=b',
      '  ProxySet stickysession=ROUTEID',
      '</Proxy>',
      '<Proxy balancer://plain>',
      '  BalancerMember ws://127.0.0.1:3 route=p',
      '</Proxy>',
      'ProxyPass /s/ balancer://s/',
      'ProxyPass /p/ balancer://plain/',
    ),
  });
  const registry = new BalancerRegistry();
  const env = (i: number, headers: string[]): Map<string, string> => {
    const s = new BalancerSession(registry, config.mainServer.routes[i]!.balancer!.balancer, '/', undefined, headers);
    const e = s.next();
    assert.ok(!('reason' in e));
    e.counters.release(); // the request ends
    return new Map(s.env);
  };
  const redirected = env(0, ['Cookie', 'ROUTEID=.a']);
  assert.equal(redirected.get('BALANCER_WORKER_ROUTE'), 'b');
  assert.equal(redirected.get('BALANCER_SESSION_ROUTE'), 'a');
  assert.equal(redirected.get('BALANCER_ROUTE_CHANGED'), '1');
  const plain = env(1, []);
  assert.equal(plain.get('BALANCER_WORKER_ROUTE'), 'p');
  assert.equal(plain.has('BALANCER_ROUTE_CHANGED'), false);
});

// <Proxy balancer://…>, BalancerMember, ProxySet on balancers, balancer ProxyPass lines
// (research/apache-httpd.md §1c, §1d, §5): the model they load into, and their errors at file:line.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Route } from '../../src/config/model';
import { expectError, lines, load } from './helpers';

const L = 'Listen 0';

function only(routes: readonly Route[]): NonNullable<Route['balancer']> {
  const b = routes[0]?.balancer;
  assert.ok(b, 'the route has a balancer target');
  return b;
}

test('a balancer with members, member params, ProxySet inside and outside, and a ProxyPass to it', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      'ProxyTimeout 7',
      '<Proxy "balancer://Pool">',
      '  BalancerMember "ws://127.0.0.1:9001/app" loadfactor=2.5 lbset=1 route=a retry=5 max=10 connectiontimeout=2 keepalive=On',
      '  BalancerMember http://127.0.0.1:9002 upgrade=websocket status=+H route=b timeout=3',
      '  BalancerMember ws://h3:9003 status=+D-D+S+N+I+E',
      '  ProxySet lbmethod=bybusyness maxattempts=1',
      '</Proxy>',
      'ProxySet balancer://pool forcerecovery=Off',
      'ProxyPass /chat/ balancer://pool/ nocanon',
    ),
  });
  const t = only(config.mainServer.routes);
  assert.equal(t.url, 'balancer://pool/');
  assert.equal(t.path, '/');
  assert.equal(t.nocanon, true);
  const b = t.balancer;
  assert.equal(b.name, 'pool');
  assert.equal(b.method, 'bybusyness');
  assert.equal(b.maxAttempts, 1);
  assert.equal(b.forceRecovery, false);
  assert.equal(b.members.length, 3);
  const [m1, m2, m3] = b.members;
  assert.deepEqual(
    [
      m1!.loadFactor,
      m1!.lbset,
      m1!.route,
      m1!.backend.retryMs,
      m1!.backend.max,
      m1!.backend.connectTimeoutMs,
      m1!.backend.responseTimeoutMs,
      m1!.backend.keepalive,
    ],
    [2.5, 1, 'a', 5000, 10, 2000, 7000, true],
  );
  assert.equal(m1!.backend.path, '/app');
  assert.equal(m1!.key, 'balancer://pool|ws://127.0.0.1:9001/app');
  assert.deepEqual(m2!.backend.upgrade, { kind: 'tokens', tokens: ['websocket'] });
  assert.equal(m2!.status.hotStandby, true);
  assert.equal(m2!.backend.responseTimeoutMs, 3000);
  assert.deepEqual(m3!.status, {
    disabled: false,
    stopped: true,
    hotStandby: false,
    drain: true,
    ignoreErrors: true,
    inError: true,
    spare: false,
  });
  assert.equal(m3!.loadFactor, 1);
  assert.equal(m3!.lbset, 0);
  assert.deepEqual(m3!.backend.upgrade, { kind: 'tokens', tokens: ['websocket'] });
});

test('defaults: byrequests, maxattempts members-1, forcerecovery On, retry 60 s; BalancerMember balancer://name url; <Location> and ProxyPassMatch', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      'BalancerMember balancer://p ws://a:1',
      'BalancerMember balancer://p ws://b:1',
      '<Location /loc/>',
      '  ProxyPass balancer://p/x/',
      '</Location>',
      'ProxyPassMatch ^/m/(.*)$ balancer://p/$1 lbmethod=bytraffic',
      '<VirtualHost *:0>',
      '  <Proxy balancer://p>',
      '    BalancerMember ws://vh:1',
      '  </Proxy>',
      '  ProxyPass /v/ balancer://p/',
      '</VirtualHost>',
    ),
  });
  const [loc, match] = config.mainServer.routes;
  const b = loc!.balancer!.balancer;
  assert.equal(loc!.fromLocation, true);
  assert.equal(loc!.balancer!.path, '/x/');
  assert.deepEqual([b.method, b.maxAttempts, b.forceRecovery, b.members[0]!.backend.retryMs], ['byrequests', 1, true, 60_000]);
  assert.equal(match!.regexTarget, 'balancer://p/$1');
  assert.equal(match!.balancer!.balancer.method, 'bytraffic');
  // The <VirtualHost> defines its own balancer://p; it takes precedence over the main server's.
  const vhRoutes = config.virtualHosts[0]!.routes;
  const own = vhRoutes.find((r) => r.match.kind === 'prefix' && r.match.prefix === '/v/');
  assert.deepEqual(
    own!.balancer!.balancer.members.map((m) => m.backend.url),
    ['ws://vh:1'],
  );
});

test('balancer config errors at file:line', () => {
  const cases: Array<[string[], number, RegExp]> = [
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet lbmethod=fastest', '</Proxy>'], 4, /unknown lbmethod "fastest"/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet lbmethod=heartbeat', '</Proxy>'], 4, /heartbeat is not supported/],
    [
      ['<Proxy balancer://p>', 'BalancerMember ws://a:1', '</Proxy>', 'ProxyPass /x balancer://p/ upgrade=websocket'],
      5,
      /upgrade= is not a balancer parameter.*BalancerMember/,
    ],
    [
      ['<Proxy balancer://p>', 'BalancerMember ws://a:1', '</Proxy>', 'ProxyPass /x balancer://p/ retry=5'],
      5,
      /unknown balancer parameter "retry"/,
    ],
    [['BalancerMember ws://a:1'], 2, /BalancerMember is only valid inside <Proxy "balancer:\/\/name">/],
    [['<Proxy ws://a:1>', 'BalancerMember ws://a:1', '</Proxy>'], 3, /BalancerMember is only valid inside/],
    [['ProxyPass /x balancer://nope/'], 2, /no balancer "balancer:\/\/nope" is defined/],
    [['ProxySet balancer://p lbmethod=bybusyness', 'ProxyPass /x balancer://p/'], 3, /balancer:\/\/p has no BalancerMember/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 loadfactor=0', '</Proxy>'], 3, /loadfactor= must be a number from 1 to 100/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 loadfactor=101', '</Proxy>'], 3, /loadfactor= must be a number from 1 to 100/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 lbset=100', '</Proxy>'], 3, /lbset= must be a whole number from 0 to 99/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 status=+X', '</Proxy>'], 3, /flag "X"/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 status=+C', '</Proxy>'], 3, /C is set by health checks only/],
    [
      ['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet timeout=301', '</Proxy>'],
      4,
      /timeout= is how long a request waits for a free member: at most 300 s/,
    ],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet failontimeout=maybe', '</Proxy>'], 4, /failontimeout=/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'BalancerMember WS://A:1', '</Proxy>'], 4, /already a member/],
    [['<Proxy balancer://p>', 'BalancerMember balancer://q', '</Proxy>'], 3, /name one balancer/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1 lbmethod=bybusyness', '</Proxy>'], 3, /lbmethod= is a balancer parameter/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet loadfactor=2', '</Proxy>'], 4, /loadfactor= is a member parameter/],
    [['<Proxy balancer://p>', 'BalancerMember ws://a:1', 'ProxySet maxattempts=x', '</Proxy>'], 4, /maxattempts=/],
    [['<ProxyMatch balancer://p>', '</ProxyMatch>'], 2, /defined with <Proxy "balancer:\/\/name">/],
    [['ProxyPass /x balancer:/p/'], 2, /bad balancer URL/],
  ];
  for (const [body, line, message] of cases) expectError({ 'wsgate.conf': lines(L, ...body) }, { line, message });
});

test('stickiness and failure parameters load: failonstatus, failontimeout, timeout; status=+R', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      '<Proxy balancer://p>',
      '  BalancerMember ws://a:1 route=a',
      '  BalancerMember ws://b:1 status=+R',
      '  ProxySet stickysession=SERVERID|sid stickysessionsep=Off nofailover=On failonstatus=500,503 failontimeout=On timeout=2',
      '</Proxy>',
      'ProxyPass /x balancer://p/',
    ),
  });
  const b = only(config.mainServer.routes).balancer;
  assert.deepEqual(b.stickySession, { cookie: 'SERVERID', urlParam: 'sid' });
  assert.equal(b.stickySessionSep, undefined);
  assert.equal(b.noFailover, true);
  assert.deepEqual(b.failOnStatus, [500, 503]);
  assert.equal(b.failOnTimeout, true);
  assert.equal(b.timeoutMs, 2000);
  assert.deepEqual(
    b.members.map((m) => m.status.spare),
    [false, true],
  );
  assert.ok(
    !config.notices.some((n) => /stickysession|failonstatus|timeout/.test(n)),
    `implemented: no notice (${config.notices.join(' | ')})`,
  );
});

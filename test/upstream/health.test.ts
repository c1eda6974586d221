// Health-check state in elections (a check-failed member, Apache's C flag) and the check path.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Balancer, BalancerMember } from '../../src/config/model';
import { elect, electRoute, retryAfter } from '../../src/upstream/balancer/elect';
import { loadConfigText } from '../../src/config/load';
import { checkPath, HealthChecker } from '../../src/upstream/balancer/health';
import { deadPort } from '../helpers/edges';
import { eventually } from '../helpers/harness';
import { BalancerRegistry } from '../../src/upstream/balancer/state';

function member(name: string, path = '/', route?: string): BalancerMember {
  const url = `ws://${name}:1${path}`;
  return {
    backend: {
      url,
      scheme: 'ws',
      origin: { tls: false, host: name, port: 1, hostHeader: `${name}:1`, key: `http://${name}:1` },
      path,
      pathWasEmpty: false,
      upgrade: { kind: 'tokens', tokens: ['websocket'] },
      connectTimeoutMs: 1000,
      responseTimeoutMs: 1000,
      keepalive: false,
      retryMs: 60_000,
      max: 0,
      nocanon: false,
      source: { file: 't', line: 1 },
    },
    loadFactor: 1,
    lbset: 0,
    ...(route !== undefined ? { route } : {}),
    status: { disabled: false, stopped: false, hotStandby: false, drain: false, ignoreErrors: false, inError: false, spare: false },
    key: `balancer://t|${url}`,
  };
}

function balancer(...members: BalancerMember[]): Balancer {
  return {
    name: 't',
    url: 'balancer://t',
    members,
    method: 'byrequests',
    maxAttempts: members.length - 1,
    forceRecovery: true,
    noFailover: false,
    stickySessionSep: '.',
    failOnStatus: [],
    failOnTimeout: false,
    timeoutMs: 0,
    source: { file: 't', line: 1 },
  };
}

const all = (): boolean => true;

test('a check-failed member is skipped by elections and sticky routes; forcerecovery does not bring it back', () => {
  const reg = new BalancerRegistry();
  const a = member('A', '/', 'a');
  const b = member('B', '/', 'b');
  const bal = balancer(a, b);
  reg.state(a, 1000).hcFailed = true;
  for (let i = 0; i < 4; i++) {
    const e = elect(reg, bal, 1000, all, true);
    assert.equal(e.kind === 'member' ? e.candidate.member.backend.origin.host : e.reason, 'B');
  }
  assert.deepEqual(electRoute(reg, bal, 'a', 1000, all), { found: true });

  // B in error, A check-failed: forcerecovery clears B's error, never A's mark.
  reg.markError(bal, { member: b, state: reg.state(b, 1000) }, 1000, 'test');
  assert.equal(retryAfter(reg, bal, 1000), 60_000);
  const e = elect(reg, bal, 1000, all, true);
  assert.equal(e.kind === 'member' ? e.candidate.member.backend.origin.host : e.reason, 'B');

  reg.state(b, 1000).hcFailed = true;
  const none = elect(reg, bal, 1000, all, true);
  assert.equal(none.kind, 'none');
  assert.match(none.kind === 'none' ? none.reason : '', /failing health checks/);

  reg.state(a, 1000).hcFailed = false;
  const back = elect(reg, bal, 1000, all, true);
  assert.equal(back.kind === 'member' ? back.candidate.member.backend.origin.host : back.reason, 'A');
});

test('hcuri is appended to the member path without doubling the "/"', () => {
  assert.equal(checkPath(member('A', '/app/'), '/health'), '/app/health');
  assert.equal(checkPath(member('A', '/app'), '/health'), '/app/health');
  assert.equal(checkPath(member('A', '/app/'), 'health'), '/app/health');
  assert.equal(checkPath(member('A', '/'), ''), '/');
  assert.equal(checkPath(member('A', '/x'), '?ping=1'), '/x?ping=1');
});

test('HealthChecker.sync keeps checks by member key across configs; a member that loses hcmethod is cleared', async () => {
  const port = await deadPort();
  const conf = (params: string) =>
    loadConfigText(
      [
        'Listen 0',
        '<Proxy balancer://pool>',
        `  BalancerMember ws://127.0.0.1:${port}/ ${params}`,
        '</Proxy>',
        'ProxyPass / balancer://pool/',
      ].join('\n'),
      '/tmp/wsgate-hc.conf',
    );
  const c1 = conf('hcmethod=TCP hcinterval=50ms');
  const m = c1.mainServer.routes[0]?.balancer?.balancer.members[0];
  assert.ok(m);
  const reg = new BalancerRegistry();
  const checker = new HealthChecker(reg);
  try {
    checker.sync(c1);
    await eventually(() => reg.state(m, Date.now()).hcFailed, 5000, 'the dead member to fail its checks');
    checker.sync(conf('hcmethod=TCP hcinterval=50ms hcpasses=3'));
    assert.equal(reg.state(m, Date.now()).hcFailed, true, 'a reload with the member still checked keeps its mark');
    checker.sync(conf(''));
    assert.equal(reg.state(m, Date.now()).hcFailed, false, 'no check left to clear it: cleared now');
  } finally {
    checker.stop();
  }
});

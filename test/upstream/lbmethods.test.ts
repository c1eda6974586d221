// The lb methods (src/upstream/balancer/*): each on its own, then the election order around them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Balancer, BalancerMember, LbMethod, MemberStatus } from '../../src/config/model';
import { byBusyness } from '../../src/upstream/balancer/bybusyness';
import { byRequests } from '../../src/upstream/balancer/byrequests';
import { byTraffic } from '../../src/upstream/balancer/bytraffic';
import { elect, retryAfter } from '../../src/upstream/balancer/elect';
import { BalancerRegistry, MemberState, type Candidate } from '../../src/upstream/balancer/state';

const NO_FLAGS: MemberStatus = {
  disabled: false,
  stopped: false,
  hotStandby: false,
  drain: false,
  ignoreErrors: false,
  inError: false,
  spare: false,
};

function member(
  name: string,
  opts: { loadFactor?: number; lbset?: number; status?: Partial<MemberStatus>; retryMs?: number; max?: number } = {},
): BalancerMember {
  const url = `ws://${name}:1/`;
  return {
    backend: {
      url,
      scheme: 'ws',
      origin: { tls: false, host: name, port: 1, hostHeader: `${name}:1`, key: `http://${name}:1` },
      path: '/',
      pathWasEmpty: false,
      upgrade: { kind: 'tokens', tokens: ['websocket'] },
      connectTimeoutMs: 1000,
      responseTimeoutMs: 1000,
      keepalive: false,
      retryMs: opts.retryMs ?? 60_000,
      max: opts.max ?? 0,
      nocanon: false,
      source: { file: 't', line: 1 },
    },
    loadFactor: opts.loadFactor ?? 1,
    lbset: opts.lbset ?? 0,
    status: { ...NO_FLAGS, ...opts.status },
    key: `balancer://t|${url}`,
  };
}

function cands(...members: BalancerMember[]): Candidate[] {
  return members.map((m) => ({ member: m, state: new MemberState(m.key) }));
}

function names(picks: Candidate[]): string {
  return picks.map((c) => c.member.backend.origin.host).join('');
}

describe('byrequests (smooth weighted round robin)', () => {
  test('equal loadfactors alternate', () => {
    const cs = cands(member('A'), member('B'));
    assert.equal(names(Array.from({ length: 6 }, () => byRequests.pick(cs))), 'ABABAB');
  });

  test('3:1 gives exactly 300:100 over 400 picks, spread out (never more than 3 A in a row)', () => {
    const cs = cands(member('A', { loadFactor: 3 }), member('B'));
    const seq = names(Array.from({ length: 400 }, () => byRequests.pick(cs)));
    assert.equal(seq.split('').filter((c) => c === 'A').length, 300);
    assert.equal(seq.split('').filter((c) => c === 'B').length, 100);
    assert.equal(seq.slice(0, 8), 'AABAAABA');
    assert.ok(!seq.includes('AAAA'), seq.slice(0, 40));
    assert.ok(!seq.includes('BB'), seq.slice(0, 40));
  });

  test('decimal loadfactors: 1.5 and 1 give 3:2', () => {
    const cs = cands(member('A', { loadFactor: 1.5 }), member('B'));
    const seq = names(Array.from({ length: 500 }, () => byRequests.pick(cs)));
    assert.equal(seq.split('').filter((c) => c === 'A').length, 300);
  });
});

describe('bytraffic', () => {
  test('the member with the fewest bytes per loadfactor; the first on a tie', () => {
    const cs = cands(member('A'), member('B', { loadFactor: 2 }), member('C'));
    assert.equal(byTraffic.pick(cs).member.backend.origin.host, 'A');
    cs[0]!.state.counters.bytesUp = 1000;
    cs[1]!.state.counters.bytesDown = 1500; // 750 per unit of loadfactor
    cs[2]!.state.counters.bytesUp = 300;
    cs[2]!.state.counters.bytesDown = 500;
    assert.equal(byTraffic.pick(cs).member.backend.origin.host, 'B');
    cs[1]!.state.counters.bytesUp = 200; // 850
    assert.equal(byTraffic.pick(cs).member.backend.origin.host, 'C');
  });
});

describe('bybusyness', () => {
  test('prefers the member with fewer open tunnels', () => {
    const cs = cands(member('A'), member('B'), member('C'));
    cs[0]!.state.counters.openTunnels = 5;
    cs[1]!.state.counters.openTunnels = 1;
    cs[1]!.state.counters.inFlight = 1;
    cs[2]!.state.counters.inFlight = 3;
    assert.equal(byBusyness.pick(cs).member.backend.origin.host, 'B');
  });

  test('equally busy members take turns by loadfactor', () => {
    const cs = cands(member('A', { loadFactor: 3 }), member('B'));
    const seq = names(Array.from({ length: 400 }, () => byBusyness.pick(cs)));
    assert.equal(seq.split('').filter((c) => c === 'A').length, 300);
  });
});

describe('election order', () => {
  function balancer(method: LbMethod, ...members: BalancerMember[]): Balancer {
    return {
      name: 't',
      url: 'balancer://t',
      members,
      method,
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
  function pickName(reg: BalancerRegistry, b: Balancer, now = 1000): string {
    const e = elect(reg, b, now, all, true);
    if (e.kind !== 'member') return `none:${e.reason}`;
    e.candidate.state.counters.release(); // as if the request ended
    return e.candidate.member.backend.origin.host;
  }

  test('disabled, stopped and draining members are skipped; lbset 0 before 1; hot standby only when nothing else in its set is usable', () => {
    const reg = new BalancerRegistry();
    const b = balancer(
      'byrequests',
      member('D', { status: { disabled: true } }),
      member('S', { status: { stopped: true } }),
      member('N', { status: { drain: true } }),
      member('H', { status: { hotStandby: true } }),
      member('A'),
      member('Z', { lbset: 1 }),
    );
    assert.deepEqual(
      Array.from({ length: 4 }, () => pickName(reg, b)),
      ['A', 'A', 'A', 'A'],
    );
    reg.markError(b, { member: b.members[4]!, state: reg.state(b.members[4]!, 1000) }, 1000, 'test');
    assert.equal(pickName(reg, b), 'H');
    reg.markError(b, { member: b.members[3]!, state: reg.state(b.members[3]!, 1000) }, 1000, 'test');
    assert.equal(pickName(reg, b), 'Z');
  });

  test('hot spares (+R) stand in for as many unusable normal members of their lbset, in config order; standbys after them', () => {
    const reg = new BalancerRegistry();
    const b = balancer(
      'byrequests',
      member('A'),
      member('B'),
      member('R1', { status: { spare: true } }),
      member('R2', { status: { spare: true } }),
      member('H', { status: { hotStandby: true } }),
      member('X', { lbset: 1, status: { spare: true } }),
    );
    const picks = (n: number): string =>
      Array.from({ length: n }, () => pickName(reg, b))
        .sort()
        .join(',');
    assert.equal(picks(4), 'A,A,B,B', 'every normal member usable: spares stay idle');
    const fail = (i: number): void => reg.markError(b, { member: b.members[i]!, state: reg.state(b.members[i]!, 1000) }, 1000, 'test');
    fail(0);
    assert.equal(picks(4), 'B,B,R1,R1', 'A unusable: the first spare stands in, not the second');
    fail(1);
    assert.equal(picks(4), 'R1,R1,R2,R2', 'A and B unusable: both spares');
    fail(2);
    assert.equal(picks(2), 'R2,R2', 'a spare in error is not replaced by the standby while another spare is usable');
    fail(3);
    assert.equal(picks(2), 'H,H', 'standby when no normal member or spare is usable');
    const d = balancer('byrequests', member('D', { status: { disabled: true } }), member('E'), member('R', { status: { spare: true } }));
    assert.equal(
      Array.from({ length: 4 }, () => pickName(reg, d))
        .sort()
        .join(','),
      'E,E,R,R',
      'a disabled member counts as unusable',
    );
  });

  test('error state lasts retry=, then the member is used again; Retry-After is the time left', () => {
    const reg = new BalancerRegistry();
    const a = member('A', { retryMs: 5000 });
    const b = balancer('byrequests', a, member('B', { retryMs: 9000 }));
    reg.markError(b, { member: a, state: reg.state(a, 1000) }, 1000, 'test');
    assert.deepEqual(
      Array.from({ length: 3 }, () => pickName(reg, b, 2000)),
      ['B', 'B', 'B'],
    );
    assert.equal(retryAfter(reg, b, 2000), undefined, 'B is usable');
    reg.markError(b, { member: b.members[1]!, state: reg.state(b.members[1]!, 2000) }, 2000, 'test');
    assert.equal(retryAfter(reg, b, 3000), 3000);
    // After A's retry: A is usable again.
    assert.equal(pickName(reg, b, 6000), 'A');
  });

  test('forcerecovery On clears the errors when every member is in error; Off gives none with Retry-After', () => {
    const reg = new BalancerRegistry();
    const b = balancer('byrequests', member('A'), member('B'));
    for (const m of b.members) reg.markError(b, { member: m, state: reg.state(m, 1000) }, 1000, 'test');
    assert.equal(pickName(reg, b), 'A');
    const off = { ...balancer('byrequests', member('C'), member('D')), forceRecovery: false };
    for (const m of off.members) reg.markError(off, { member: m, state: reg.state(m, 1000) }, 1000, 'test');
    const e = elect(reg, off, 11_000, all, true);
    assert.equal(e.kind, 'none');
    assert.equal(e.kind === 'none' && e.retryAfterMs, 50_000);
  });

  test('status=+I: a failure never puts the member in error; max= reached on every member gives none without Retry-After', () => {
    const reg = new BalancerRegistry();
    const i = member('I', { status: { ignoreErrors: true }, max: 1 });
    const b = balancer('bybusyness', i, member('M', { max: 1 }));
    reg.markError(b, { member: i, state: reg.state(i, 1000) }, 1000, 'test');
    assert.equal(reg.state(i, 1000).errorUntil, 0);
    const first = elect(reg, b, 1000, all, true);
    const second = elect(reg, b, 1000, all, true);
    assert.ok(first.kind === 'member' && second.kind === 'member');
    assert.notEqual(first.candidate.member, second.candidate.member);
    const third = elect(reg, b, 1000, all, true);
    assert.deepEqual(third, { kind: 'none', reason: 'max= reached on every member of balancer://t' });
  });

  test('status=+E starts the member in error for retry=', () => {
    const reg = new BalancerRegistry();
    const b = balancer('byrequests', member('E', { status: { inError: true }, retryMs: 5000 }), member('B'));
    assert.equal(pickName(reg, b, 1000), 'B');
    assert.equal(pickName(reg, b, 1000), 'B');
    assert.equal(pickName(reg, b, 7000), 'E');
  });
});

describe('sticky routes', () => {
  const base = {
    name: 't',
    url: 'balancer://t',
    method: 'byrequests' as const,
    maxAttempts: 1,
    forceRecovery: true,
    noFailover: false,
    failOnStatus: [],
    failOnTimeout: false,
    timeoutMs: 0,
    source: { file: 't', line: 1 },
  };
  const withRoute = (name: string, route: string, status: Partial<MemberStatus> = {}, redirect?: string): BalancerMember => ({
    ...member(name, { status }),
    route,
    ...(redirect !== undefined ? { redirect } : {}),
  });

  test('sessionRoute: URL parameter before cookie; the part after the separator; no separator, no route', async () => {
    const { sessionRoute } = await import('../../src/upstream/balancer/sticky');
    const b: Balancer = { ...base, members: [], stickySession: { cookie: 'ROUTEID', urlParam: 'rid' }, stickySessionSep: '.' };
    const cookie = (v: string): string[] => ['Host', 'h', 'Cookie', v];
    assert.equal(sessionRoute(b, '/x', cookie('ROUTEID=.b')), 'b');
    assert.equal(sessionRoute(b, '/x', cookie('a=1; ROUTEID=xyz.a; c=2')), 'a');
    assert.equal(sessionRoute(b, '/x', cookie('ROUTEID=b')), undefined);
    assert.equal(sessionRoute(b, '/x', cookie('XROUTEID=.b')), undefined, 'cookie name must start a cookie');
    assert.equal(sessionRoute(b, '/x', cookie('routeid=.b')), undefined, 'case-sensitive');
    assert.equal(sessionRoute(b, '/x?rid=s.a&y=1', cookie('ROUTEID=.b')), 'a', 'URL parameter wins');
    assert.equal(sessionRoute(b, '/x?srid=s.c', []), 'c', 'substring search, as Apache');
    const off: Balancer = { ...b, stickySession: { cookie: 'S' } };
    delete (off as { stickySessionSep?: string }).stickySessionSep;
    assert.equal(sessionRoute(off, '/x', cookie('S=whole')), 'whole');
    assert.equal(sessionRoute(off, '/x?S=fromurl', cookie('S=whole')), 'fromurl', 'without |PARAM the cookie name is the URL parameter');
  });

  test("electRoute: the route's member, draining ones included; not disabled or in error; redirect; found for nofailover", async () => {
    const { electRoute } = await import('../../src/upstream/balancer/elect');
    const reg = new BalancerRegistry();
    const all = (): boolean => true;
    const b: Balancer = {
      ...base,
      members: [
        withRoute('A', 'a', { drain: true }),
        withRoute('B', 'b', { disabled: true }, 'a'),
        withRoute('C', 'c'),
        withRoute('D', 'd', { disabled: true }),
      ],
    };
    const host = (r: ReturnType<typeof electRoute>): string | undefined => r.candidate?.member.backend.origin.host;
    assert.equal(host(electRoute(reg, b, 'a', 1000, all)), 'A');
    assert.equal(host(electRoute(reg, b, 'b', 1000, all)), 'A', 'redirect=a');
    assert.deepEqual(electRoute(reg, b, 'd', 1000, all), { found: true });
    assert.deepEqual(electRoute(reg, b, 'zzz', 1000, all), { found: false });
    const c = b.members[2]!;
    reg.markError(b, { member: c, state: reg.state(c, 1000) }, 1000, 'test');
    assert.deepEqual(electRoute(reg, b, 'c', 2000, all), { found: true });
    assert.equal(host(electRoute(reg, b, 'c', 62_000, all)), 'C', 'after retry=');
  });
});

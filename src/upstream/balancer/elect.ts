// Which member takes the next request (research/apache-httpd.md §3.3, §5.1, §5.4): lbset 0 first,
// then higher sets; inside a set the usable normal members compete through the lb method, and
// hot spares (+R) stand in for as many of them as are unusable, and hot standbys (+H) only when
// none of them is usable. Disabled (+D), stopped (+S) and
// draining (+N) members take no new requests; a member in error state waits until its `retry=`
// has passed; a member at its `max=` is skipped; one failing its health checks (Apache's C flag)
// takes nothing. With `forcerecovery` (default On), when every
// member is in error, all errors are cleared and the election goes on (as Apache).

import type { Balancer, BalancerMember } from '../../config/model';
import { lbMethod } from './method';
import { type BalancerRegistry, type Candidate, type MemberState, statusOf } from './state';

export type Election =
  | { readonly kind: 'member'; readonly candidate: Candidate }
  | {
      readonly kind: 'none';
      readonly reason: string;
      /** Set when members are in error: ms until the first of them may be tried again. */
      readonly retryAfterMs?: number;
    };

// Flags are read through statusOf: the status page and balancer-manager change them at run time,
// and the next election follows.
function enabled(m: BalancerMember, st: MemberState): boolean {
  const s = statusOf(m, st);
  return !s.disabled && !s.stopped && !s.drain;
}

function isSpare(c: Candidate): boolean {
  return statusOf(c.member, c.state).spare;
}

function isHotStandby(c: Candidate): boolean {
  return statusOf(c.member, c.state).hotStandby;
}

function atMax(c: Candidate): boolean {
  return c.state.counters.full(c.member.backend.max);
}

/**
 * Elects a member of `balancer` among those `eligible` lets through (the exchange leaves out the
 * members it tried already, and those that do not accept its Upgrade). `recover` allows
 * forcerecovery (the first attempt of a request only). The winner's counters give the request a slot.
 */
export function elect(
  registry: BalancerRegistry,
  balancer: Balancer,
  now: number,
  eligible: (m: BalancerMember) => boolean,
  recover: boolean,
): Election {
  const cands: Candidate[] = [];
  for (const member of balancer.members) {
    const state = registry.state(member, now);
    if (!enabled(member, state) || !eligible(member)) continue;
    const c: Candidate = { member, state };
    if (c.state.hcFailed) continue;
    if (c.state.errorUntil !== 0 && now >= c.state.errorUntil) registry.clearError(balancer, c, 'retry elapsed');
    cands.push(c);
  }
  if (cands.length === 0)
    return {
      kind: 'none',
      reason: `no member of ${balancer.url} can take this request (disabled, stopped, draining, failing health checks or tried)`,
    };
  if (recover && balancer.forceRecovery && cands.every((c) => c.state.errorUntil !== 0)) {
    for (const c of cands) registry.clearError(balancer, c, 'forcerecovery: every member was in error');
  }

  const usable = cands.filter((c) => c.state.errorUntil === 0 && !atMax(c));
  // Lowest lbset first (proxy_balancer_get_best_worker): its usable normal members, plus as many
  // usable hot spares (+R, config order) as it has unusable normal members; its hot standbys
  // (+H) only when that leaves nobody.
  for (const set of [...new Set(usable.map((c) => c.member.lbset))].sort((a, b) => a - b)) {
    const inSet = usable.filter((c) => c.member.lbset === set);
    const normal = inSet.filter((c) => !isSpare(c) && !isHotStandby(c));
    const spares = inSet.filter(isSpare).slice(0, unusableNormal(registry, balancer, set, now));
    let pool = normal.concat(spares);
    if (pool.length === 0) pool = inSet.filter((c) => isHotStandby(c) && !isSpare(c));
    if (pool.length === 0) continue;
    const pick = lbMethod(balancer.method).pick(pool);
    pick.state.counters.claim();
    return { kind: 'member', candidate: pick };
  }

  const inError = cands.filter((c) => c.state.errorUntil !== 0);
  if (inError.length > 0) {
    const soonest = Math.min(...inError.map((c) => c.state.errorUntil));
    return { kind: 'none', reason: `no usable member of ${balancer.url} (in error state)`, retryAfterMs: Math.max(soonest - now, 0) };
  }
  return { kind: 'none', reason: `max= reached on every member of ${balancer.url}` };
}

/**
 * Normal members (neither +R nor +H) of `lbset` that cannot take requests: disabled, stopped,
 * draining, in error state or failing health checks (Apache's !PROXY_WORKER_IS_USABLE, draining
 * included). Each lets one hot spare of the set stand in.
 */
function unusableNormal(registry: BalancerRegistry, balancer: Balancer, lbset: number, now: number): number {
  let n = 0;
  for (const m of balancer.members) {
    if (m.lbset !== lbset) continue;
    const st = registry.state(m, now);
    const s = statusOf(m, st);
    if (s.spare || s.hotStandby) continue;
    if (!enabled(m, st) || st.hcFailed || st.errorUntil !== 0) n++;
  }
  return n;
}

/** Ms until some member of `balancer` leaves error state, when none is usable now because of errors; else undefined. No side effects. */
export function retryAfter(registry: BalancerRegistry, balancer: Balancer, now: number): number | undefined {
  let soonest = Infinity;
  for (const member of balancer.members) {
    const st = registry.state(member, now);
    if (!enabled(member, st) || st.hcFailed) continue;
    const until = st.errorUntil;
    if (until === 0 || until <= now) return undefined;
    soonest = Math.min(soonest, until);
  }
  return soonest === Infinity ? undefined : soonest - now;
}

/**
 * The member the sticky `route` names (Apache's find_route_worker): a normal member before a
 * hot standby; draining members still take their sessions; one in error is usable again once
 * its `retry=` has passed; an unusable one with `redirect=` hands over to that route's member.
 * `found` tells whether some member has the route (for `nofailover`).
 */
export function electRoute(
  registry: BalancerRegistry,
  balancer: Balancer,
  route: string,
  now: number,
  eligible: (m: BalancerMember) => boolean,
): { readonly candidate?: Candidate; readonly found: boolean } {
  let found = false;
  const lookup = (r: string, redirects: number): Candidate | undefined => {
    for (const standby of [false, true]) {
      for (const member of balancer.members) {
        if (member.route !== r) continue;
        const state = registry.state(member, now);
        const flags = statusOf(member, state);
        if (flags.hotStandby !== standby) continue;
        found = true;
        const c: Candidate = { member, state };
        if (c.state.errorUntil !== 0 && now >= c.state.errorUntil) registry.clearError(balancer, c, 'retry elapsed');
        const usable = !flags.disabled && !flags.stopped && !c.state.hcFailed && c.state.errorUntil === 0 && !atMax(c) && eligible(member);
        if (usable) return c;
        if (member.redirect !== undefined && redirects < 1) {
          const to = lookup(member.redirect, redirects + 1);
          if (to !== undefined) return to;
        }
      }
    }
    return undefined;
  };
  const candidate = lookup(route, 0);
  candidate?.state.counters.claim();
  return candidate !== undefined ? { candidate, found } : { found };
}

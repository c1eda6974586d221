// Run-time state of balancer members: their counters (busyness, traffic, failures), the lb
// methods' accumulator and the error state.
//
// State is keyed by `balancer://name|member url` (BalancerMember.key), not by a config object, so
// a reloaded config finds the counters and error states of the previous one (as OriginRegistry).

import type { Balancer, BalancerMember, Config, MemberStatus, Route } from '../../config/model';
import type { Logger } from '../../observe/log';
import { BackendCounters } from '../counters';

export class MemberState {
  /** The member's one set of counters: requests and tunnels (busyness, `max=`), bytes (bytraffic), failures. */
  readonly counters = new BackendCounters();
  /** The smooth weighted round robin accumulator (byrequests, and bybusyness ties), in loadfactor × 100 units. */
  lbstatus = 0;
  /** When the error state ends (epoch ms); 0 when the member is not in error. */
  errorUntil = 0;
  /** Health checks failed `hcfails=` times in a row (Apache's C flag): no new requests until `hcpasses=` passes. */
  hcFailed = false;
  /** The last health check: when it ended (epoch ms, 0 before the first) and why it failed (undefined: it passed). */
  hcLastAt = 0;
  hcLastError: string | undefined;
  /**
   * Flags set from the status page or balancer-manager, with the `status=` the config gave the
   * member then. A reload keeps them while the member's `status=` in the file stays the same;
   * a new `status=` in the file wins (the operator edited what the page had overridden).
   */
  admin: { readonly configured: MemberStatus; readonly status: MemberStatus } | undefined;

  constructor(readonly key: string) {}
}

/** The flags elections read for `member`: the administrator's, while its `status=` is the one they overrode, else `status=`. */
export function statusOf(member: BalancerMember, state: MemberState): MemberStatus {
  const admin = state.admin;
  return admin !== undefined && sameStatus(admin.configured, member.status) ? admin.status : member.status;
}

function sameStatus(a: MemberStatus, b: MemberStatus): boolean {
  return (
    a.disabled === b.disabled &&
    a.stopped === b.stopped &&
    a.hotStandby === b.hotStandby &&
    a.drain === b.drain &&
    a.ignoreErrors === b.ignoreErrors &&
    a.inError === b.inError &&
    a.spare === b.spare
  );
}

/** A member with its run-time state, as the lb methods see it. */
export interface Candidate {
  readonly member: BalancerMember;
  readonly state: MemberState;
}

/** loadfactor (1–100, two decimals) as Apache stores it: an integer × 100. */
export function weight(c: Candidate): number {
  return Math.round(c.member.loadFactor * 100);
}

export class BalancerRegistry {
  private readonly states = new Map<string, MemberState>();

  constructor(private readonly log?: Logger) {}

  /** The state of `member`, created on first use (`status=+E` starts it in error for `retry=`). */
  state(member: BalancerMember, now: number): MemberState {
    let st = this.states.get(member.key);
    if (st === undefined) {
      st = new MemberState(member.key);
      if (member.status.inError) st.errorUntil = now + member.backend.retryMs;
      this.states.set(member.key, st);
    }
    return st;
  }

  /** Puts `c` in error state for its `retry=` (unless `status=+I`). */
  markError(balancer: Balancer, c: Candidate, now: number, reason: string): void {
    if (statusOf(c.member, c.state).ignoreErrors) return;
    const wasInError = c.state.errorUntil !== 0;
    // retry=0 still counts as "in error" until the next election looks at it.
    c.state.errorUntil = Math.max(now + c.member.backend.retryMs, 1);
    if (!wasInError) {
      this.log?.warn('balancer member in error state', {
        balancer: balancer.url,
        member: c.member.backend.url,
        retry_ms: c.member.backend.retryMs,
        reason,
      });
    }
  }

  /** The state of the member keyed `key`, if there is one (no state is made). */
  peek(key: string): MemberState | undefined {
    return this.states.get(key);
  }

  /**
   * Drops the state of members `config` no longer has. One still in use (a request in flight, a
   * tunnel open) is kept until a later prune finds it idle, so its counts are never split.
   */
  prune(config: Config): void {
    const wanted = configMembers(config);
    for (const [key, st] of this.states) {
      if (!wanted.has(key) && st.counters.idle) this.states.delete(key);
    }
  }

  /** Takes `c` out of error state; `why` names the cause in the log line. */
  clearError(balancer: Balancer, c: Candidate, why: string): void {
    if (c.state.errorUntil === 0) return;
    c.state.errorUntil = 0;
    this.log?.info('balancer member leaves error state', { balancer: balancer.url, member: c.member.backend.url, why });
  }
}

/** Every balancer member `config` can send requests to (ProxyPass routes and RewriteRule [P] targets), by key, with its balancer. */
export function configMembers(config: Config): Map<string, { readonly balancer: Balancer; readonly member: BalancerMember }> {
  const found = new Map<string, { readonly balancer: Balancer; readonly member: BalancerMember }>();
  for (const vhost of [config.mainServer, ...config.virtualHosts]) {
    const routes: (Route | undefined)[] = [...vhost.routes];
    // RewriteRule [P] targets, at server level and in sections (`-` and redirect rules have no route).
    if (vhost.rewrite !== undefined) for (const r of vhost.rewrite.rules) routes.push(r.route);
    for (const section of vhost.sectionRewrites ?? []) for (const r of section.rules) routes.push(r.route);
    for (const route of routes) {
      const balancer = route?.balancer?.balancer;
      if (balancer === undefined) continue;
      for (const member of balancer.members) if (!found.has(member.key)) found.set(member.key, { balancer, member });
    }
  }
  return found;
}

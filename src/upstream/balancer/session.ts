// One request's dealings with a balancer: elect a member, and fail over to another after a connect
// failure (up to `maxattempts`). The request's slot is in the member's counters: the election
// takes it, and the Upstream moves it on failover and gives it back when the request ends.

import type { Balancer, BalancerMember, UpgradePolicy } from '../../config/model';
import { canonPath } from '../../routing/mapping';
import { acceptedUpgrade } from '../../routing/router';
import { elect, electRoute, retryAfter } from './elect';
import { stickySession } from './sticky';
import type { BackendCounters } from '../counters';
import type { BalancerRegistry, Candidate } from './state';

export type Elected =
  | {
      readonly member: BalancerMember;
      readonly path: string /** The member's counters, where the election took the request's slot. */;
      readonly counters: BackendCounters;
    }
  | { readonly reason: string; readonly retryAfterS?: number };

export class BalancerSession {
  private readonly tried = new Set<BalancerMember>();
  private current: Candidate | undefined;
  private failovers = 0;
  /** The sticky route the request names (stickysession=), if any. */
  readonly route: string | undefined;
  /** Whether the current member was elected by its route. */
  private stuck = false;
  /** The sticky name (URL parameter or cookie) the route was found under. */
  private readonly stickyUsed: string | undefined;
  /**
   * The variables Apache's balancer sets for the request (mod_proxy_balancer.c
   * proxy_balancer_pre_request): BALANCER_NAME, BALANCER_WORKER_NAME, BALANCER_WORKER_ROUTE,
   * BALANCER_SESSION_STICKY and BALANCER_SESSION_ROUTE when the request named a route, and
   * BALANCER_ROUTE_CHANGED=1 when a sticky balancer elected a member other than the named route's
   * (no route, an unknown one, or its member unusable) — what `Header … env=BALANCER_ROUTE_CHANGED` tests.
   */
  readonly env = new Map<string, string>();

  constructor(
    private readonly registry: BalancerRegistry,
    readonly balancer: Balancer,
    /** The request-target below the balancer URL (router.ts). */
    private readonly path: string,
    /** The Upgrade value the request forwards, if it is an upgrade. */
    private readonly upgradeValue: string | undefined,
    /** The request's header fields, for the sticky cookie. */
    headers: readonly string[],
  ) {
    const session = stickySession(balancer, path, headers);
    this.route = session?.route;
    this.stickyUsed = session?.sticky;
  }

  /** Elects a member (not one tried before) and gives its request-target, or why none can take it. */
  next(): Elected {
    const now = Date.now();
    const eligible = (m: BalancerMember): boolean => !this.tried.has(m) && accepts(m.backend.upgrade, this.upgradeValue);
    this.stuck = false;
    if (this.route !== undefined && this.tried.size === 0) {
      const r = electRoute(this.registry, this.balancer, this.route, now, eligible);
      if (r.candidate !== undefined) {
        this.stuck = true;
        return this.take(r.candidate);
      }
      if (r.found && this.balancer.noFailover) {
        return this.none(`the member of route "${this.route}" is not usable and ${this.balancer.url} has nofailover=On`, now);
      }
    }
    const e = elect(this.registry, this.balancer, now, eligible, this.tried.size === 0);
    if (e.kind === 'none') {
      return e.retryAfterMs === undefined ? { reason: e.reason } : { reason: e.reason, retryAfterS: seconds(e.retryAfterMs) };
    }
    return this.take(e.candidate);
  }

  private take(c: Candidate): Elected {
    this.current = c;
    this.tried.add(c.member);
    const env = this.env;
    env.set('BALANCER_NAME', this.balancer.url);
    env.set('BALANCER_WORKER_NAME', c.member.backend.url);
    env.set('BALANCER_WORKER_ROUTE', c.member.route ?? '');
    if (this.route !== undefined) {
      env.set('BALANCER_SESSION_STICKY', this.stickyUsed!);
      env.set('BALANCER_SESSION_ROUTE', this.route);
    }
    const changed = this.stuck ? c.member.route !== this.route : this.balancer.stickySession !== undefined;
    if (changed) env.set('BALANCER_ROUTE_CHANGED', '1');
    return { member: c.member, path: memberPath(c.member, this.path), counters: c.state.counters };
  }

  /**
   * The member answered with a `failonstatus=` status, or not within its timeout with
   * `failontimeout=On`: it goes into error state (unless `+I`); the exchange goes on.
   */
  memberFailed(reason: string): void {
    const c = this.current;
    if (c !== undefined) this.registry.markError(this.balancer, c, Date.now(), reason);
  }

  private none(reason: string, now: number): Elected {
    const ms = retryAfter(this.registry, this.balancer, now);
    return ms === undefined ? { reason } : { reason, retryAfterS: seconds(ms) };
  }

  /**
   * The elected member could not be reached: it goes into error state (unless `+I`). True when
   * another member may be tried; else `retryAfterS` is set when no member is usable any more.
   */
  failed(reason: string): { again: true } | { again: false; retryAfterS?: number } {
    const c = this.current;
    if (c === undefined) return { again: false };
    this.current = undefined;
    const now = Date.now();
    this.registry.markError(this.balancer, c, now, reason);
    // nofailover: a session stays on its member, or fails.
    if (this.failovers < this.balancer.maxAttempts && !(this.stuck && this.balancer.noFailover)) {
      this.failovers++;
      return { again: true };
    }
    const ms = retryAfter(this.registry, this.balancer, now);
    return ms === undefined ? { again: false } : { again: false, retryAfterS: seconds(ms) };
  }
}

/** Retry-After: whole seconds, at least 1. */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** For an upgrade, only members whose `upgrade=` accepts the value may take it. */
function accepts(policy: UpgradePolicy, upgradeValue: string | undefined): boolean {
  return upgradeValue === undefined || acceptedUpgrade(policy, upgradeValue) !== undefined;
}

/**
 * The member's URL path in front of the request-target (Apache's balancer_fixup). A member path
 * ending in `/` does not double the `/` (Apache would send `//x`; its docs say to avoid it).
 */
export function memberPath(member: BalancerMember, path: string): string {
  const b = member.backend;
  if (b.pathWasEmpty || b.path === '/') return path;
  const prefix = canonPath(b.path.endsWith('/') ? b.path.slice(0, -1) : b.path);
  return path.charCodeAt(0) === 0x2f ? prefix + path : prefix + '/' + path;
}

// Where one proxied request goes: the route's backend or, for a balancer, the elected member and
// the next one after a connect failure; the request's slot in the origin's counters (max=). The
// HTTP/1 exchange and the native front's upgrades both go through it, so elections, limits,
// failover and the failure log line are the same whichever path a request takes.

import type { Backend, Route } from '../config/model';
import type { RequestHead } from '../http/head';
import type { RouteResult } from '../routing/router';
import { BalancerSession } from '../upstream/balancer/session';
import type { OriginState } from '../upstream/origins';
import type { GatewayContext } from './context';

/** Why a request cannot be sent anywhere: the client's status and the log's reason. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly retryAfterS?: number;
}

export class Upstream {
  // For a balancer route these are set by each election (begin, failover).
  backend!: Backend;
  path!: string;
  state!: OriginState;
  readonly route: Route;
  readonly lb: BalancerSession | undefined;
  /** Whether this request holds an in-flight slot in `state.counters`. */
  private counted = false;

  constructor(
    private readonly ctx: GatewayContext,
    decision: Exclude<RouteResult, { kind: 'local' }>,
    upgradeValue: string | undefined,
    headers: readonly string[],
  ) {
    this.route = decision.route;
    if (decision.kind === 'balance') {
      this.lb = new BalancerSession(ctx.balancers, decision.balancer, decision.path, upgradeValue, headers);
    } else {
      this.lb = undefined;
      this.backend = decision.backend;
      this.path = decision.path;
      this.state = ctx.origins.get(decision.backend.origin);
    }
  }

  /** Elects a member (balancer) and takes an in-flight slot within `max=`; a refusal if neither can be had. */
  begin(): Refusal | undefined {
    if (this.lb !== undefined) {
      const refused = this.elect();
      if (refused !== undefined) return refused;
    }
    const counters = this.state.counters;
    if (this.backend.max > 0 && counters.openTunnels + counters.inFlight >= this.backend.max) {
      return { status: 503, reason: `max=${this.backend.max} connections reached` };
    }
    counters.inFlight++;
    this.counted = true;
    return undefined;
  }

  /** Takes the next member of the balancer. */
  private elect(): Refusal | undefined {
    const e = this.lb!.next();
    if ('reason' in e) return { status: 503, reason: e.reason, retryAfterS: e.retryAfterS };
    const prev = this.counted ? this.state : undefined;
    this.backend = e.member.backend;
    this.path = e.path;
    this.state = this.ctx.origins.get(e.member.backend.origin);
    if (prev !== undefined && prev !== this.state) {
      // Failover: the request in flight moves to the new member's origin.
      prev.counters.inFlight--;
      this.state.counters.inFlight++;
    }
    return undefined;
  }

  /**
   * The backend could not be reached (TCP). Undefined when another balancer member was elected
   * to try next (maxattempts), else the refusal (503).
   */
  connectFailed(reason: string): Refusal | undefined {
    this.state.counters.failures++;
    if (this.lb === undefined) return { status: 503, reason };
    const next = this.lb.failed(reason);
    if (!next.again) return { status: 503, reason, retryAfterS: next.retryAfterS };
    this.ctx.log.info('balancer failover', { balancer: this.lb.balancer.url, from: this.backend.url, reason });
    return this.elect();
  }

  /** The request became a tunnel: a balancer member's release, to call when the tunnel closes. */
  tunnel(): ((bytes: number) => void) | undefined {
    return this.lb?.tunnel();
  }

  /** The request is over (an answer relayed, a failure, or a tunnel started); idempotent. */
  finish(): void {
    if (this.counted) {
      this.state.counters.inFlight--;
      this.state.counters.requests++;
      this.counted = false;
    }
    this.lb?.done();
  }

  /** The one log line of a request that failed before any answer reached the client. */
  logFailure(status: number, reason: string, clientIp: string, req: RequestHead): void {
    this.ctx.log.warn('proxy request failed', {
      status,
      reason,
      client: clientIp,
      method: req.method,
      path: req.target,
      // No member elected yet: the balancer.
      backend: this.backend?.url ?? this.lb?.balancer.url,
      route: `${this.route.source.file}:${this.route.source.line}`,
    });
  }
}

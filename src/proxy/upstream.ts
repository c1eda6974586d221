// Where one proxied request goes: the route's backend or, for a balancer, the elected member and
// the next one after a connect failure; the request's slot in the origin's counters (max=). The
// HTTP/1 exchange and the native front's upgrades both go through it, so elections, limits,
// failover and the failure log line are the same whichever path a request takes.

import type { Socket } from 'node:net';
import type { Backend, Route, VirtualHost } from '../config/model';
import { buildBackendRequest } from '../http/forward';
import { viaElement } from '../http/via';
import type { RequestHead } from '../http/head';
import type { ProxyDecision } from '../routing/router';
import { sectionApplies } from '../routing/section';
import { parseTarget } from '../routing/target';
import { EMPTY_ENV, type RequestEnv } from '../http/headers-directive';
import { BalancerSession } from '../upstream/balancer/session';
import { BackendTlsError, connectOrigin, type OriginState } from '../upstream/origins';
import type { GatewayContext } from './context';

/** Why a request cannot be sent anywhere: the client's status and the log's reason. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly retryAfterS?: number;
  /**
   * Set while the balancer's `timeout=` lets the request wait for a usable member: not an answer
   * yet; call `again()` after this many ms (Apache's find_best_worker re-elects every hundredth
   * of the timeout).
   */
  readonly waitMs?: number;
}

/** What goes through an Upstream: told once a backend is chosen, or that none will be. */
export interface UpstreamUser {
  /** A backend is chosen and a slot held; `failover`: it replaces one that could not be reached. */
  upstreamChosen(failover: boolean): void;
  /** No backend can take the request: the client's answer. */
  upstreamRefused(r: Refusal): void;
}

/** A user that connects with Node's sockets (the HTTP/1 and HTTP/2 exchanges). */
export interface UpstreamConnectUser extends UpstreamUser {
  /** The request ended meanwhile: a late connection is closed. */
  readonly upstreamOver: boolean;
  upstreamConnected(socket: Socket): void;
}

/** ProxyPreserveHost for this request: the last matching section that sets it, else the server's. */
function preserveHost(vhost: VirtualHost, req: RequestHead): boolean {
  const sections = vhost.sectionPreserveHost;
  if (sections === undefined) return vhost.settings.preserveHost;
  const t = parseTarget(req.method, req.target);
  const path = typeof t === 'number' ? undefined : t.path;
  for (let i = sections.length - 1; i >= 0; i--) {
    if (sectionApplies(sections[i]!.section, path)) return sections[i]!.preserveHost;
  }
  return vhost.settings.preserveHost;
}

export class Upstream {
  // For a balancer route these are set by each election (begin, failover).
  backend!: Backend;
  path!: string;
  state!: OriginState;
  readonly route: Route;
  /** The Upgrade value the request forwards (the route's mode is upgrade), else undefined. */
  readonly upgradeValue: string | undefined;
  readonly lb: BalancerSession | undefined;
  /** Whether this request holds an in-flight slot in `state.counters`. */
  private counted = false;
  /** Balancer `timeout=`: when the wait for a usable member ends (epoch ms), once a wait began. */
  private waitUntil = 0;
  /** The refused election was a failover's (again() elects, without taking a new slot). */
  private failingOver = false;
  /** The balancer `timeout=` wait in progress. */
  private waitTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    decision: ProxyDecision,
    headers: readonly string[],
  ) {
    this.route = decision.route;
    this.upgradeValue = decision.mode === 'upgrade' ? decision.upgradeValue : undefined;
    if (decision.kind === 'balance') {
      this.lb = new BalancerSession(ctx.balancers, decision.balancer, decision.path, this.upgradeValue, headers);
    } else {
      this.lb = undefined;
      this.backend = decision.backend;
      this.path = decision.path;
      this.state = ctx.origins.get(decision.backend.origin);
    }
  }

  /** Elects a member (balancer) and takes an in-flight slot within `max=`; a refusal if neither can be had. */
  begin(): Refusal | undefined {
    this.failingOver = false;
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

  /** begin(), and the balancer `timeout=` waits it asks for; the outcome goes to `user`. */
  choose(user: UpstreamUser): void {
    this.settle(user, this.begin(), false);
  }

  /** After a TCP connect failure: the next member (`upstreamChosen(true)`), or the refusal. */
  chooseAfterFailure(user: UpstreamUser, reason: string): void {
    this.settle(user, this.connectFailed(reason), true);
  }

  /**
   * Connects to the chosen backend: the socket goes to `user`. A TCP failure elects the next
   * member (`upstreamChosen(true)`) or refuses (503); a TLS failure is a 502 with no failover
   * (the member is up, its TLS is wrong).
   */
  connect(user: UpstreamConnectUser): void {
    const b = this.backend;
    connectOrigin(b.origin, b.connectTimeoutMs, b.keepalive, (err, socket) => {
      if (user.upstreamOver) socket.destroy();
      else if (err === undefined) user.upstreamConnected(socket);
      else if (err instanceof BackendTlsError) {
        this.state.counters.failures++;
        user.upstreamRefused({ status: 502, reason: err.message });
      } else {
        this.chooseAfterFailure(user, `backend unreachable: ${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim());
      }
    });
  }

  private settle(user: UpstreamUser, refused: Refusal | undefined, failover: boolean): void {
    if (refused === undefined) user.upstreamChosen(failover);
    else if (refused.waitMs === undefined) user.upstreamRefused(refused);
    else {
      // Try the refused step again (the first election, or a failover's) after the wait.
      this.waitTimer = setTimeout(() => {
        this.waitTimer = undefined;
        const again = this.failingOver;
        this.settle(user, again ? this.elect() : this.begin(), again);
      }, refused.waitMs);
    }
  }

  /** Takes the next member of the balancer; without one, waits up to the balancer's `timeout=` for one. */
  private elect(): Refusal | undefined {
    const e = this.lb!.next();
    if ('reason' in e) {
      const wait = this.lb!.balancer.timeoutMs;
      const now = Date.now();
      if (wait > 0 && this.waitUntil === 0) {
        this.waitUntil = now + wait;
        this.ctx.log.info('balancer wait for a usable member', { balancer: this.lb!.balancer.url, timeout_ms: wait, reason: e.reason });
      }
      if (now < this.waitUntil) {
        return { status: 503, reason: e.reason, waitMs: Math.min(Math.max(wait / 100, 10), this.waitUntil - now) };
      }
      const reason = this.waitUntil === 0 ? e.reason : `${e.reason}, after waiting timeout=${wait} ms`;
      return { status: 503, reason, retryAfterS: e.retryAfterS };
    }
    this.waitUntil = 0;
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
    this.failingOver = true;
    return this.elect();
  }

  /** The member's final status: one listed in the balancer's `failonstatus=` puts it in error state (the answer is still relayed). */
  answered(status: number): void {
    if (this.lb !== undefined && this.lb.balancer.failOnStatus.includes(status)) {
      this.lb.memberFailed(`answered ${status}, listed in failonstatus=`);
    }
  }

  /** No answer within the backend's timeout: counted, and with `failontimeout=On` the member goes into error state. */
  timedOut(reason: string): void {
    this.state.counters.failures++;
    if (this.lb?.balancer.failOnTimeout) this.lb.memberFailed(`${reason} (failontimeout=On)`);
  }

  /** The request's environment for `Header` rules: the BALANCER_* variables after an election. */
  get env(): RequestEnv {
    return this.lb?.env ?? EMPTY_ENV;
  }

  /**
   * The request head for the chosen backend: its path, Host (ProxyPreserveHost), X-Forwarded-*
   * (ProxyAddHeaders), Via (ProxyVia) and, for an upgrade, the Upgrade to ask for. `secure`: the
   * client's connection is TLS; `h2`: it is HTTP/2 (the Via version).
   */
  requestHead(vhost: VirtualHost, req: RequestHead, clientIp: string, secure = false, h2 = false): Buffer {
    const settings = vhost.settings;
    const via = viaElement(vhost, req, secure, h2);
    const server = this.ctx.serverName(vhost);
    return buildBackendRequest(req, {
      method: req.method,
      path: this.path,
      host: preserveHost(vhost, req) ? (req.host ?? server) : this.backend.origin.hostHeader,
      forwardedFor: settings.addHeaders ? clientIp : undefined,
      forwardedServer: server,
      upgrade: this.upgradeValue,
      // An HTTP/1.0 client's request goes as HTTP/1.0 (an upgrade needs 1.1).
      http10: req.versionMinor === 0 && this.upgradeValue === undefined,
      ...(via !== undefined ? { via } : {}),
      ...(settings.via === 'block' ? { blockVia: true } : {}),
    });
  }

  /** The request became a tunnel: a balancer member's release, to call when the tunnel closes. */
  tunnel(): ((bytes: number) => void) | undefined {
    return this.lb?.tunnel();
  }

  /** The request is over (an answer relayed, a failure, or a tunnel started); idempotent. */
  finish(): void {
    if (this.waitTimer !== undefined) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    if (this.counted) {
      this.state.counters.inFlight--;
      this.state.counters.requests++;
      this.counted = false;
    }
    this.lb?.done();
  }

  /** The one log line of a request that failed before any answer reached the client. */
  logFailure(status: number, reason: string, clientIp: string, req: RequestHead, protocol?: 'h2'): void {
    this.ctx.log.warn('proxy request failed', {
      status,
      reason,
      client: clientIp,
      method: req.method,
      path: req.target,
      // No member elected yet: the balancer.
      backend: this.backend?.url ?? this.lb?.balancer.url,
      route: `${this.route.source.file}:${this.route.source.line}`,
      protocol,
    });
  }
}

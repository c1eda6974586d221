// What the status page shows (handlers/status.ts): an observer that keeps the few things the
// gateway does not already hold — handshakes per second and the last errors, in fixed-size rings —
// and `snapshot()`, which reads the rest (listeners, routes, balancers and members, open tunnels)
// from the gateway when the page asks. The nonce that member changes must carry is made here,
// once per gateway.

import { randomBytes } from 'node:crypto';
import type { Config, Route } from '../config/model';
import type { BoundListener } from '../listeners/bind';
import type { GatewayState } from '../proxy/context';
import type { RequestRecord } from '../proxy/record';
import type { TunnelRecord, TunnelRegistry } from '../tunnel/registry';
import { type BalancerRegistry, configMembers, statusOf } from '../upstream/balancer/state';
import type { BackendCounters } from '../upstream/counters';
import type { OriginRegistry } from '../upstream/origins';
import { backendLabel, memberStateName, routeLabel } from './metrics';
import type { Observer } from './observers';

/** What a snapshot reads of the running gateway. */
export interface StatusSource {
  readonly config: Config;
  readonly state: GatewayState;
  readonly tunnels: TunnelRegistry<TunnelRecord>;
  readonly balancers: BalancerRegistry;
  readonly origins: OriginRegistry;
  openConnections(): number;
  addresses(): BoundListener[];
}

export interface RecentError {
  readonly at: number;
  /** `failed`, `aborted`, `client-gone` (requests), or a tunnel's close reason. */
  readonly kind: string;
  readonly status: number;
  readonly reason: string;
  readonly client: string;
  readonly route: string | undefined;
  readonly backend: string | undefined;
}

/** Most open tunnels a snapshot lists (the newest); the total is given apart. */
export const STATUS_TUNNEL_LIST = 200;
/** Errors kept for the page. */
export const STATUS_ERRORS = 50;
/** Handshakes per second are averaged over this many whole seconds. */
const RATE_WINDOW_S = 10;
const RATE_SLOTS = 16;

const TUNNEL_ERRORS = new Set(['client-error', 'backend-error', 'client-reset', 'backend-reset', 'fin-timeout']);

export class StatusBoard implements Observer {
  /**
   * Member changes carry it (as Apache's balancer-manager): a page from another gateway, or a
   * forged form, has none. The workers of one `wsgate -w N` share the primary's, as a page drawn
   * by one worker may post to another.
   */
  readonly nonce: string;
  readonly startedAt = Date.now();
  private readonly errors: RecentError[] = [];
  private errorNext = 0;
  /** Handshakes per second, in a ring of slots stamped with their second. */
  private readonly slotSecond = new Float64Array(RATE_SLOTS).fill(-1);
  private readonly slotCount = new Uint32Array(RATE_SLOTS);
  handshakes = 0;
  handshakesFailed = 0;
  tunnelsOpened = 0;
  requests = 0;

  constructor(nonce?: string) {
    this.nonce = nonce ?? randomBytes(16).toString('hex');
  }

  requestEnded(rec: RequestRecord): void {
    const kind = rec.outcome?.kind ?? 'aborted';
    if (rec.upgrade !== undefined) {
      this.countHandshake(rec.finishedAt);
      this.handshakesFailed++;
    } else this.requests++;
    if (kind === 'failed' || kind === 'aborted' || kind === 'client-gone') {
      const reason = rec.outcome !== undefined && 'reason' in rec.outcome ? (rec.outcome.reason ?? '') : '';
      this.remember({ at: rec.finishedAt, kind, status: rec.status, reason, client: rec.clientIp, route: rec.route, backend: rec.backend });
    }
  }

  tunnelOpened(t: TunnelRecord): void {
    this.countHandshake(t.request.tunnelAt || Date.now());
    this.tunnelsOpened++;
  }

  tunnelClosed(t: TunnelRecord): void {
    const reason = t.tunnel.closeReason;
    if (reason === undefined || !TUNNEL_ERRORS.has(reason)) return;
    this.remember({
      at: t.tunnel.endedAt,
      kind: reason,
      status: 101,
      reason: t.tunnel.closeDetail ?? '',
      client: t.clientIp,
      route: t.request.route,
      backend: t.request.backend,
    });
  }

  /** Handshakes per second over the last whole seconds. */
  handshakeRate(now: number): number {
    const sec = Math.floor(now / 1000);
    let n = 0;
    for (let i = 0; i < RATE_SLOTS; i++) {
      const s = this.slotSecond[i]!;
      if (s >= sec - RATE_WINDOW_S && s < sec) n += this.slotCount[i]!;
    }
    return n / RATE_WINDOW_S;
  }

  /** The last errors, newest first. */
  recentErrors(): RecentError[] {
    const n = this.errors.length;
    const out: RecentError[] = [];
    for (let i = 1; i <= n; i++) out.push(this.errors[(this.errorNext - i + n) % n]!);
    return out;
  }

  snapshot(src: StatusSource, now: number): StatusSnapshot {
    const config = src.config;
    const routes: StatusRoute[] = [];
    for (const vhost of [config.mainServer, ...config.virtualHosts]) {
      const name = vhost.serverName ?? (vhost.addresses.length > 0 ? vhost.addresses.map((a) => `${a.host}:${a.port}`).join(' ') : 'main');
      for (const route of vhost.routes) {
        if (route.exclude) continue;
        routes.push({
          source: routeLabel(route),
          vhost: name,
          path: route.match.kind === 'prefix' ? route.match.prefix : `~ ${route.match.pattern}`,
          target: targetOf(route),
          openTunnels: src.tunnels.countRoute(route),
        });
      }
    }
    const balancers = new Map<string, StatusBalancer>();
    for (const { balancer, member } of configMembers(config).values()) {
      let b = balancers.get(balancer.name);
      if (b === undefined) {
        b = { name: balancer.name, url: balancer.url, method: balancer.method, members: [] };
        balancers.set(balancer.name, b);
      }
      const st = src.balancers.peek(member.key);
      const flags = st === undefined ? member.status : statusOf(member, st);
      b.members.push({
        url: member.backend.url,
        route: member.route ?? '',
        loadFactor: member.loadFactor,
        lbset: member.lbset,
        state: memberStateName(member, st, now),
        flags: { disabled: flags.disabled, drain: flags.drain, hotStandby: flags.hotStandby, stopped: flags.stopped },
        changed: st !== undefined && statusOf(member, st) !== member.status,
        openTunnels: src.tunnels.countBackend(member.backend),
        ...countersOf(st?.counters),
        errorUntil: st !== undefined && st.errorUntil > now ? st.errorUntil : 0,
        health:
          member.health === undefined
            ? undefined
            : { method: member.health.method, lastAt: st?.hcLastAt ?? 0, error: st?.hcLastError, failed: st?.hcFailed ?? false },
      });
    }
    const backends: StatusBackend[] = [];
    // The origin registry also holds the pools of member origins (with idle counters): only
    // origins that plain routes have used are listed.
    for (const st of src.origins.all())
      if (st.counters.requests > 0 || st.counters.busy > 0) backends.push({ origin: st.origin.key, ...countersOf(st.counters) });

    const all = [...src.tunnels.values()];
    const tunnels: StatusTunnel[] = [];
    // The registry keeps insertion order: the newest are at the end.
    for (let i = all.length - 1; i >= 0 && tunnels.length < STATUS_TUNNEL_LIST; i--) {
      const t = all[i]!;
      tunnels.push({
        id: t.tunnel.id,
        request: t.request.id,
        startedAt: t.tunnel.startedAt,
        ageMs: now - t.tunnel.startedAt,
        client: t.clientIp,
        protocol: t.protocol,
        upgrade: t.request.upgrade ?? '',
        route: routeLabel(t.route),
        backend: t.request.backend ?? backendLabel(t.backend),
        bytesUp: t.tunnel.bytesUp,
        bytesDown: t.tunnel.bytesDown,
        worker: process.pid,
      });
    }
    return {
      now,
      pid: process.pid,
      state: src.state,
      startedAt: this.startedAt,
      nonce: this.nonce,
      listeners: src.addresses().map((l) => `${l.address}:${l.port}${l.listen.protocol === 'https' ? ' https' : ''}`),
      connections: src.openConnections(),
      handshakesPerSecond: this.handshakeRate(now),
      totals: {
        requests: this.requests,
        handshakes: this.handshakes,
        handshakesFailed: this.handshakesFailed,
        tunnels: this.tunnelsOpened,
      },
      routes,
      balancers: [...balancers.values()],
      backends,
      openTunnels: all.length,
      tunnels,
      errors: this.recentErrors().map((e) => ({ ...e, worker: process.pid })),
    };
  }

  private countHandshake(at: number): void {
    this.handshakes++;
    const sec = Math.floor(at / 1000);
    const slot = sec % RATE_SLOTS;
    if (this.slotSecond[slot] !== sec) {
      this.slotSecond[slot] = sec;
      this.slotCount[slot] = 0;
    }
    this.slotCount[slot]!++;
  }

  private remember(e: RecentError): void {
    if (this.errors.length < STATUS_ERRORS) this.errors.push(e);
    else this.errors[this.errorNext] = e;
    this.errorNext = (this.errorNext + 1) % STATUS_ERRORS;
  }
}

function targetOf(route: Route): string {
  if (route.balancer !== undefined) return route.balancer.balancer.url;
  return route.regexTarget ?? route.backend?.url ?? '';
}

function countersOf(c: BackendCounters | undefined): StatusCounters {
  if (c === undefined) return { busy: 0, requests: 0, tunnels: 0, bytesUp: 0, bytesDown: 0, errors: 0 };
  let errors = 0;
  for (const n of Object.values(c.failures)) errors += n;
  return { busy: c.busy, requests: c.requests, tunnels: c.tunnels, bytesUp: c.bytesUp, bytesDown: c.bytesDown, errors };
}

interface StatusCounters {
  readonly busy: number;
  readonly requests: number;
  readonly tunnels: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Backend failures of every class. */
  readonly errors: number;
}

export interface StatusRoute {
  readonly source: string;
  readonly vhost: string;
  readonly path: string;
  readonly target: string;
  readonly openTunnels: number;
}

export interface StatusMember extends StatusCounters {
  readonly url: string;
  readonly route: string;
  readonly loadFactor: number;
  readonly lbset: number;
  readonly state: string;
  readonly flags: { readonly disabled: boolean; readonly drain: boolean; readonly hotStandby: boolean; readonly stopped: boolean };
  /** True when the flags were set from the page (they hold until the next change or reload). */
  readonly changed: boolean;
  readonly openTunnels: number;
  readonly errorUntil: number;
  readonly health:
    | { readonly method: string; readonly lastAt: number; readonly error: string | undefined; readonly failed: boolean }
    | undefined;
  /** `wsgate -w N` only: each worker's view of the member. */
  readonly byWorker?: StatusMemberWorker[];
}

export interface StatusBalancer {
  readonly name: string;
  readonly url: string;
  readonly method: string;
  readonly members: StatusMember[];
}

export interface StatusBackend extends StatusCounters {
  readonly origin: string;
}

export interface StatusTunnel {
  readonly id: number;
  readonly request: number;
  readonly startedAt: number;
  readonly ageMs: number;
  readonly client: string;
  readonly protocol: string;
  readonly upgrade: string;
  readonly route: string;
  readonly backend: string;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** The pid of the worker process that holds it (ids are per process). */
  readonly worker: number;
}

export interface StatusError extends RecentError {
  /** The pid of the worker process it happened in. */
  readonly worker: number;
}

/** One worker of `wsgate -w N`, in a merged snapshot (merge-status.ts). */
export interface StatusWorker {
  readonly pid: number;
  readonly state: GatewayState;
  readonly startedAt: number;
  readonly connections: number;
  readonly openTunnels: number;
  readonly handshakesPerSecond: number;
}

/** What one worker has of a member, in a merged snapshot. */
export interface StatusMemberWorker {
  readonly pid: number;
  readonly state: string;
  readonly openTunnels: number;
  readonly busy: number;
}

export interface StatusSnapshot {
  readonly now: number;
  readonly pid: number;
  readonly state: GatewayState;
  readonly startedAt: number;
  readonly nonce: string;
  readonly listeners: string[];
  readonly connections: number;
  readonly handshakesPerSecond: number;
  readonly totals: { readonly requests: number; readonly handshakes: number; readonly handshakesFailed: number; readonly tunnels: number };
  readonly routes: StatusRoute[];
  readonly balancers: StatusBalancer[];
  readonly backends: StatusBackend[];
  readonly openTunnels: number;
  readonly tunnels: StatusTunnel[];
  readonly errors: StatusError[];
  /** `wsgate -w N` only: the workers whose snapshots are merged here, and how many the primary runs. */
  readonly workers?: StatusWorker[];
  readonly workersRunning?: number;
}

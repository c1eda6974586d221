// Prometheus metrics of one gateway (`SetHandler metrics`, handlers/metrics.ts). An observer
// counts what ends — requests, handshakes, tunnels — into a prom-client Registry of its own (not
// prom-client's global one: two gateways in one process, as in the tests, must not add up); what
// is a state rather than an event — open tunnels, live bytes, backend counters, member state — is
// read from the gateway when a scrape asks (`refresh`), so nothing is done per byte or per tick.
//
// Labels are bounded by the config: a route is its `file:line`, a backend its origin
// (`scheme://host:port`, never a path: a RewriteRule target carries the request's path), a
// member its URL as configured. No client address, path or request id is ever a label.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Backend, BalancerMember, Config, Route } from '../config/model';
import type { RequestRecord } from '../proxy/record';
import type { TunnelRecord, TunnelRegistry } from '../tunnel/registry';
import { type BalancerRegistry, configMembers, type MemberState, statusOf } from '../upstream/balancer/state';
import type { BackendCounters, FailureClass } from '../upstream/counters';
import type { OriginRegistry } from '../upstream/origins';
import type { Observer } from './observers';

/** What a scrape reads of the running gateway. */
export interface MetricsSource {
  readonly config: Config;
  readonly tunnels: TunnelRegistry<TunnelRecord>;
  readonly balancers: BalancerRegistry;
  readonly origins: OriginRegistry;
  openConnections(): number;
}

/** Snake-case names for the backend failure classes (Prometheus label values by convention). */
const FAILURE_LABELS: Record<FailureClass, string> = {
  refused: 'refused',
  connectTimeout: 'connect_timeout',
  connect: 'connect',
  tls: 'tls',
  badAnswer: 'bad_answer',
  timeout: 'timeout',
};

/** A member's state as one label value, the first that applies (as the status page shows it). */
export type MemberStateName = 'stopped' | 'disabled' | 'draining' | 'health_failed' | 'error' | 'hot_standby' | 'spare' | 'ok';
export const MEMBER_STATES: readonly MemberStateName[] = [
  'ok',
  'hot_standby',
  'spare',
  'draining',
  'disabled',
  'stopped',
  'error',
  'health_failed',
];

/** The origin a backend label names (see the head of this file). */
export function backendLabel(b: Backend): string {
  return b.origin.key;
}

export function routeLabel(r: Route): string {
  return `${r.source.file}:${r.source.line}`;
}

/** The balancer a tunnel's route sends to ('' for a plain route). */
function balancerOf(t: TunnelRecord): string {
  return t.route.balancer?.balancer.name ?? '';
}

/**
 * The close codes a `code` label may take: those of RFC 6455 §7.4.1 and the IANA registry that a
 * peer may send (1005: a close frame without a code); anything else, application codes
 * (3000–4999) included, is `other`, so the label stays bounded whatever the peers send.
 */
const CLOSE_CODE_LABELS: ReadonlySet<number> = new Set([
  1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
]);

export function closeCodeLabel(code: number): string {
  return CLOSE_CODE_LABELS.has(code) ? String(code) : 'other';
}

/**
 * Whether some server of `config` answers `SetHandler metrics`. The gateway counts only from the
 * first config that does: the counting costs each handshake a few microseconds, for nobody to read.
 */
export function servesMetrics(config: Config): boolean {
  for (const vh of [config.mainServer, ...config.virtualHosts]) if (vh.handlers?.some((h) => h.handler === 'metrics')) return true;
  return false;
}

/** A status as a label: its code, or `none` when the client got no answer. */
function statusLabel(status: number): string {
  return status === 0 ? 'none' : String(status);
}

export class GatewayMetrics implements Observer {
  readonly registry = new Registry();
  private defaultsOn = false;

  private readonly requests = new Counter({
    name: 'wsgate_http_requests_total',
    help: 'Plain HTTP requests (not upgrades) that ended, by the status the client got',
    labelNames: ['code', 'class'] as const,
    registers: [this.registry],
  });
  private readonly requestErrors = new Counter({
    name: 'wsgate_request_errors_total',
    help: 'Requests and handshakes that ended without a relayed answer: failed (wsgate answered 5xx for the backend), aborted, client_gone',
    labelNames: ['class'] as const,
    registers: [this.registry],
  });
  private readonly handshakes = new Counter({
    name: 'wsgate_handshakes_total',
    help: 'Upgrade requests by outcome (tunnel, answered, failed, aborted, client_gone) and the status the client got',
    labelNames: ['outcome', 'status'] as const,
    registers: [this.registry],
  });
  private readonly handshakeSeconds = new Histogram({
    name: 'wsgate_handshake_duration_seconds',
    help: 'From the request head read to the tunnel made (the 101 relayed), for handshakes that became tunnels',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly tunnelSeconds = new Histogram({
    name: 'wsgate_tunnel_duration_seconds',
    help: 'How long tunnels lived, observed when they close',
    buckets: [0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600],
    registers: [this.registry],
  });
  private readonly tunnelsClosed = new Counter({
    name: 'wsgate_tunnels_closed_total',
    help: 'Tunnels closed, by why (closed, client-error, backend-error, client-reset, backend-reset, idle-timeout, shutdown, reload, drain, fin-timeout, ping-timeout)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly wsCloses = new Counter({
    name: 'wsgate_websocket_closes_total',
    help: 'WebSocket close frames by who sent them (client, backend, or wsgate itself) and status code (1005: none in the frame; other: a code outside the RFC 6455 registry), counted when the tunnel closes',
    labelNames: ['from', 'code'] as const,
    registers: [this.registry],
  });
  private readonly wsTunnelsClosed = new Counter({
    name: 'wsgate_websocket_tunnels_closed_total',
    help: 'WebSocket tunnels closed, by who sent the first close frame (client, backend, wsgate; none: the connection ended without one)',
    labelNames: ['first'] as const,
    registers: [this.registry],
  });
  private readonly wsViolations = new Counter({
    name: 'wsgate_websocket_violations_total',
    help: 'WebSocket protocol violations (unmasked client frame, bad opcode, reserved bits, control frame over 125 bytes) by the side that sent them, counted when the tunnel closes',
    labelNames: ['from'] as const,
    registers: [this.registry],
  });
  private readonly tunnelsOpen = new Gauge({
    name: 'wsgate_tunnels_open',
    help: 'Tunnels open now, by route (file:line of its ProxyPass or RewriteRule), balancer and backend origin',
    labelNames: ['route', 'balancer', 'backend'] as const,
    registers: [this.registry],
  });
  private readonly tunnelBytes = new Counter({
    name: 'wsgate_tunnel_bytes_total',
    help: 'Bytes forwarded by tunnels, by balancer, backend origin and direction (up: client to backend); open tunnels are read live at each scrape',
    labelNames: ['balancer', 'backend', 'direction'] as const,
    registers: [this.registry],
  });
  private readonly connections = new Gauge({
    name: 'wsgate_client_connections_open',
    help: 'Client connections speaking HTTP or in a handshake now (tunnels not included), HTTP/2 sessions included',
    registers: [this.registry],
  });
  private readonly backendBytes = new Counter({
    name: 'wsgate_backend_bytes_total',
    help: 'Bytes to (up) and from (down) each backend: request and answer heads and bodies, and tunnel bytes',
    labelNames: ['balancer', 'backend', 'direction'] as const,
    registers: [this.registry],
  });
  private readonly backendRequests = new Counter({
    name: 'wsgate_backend_requests_total',
    help: 'Requests sent to each backend (a failover counts on each member tried)',
    labelNames: ['balancer', 'backend'] as const,
    registers: [this.registry],
  });
  private readonly backendFailures = new Counter({
    name: 'wsgate_backend_failures_total',
    help: 'Backend failures by class (refused, connect_timeout, connect, tls, bad_answer, timeout)',
    labelNames: ['balancer', 'backend', 'class'] as const,
    registers: [this.registry],
  });
  private readonly backendBusy = new Gauge({
    name: 'wsgate_backend_busy',
    help: 'Requests in flight plus open tunnels on each backend (what max= and bybusyness read)',
    labelNames: ['balancer', 'backend'] as const,
    registers: [this.registry],
  });
  private readonly memberState = new Gauge({
    name: 'wsgate_balancer_member_state',
    help: 'Balancer member state: 1 for the state the member is in, 0 for the others',
    labelNames: ['balancer', 'member', 'state'] as const,
    // -w N: 1 for each state some worker sees it in (error and health states are per worker).
    aggregator: 'max',
    registers: [this.registry],
  });
  private readonly memberHealthy = new Gauge({
    name: 'wsgate_balancer_member_healthy',
    help: '1 when the member passes its health checks and is not in error state, else 0',
    labelNames: ['balancer', 'member'] as const,
    // -w N: healthy only when every worker finds it so.
    aggregator: 'min',
    registers: [this.registry],
  });
  private readonly memberCheckAge = new Gauge({
    name: 'wsgate_balancer_member_last_health_check_timestamp_seconds',
    help: 'When the member was last health-checked (hcmethod=), Unix time; absent before the first check',
    labelNames: ['balancer', 'member'] as const,
    // -w N: each worker checks; the latest check counts.
    aggregator: 'max',
    registers: [this.registry],
  });

  /** Bytes of closed tunnels, by `balancer|backend`, to which the open ones are added at each scrape. */
  private readonly closedBytes = new Map<string, { up: number; down: number }>();

  requestEnded(rec: RequestRecord): void {
    const kind = rec.outcome?.kind ?? 'aborted';
    if (kind === 'failed' || kind === 'aborted' || kind === 'client-gone') this.requestErrors.inc({ class: kind.replace('-', '_') });
    if (rec.upgrade !== undefined) {
      this.handshakes.inc({ outcome: kind.replace('-', '_'), status: statusLabel(rec.status) });
      return;
    }
    this.requests.inc({ code: statusLabel(rec.status), class: rec.status === 0 ? 'none' : `${Math.floor(rec.status / 100)}xx` });
  }

  tunnelOpened(t: TunnelRecord): void {
    const r = t.request;
    this.handshakes.inc({ outcome: 'tunnel', status: '101' });
    if (r.tunnelAt >= r.headAt) this.handshakeSeconds.observe((r.tunnelAt - r.headAt) / 1000);
  }

  tunnelClosed(t: TunnelRecord): void {
    const tunnel = t.tunnel;
    this.tunnelsClosed.inc({ reason: tunnel.closeReason ?? 'closed' });
    this.tunnelSeconds.observe(Math.max(tunnel.endedAt - tunnel.startedAt, 0) / 1000);
    const codes = tunnel.wsCloseCodes();
    if (codes !== undefined) {
      if (codes.client !== 0) this.wsCloses.inc({ from: 'client', code: closeCodeLabel(codes.client) });
      if (codes.backend !== 0) this.wsCloses.inc({ from: 'backend', code: closeCodeLabel(codes.backend) });
      if (codes.wsgate !== 0) this.wsCloses.inc({ from: 'wsgate', code: closeCodeLabel(codes.wsgate) });
      this.wsTunnelsClosed.inc({ first: codes.first ?? 'none' });
      const n = tunnel.wsCounts();
      if (n !== undefined && n.violationsUp > 0) this.wsViolations.inc({ from: 'client' }, n.violationsUp);
      if (n !== undefined && n.violationsDown > 0) this.wsViolations.inc({ from: 'backend' }, n.violationsDown);
    }
    const key = `${balancerOf(t)}|${backendLabel(t.backend)}`;
    const sum = this.closedBytes.get(key) ?? { up: 0, down: 0 };
    sum.up += tunnel.bytesUp;
    sum.down += tunnel.bytesDown;
    this.closedBytes.set(key, sum);
  }

  /** The exposition text, with every state read now. Process metrics start with the first scrape. */
  async render(src: MetricsSource): Promise<{ contentType: string; text: string }> {
    this.prepare(src);
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** The same, as prom-client's JSON: one worker's part of a `-w N` scrape (merge-metrics.ts). */
  json(src: MetricsSource): ReturnType<Registry['getMetricsAsJSON']> {
    this.prepare(src);
    return this.registry.getMetricsAsJSON();
  }

  private prepare(src: MetricsSource): void {
    if (!this.defaultsOn) {
      this.defaultsOn = true;
      collectDefaultMetrics({ register: this.registry });
    }
    this.refresh(src, Date.now());
  }

  private refresh(src: MetricsSource, now: number): void {
    this.connections.set(src.openConnections());

    // Open tunnels, and their bytes read live (a native tunnel's from the engine).
    const open = new Map<string, { route: string; balancer: string; backend: string; n: number }>();
    const bytes = new Map<string, { up: number; down: number }>();
    for (const [key, sum] of this.closedBytes) bytes.set(key, { up: sum.up, down: sum.down });
    for (const t of src.tunnels.values()) {
      const balancer = balancerOf(t);
      const backend = backendLabel(t.backend);
      const route = routeLabel(t.route);
      const okey = `${route}|${balancer}|${backend}`;
      const o = open.get(okey);
      if (o === undefined) open.set(okey, { route, balancer, backend, n: 1 });
      else o.n++;
      const bkey = `${balancer}|${backend}`;
      const b = bytes.get(bkey) ?? { up: 0, down: 0 };
      b.up += t.tunnel.bytesUp;
      b.down += t.tunnel.bytesDown;
      bytes.set(bkey, b);
    }
    this.tunnelsOpen.reset();
    for (const o of open.values()) this.tunnelsOpen.set({ route: o.route, balancer: o.balancer, backend: o.backend }, o.n);
    this.tunnelBytes.reset();
    for (const [key, b] of bytes) {
      const [balancer, backend] = splitKey(key);
      this.tunnelBytes.inc({ balancer, backend, direction: 'up' }, b.up);
      this.tunnelBytes.inc({ balancer, backend, direction: 'down' }, b.down);
    }

    // Backend counters: plain origins, then balancer members (one set of counters each).
    this.backendBytes.reset();
    this.backendRequests.reset();
    this.backendFailures.reset();
    this.backendBusy.reset();
    for (const st of src.origins.all()) this.addCounters('', st.origin.key, st.counters);
    this.memberState.reset();
    this.memberHealthy.reset();
    this.memberCheckAge.reset();
    for (const { balancer, member } of configMembers(src.config).values()) {
      const st = src.balancers.peek(member.key);
      const labels = { balancer: balancer.name, member: member.backend.url };
      const state = memberStateName(member, st, now);
      for (const s of MEMBER_STATES) this.memberState.set({ ...labels, state: s }, s === state ? 1 : 0);
      this.memberHealthy.set(labels, st !== undefined && (st.hcFailed || st.errorUntil > now) ? 0 : 1);
      if (st !== undefined && st.hcLastAt > 0) this.memberCheckAge.set(labels, st.hcLastAt / 1000);
      if (st !== undefined) this.addCounters(balancer.name, member.backend.url, st.counters);
    }
  }

  private addCounters(balancer: string, backend: string, c: BackendCounters): void {
    const labels = { balancer, backend };
    // inc, not set: two members of one balancer may share an origin URL only if configured twice.
    this.backendBytes.inc({ ...labels, direction: 'up' }, c.bytesUp);
    this.backendBytes.inc({ ...labels, direction: 'down' }, c.bytesDown);
    this.backendRequests.inc(labels, c.requests);
    this.backendBusy.inc(labels, c.busy);
    for (const [cls, label] of Object.entries(FAILURE_LABELS) as [FailureClass, string][])
      this.backendFailures.inc({ ...labels, class: label }, c.failures[cls]);
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('|');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** One name for a member's state: the administrator's flags first, then health and error state. */
export function memberStateName(member: BalancerMember, st: MemberState | undefined, now: number): MemberStateName {
  const s = st === undefined ? member.status : statusOf(member, st);
  if (s.stopped) return 'stopped';
  if (s.disabled) return 'disabled';
  if (s.drain) return 'draining';
  if (st?.hcFailed) return 'health_failed';
  if (st !== undefined && st.errorUntil > now) return 'error';
  if (s.hotStandby) return 'hot_standby';
  if (s.spare) return 'spare';
  return 'ok';
}

// One status page for all `-w N` workers: every worker's snapshot (StatusBoard.snapshot) merged
// into one of the same shape, so the page, `?json` and `?auto` read it as they read a single
// process's. Counts are summed; what each worker holds stays visible: tunnels and errors carry
// the worker's pid, members list each worker's view (`byWorker`), and `workers` each worker.

import { STATUS_ERRORS, STATUS_TUNNEL_LIST } from './status';
import type { StatusBackend, StatusBalancer, StatusError, StatusMember, StatusRoute, StatusSnapshot, StatusTunnel } from './status';

/** A member's state in the merged view: the first, in this order, that some worker sees (as memberStateName ranks them). */
const STATE_RANK = ['stopped', 'disabled', 'draining', 'health_failed', 'error', 'hot_standby', 'spare', 'ok'];

function rank(state: string): number {
  const i = STATE_RANK.indexOf(state);
  return i < 0 ? STATE_RANK.length : i;
}

type Counts = Pick<StatusMember, 'busy' | 'requests' | 'tunnels' | 'bytesUp' | 'bytesDown' | 'errors'>;

function addCounts<T extends Counts>(a: T, b: Counts): T {
  return {
    ...a,
    busy: a.busy + b.busy,
    requests: a.requests + b.requests,
    tunnels: a.tunnels + b.tunnels,
    bytesUp: a.bytesUp + b.bytesUp,
    bytesDown: a.bytesDown + b.bytesDown,
    errors: a.errors + b.errors,
  };
}

function mergeMember(a: StatusMember, b: StatusMember, pid: number): StatusMember {
  const health =
    a.health === undefined || b.health === undefined
      ? (a.health ?? b.health)
      : {
          method: a.health.method,
          // The latest check's time and result; failed when any worker's checks failed.
          lastAt: Math.max(a.health.lastAt, b.health.lastAt),
          error: b.health.lastAt > a.health.lastAt ? b.health.error : a.health.error,
          failed: a.health.failed || b.health.failed,
        };
  return {
    ...addCounts(a, b),
    state: rank(b.state) < rank(a.state) ? b.state : a.state,
    changed: a.changed || b.changed,
    openTunnels: a.openTunnels + b.openTunnels,
    errorUntil: Math.max(a.errorUntil, b.errorUntil),
    health,
    byWorker: [...(a.byWorker ?? []), { pid, state: b.state, openTunnels: b.openTunnels, busy: b.busy }],
  };
}

/**
 * `snapshots` (the asking worker's first) as one. `running`: how many workers the primary runs;
 * fewer snapshots means some did not answer in time, which `workers` shows.
 */
export function mergeStatus(snapshots: readonly StatusSnapshot[], running: number): StatusSnapshot {
  const first = snapshots[0]!;
  const listeners: string[] = [];
  const routes = new Map<string, StatusRoute>();
  const balancers = new Map<string, { b: StatusBalancer; members: Map<string, StatusMember> }>();
  const backends = new Map<string, StatusBackend>();
  const tunnels: StatusTunnel[] = [];
  const errors: StatusError[] = [];
  const totals = { requests: 0, handshakes: 0, handshakesFailed: 0, tunnels: 0 };
  let connections = 0;
  let openTunnels = 0;
  let rate = 0;
  let startedAt = first.startedAt;
  for (const s of snapshots) {
    // The listeners are the same sockets' addresses in every worker: once each.
    for (const l of s.listeners) if (!listeners.includes(l)) listeners.push(l);
    for (const r of s.routes) {
      const key = `${r.source}|${r.vhost}|${r.path}`;
      const had = routes.get(key);
      routes.set(key, had === undefined ? r : { ...had, openTunnels: had.openTunnels + r.openTunnels });
    }
    for (const b of s.balancers) {
      let entry = balancers.get(b.name);
      if (entry === undefined) {
        entry = { b, members: new Map() };
        balancers.set(b.name, entry);
      }
      for (const m of b.members) {
        const had = entry.members.get(m.url);
        const own = { pid: s.pid, state: m.state, openTunnels: m.openTunnels, busy: m.busy };
        entry.members.set(m.url, had === undefined ? { ...m, byWorker: [own] } : mergeMember(had, m, s.pid));
      }
    }
    for (const o of s.backends) {
      const had = backends.get(o.origin);
      backends.set(o.origin, had === undefined ? o : addCounts(had, o));
    }
    tunnels.push(...s.tunnels);
    errors.push(...s.errors);
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s.totals[k];
    connections += s.connections;
    openTunnels += s.openTunnels;
    rate += s.handshakesPerSecond;
    startedAt = Math.min(startedAt, s.startedAt);
  }
  tunnels.sort((a, b) => b.startedAt - a.startedAt);
  errors.sort((a, b) => b.at - a.at);
  return {
    ...first,
    startedAt,
    listeners,
    connections,
    handshakesPerSecond: rate,
    totals,
    routes: [...routes.values()],
    balancers: [...balancers.values()].map(({ b, members }) => ({ ...b, members: [...members.values()] })),
    backends: [...backends.values()],
    openTunnels,
    tunnels: tunnels.slice(0, STATUS_TUNNEL_LIST),
    errors: errors.slice(0, STATUS_ERRORS),
    workers: snapshots.map((s) => ({
      pid: s.pid,
      state: s.state,
      startedAt: s.startedAt,
      connections: s.connections,
      openTunnels: s.openTunnels,
      handshakesPerSecond: s.handshakesPerSecond,
    })),
    workersRunning: running,
  };
}

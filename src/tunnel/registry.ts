// The live tunnels of a gateway, kept so that the proxy can find and act on them: a reload or a
// member drain lists the tunnels of a route or a backend, shutdown walks them all, and a status
// page counts them. Each tunnel is added once when it is made and removed once when it closes.
//
// Counts by route, backend and client address are one hash probe each, kept as numbers. The lists
// by route and by backend are sets made the first time one is asked for (a reload or a drain of a
// member), and kept up to date from then on: a gateway that never asks does not pay two set entries
// per tunnel. A route is keyed by the Route object itself (a reloaded config makes new ones, so
// "this route" stays the configuration it came from); a backend by its URL as configured, so every
// route and every config naming the same backend (a balancer member included) finds its tunnels
// under one key.

import type { Backend, Route, VirtualHost } from '../config/model';
import type { FrontProtocol, RequestRecord } from '../proxy/record';
import type { BackendCounters } from '../upstream/counters';
import type { Tunnel } from './tunnel';

/** What the registry needs to know of a tunnel's record; the gateway's record carries more. */
export interface RegisteredTunnel {
  readonly tunnel: Tunnel;
  readonly route: Route;
  readonly backend: Backend;
  /** The client's address (plain IPv4 for a mapped one); counted by `countClient` when given. */
  readonly clientIp?: string;
}

/** A live tunnel with what it belongs to, as the gateway keeps it and its observers read it. */
export interface TunnelRecord extends RegisteredTunnel {
  readonly clientIp: string;
  readonly vhost: VirtualHost;
  /** How the client reached wsgate: its own HTTP/1.1 connection, or a stream of an HTTP/2 one (RFC 8441). */
  readonly protocol: FrontProtocol;
  /** The request that became this tunnel, from its head on. */
  readonly request: RequestRecord;
  /** The backend's counters, as the tunnel started (they get its bytes as they flow). */
  readonly counters: BackendCounters;
  /** The tunnel holds an open-tunnel slot in `counters`, given back when it closes. */
  readonly counted: boolean;
}

export class TunnelRegistry<R extends RegisteredTunnel = RegisteredTunnel> {
  private readonly byTunnel = new Map<Tunnel, R>();
  private readonly perRoute = new Map<Route, number>();
  private readonly perBackend = new Map<string, number>();
  /** Open tunnels per client address: only a count is needed (abuse limits), so no set. */
  private readonly perClient = new Map<string, number>();
  /** The sets behind byRouteOf and byBackendOf, once one was asked for. */
  private byRoute: Map<Route, Set<R>> | undefined;
  private byBackend: Map<string, Set<R>> | undefined;

  /** Registers a live tunnel; a tunnel already registered is an error in the caller. */
  add(record: R): void {
    if (this.byTunnel.has(record.tunnel)) throw new Error(`tunnel ${record.tunnel.id} is already registered`);
    this.byTunnel.set(record.tunnel, record);
    this.index(record);
    const ip = record.clientIp;
    if (ip !== undefined) countUp(this.perClient, ip);
  }

  /** Unregisters a tunnel; returns its record the first time, undefined after. */
  remove(tunnel: Tunnel): R | undefined {
    const record = this.byTunnel.get(tunnel);
    if (record === undefined) return undefined;
    this.byTunnel.delete(tunnel);
    this.unindex(record);
    const ip = record.clientIp;
    if (ip !== undefined) countDown(this.perClient, ip);
    return record;
  }

  /**
   * Puts `record` in place of the one registered for its tunnel (a reload moves a kept tunnel to
   * the new config's route and backend, so that they count it); false if the tunnel is not here.
   */
  replace(record: R): boolean {
    const old = this.byTunnel.get(record.tunnel);
    if (old === undefined) return false;
    this.unindex(old);
    // Map.set on a present key keeps the tunnel's place in the creation order.
    this.byTunnel.set(record.tunnel, record);
    this.index(record);
    return true;
  }

  get(tunnel: Tunnel): R | undefined {
    return this.byTunnel.get(tunnel);
  }

  get size(): number {
    return this.byTunnel.size;
  }

  /** The live tunnels of `route` (a snapshot: safe to close them while walking it). */
  byRouteOf(route: Route): R[] {
    const set = this.routeSets().get(route);
    return set === undefined ? [] : [...set];
  }

  /** The live tunnels to `backend` (a Backend, or its URL as configured); a snapshot. */
  byBackendOf(backend: Backend | string): R[] {
    const set = this.backendSets().get(typeof backend === 'string' ? backend : backend.url);
    return set === undefined ? [] : [...set];
  }

  /** How many tunnels `route` has open, without making a list. */
  countRoute(route: Route): number {
    return this.perRoute.get(route) ?? 0;
  }

  /** How many tunnels go to `backend`, without making a list. */
  countBackend(backend: Backend | string): number {
    return this.perBackend.get(typeof backend === 'string' ? backend : backend.url) ?? 0;
  }

  /** How many tunnels the client address `ip` has open (one hash probe). */
  countClient(ip: string): number {
    return this.perClient.get(ip) ?? 0;
  }

  /** The records, in the order the tunnels were made. Closing a tunnel while iterating is safe (Map semantics). */
  values(): IterableIterator<R> {
    return this.byTunnel.values();
  }

  keys(): IterableIterator<Tunnel> {
    return this.byTunnel.keys();
  }

  [Symbol.iterator](): IterableIterator<R> {
    return this.byTunnel.values();
  }

  private index(record: R): void {
    countUp(this.perRoute, record.route);
    countUp(this.perBackend, record.backend.url);
    if (this.byRoute !== undefined) addTo(this.byRoute, record.route, record);
    if (this.byBackend !== undefined) addTo(this.byBackend, record.backend.url, record);
  }

  private unindex(record: R): void {
    countDown(this.perRoute, record.route);
    countDown(this.perBackend, record.backend.url);
    if (this.byRoute !== undefined) removeFrom(this.byRoute, record.route, record);
    if (this.byBackend !== undefined) removeFrom(this.byBackend, record.backend.url, record);
  }

  private routeSets(): Map<Route, Set<R>> {
    if (this.byRoute === undefined) {
      this.byRoute = new Map();
      for (const r of this.byTunnel.values()) addTo(this.byRoute, r.route, r);
    }
    return this.byRoute;
  }

  private backendSets(): Map<string, Set<R>> {
    if (this.byBackend === undefined) {
      this.byBackend = new Map();
      for (const r of this.byTunnel.values()) addTo(this.byBackend, r.backend.url, r);
    }
    return this.byBackend;
  }
}

function countUp<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function countDown<K>(counts: Map<K, number>, key: K): void {
  const n = (counts.get(key) ?? 1) - 1;
  // Dropped at zero, as the sets are: routes, backends and addresses seen once must not pile up.
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}

function addTo<K>(index: Map<K, Set<unknown>>, key: K, record: unknown): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(record);
}

function removeFrom<K>(index: Map<K, Set<unknown>>, key: K, record: unknown): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(record);
  // An empty set is dropped: routes and backends of old configs must not pile up.
  if (set.size === 0) index.delete(key);
}

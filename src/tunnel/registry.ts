// The live tunnels of a gateway, kept so that the proxy can find and act on them: a reload or a
// member drain lists the tunnels of a route or a backend, shutdown walks them all, and a status
// page counts them. Each tunnel is added once when it is made and removed once when it closes.
//
// The indexes by route, backend and client address (counts, and the lists by route and backend)
// are made the first time one is asked for (a WebSocket cap that counts, a reload or a drain of a
// member) and kept up to date from then on, one hash probe per tunnel each: a gateway that never
// asks pays neither the memory of a set entry per tunnel nor the map updates of every handshake. A route is keyed by the Route object itself (a reloaded config makes new ones, so
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
  // The indexes, once asked for (undefined before).
  private perRoute: Map<Route, number> | undefined;
  private perBackend: Map<string, number> | undefined;
  /** Open tunnels per client address: only a count is needed (abuse limits), so no set. */
  private perClient: Map<string, number> | undefined;
  private byRoute: Map<Route, Set<R>> | undefined;
  private byBackend: Map<string, Set<R>> | undefined;

  /** Registers a live tunnel; a tunnel already registered is an error in the caller. */
  add(record: R): void {
    if (this.byTunnel.has(record.tunnel)) throw new Error(`tunnel ${record.tunnel.id} is already registered`);
    this.byTunnel.set(record.tunnel, record);
    this.index(record);
    if (this.perClient !== undefined && record.clientIp !== undefined) countUp(this.perClient, record.clientIp);
  }

  /** Unregisters a tunnel; returns its record the first time, undefined after. */
  remove(tunnel: Tunnel): R | undefined {
    const record = this.byTunnel.get(tunnel);
    if (record === undefined) return undefined;
    this.byTunnel.delete(tunnel);
    this.unindex(record);
    if (this.perClient !== undefined && record.clientIp !== undefined) countDown(this.perClient, record.clientIp);
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
    if (this.byRoute === undefined) this.byRoute = this.build((r) => r.route, addTo);
    const set = this.byRoute.get(route);
    return set === undefined ? [] : [...set];
  }

  /** The live tunnels to `backend` (a Backend, or its URL as configured); a snapshot. */
  byBackendOf(backend: Backend | string): R[] {
    if (this.byBackend === undefined) this.byBackend = this.build((r) => r.backend.url, addTo);
    const set = this.byBackend.get(typeof backend === 'string' ? backend : backend.url);
    return set === undefined ? [] : [...set];
  }

  /** How many tunnels `route` has open, without making a list. */
  countRoute(route: Route): number {
    if (this.perRoute === undefined) this.perRoute = this.build((r) => r.route, countUp);
    return this.perRoute.get(route) ?? 0;
  }

  /** How many tunnels go to `backend`, without making a list. */
  countBackend(backend: Backend | string): number {
    if (this.perBackend === undefined) this.perBackend = this.build((r) => r.backend.url, countUp);
    return this.perBackend.get(typeof backend === 'string' ? backend : backend.url) ?? 0;
  }

  /** How many tunnels the client address `ip` has open (one hash probe). */
  countClient(ip: string): number {
    if (this.perClient === undefined) this.perClient = this.build((r) => r.clientIp, countUp);
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
    if (this.perRoute !== undefined) countUp(this.perRoute, record.route);
    if (this.perBackend !== undefined) countUp(this.perBackend, record.backend.url);
    if (this.byRoute !== undefined) addTo(this.byRoute, record.route, record);
    if (this.byBackend !== undefined) addTo(this.byBackend, record.backend.url, record);
  }

  private unindex(record: R): void {
    if (this.perRoute !== undefined) countDown(this.perRoute, record.route);
    if (this.perBackend !== undefined) countDown(this.perBackend, record.backend.url);
    if (this.byRoute !== undefined) removeFrom(this.byRoute, record.route, record);
    if (this.byBackend !== undefined) removeFrom(this.byBackend, record.backend.url, record);
  }

  /** An index of the tunnels registered so far, by `keyOf` (records without a key are left out). */
  private build<K, V>(keyOf: (r: R) => K | undefined, put: (index: Map<K, V>, key: K, record: R) => void): Map<K, V> {
    const index = new Map<K, V>();
    for (const r of this.byTunnel.values()) {
      const key = keyOf(r);
      if (key !== undefined) put(index, key, r);
    }
    return index;
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

function addTo<K, V>(index: Map<K, Set<V>>, key: K, record: V): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(record);
}

function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, record: V): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(record);
  // An empty set is dropped: routes and backends of old configs must not pile up.
  if (set.size === 0) index.delete(key);
}

// The live tunnels of a gateway, kept so that the proxy can find and act on them: a reload or a
// member drain lists the tunnels of a route or a backend, shutdown walks them all, and a status
// page counts them. Each tunnel is added once when it is made and removed once when it closes.
//
// Lookups by route and by backend are one hash probe each. A route is keyed by the Route object
// itself (a reloaded config makes new ones, so "this route" stays the configuration it came
// from); a backend by its URL as configured, so every route and every config naming the same
// backend (a balancer member included) finds its tunnels under one key.

import type { Backend, Route, VirtualHost } from '../config/model';
import type { FrontProtocol, RequestRecord } from '../proxy/record';
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
}

export class TunnelRegistry<R extends RegisteredTunnel = RegisteredTunnel> {
  private readonly byTunnel = new Map<Tunnel, R>();
  private readonly byRoute = new Map<Route, Set<R>>();
  private readonly byBackend = new Map<string, Set<R>>();
  /** Open tunnels per client address: only a count is needed (abuse limits), so no set. */
  private readonly perClient = new Map<string, number>();

  /** Registers a live tunnel; a tunnel already registered is an error in the caller. */
  add(record: R): void {
    if (this.byTunnel.has(record.tunnel)) throw new Error(`tunnel ${record.tunnel.id} is already registered`);
    this.byTunnel.set(record.tunnel, record);
    addTo(this.byRoute, record.route, record);
    addTo(this.byBackend, record.backend.url, record);
    const ip = record.clientIp;
    if (ip !== undefined) this.perClient.set(ip, (this.perClient.get(ip) ?? 0) + 1);
  }

  /** Unregisters a tunnel; returns its record the first time, undefined after. */
  remove(tunnel: Tunnel): R | undefined {
    const record = this.byTunnel.get(tunnel);
    if (record === undefined) return undefined;
    this.byTunnel.delete(tunnel);
    removeFrom(this.byRoute, record.route, record);
    removeFrom(this.byBackend, record.backend.url, record);
    const ip = record.clientIp;
    if (ip !== undefined) {
      const n = (this.perClient.get(ip) ?? 1) - 1;
      // Dropped at zero, as the sets are: addresses seen once must not pile up.
      if (n === 0) this.perClient.delete(ip);
      else this.perClient.set(ip, n);
    }
    return record;
  }

  /**
   * Puts `record` in place of the one registered for its tunnel (a reload moves a kept tunnel to
   * the new config's route and backend, so that they count it); false if the tunnel is not here.
   */
  replace(record: R): boolean {
    const old = this.byTunnel.get(record.tunnel);
    if (old === undefined) return false;
    removeFrom(this.byRoute, old.route, old);
    removeFrom(this.byBackend, old.backend.url, old);
    // Map.set on a present key keeps the tunnel's place in the creation order.
    this.byTunnel.set(record.tunnel, record);
    addTo(this.byRoute, record.route, record);
    addTo(this.byBackend, record.backend.url, record);
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
    const set = this.byRoute.get(route);
    return set === undefined ? [] : [...set];
  }

  /** The live tunnels to `backend` (a Backend, or its URL as configured); a snapshot. */
  byBackendOf(backend: Backend | string): R[] {
    const set = this.byBackend.get(typeof backend === 'string' ? backend : backend.url);
    return set === undefined ? [] : [...set];
  }

  /** How many tunnels `route` has open, without making a list. */
  countRoute(route: Route): number {
    return this.byRoute.get(route)?.size ?? 0;
  }

  /** How many tunnels go to `backend`, without making a list. */
  countBackend(backend: Backend | string): number {
    return this.byBackend.get(typeof backend === 'string' ? backend : backend.url)?.size ?? 0;
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

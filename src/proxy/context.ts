// What an exchange needs from the gateway that runs it: the live config's services, without a
// dependency on the gateway class itself.

import type { Socket } from 'node:net';
import type { Backend, Route, VirtualHost } from '../config/model';
import type { Logger } from '../observe/log';
import type { Observers } from '../observe/observers';
import type { TunnelClient } from '../tunnel/tunnel';
import type { BalancerRegistry } from '../upstream/balancer/state';
import type { BackendCounters } from '../upstream/counters';
import type { OriginRegistry } from '../upstream/origins';
import type { LimitState } from '../routing/ws-limits';
import type { RequestRecord } from './record';

/**
 * Where the gateway is in its life: `serving`; `draining` (a graceful stop: no new connections,
 * requests and tunnels under way may finish); `stopping` (closing what is left); `stopped`.
 * A readiness check answers 503 in every state but `serving`.
 */
export type GatewayState = 'serving' | 'draining' | 'stopping' | 'stopped';

export interface GatewayContext {
  readonly log: Logger;
  readonly state: GatewayState;
  readonly origins: OriginRegistry;
  /** Balancer members' run-time state (elections, busyness, error state). */
  readonly balancers: BalancerRegistry;
  /** Open tunnels and handshake counts for the WebSocket abuse limits (routing/ws-limits.ts). */
  readonly wsLimits: LimitState;
  /** Who hears of each request's and tunnel's end (logs, metrics, status page); records report to it. */
  readonly observers: Observers;
  /** The name sent as X-Forwarded-Server (and as Host with ProxyPreserveHost but no client Host). */
  serverName(vhost: VirtualHost): string;
  /** Takes a request that became a tunnel (see exchange.ts becomeTunnel, its one caller). */
  startTunnel(t: TunnelStart): void;
}

/** A request that became a tunnel: its record, where it was routed, and the two ends. */
export interface TunnelStart {
  readonly record: RequestRecord;
  readonly vhost: VirtualHost;
  readonly route: Route;
  readonly backend: Backend;
  /** The backend's counters: the tunnel adds its bytes there as they flow. */
  readonly counters: BackendCounters;
  /** The tunnel holds an open-tunnel slot in `counters` (Upstream.tunnel): `counters.tunnelClosed()` once when it closes. */
  readonly counted: boolean;
  readonly ends: TunnelEnds;
  /** The 101's WebSocket tracker flags (tunnel/wsframe.ts websocketFlagsOf); 0: not a WebSocket. */
  readonly wsFlags: number;
}

/**
 * The two ends of a new tunnel: Node's (a client socket or HTTP/2 stream, the backend socket, and
 * the bytes each side sent early), or the native front's handshake, which the engine turns into
 * tunnel `id` without Node ever holding a socket (`establish` is false when the client had gone).
 */
export type TunnelEnds =
  | {
      readonly kind: 'sockets';
      readonly client: TunnelClient;
      readonly backend: Socket;
      readonly clientEarly: Buffer | undefined;
      readonly backendEarly: Buffer | undefined;
    }
  | { readonly kind: 'engine'; readonly establish: (id: number) => boolean; readonly earlyUp: number; readonly earlyDown: number };

// The gateway: one running wsgate. It composes the parts that each do one job — binding the
// Listen addresses (listeners/bind.ts), routing accepted connections to a front
// (listeners/accept.ts), the exchanges that answer or tunnel each request (proxy/exchange.ts,
// answering errors through proxy/answers.ts) — and holds what outlives a request: the config in
// force, the per-origin and balancer state, and the registry of live tunnels. It stops all of them.

import cluster from 'node:cluster';
import * as os from 'node:os';
import type { Config, VirtualHost } from './config/model';
import { ConnectionRouter } from './listeners/accept';
import { type BoundListener, Listeners } from './listeners/bind';
import { NativeFront } from './listeners/native-front';
import { createLogger, type Logger } from './observe/log';
import { Observers } from './observe/observers';
import { AccessLog } from './observe/access-log';
import type { GatewayContext, GatewayState, TunnelStart } from './proxy/context';
import { nativeEngine } from './tunnel/native';
import { Tunnel, type TunnelOptions } from './tunnel/tunnel';
import { type TunnelRecord, TunnelRegistry } from './tunnel/registry';
import { HealthChecker } from './upstream/balancer/health';
import { BalancerRegistry } from './upstream/balancer/state';
import { OriginRegistry } from './upstream/origins';
import { HandshakeRate } from './access/handshake-rate';
import type { LimitState } from './routing/ws-limits';

export type { BoundListener, TunnelRecord };

export interface GatewayOptions {
  log?: Logger;
}

export class Gateway implements GatewayContext {
  /** The config in force. Swapping it (a later reload) affects new requests only. */
  config: Config;
  readonly log: Logger;
  readonly origins = new OriginRegistry();
  /** Balancer members' state; like `origins`, it outlives a config (keyed by balancer and member URL). */
  readonly balancers: BalancerRegistry;
  /** Health checks of balancer members with `hcmethod=` (keyed like `balancers`). */
  readonly health: HealthChecker;
  /** Live tunnels, by route and by backend; a reload, drain or status page walks this. */
  readonly tunnels = new TunnelRegistry<TunnelRecord>();
  /** What the WebSocket abuse limits read: the open tunnels above and the handshakes per client address. */
  readonly wsLimits: LimitState = { tunnels: this.tunnels, handshakeRate: new HandshakeRate() };
  /** Logs, metrics and the status page hear of each request's and tunnel's end here. */
  readonly observers: Observers;
  /** CustomLog/TransferLog lines and tunnel records (an observer; its files open at start). */
  private readonly accessLog: AccessLog;
  /** Accepted connections, to the front that speaks their protocol. */
  private readonly router: ConnectionRouter;
  /** Accepts and runs upgrade handshakes natively on plain-TCP ports (undefined without the engine). */
  private readonly front: NativeFront | undefined;
  private readonly listeners: Listeners;
  private stopping = false;
  private readonly hostName = os.hostname();

  constructor(config: Config, options: GatewayOptions = {}) {
    this.config = config;
    this.log = options.log ?? createLogger();
    this.observers = new Observers(this.log);
    this.accessLog = new AccessLog(this);
    this.observers.add(this.accessLog);
    this.balancers = new BalancerRegistry(this.log);
    this.health = new HealthChecker(this.balancers, this.log);
    this.router = new ConnectionRouter(this);
    // Not in `-w N` workers: closing a worker's server (the front takes the socket over) makes the
    // cluster primary drop the shared socket, and a worker that listens later gets another one.
    const engine = cluster.isWorker || process.env.WSGATE_NATIVE_FRONT === '0' ? undefined : nativeEngine();
    this.front = engine === undefined ? undefined : new NativeFront(this.router, engine);
    this.listeners = new Listeners(() => this.config, this.log, this.router, this.front);
  }

  /** Binds every Listen address; rejects (after closing what was bound) if one fails. */
  async start(): Promise<BoundListener[]> {
    try {
      // Opened before anything listens: a log file that cannot be written is a start error, as in Apache.
      await this.accessLog.use(this.config);
      for (const listen of this.config.listen) await this.listeners.bind(listen);
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.health.sync(this.config);
    const bound = this.addresses();
    for (const b of bound) this.log.info('listening', { address: `${b.address}:${b.port}` });
    return bound;
  }

  addresses(): BoundListener[] {
    return this.listeners.addresses();
  }

  /** Stops listening, closes every connection and tunnel, and empties the pools. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.health.stop();
    const closing = this.listeners.closeAll();
    this.front?.abortAll();
    this.router.closeAll();
    // A WebSocket is told (1001) and given a moment to answer; other tunnels are cut.
    const finishing: Promise<void>[] = [];
    for (const t of [...this.tunnels.keys()]) {
      if (!t.closeWebSocket(1001, 'server shutting down', 'shutdown')) t.close('shutdown');
      // Awaited for every tunnel: its record is written when it has closed, before the logs are let go.
      finishing.push(t.whenFinished());
    }
    this.origins.closeIdle();
    await Promise.all([closing, ...finishing]);
    // Requests cut above report their end on a later turn; their lines still go out.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.accessLog.close();
  }

  /** Serving, or stopping (readiness, `SetHandler health`, turns to 503). */
  get state(): GatewayState {
    return this.stopping ? 'stopping' : 'serving';
  }

  /** Client connections still speaking HTTP or in an upgrade handshake (not yet tunnels), HTTP/2 sessions included. */
  openConnections(): number {
    return this.router.open + (this.front?.pending ?? 0);
  }

  serverName(vhost: VirtualHost): string {
    return vhost.serverName ?? this.config.mainServer.serverName ?? this.hostName;
  }

  /** Takes a request that became a tunnel: registers it, starts it on its ends, and unregisters it when it closes. */
  startTunnel(t: TunnelStart): void {
    const ends = t.ends;
    const tunnel =
      ends.kind === 'sockets'
        ? new Tunnel(ends.client, ends.backend, this.tunnelOptions(t))
        : new Tunnel(undefined, undefined, this.tunnelOptions(t));
    const r = t.record;
    const rec: TunnelRecord = {
      tunnel,
      clientIp: r.clientIp,
      vhost: t.vhost,
      route: t.route,
      backend: t.backend,
      protocol: r.protocol,
      request: r,
    };
    this.tunnels.add(rec);
    this.observers.tunnelOpened(rec);
    if (ends.kind === 'sockets') tunnel.start(ends.clientEarly, ends.backendEarly);
    else tunnel.startInEngine(ends.establish, ends.earlyUp, ends.earlyDown);
    if (this.stopping) tunnel.close('shutdown');
  }

  private tunnelOptions(t: TunnelStart): TunnelOptions {
    return {
      idleTimeoutMs: t.vhost.settings.websocketIdleTimeoutMs,
      counters: t.counters,
      wsFlags: t.wsFlags,
      onViolation: (tunnel, what, from) =>
        this.log.warn('WebSocket protocol violation', { tunnel: tunnel.id, from, violation: what, client: t.record.clientIp }),
      onClose: (tunnel) => {
        this.tunnelClosed(tunnel);
        t.onClosed();
      },
    };
  }

  private tunnelClosed(t: Tunnel): void {
    const rec = this.tunnels.remove(t);
    if (rec !== undefined) this.observers.tunnelClosed(rec);
    if (this.log.enabled('debug') || (t.closeReason !== 'closed' && t.closeReason !== 'shutdown')) {
      const fields = {
        tunnel: t.id,
        engine: t.usedNative ? 'native' : 'js',
        reason: t.closeReason,
        detail: t.closeDetail,
        client: rec?.request.clientIp,
        protocol: rec?.request.protocol,
        backend: rec?.request.backend,
        route: rec?.request.route,
        request: rec?.request.id,
        up: t.bytesUp,
        down: t.bytesDown,
        ms: t.endedAt - t.startedAt,
      };
      if (t.closeReason === 'idle-timeout' || t.closeReason === 'closed' || t.closeReason === 'shutdown')
        this.log.debug('tunnel closed', fields);
      else this.log.info('tunnel closed', fields);
    }
  }
}

// The gateway: one running wsgate. It composes the parts that each do one job — binding the
// Listen addresses (listeners/bind.ts), routing accepted connections to a front
// (listeners/accept.ts), the exchanges that answer or tunnel each request (proxy/exchange.ts,
// answering errors through proxy/answers.ts) — and holds what outlives a request: the config in
// force, the per-origin and balancer state, and the registry of live tunnels. It reloads a new
// config under live tunnels (`reload`), and stops, at once or after letting work finish (`stop`).

import cluster from 'node:cluster';
import * as os from 'node:os';
import type { Balancer, BalancerMember, Config, VirtualHost } from './config/model';
import { ConnectionRouter } from './listeners/accept';
import { type BoundListener, type ListenerChanges, Listeners, type SharedBinding } from './listeners/bind';
import { carryTunnels } from './lifecycle/carry';
import { NativeFront } from './listeners/native-front';
import { createLogger, type Logger } from './observe/log';
import { GatewayMetrics, servesMetrics } from './observe/metrics';
import { Observers } from './observe/observers';
import { StatusBoard } from './observe/status';
import type { WorkerView } from './handlers/handler';
import { AccessLog } from './observe/access-log';
import type { GatewayContext, GatewayState, TunnelStart } from './proxy/context';
import { drainTunnels } from './tunnel/drain';
import { WS_TRACKING } from './tunnel/wsframe';
import { nativeEngine } from './tunnel/native';
import { Tunnel, type TunnelOptions, type TunnelSide } from './tunnel/tunnel';
import { type TunnelRecord, TunnelRegistry } from './tunnel/registry';
import { HealthChecker } from './upstream/balancer/health';
import { BalancerRegistry } from './upstream/balancer/state';
import type { BackendCounters } from './upstream/counters';
import { OriginRegistry } from './upstream/origins';
import { HandshakeRate } from './access/handshake-rate';
import type { LimitState } from './routing/ws-limits';

export type { BoundListener, GatewayState, ListenerChanges, SharedBinding, TunnelRecord };

export interface GatewayOptions {
  log?: Logger;
  /**
   * A `-w N` worker (lifecycle/workers.ts): its native front binds its ports (https ones too,
   * unless WSGATE_NATIVE_TLS=0) with sockets of its own (SO_REUSEPORT) rather than through the
   * cluster primary.
   */
  shared?: SharedBinding;
  /** The status page's nonce, the same in every worker of `-w N` (a page one draws may post to another). */
  statusNonce?: string;
}

export interface StopOptions {
  /**
   * How long tunnels and requests under way may go on before the rest is closed, in ms (the CLI
   * passes GracefulShutdownTimeout). 0, the default: closed at once (WebSockets are sent 1001).
   */
  readonly graceMs?: number;
}

/** What a reload changed. */
export interface ReloadSummary {
  readonly listeners: ListenerChanges;
  /** Tunnels whose route and backend the new config still has: they go on. */
  readonly tunnelsKept: number;
  /** Tunnels of routes or backends that are gone: they end after GracefulShutdownTimeout. */
  readonly tunnelsEnding: number;
}

/** How a stop or a reload ends a WebSocket tunnel (RFC 6455 §7.4.1). */
const WS_CLOSE: Record<'shutdown' | 'reload', readonly [1001 | 1012, string]> = {
  shutdown: [1001, 'server shutting down'],
  reload: [1012, 'service restart'],
};

/** The close frames' reason when a balancer member is drained. */
const MEMBER_DRAIN_REASON = 'backend draining';
/** How many variants of TunnelOptions the gateway keeps per backend for its tunnels to share. */
const MAX_SHARED_OPTIONS = 8;

/** While a graceful stop waits, how often it looks whether everything has finished. */
const DRAIN_POLL_MS = 50;

function noop(): void {}

export class Gateway implements GatewayContext {
  /** The config in force. `reload` swaps it; that affects new requests only. */
  config: Config;
  /** Where the gateway is in its life; a readiness check answers 503 in every state but `serving`. */
  state: GatewayState = 'serving';
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
  /** Prometheus metrics (`SetHandler metrics`): an observer with a registry of this gateway's own, counting from the first config that serves them. */
  readonly metrics = new GatewayMetrics();
  /** What the status page adds to the gateway's own state: handshake rate, recent errors, the nonce. */
  readonly status: StatusBoard;
  /** Under `wsgate -w N`, the view over every worker that /metrics and the status page answer from (lifecycle/worker-link.ts). */
  workers: WorkerView | undefined = undefined;
  /** CustomLog/TransferLog lines and tunnel records (an observer; its files open at start and at each reload). */
  private readonly accessLog: AccessLog;
  /** Accepted connections, to the front that speaks their protocol. */
  private readonly router: ConnectionRouter;
  /** Accepts and runs upgrade handshakes natively on plain-TCP ports (undefined without the engine). */
  private readonly front: NativeFront | undefined;
  private readonly listeners: Listeners;
  /** The stop under way (one per gateway), and how to end its wait early (a second signal). */
  private stopped: Promise<void> | undefined;
  private hurry: (() => void) | undefined;
  private hurried = false;
  /** Reloads run one after the other; a stop waits for the one under way. */
  private reloads: Promise<unknown> = Promise.resolve();
  private readonly hostName = os.hostname();
  private metricsCounting = false;

  constructor(config: Config, options: GatewayOptions = {}) {
    this.config = config;
    this.log = options.log ?? createLogger();
    this.observers = new Observers(this.log);
    this.status = new StatusBoard(options.statusNonce);
    this.countMetricsFor(config);
    this.observers.add(this.status);
    this.accessLog = new AccessLog(this);
    this.observers.add(this.accessLog);
    this.balancers = new BalancerRegistry(this.log);
    this.health = new HealthChecker(this.balancers, this.log);
    this.router = new ConnectionRouter(this);
    // A cluster worker runs the front only on sockets of its own (`shared`): the front takes a
    // server's socket over and closes the server, and closing a worker's server makes the cluster
    // primary drop the shared socket (a worker that listens later would get another one).
    const ownSockets = !cluster.isWorker || options.shared !== undefined;
    const engine = !ownSockets || process.env.WSGATE_NATIVE_FRONT === '0' ? undefined : nativeEngine();
    this.front = engine === undefined ? undefined : new NativeFront(this.router, engine);
    this.listeners = new Listeners(() => this.config, this.log, this.router, this.front, options.shared);
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
    if (!WS_TRACKING)
      this.log.warn('WebSocket frame tracking is off (WSGATE_WS_TRACK=0): no close frames, pings, strict mode or close codes');
    return bound;
  }

  addresses(): BoundListener[] {
    return this.listeners.addresses();
  }

  /**
   * Puts `config` in force: ports are added and removed as it says (a port in both is never
   * closed), new connections and requests use it at once, TLS certificates are the ones it read,
   * balancer members that still exist keep their state, health checks follow it, the pools of
   * origins it no longer names are closed. Live tunnels whose route and backend it still has go on
   * (see lifecycle/carry.ts); the others end after its GracefulShutdownTimeout (close reason
   * `reload`, 1012 for WebSockets). Rejects, with the old config still in force and unchanged,
   * when a new port cannot be bound or the gateway is stopping.
   */
  reload(config: Config): Promise<ReloadSummary> {
    const run = this.reloads.then(() => this.swapConfig(config));
    this.reloads = run.catch(() => undefined);
    return run;
  }

  /** Metrics count from the first config with a `SetHandler metrics` on (and then on, whatever reloads bring). */
  private countMetricsFor(config: Config): void {
    if (this.metricsCounting || !servesMetrics(config)) return;
    this.metricsCounting = true;
    this.observers.add(this.metrics);
  }

  private async swapConfig(config: Config): Promise<ReloadSummary> {
    if (this.state !== 'serving') throw new Error(`cannot reload: the gateway is ${this.state}`);
    const old = this.config;
    // The new config's log files first: one that cannot be opened refuses the reload, as at start.
    await this.accessLog.use(config);
    let listeners: ListenerChanges;
    try {
      listeners = await this.listeners.reconcile(config.listen, () => {
        this.config = config;
        this.countMetricsFor(config);
      });
    } catch (e) {
      await this.accessLog.use(old);
      throw e;
    }
    this.health.sync(config);
    this.balancers.prune(config);
    this.origins.prune(config);
    const { kept, gone } = carryTunnels(this.tunnels.values(), old, config);
    for (const [record, place] of kept) this.tunnels.replace({ ...record, ...place });
    // State still held by those tunnels was kept by the prunes above; once they end, it goes.
    void this.endTunnels(gone, 'reload', config.process.gracefulShutdownTimeoutMs).then(() => {
      if (this.config !== config) return;
      this.balancers.prune(config);
      this.origins.prune(config);
    });
    return { listeners, tunnelsKept: kept.length, tunnelsEnding: gone.length };
  }

  /**
   * Stops: no new connections; with `graceMs`, requests and tunnels under way may finish for that
   * long (state `draining`), then what is left is closed (`stopping`): WebSockets are sent 1001
   * and given WS_CLOSE_GRACE_MS to answer, other tunnels and connections are cut, pools emptied.
   * Called again while a stop waits, with no grace, it ends the wait at once.
   */
  stop(options: StopOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? 0;
    if (this.stopped !== undefined) {
      if (graceMs <= 0) {
        this.hurried = true;
        this.hurry?.();
      }
      return this.stopped;
    }
    this.stopped = this.drainAndStop(graceMs);
    return this.stopped;
  }

  private async drainAndStop(graceMs: number): Promise<void> {
    this.state = 'draining';
    this.health.stop();
    // A reload binding ports now would add them after they were all closed.
    await this.reloads;
    const closing = this.listeners.closeAll();
    if (graceMs > 0 && !this.hurried) {
      this.router.drain();
      void this.endTunnels([...this.tunnels.values()], 'shutdown', graceMs);
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          clearTimeout(deadline);
          clearInterval(poll);
          this.hurry = undefined;
          resolve();
        };
        // Both ref'd: once the ports are closed, native tunnels alone would not keep the process alive.
        const deadline = setTimeout(finish, graceMs);
        const poll = setInterval(() => {
          if (this.tunnels.size === 0 && this.router.busy === 0 && (this.front?.pending ?? 0) === 0) finish();
        }, DRAIN_POLL_MS);
        this.hurry = finish;
      });
    }
    this.state = 'stopping';
    this.front?.abortAll();
    this.router.closeAll();
    const finishing = this.endTunnels([...this.tunnels.values()], 'shutdown', 0);
    this.origins.closeIdle();
    // Ref'd until they are done: once the ports are closed, native tunnels sending their close
    // frames alone would not keep the process alive (the engine's poll is unref'd), and it would
    // exit before the stop finished (a PidFile left behind).
    const keepAlive = setInterval(noop, 1000);
    try {
      await Promise.all([closing, finishing]);
    } finally {
      clearInterval(keepAlive);
    }
    // Requests cut above report their end on a later turn; their lines still go out.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.accessLog.close();
    this.state = 'stopped';
  }

  /**
   * Ends the tunnels of `list` within `deadlineMs` (0: now) because of `why`: a WebSocket is sent a
   * close frame (1001 for a stop, 1012 for a reload) and given WS_CLOSE_GRACE_MS to answer, other
   * tunnels are closed. Those that end by themselves before the deadline are left alone, unless
   * ProxyWebsocketDrainRate paces the closes over the time until it. Resolves once every one has
   * finished. The one place that decides how a batch of tunnels is ended.
   */
  private endTunnels(list: readonly TunnelRecord[], why: 'shutdown' | 'reload', deadlineMs: number): Promise<void> {
    if (list.length === 0) return Promise.resolve();
    const tunnels = list.map((r) => r.tunnel);
    const rate = this.config.mainServer.settings.websocketDrainRate;
    if (rate > 0 && deadlineMs > 0) {
      // ProxyWebsocketDrainRate: close frames from now on, spread at that rate so that clients do
      // not all reconnect in the same second; at the deadline, all that remain at once.
      const [code, text] = WS_CLOSE[why];
      return drainTunnels(tunnels, { code, reason: text, why, ratePerSec: rate, deadlineMs });
    }
    const finished = Promise.all(tunnels.map((t) => t.whenFinished())).then(() => undefined);
    if (deadlineMs <= 0) {
      endNow(tunnels, why);
      return finished;
    }
    const timer = setTimeout(endNow, deadlineMs, tunnels, why);
    void finished.then(() => clearTimeout(timer));
    return finished;
  }

  /**
   * A balancer member set to drain (`w_status_N=1` from the status page or balancer-manager): its
   * open tunnels through `balancer` are sent 1001 going away at ProxyWebsocketDrainRate (all at
   * once without a rate), bounded by GracefulShutdownTimeout, as a stop would do to them; new
   * connections already avoid the member (its flags are set before this is called). Returns how
   * many tunnels it began to close. Tunnels to the same URL through another balancer or a plain
   * route are not this member's and stay.
   */
  drainMember(balancer: Balancer, member: BalancerMember): number {
    const list = this.tunnels
      .byBackendOf(member.backend.url)
      .filter((r) => r.route.balancer?.balancer.name === balancer.name && !r.tunnel.ended);
    if (list.length === 0) return 0;
    void drainTunnels(
      list.map((r) => r.tunnel),
      {
        code: 1001,
        reason: MEMBER_DRAIN_REASON,
        why: 'drain',
        ratePerSec: this.config.mainServer.settings.websocketDrainRate,
        deadlineMs: this.config.process.gracefulShutdownTimeoutMs,
      },
    );
    return list.length;
  }

  /** Client connections still speaking HTTP or in an upgrade handshake (not yet tunnels), HTTP/2 sessions included. */
  openConnections(): number {
    return this.router.open + (this.front?.pending ?? 0);
  }

  serverName(vhost: VirtualHost): string {
    return vhost.serverName ?? this.config.mainServer.serverName ?? this.hostName;
  }

  /**
   * Takes a request that became a tunnel: registers it, starts it on its ends, and unregisters it
   * when it closes. Nothing here keeps `t` itself: a tunnel may live for days, so it keeps only
   * its record (not the handshake's head, buffers or exchange objects) and no closure of its own.
   */
  startTunnel(t: TunnelStart): void {
    const ends = t.ends;
    const options = this.tunnelOptions(
      t.vhost.settings.websocketIdleTimeoutMs,
      t.route.pingIntervalMs ?? t.vhost.settings.websocketPingIntervalMs,
      t.counters,
      t.wsFlags,
    );
    const tunnel = ends.kind === 'sockets' ? new Tunnel(ends.client, ends.backend, options) : new Tunnel(undefined, undefined, options);
    const r = t.record;
    const rec: TunnelRecord = {
      tunnel,
      clientIp: r.clientIp,
      vhost: t.vhost,
      route: t.route,
      backend: t.backend,
      protocol: r.protocol,
      request: r,
      counters: t.counters,
      counted: t.counted,
    };
    this.tunnels.add(rec);
    this.observers.tunnelOpened(rec);
    // An idle tunnel keeps the request's fields only when an access-log line will print one (%{Name}i).
    if (!t.vhost.logs?.some((l) => l.kind === 'access' && l.format.readsRequestHeaders)) r.releaseHeaders();
    if (ends.kind === 'sockets') tunnel.start(ends.clientEarly, ends.backendEarly);
    else tunnel.startInEngine(ends.establish, ends.earlyUp, ends.earlyDown);
    // While draining a tunnel may still be made (its request was under way); it ends with the rest.
    if (this.state === 'stopping' || this.state === 'stopped') tunnel.close('shutdown');
  }

  /**
   * The options of a tunnel, shared with the other tunnels to the same backend counters that get
   * the same settings (a tunnel keeps its options for its whole life; they are never changed).
   */
  private tunnelOptions(idleTimeoutMs: number, pingIntervalMs: number, counters: BackendCounters, wsFlags: number): TunnelOptions {
    let list = this.sharedOptions.get(counters);
    if (list === undefined) this.sharedOptions.set(counters, (list = []));
    for (const o of list) if (o.idleTimeoutMs === idleTimeoutMs && o.pingIntervalMs === pingIntervalMs && o.wsFlags === wsFlags) return o;
    const o: TunnelOptions = {
      idleTimeoutMs,
      pingIntervalMs,
      counters,
      wsFlags,
      onViolation: this.onTunnelViolation,
      onClose: this.onTunnelClose,
    };
    // A handful of variants per backend at most (settings per server and route, extensions); a bound all the same.
    if (list.length < MAX_SHARED_OPTIONS) list.push(o);
    return o;
  }
  private readonly sharedOptions = new WeakMap<BackendCounters, TunnelOptions[]>();

  /** Every tunnel's TunnelOptions handlers: one pair per gateway, finding the tunnel's record in the registry. */
  private readonly onTunnelClose = (tunnel: Tunnel): void => this.tunnelClosed(tunnel);
  private readonly onTunnelViolation = (tunnel: Tunnel, what: string, from: TunnelSide): void => {
    this.log.warn('WebSocket protocol violation', { tunnel: tunnel.id, from, violation: what, client: this.tunnels.get(tunnel)?.clientIp });
  };

  private tunnelClosed(t: Tunnel): void {
    const rec = this.tunnels.remove(t);
    if (rec !== undefined) this.observers.tunnelClosed(rec);
    if (rec?.counted === true) rec.counters.tunnelClosed();
    if (this.log.enabled('debug') || (t.closeReason !== 'closed' && t.closeReason !== 'shutdown')) {
      // A WebSocket's close frames: each peer's code (0: it sent none), wsgate's own, and who closed first.
      const codes = t.wsCloseCodes();
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
        close_client: codes?.client,
        close_backend: codes?.backend,
        close_wsgate: codes === undefined || codes.wsgate === 0 ? undefined : codes.wsgate,
        close_first: codes?.first,
      };
      if (t.closeReason === 'idle-timeout' || t.closeReason === 'closed' || t.closeReason === 'shutdown')
        this.log.debug('tunnel closed', fields);
      else this.log.info('tunnel closed', fields);
    }
  }
}

function endNow(tunnels: readonly Tunnel[], why: 'shutdown' | 'reload'): void {
  const [code, text] = WS_CLOSE[why];
  for (const t of tunnels) {
    // One already sending its close frames (idle limit, an earlier deadline) is left to finish.
    if (t.ended || t.closingWebSocket || t.closeWebSocket(code, text, why)) continue;
    t.close(why);
  }
}

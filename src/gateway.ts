// The gateway: one running wsgate. It owns the listeners, the config in force, the per-origin
// state and the registry of live tunnels, and it stops all of them cleanly.

import cluster from 'node:cluster';
import * as net from 'node:net';
import * as os from 'node:os';
import type * as tls from 'node:tls';
import type { Backend, Config, ListenAddress, Route, VirtualHost } from './config/model';
import { buildErrorResponse } from './http/forward';
import { ClientConnection, type ConnectionHost } from './listeners/http1';
import { NativeFront, type FrontHost } from './listeners/native-front';
import { H2Front, selectAlpn } from './listeners/h2';
import { createTlsServer } from './listeners/tls';
import { selectVirtualHost } from './routing/vhost';
import { createLogger, type Logger } from './observe/log';
import type { NativeUpgrade } from './proxy/native-upgrade';
import { nativeEngine } from './tunnel/native';
import type { TunnelVia } from './proxy/context';
import { Tunnel } from './tunnel/tunnel';
import { TunnelRegistry } from './tunnel/registry';
import { HealthChecker } from './upstream/balancer/health';
import { BalancerRegistry } from './upstream/balancer/state';
import type { BackendCounters } from './upstream/counters';
import { OriginRegistry } from './upstream/origins';
import { plainAddress } from './listeners/address';

/** A live tunnel with what it belongs to, as kept in the registry. */
export interface TunnelRecord {
  readonly tunnel: Tunnel;
  readonly clientIp: string;
  readonly vhost: VirtualHost;
  readonly route: Route;
  readonly backend: Backend;
  /** How the client reached wsgate: its own HTTP/1.1 connection, or a stream of an HTTP/2 one (RFC 8441). */
  readonly protocol: 'http/1.1' | 'h2';
}

export interface BoundListener {
  readonly listen: ListenAddress;
  readonly address: string;
  readonly port: number;
}

export interface GatewayOptions {
  log?: Logger;
}

/** A bound Listen address: a Node server, or (native front) the engine accepting on its socket. */
interface Bound {
  readonly listen: ListenAddress;
  readonly address: net.AddressInfo;
  server: net.Server | undefined;
  readonly frontId: number | undefined;
}

export class Gateway implements ConnectionHost, FrontHost {
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
  private readonly connections = new Set<ClientConnection>();
  private readonly servers: Bound[] = [];
  /** Accepts and runs upgrade handshakes natively on plain-TCP ports (undefined without the engine). */
  private readonly front: NativeFront | undefined;
  /** HTTP/2 sessions on the front (`Protocols h2`). */
  private readonly h2 = new H2Front(this);
  private stopping = false;
  private readonly hostName = os.hostname();

  constructor(config: Config, options: GatewayOptions = {}) {
    this.config = config;
    this.log = options.log ?? createLogger();
    this.balancers = new BalancerRegistry(this.log);
    this.health = new HealthChecker(this.balancers, this.log);
    // Not in `-w N` workers: closing a worker's server (the front takes the socket over) makes the
    // cluster primary drop the shared socket, and a worker that listens later gets another one.
    const engine = cluster.isWorker || process.env.WSGATE_NATIVE_FRONT === '0' ? undefined : nativeEngine();
    this.front = engine === undefined ? undefined : new NativeFront(this, engine);
  }

  /** Binds every Listen address; rejects (after closing what was bound) if one fails. */
  async start(): Promise<BoundListener[]> {
    try {
      for (const listen of this.config.listen) {
        let server: net.Server;
        if (listen.protocol === 'https') {
          server = createTlsServer(
            listen,
            () => this.config,
            this.log,
            (socket) => this.acceptSecure(socket, listen),
            (servername, offered, localAddress) => selectAlpn(this.config, listen, localAddress, servername, offered),
          );
        } else {
          server = net.createServer({ allowHalfOpen: true, noDelay: true });
          server.on('connection', (socket) => this.accept(socket, listen));
        }
        server.on('error', (err) => this.log.error('listener error', { listen: describe(listen), reason: err.message }));
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error): void => reject(new Error(`cannot listen on ${describe(listen)}: ${err.message}`));
          server.once('error', onError);
          server.listen({ host: listen.host, port: listen.port }, () => {
            server.removeListener('error', onError);
            resolve();
          });
        });
        const address = server.address() as net.AddressInfo;
        // Plain-TCP ports: the native engine accepts on the socket from now on, and Node's
        // handle is closed in this same tick, before it could accept anything.
        const frontId = listen.protocol === 'https' ? undefined : this.front?.listen(server, listen, this.config.mainServer.settings);
        if (frontId !== undefined) server.close();
        this.servers.push({ listen, address, server: frontId === undefined ? server : undefined, frontId });
      }
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
    return this.servers.map(({ address, listen }) => ({ listen, address: address.address, port: address.port }));
  }

  /** Stops listening, closes every connection and tunnel, and empties the pools. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.health.stop();
    const closing: Promise<void>[] = [];
    for (const { server, frontId } of this.servers.splice(0)) {
      if (frontId !== undefined) this.front!.unlisten(frontId);
      if (server !== undefined) closing.push(new Promise<void>((resolve) => server.close(() => resolve())));
    }
    this.front?.abortAll();
    for (const conn of [...this.connections]) conn.destroy();
    this.h2.closeAll();
    // A WebSocket is told (1001) and given a moment to answer; other tunnels are cut.
    for (const t of [...this.tunnels.keys()]) {
      if (t.closeWebSocket(1001, 'server shutting down', 'shutdown')) closing.push(t.whenFinished());
      else t.close('shutdown');
    }
    this.origins.closeIdle();
    await Promise.all(closing);
  }

  /** A TLS connection: HTTP/2 when ALPN chose it, else HTTP/1.1. */
  private acceptSecure(socket: tls.TLSSocket, listen: ListenAddress): void {
    if (socket.alpnProtocol === 'h2' && !this.stopping) {
      const name = typeof socket.servername === 'string' ? socket.servername : undefined;
      this.h2.accept(socket, listen, selectVirtualHost(this.config, listen, socket.localAddress ?? '', name));
      return;
    }
    this.accept(socket, listen);
  }

  private accept(socket: net.Socket, listen: ListenAddress): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.connections.add(new ClientConnection(this, listen, socket));
  }

  /** A plain connection that opened with the HTTP/2 preface: h2c when its server lists it in `Protocols`. */
  takePriorKnowledgeH2(conn: ClientConnection, listen: ListenAddress, bytes: Buffer): boolean {
    if (this.stopping || listen.protocol !== 'http') return false;
    const socket = conn.socket;
    const vhost = selectVirtualHost(this.config, listen, socket.localAddress ?? '', undefined);
    if (!vhost.settings.protocols.includes('h2c')) return false;
    socket.pause();
    conn.detach();
    // The session reads what was already read back from the socket's buffer.
    socket.unshift(bytes);
    this.h2.accept(socket, listen, vhost);
    return true;
  }

  adoptConnection(socket: net.Socket, listen: ListenAddress): ClientConnection {
    const conn = new ClientConnection(this, listen, socket);
    this.connections.add(conn);
    return conn;
  }

  /** Client connections still speaking HTTP or in an upgrade handshake (not yet tunnels), HTTP/2 sessions included. */
  openConnections(): number {
    return this.connections.size + (this.front?.pending ?? 0) + this.h2.sessions.size;
  }

  connectionClosed(conn: ClientConnection): void {
    this.connections.delete(conn);
  }

  serverName(vhost: VirtualHost): string {
    return vhost.serverName ?? this.config.mainServer.serverName ?? this.hostName;
  }

  respondError(socket: net.Socket, status: number, keepAlive: boolean, extraHeaders = '', withBody = true): void {
    if (!socket.writable) return;
    socket.write(buildErrorResponse(status, keepAlive, extraHeaders, withBody));
    if (!keepAlive) socket.destroySoon();
  }

  startTunnel(
    client: net.Socket,
    backend: net.Socket,
    vhost: VirtualHost,
    route: Route,
    target: Backend,
    counters: BackendCounters,
    clientEarly: Buffer | undefined,
    backendEarly: Buffer | undefined,
    onClosed?: () => void,
    via?: TunnelVia,
    wsFlags = 0,
  ): void {
    const tunnel = this.newTunnel(
      client,
      backend,
      via?.clientIp ?? client.remoteAddress ?? '',
      vhost,
      route,
      target,
      counters,
      onClosed,
      via?.protocol,
      wsFlags,
    );
    tunnel.start(clientEarly, backendEarly);
    if (this.stopping) tunnel.close('shutdown');
  }

  startNativeTunnel(u: NativeUpgrade, toClient: Buffer, backendEarly: number): void {
    const onClosed = u.up.tunnel();
    u.up.finish();
    const tunnel = this.newTunnel(
      undefined,
      undefined,
      u.clientIp,
      u.vhost,
      u.up.route,
      u.up.backend,
      u.up.counters,
      onClosed,
      'http/1.1',
      u.wsFlags,
    );
    tunnel.startInEngine((id) => u.establish(id, toClient), u.rest?.length ?? 0, backendEarly);
    if (this.stopping) tunnel.close('shutdown');
  }

  /** A tunnel, registered, its bytes going to the backend's `counters`; its close unregisters it and calls `onClosed`. */
  private newTunnel(
    client: net.Socket | undefined,
    backend: net.Socket | undefined,
    ip: string,
    vhost: VirtualHost,
    route: Route,
    target: Backend,
    counters: BackendCounters,
    onClosed: (() => void) | undefined,
    protocol: TunnelRecord['protocol'] = 'http/1.1',
    wsFlags = 0,
  ): Tunnel {
    const tunnel = new Tunnel(client, backend, {
      idleTimeoutMs: vhost.settings.websocketIdleTimeoutMs,
      counters,
      wsFlags,
      onViolation: (t, what, from) => this.log.warn('WebSocket protocol violation', { tunnel: t.id, from, violation: what, client: ip }),
      onClose: (t) => {
        this.tunnelClosed(t);
        onClosed?.();
      },
    });
    this.tunnels.add({
      tunnel,
      clientIp: plainAddress(ip),
      vhost,
      route,
      backend: target,
      protocol,
    });
    return tunnel;
  }

  private tunnelClosed(t: Tunnel): void {
    const rec = this.tunnels.remove(t);
    if (this.log.enabled('debug') || (t.closeReason !== 'closed' && t.closeReason !== 'shutdown')) {
      const fields = {
        tunnel: t.id,
        engine: t.usedNative ? 'native' : 'js',
        reason: t.closeReason,
        detail: t.closeDetail,
        client: rec?.clientIp,
        protocol: rec?.protocol,
        backend: rec?.backend.url,
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

function describe(l: ListenAddress): string {
  return `${l.host ?? '*'}:${l.port}`;
}

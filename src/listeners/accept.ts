// Where an accepted connection goes: a plain or TLS socket to an HTTP/1.1 ClientConnection; a TLS
// socket whose ALPN chose h2, or a plain one that opened with the HTTP/2 preface on an h2c server,
// to the HTTP/2 front; a connection the native front gives up, to the HTTP/1.1 path. It keeps the
// connections that are not tunnels yet, so that they can be counted and closed at shutdown.

import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Config, ListenAddress, VirtualHost } from '../config/model';
import type { HandlerHost } from '../handlers/handler';
import type { GatewayContext } from '../proxy/context';
import { selectVirtualHost } from '../routing/vhost';
import { H2Front } from './h2';
import { ClientConnection, type ConnectionHost } from './http1';
import type { FrontHost } from './native-front';

/** What the router needs from the gateway: its services and the config in force. */
export interface AcceptHost extends HandlerHost {
  readonly config: Config;
}

export class ConnectionRouter implements ConnectionHost, FrontHost {
  private readonly connections = new Set<ClientConnection>();
  /** HTTP/2 sessions on the front (`Protocols h2`, `h2c`). */
  private readonly h2: H2Front;
  private stopping = false;
  private draining = false;

  constructor(private readonly host: AcceptHost) {
    this.h2 = new H2Front(this);
  }

  get config(): Config {
    return this.host.config;
  }
  get log(): GatewayContext['log'] {
    return this.host.log;
  }
  get origins(): GatewayContext['origins'] {
    return this.host.origins;
  }
  get balancers(): GatewayContext['balancers'] {
    return this.host.balancers;
  }
  get wsLimits(): GatewayContext['wsLimits'] {
    return this.host.wsLimits;
  }
  get observers(): GatewayContext['observers'] {
    return this.host.observers;
  }
  get state(): HandlerHost['state'] {
    return this.host.state;
  }
  get tunnels(): HandlerHost['tunnels'] {
    return this.host.tunnels;
  }
  get metrics(): HandlerHost['metrics'] {
    return this.host.metrics;
  }
  get status(): HandlerHost['status'] {
    return this.host.status;
  }
  get workers(): HandlerHost['workers'] {
    return this.host.workers;
  }
  openConnections(): number {
    return this.host.openConnections();
  }
  addresses(): ReturnType<HandlerHost['addresses']> {
    return this.host.addresses();
  }
  drainMember(...args: Parameters<HandlerHost['drainMember']>): number {
    return this.host.drainMember(...args);
  }
  serverName(vhost: VirtualHost): string {
    return this.host.serverName(vhost);
  }
  startTunnel(t: Parameters<GatewayContext['startTunnel']>[0]): void {
    this.host.startTunnel(t);
  }

  /** A plain connection accepted by Node. */
  accept(socket: net.Socket, listen: ListenAddress): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.connections.add(new ClientConnection(this, listen, socket));
  }

  /** A TLS connection: HTTP/2 when ALPN chose it, else HTTP/1.1. */
  acceptSecure(socket: tls.TLSSocket, listen: ListenAddress): void {
    if (socket.alpnProtocol === 'h2' && !this.stopping) {
      const name = typeof socket.servername === 'string' ? socket.servername : undefined;
      this.h2.accept(socket, listen, selectVirtualHost(this.config, listen, socket.localAddress ?? '', name));
      return;
    }
    this.accept(socket, listen);
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
    if (this.draining) conn.drain();
    return conn;
  }

  connectionClosed(conn: ClientConnection): void {
    this.connections.delete(conn);
  }

  /** Connections still speaking HTTP (not yet tunnels), HTTP/2 sessions included. */
  get open(): number {
    return this.connections.size + this.h2.sessions.size;
  }

  /**
   * A graceful stop: each connection closes after the request under way (or its next one), and
   * HTTP/2 sessions take no new stream. Connections handed over later (native front) are drained too.
   */
  drain(): void {
    this.draining = true;
    for (const conn of this.connections) conn.drain();
    this.h2.drain();
  }

  /** Connections with a request under way, and HTTP/2 sessions: what a graceful stop waits for. */
  get busy(): number {
    let n = this.h2.sessions.size;
    for (const conn of this.connections) if (conn.busy) n++;
    return n;
  }

  /** Closes every connection and session (shutdown); later ones are closed as they come. */
  closeAll(): void {
    this.stopping = true;
    for (const conn of [...this.connections]) conn.destroy();
    this.h2.closeAll();
  }
}

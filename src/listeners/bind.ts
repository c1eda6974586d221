// Binding the Listen addresses: a net.Server for each (a TLS server for `https`), and where the
// native front runs, the engine accepting on the bound socket instead of Node (on https ports
// too unless WSGATE_NATIVE_TLS=0: the TLS server then takes what the engine hands it).
// Accepted sockets go to the ConnectionRouter (accept.ts). A reload reconciles the bound ports
// with the new config's Listen lines: a port in both keeps its socket, never closed for a moment.

import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Config, ListenAddress } from '../config/model';
import type { Logger } from '../observe/log';
import { describeListen } from '../proxy/record';
import type { ConnectionRouter } from './accept';
import { selectAlpn } from './h2';
import type { NativeFront } from './native-front';
import { nativeTlsWanted } from './native-tls';
import { createTlsServer, refreshDefaultCertificate } from './tls';

export interface BoundListener {
  readonly listen: ListenAddress;
  readonly address: string;
  readonly port: number;
}

/**
 * How a `-w N` worker binds its ports when the native front runs (lifecycle/workers.ts; https
 * ones too unless WSGATE_NATIVE_TLS=0):
 * a listening socket of its own with SO_REUSEPORT, instead of a socket shared through the
 * cluster primary.
 */
export interface SharedBinding {
  /** The ports every worker uses for `Listen …:0` (the first worker's choice), by sharedPortKey. */
  readonly ports: ReadonlyMap<string, number>;
  /** A port already held by another socket fails the bind (the first worker, at start). */
  exclusive: boolean;
}

/** Names a `Listen …:0` line for SharedBinding.ports: its address and its rank among equal lines. */
export function sharedPortKey(listen: ListenAddress, all: readonly ListenAddress[]): string {
  const name = describeListen(listen);
  let rank = 0;
  for (const l of all) {
    if (l === listen) break;
    if (describeListen(l) === name) rank++;
  }
  return `${name}#${rank}`;
}

/** A bound Listen address: a Node server, or (native front) the engine accepting on its socket. */
interface Bound {
  /** The config's Listen line for this port; a reload that keeps the port swaps in the new one. */
  listen: ListenAddress;
  readonly address: net.AddressInfo;
  readonly server: net.Server | undefined;
  readonly frontId: number | undefined;
}

/** What a reload did to the ports. */
export interface ListenerChanges {
  readonly kept: number;
  readonly added: readonly BoundListener[];
  readonly removed: readonly BoundListener[];
}

/**
 * A new Listen line is the same port as a bound one when it names the same address as written and
 * the same port, as written or as bound (a `Listen 0` port reloaded with the number it got).
 */
function samePort(b: Bound, l: ListenAddress): boolean {
  return (b.listen.host ?? '') === (l.host ?? '') && (b.listen.port === l.port || b.address.port === l.port);
}

function boundListener(b: Bound): BoundListener {
  return { listen: b.listen, address: b.address.address, port: b.address.port };
}

export class Listeners {
  private readonly bound: Bound[] = [];

  constructor(
    /** The config in force (read at each TLS handshake, for certificates and ALPN). */
    private readonly config: () => Config,
    private readonly log: Logger,
    private readonly router: ConnectionRouter,
    /** Accepts and runs upgrade handshakes natively on plain-TCP ports (undefined without the engine). */
    private readonly front: NativeFront | undefined,
    /** Set in a `-w N` worker whose native front binds its own sockets. */
    private readonly shared: SharedBinding | undefined,
  ) {}

  /** Binds one Listen address; rejects when it cannot be bound. */
  async bind(listen: ListenAddress): Promise<void> {
    this.bound.push(await this.open(listen));
  }

  private async open(listen: ListenAddress): Promise<Bound> {
    // The handlers read the port's Listen line from its record, so that a reload can swap it.
    const holder: { b?: Bound; listen: ListenAddress } = { listen };
    const listenOf = (): ListenAddress => holder.b?.listen ?? holder.listen;
    const https = listen.protocol === 'https';
    const b =
      this.shared !== undefined && this.front !== undefined && (!https || nativeTlsWanted())
        ? await this.openShared(listen, https ? this.tlsServer(listenOf) : undefined, this.front, this.shared)
        : await this.openServer(listen, listenOf);
    holder.b = b;
    return b;
  }

  /**
   * A `-w N` worker's port on the native front: a socket of its own (SO_REUSEPORT). An https port
   * has a TLS server that never listens: it takes the connections the engine hands it (h2, and
   * what the engine's TLS does not do), as on a port bound by Node.
   */
  private async openShared(
    listen: ListenAddress,
    tlsServer: tls.Server | undefined,
    front: NativeFront,
    shared: SharedBinding,
  ): Promise<Bound> {
    const config = this.config();
    const port = listen.port === 0 ? (shared.ports.get(sharedPortKey(listen, config.listen)) ?? 0) : listen.port;
    const l = await front.listenShared(listen, port, config.mainServer.settings, shared.exclusive, tlsServer);
    return { listen, address: l.address, server: tlsServer, frontId: l.id };
  }

  /** The TLS server of an https port; its secure sockets go to the router. */
  private tlsServer(listenOf: () => ListenAddress): tls.Server {
    const server = createTlsServer(
      listenOf,
      this.config,
      this.log,
      (socket) => this.router.acceptSecure(socket, listenOf()),
      (servername, offered, localAddress) => selectAlpn(this.config(), listenOf(), localAddress, servername, offered),
    );
    server.on('error', (err) => this.log.error('listener error', { listen: describeListen(listenOf()), reason: err.message }));
    return server;
  }

  private async openServer(listen: ListenAddress, listenOf: () => ListenAddress): Promise<Bound> {
    let server: net.Server;
    if (listen.protocol === 'https') server = this.tlsServer(listenOf);
    else {
      server = net.createServer({ allowHalfOpen: true, noDelay: true });
      server.on('connection', (socket) => this.router.accept(socket, listenOf()));
      server.on('error', (err) => this.log.error('listener error', { listen: describeListen(listenOf()), reason: err.message }));
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`cannot listen on ${describeListen(listen)}: ${err.message}`));
      server.once('error', onError);
      server.listen({ host: listen.host, port: listen.port }, () => {
        server.removeListener('error', onError);
        resolve();
      });
    });
    const address = server.address() as net.AddressInfo;
    // Plain-TCP ports (and https ones unless WSGATE_NATIVE_TLS=0): the native engine accepts on
    // the socket from now on, and Node's handle is closed in this same tick, before it could
    // accept anything. An https port keeps its TLS server for the connections the engine hands it.
    const settings = this.config().mainServer.settings;
    const frontId =
      listen.protocol !== 'https'
        ? this.front?.listen(server, listen, settings)
        : nativeTlsWanted()
          ? this.front?.listenTls(server as tls.Server, listen, settings)
          : undefined;
    if (frontId !== undefined) server.close();
    return { listen, address, server: frontId === undefined || listen.protocol === 'https' ? server : undefined, frontId };
  }

  addresses(): BoundListener[] {
    return this.bound.map(boundListener);
  }

  /**
   * Makes the bound ports those of `next`. First the new ports are bound (if one fails, those are
   * closed again and this rejects: nothing changed); then `swap()` puts the new config in force;
   * then ports in both configs take the new Listen line, head limits and default certificate
   * (their sockets are never closed), and ports the new config lacks are closed. A port whose
   * protocol changed (http ⇄ https) cannot keep its socket: it is closed, then bound again.
   */
  async reconcile(next: readonly ListenAddress[], swap: () => void): Promise<ListenerChanges> {
    const unmatched = new Set(this.bound);
    const kept: [Bound, ListenAddress][] = [];
    const changed: [Bound, ListenAddress][] = [];
    const fresh: ListenAddress[] = [];
    for (const l of next) {
      const b = [...unmatched].find((x) => samePort(x, l));
      if (b === undefined) fresh.push(l);
      else {
        unmatched.delete(b);
        (b.listen.protocol === l.protocol ? kept : changed).push([b, l]);
      }
    }
    const opened: Bound[] = [];
    try {
      for (const l of fresh) opened.push(await this.open(l));
    } catch (e) {
      for (const b of opened) void this.close(b);
      throw e;
    }
    swap();
    const config = this.config();
    for (const [b, l] of kept) {
      b.listen = l;
      if (b.frontId !== undefined) this.front!.relisten(b.frontId, l, config.mainServer.settings);
      if (l.protocol === 'https' && b.server !== undefined) refreshDefaultCertificate(b.server as tls.Server, l, config);
    }
    const removed = [...unmatched, ...changed.map(([b]) => b)];
    for (const b of removed) {
      this.bound.splice(this.bound.indexOf(b), 1);
      // Not awaited: the port stops accepting now; connections it accepted carry on.
      void this.close(b);
    }
    this.bound.push(...opened);
    for (const [b, l] of changed) {
      try {
        // Bound again at the port it had (a `Listen 0` line keeps its number).
        const again = await this.open({ ...l, port: b.address.port });
        again.listen = l;
        this.bound.push(again);
        opened.push(again);
      } catch (e) {
        this.log.error('listener lost in reload', { listen: describeListen(l), reason: (e as Error).message });
      }
    }
    return { kept: kept.length, added: opened.map(boundListener), removed: removed.map(boundListener) };
  }

  /** Stops accepting on `b` at once; resolves when Node's server has no connection left. */
  private close(b: Bound): Promise<void> {
    if (b.frontId !== undefined) this.front!.unlisten(b.frontId);
    const server = b.server;
    if (server === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Stops listening everywhere; resolves once Node's servers are closed. */
  async closeAll(): Promise<void> {
    await Promise.all(this.bound.splice(0).map((b) => this.close(b)));
  }
}

// Binding the Listen addresses: a net.Server for each (a TLS server for `https`), and on plain
// ports, where the native front runs, the engine accepting on the bound socket instead of Node.
// Accepted sockets go to the ConnectionRouter (accept.ts).

import * as net from 'node:net';
import type { Config, ListenAddress } from '../config/model';
import type { Logger } from '../observe/log';
import { describeListen } from '../proxy/record';
import type { ConnectionRouter } from './accept';
import { selectAlpn } from './h2';
import type { NativeFront } from './native-front';
import { createTlsServer } from './tls';

export interface BoundListener {
  readonly listen: ListenAddress;
  readonly address: string;
  readonly port: number;
}

/**
 * How a `-w N` worker binds its plain-TCP ports when the native front runs (lifecycle/workers.ts):
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
  readonly listen: ListenAddress;
  readonly address: net.AddressInfo;
  readonly server: net.Server | undefined;
  readonly frontId: number | undefined;
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
    if (this.shared !== undefined && this.front !== undefined && listen.protocol !== 'https') {
      const config = this.config();
      const port = listen.port === 0 ? (this.shared.ports.get(sharedPortKey(listen, config.listen)) ?? 0) : listen.port;
      const l = await this.front.listenShared(listen, port, config.mainServer.settings, this.shared.exclusive);
      this.bound.push({ listen, address: l.address, server: undefined, frontId: l.id });
      return;
    }
    let server: net.Server;
    if (listen.protocol === 'https') {
      server = createTlsServer(
        listen,
        this.config,
        this.log,
        (socket) => this.router.acceptSecure(socket, listen),
        (servername, offered, localAddress) => selectAlpn(this.config(), listen, localAddress, servername, offered),
      );
    } else {
      server = net.createServer({ allowHalfOpen: true, noDelay: true });
      server.on('connection', (socket) => this.router.accept(socket, listen));
    }
    server.on('error', (err) => this.log.error('listener error', { listen: describeListen(listen), reason: err.message }));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`cannot listen on ${describeListen(listen)}: ${err.message}`));
      server.once('error', onError);
      server.listen({ host: listen.host, port: listen.port }, () => {
        server.removeListener('error', onError);
        resolve();
      });
    });
    const address = server.address() as net.AddressInfo;
    // Plain-TCP ports: the native engine accepts on the socket from now on, and Node's handle is
    // closed in this same tick, before it could accept anything.
    const frontId = listen.protocol === 'https' ? undefined : this.front?.listen(server, listen, this.config().mainServer.settings);
    if (frontId !== undefined) server.close();
    this.bound.push({ listen, address, server: frontId === undefined ? server : undefined, frontId });
  }

  addresses(): BoundListener[] {
    return this.bound.map(({ address, listen }) => ({ listen, address: address.address, port: address.port }));
  }

  /** Stops listening everywhere; resolves once Node's servers are closed. */
  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const { server, frontId } of this.bound.splice(0)) {
      if (frontId !== undefined) this.front!.unlisten(frontId);
      if (server !== undefined) closing.push(new Promise<void>((resolve) => server.close(() => resolve())));
    }
    await Promise.all(closing);
  }
}

// TLS on the front: a `Listen … https` port is a tls.Server whose secure sockets go to the same
// ClientConnection as plain ones. The certificate is chosen by SNI among the servers with
// `SSLEngine on` for that port (tlsServersFor); the HTTP request is still routed to a vhost by
// its Host header, as for plain HTTP.

import { constants } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Config, FrontTls, ListenAddress, ReadStage } from '../config/model';
import { stageDeadline } from '../config/reqtimeout';
import { tlsServersFor } from '../config/tls';
import type { Logger } from '../observe/log';
import { selectVirtualHost } from '../routing/vhost';
import { plainAddress } from './address';
import { enableStapling } from './ocsp';

const contexts = new WeakMap<FrontTls, tls.SecureContext>();

/**
 * RequestReadTimeout's handshake stage on a raw client socket: the TLS handshake must finish by
 * the stage's deadline, which the bytes received extend at MinRate. One timer per connection,
 * re-armed only when it fires before a deadline that bytes have moved.
 */
interface HandshakeStage {
  readonly stage: ReadStage;
  readonly startedAt: number;
  readonly log: Logger;
  timer: NodeJS.Timeout | undefined;
}
const kStage = Symbol('wsgate.handshakeStage');
type StagedSocket = net.Socket & { [kStage]?: HandshakeStage };

function startHandshakeStage(raw: StagedSocket, stage: ReadStage, log: Logger): void {
  const st: HandshakeStage = { stage, startedAt: Date.now(), log, timer: undefined };
  raw[kStage] = st;
  st.timer = setTimeout(handshakeTimer, stage.timeoutMs, raw);
  st.timer.unref();
  raw.once('close', rawOnClose);
}

function stopHandshakeStage(raw: StagedSocket): void {
  const st = raw[kStage];
  if (st === undefined) return;
  raw[kStage] = undefined;
  if (st.timer !== undefined) clearTimeout(st.timer);
  raw.removeListener('close', rawOnClose);
}

function rawOnClose(this: StagedSocket): void {
  stopHandshakeStage(this);
}

function handshakeTimer(raw: StagedSocket): void {
  const st = raw[kStage];
  if (st === undefined) return;
  st.timer = undefined;
  const now = Date.now();
  const deadline = stageDeadline(st.stage, st.startedAt, raw.bytesRead);
  if (deadline > now) {
    st.timer = setTimeout(handshakeTimer, Math.ceil(deadline - now), raw);
    st.timer.unref();
    return;
  }
  stopHandshakeStage(raw);
  st.log.info('TLS handshake with client timed out', {
    client: plainAddress(raw.remoteAddress),
    local: `${raw.localAddress ?? ''}:${raw.localPort ?? ''}`,
  });
  raw.destroy();
}

function contextOptions(t: FrontTls): tls.SecureContextOptions {
  return {
    cert: t.cert,
    key: t.key,
    minVersion: t.minVersion,
    maxVersion: t.maxVersion,
    ...(t.ciphers !== undefined ? { ciphers: t.ciphers } : {}),
    honorCipherOrder: t.honorCipherOrder,
    // SSLSessionTickets off: OpenSSL sends no resumable ticket (in TLSv1.3 only a stateful one, and wsgate keeps no session cache).
    ...(t.sessionTickets ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }),
    sessionTimeout: t.sessionTimeoutS,
    ...(t.ecdhCurve !== undefined ? { ecdhCurve: t.ecdhCurve } : {}),
    ...(t.sigalgs !== undefined ? { sigalgs: t.sigalgs } : {}),
    ...(t.dhparam !== undefined ? { dhparam: t.dhparam } : {}),
  };
}

function contextFor(t: FrontTls): tls.SecureContext {
  let sc = contexts.get(t);
  if (sc === undefined) {
    sc = tls.createSecureContext(contextOptions(t));
    contexts.set(t, sc);
  }
  return sc;
}

/** The certificate served for `servername` (undefined without SNI) on `listen`, under `config`. */
export function frontTlsFor(
  config: Config,
  listen: ListenAddress,
  localAddress: string,
  servername: string | undefined,
): FrontTls | undefined {
  if (servername !== undefined && servername !== '') {
    const vh = selectVirtualHost(config, listen, localAddress, servername);
    if (vh.tls !== undefined) return vh.tls;
  }
  // No name, or the name's server has no certificate: the first server with one for this port.
  return tlsServersFor(listen, config.mainServer, config.virtualHosts)[0]?.tls;
}

/**
 * A tls.Server for an https Listen. `config()` is read at each handshake, so a config swap
 * applies to new connections. A client whose handshake fails costs one log line.
 */
export function createTlsServer(
  /** The port's Listen line: a reload that keeps the port swaps in the new config's. */
  listenOf: () => ListenAddress,
  config: () => Config,
  log: Logger,
  onSecure: (socket: tls.TLSSocket) => void,
  /** ALPN: the protocol to select for an SNI name among those offered (`Protocols`), or undefined for none in common. */
  alpn?: (servername: string | undefined, offered: string[], localAddress: string) => string | undefined,
): tls.Server {
  const listen = listenOf();
  const initial = frontTlsFor(config(), listen, listen.host ?? '', undefined);
  if (initial === undefined) throw new Error(`Listen ${listen.host ?? '*'}:${listen.port} https: no certificate`);
  const server = tls.createServer({
    // Off during the handshake, so that a client leaving mid-handshake closes the socket at once
    // (with it on, nothing would end a half-open socket that no one reads); on once secure.
    allowHalfOpen: false,
    noDelay: true,
    // The default certificate (no SNI, or no server for the name); tls.Server builds its own context from these.
    ...contextOptions(initial),
    ...(alpn !== undefined
      ? {
          // Called with the TLSSocket as `this`, like SNICallback: its local address picks the vhost list.
          // Without SNI (a client connecting by IP address) Node passes `servername: false`: the port's default server then
          // chooses, as a request without Host would.
          ALPNCallback(this: unknown, { servername, protocols }: { servername: string | false; protocols: string[] }): string | undefined {
            const name = typeof servername === 'string' && servername !== '' ? servername : undefined;
            return alpn(name, protocols, this instanceof net.Socket ? (this.localAddress ?? '') : (listenOf().host ?? ''));
          },
        }
      : {}),
    // A client that never finishes its handshake is dropped after the server's Timeout.
    handshakeTimeout: config().mainServer.settings.timeoutMs,
    // Node calls this with the TLSSocket as `this`: its local address picks the vhost list, as for Host.
    SNICallback(this: unknown, servername, cb) {
      const l = listenOf();
      const local = this instanceof net.Socket ? (this.localAddress ?? '') : (l.host ?? '');
      const t = frontTlsFor(config(), l, local, servername);
      cb(null, t === undefined ? undefined : contextFor(t));
    },
  });
  enableStapling(server, listenOf, config, log);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const raw = (socket as unknown as { _parent?: net.Socket })._parent;
    if (raw !== undefined) stopHandshakeStage(raw as StagedSocket);
    // Read by the stream at 'end' time: from now on a client's half-close is relayed, not answered with our own end.
    socket.allowHalfOpen = true;
    onSecure(socket);
  });
  // net.Socket caches its addresses once read: read them before tls.Server wraps the socket, so the log line has them even if
  // the handshake fails after the socket is gone.
  server.prependListener('connection', (raw: net.Socket) => {
    void raw.remoteAddress;
    void raw.localAddress;
    const stage = config().mainServer.settings.requestReadTimeouts.handshake;
    if (stage.timeoutMs > 0) startHandshakeStage(raw as StagedSocket, stage, log);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    // The TCP socket under the TLSSocket (Node's `_parent`) holds the cached addresses.
    const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
    log.info('TLS handshake with client failed', {
      client: plainAddress(raw.remoteAddress),
      local: `${raw.localAddress ?? ''}:${raw.localPort ?? ''}`,
      reason: err.code ?? err.message,
      detail: err.code !== undefined && err.message !== err.code ? err.message : undefined,
    });
    socket.destroy();
  });
  return server;
}

/**
 * A reload kept this https port: the certificate for clients without SNI (the server's default
 * context) becomes the new config's, read from its files at load. SNI clients already get theirs
 * from `config()` at each handshake.
 */
export function refreshDefaultCertificate(server: tls.Server, listen: ListenAddress, config: Config): void {
  const t = frontTlsFor(config, listen, listen.host ?? '', undefined);
  if (t !== undefined) server.setSecureContext(contextOptions(t));
}

// The native front's JavaScript half. On plain-TCP Listen ports the native engine accepts
// connections and reads request heads (native/front.cc); each head comes here, is parsed and
// routed exactly as on the HTTP/1 path, and then:
//  - an upgrade without a body to plain-TCP backends is run by a NativeUpgrade: the engine
//    connects, relays, and turns the two sockets into a native tunnel — no net.Socket at all;
//  - anything else (plain HTTP, TLS backends, a malformed or oversized head, a local answer) is
//    handed to Node: the fd becomes a net.Socket and a ClientConnection, fed the bytes read so
//    far, so it behaves exactly as if Node had accepted it.

import { lookup } from 'node:dns/promises';
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { ListenAddress, ServerSettings } from '../config/model';
import { findHeadEnd, HeadError, parseRequestHead, requestHeadCap, type RequestHead } from '../http/head';
import { errorBody } from '../http/forward';
import { nativeErrorAnswer } from '../proxy/answers';
import { NativeUpgrade, type NativeUpgradeHost } from '../proxy/native-upgrade';
import { describeListen, RequestRecord } from '../proxy/record';
import type { GatewayContext } from '../proxy/context';
import { headerScope, Upstream } from '../proxy/upstream';
import { routeHead, type ProxyDecision } from '../routing/router';
import { errnoName, FrontEvent, nativeEngine, onFrontEvent, type NativeBinding } from '../tunnel/native';
import { TCP_KEEPALIVE_DELAY_MS } from '../tunnel/tunnel';
import type { ClientConnection, ConnectionHost } from './http1';
import { plainAddress } from './address';
import { headLimits } from './limits';
import { EvictionLog } from './unread';
import { checkWebSocketLimits, type LimitRefusal } from '../routing/ws-limits';
import { parseClientHello } from './client-hello';
import { selectAlpn } from './h2';
import { asTlsSocket, nativeContext, type NativeTlsInfo, tlsInfoOf, tlsView } from './native-tls';
import { frontTlsFor } from './tls';

/** A port the engine accepts on with a socket of its own (NativeFront.listenShared). */
export interface SharedListener {
  readonly id: number;
  readonly address: net.AddressInfo;
}

/** What the front needs from the gateway. */
export interface FrontHost extends ConnectionHost {
  /** A connection for the HTTP/1 path, registered like an accepted one. */
  adoptConnection(socket: net.Socket, listen: ListenAddress): ClientConnection;
}

// The engine is one per process and so are its ids; a process may run several gateways (the
// tests do), so events find their front through these.
interface FrontPort {
  front: NativeFront;
  listen: ListenAddress;
  /** An https port: Node's TLS server (not listening) takes the connections the engine does not terminate. */
  readonly tlsServer?: tls.Server;
  readonly port: number;
}
const listeners = new Map<number, FrontPort>();
const upgrades = new Map<number, NativeUpgrade>();
let nextListenerId = 1;
const evictions = new EvictionLog();
onFrontEvent(dispatch);

export class NativeFront implements NativeUpgradeHost {
  /** Handshakes of this front in progress. */
  private readonly mine = new Set<NativeUpgrade>();
  /** The TLS sessions of the engine's upgrade handshakes, for one handed to Node after all (resumeOnNode). */
  private readonly tlsOf = new Map<number, { info: NativeTlsInfo; local: string; port: number }>();

  constructor(
    private readonly host: FrontHost,
    readonly engine: NativeBinding,
  ) {}

  get ctx(): GatewayContext {
    return this.host;
  }

  /**
   * Takes over accepting on a bound, listening Node server: the engine accepts on a duplicate
   * of its socket, and the caller closes the server (its handle) right after, in the same tick.
   * Returns the id to stop it with.
   */
  listen(server: net.Server, listen: ListenAddress, settings: ServerSettings): number | undefined {
    const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    return this.listenFd(fd, listen, settings, (server.address() as net.AddressInfo).port);
  }

  /**
   * The same for an https port (unless WSGATE_NATIVE_TLS=0): the engine peeks at each ClientHello and
   * either runs the TLS handshake itself or gives the connection to `server` (Node's TLS server
   * for the port, closed as a listener but still taking connections handed to it).
   */
  listenTls(server: tls.Server, listen: ListenAddress, settings: ServerSettings): number | undefined {
    const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    return this.listenFd(fd, listen, settings, (server.address() as net.AddressInfo).port, server);
  }

  /**
   * Binds a listening socket of this process's own with SO_REUSEPORT (a `-w N` worker: the
   * kernel spreads connections over the workers' sockets, no cluster hand-off) and accepts on it.
   * `exclusive`: fail if anything holds the port already. Throws `cannot listen on …` as a Node
   * server would.
   */
  async listenShared(
    listen: ListenAddress,
    port: number,
    settings: ServerSettings,
    exclusive: boolean,
    /** An https port: its TLS server (never listening), as for listenTls. */
    tlsServer?: tls.Server,
  ): Promise<SharedListener> {
    let ip = listen.host ?? '';
    if (ip !== '' && net.isIP(ip) === 0) ip = (await lookup(ip)).address;
    const r = this.engine.frontBindShared(ip, port, exclusive);
    if (typeof r === 'number') throw new Error(`cannot listen on ${describeListen(listen)}: ${errnoName(r)}`);
    const [fd, bound, family] = r;
    try {
      const id = this.listenFd(fd, listen, settings, bound, tlsServer);
      return { id, address: { address: ip !== '' ? ip : family === 6 ? '::' : '0.0.0.0', family: `IPv${family}`, port: bound } };
    } finally {
      closeSync(fd); // the engine accepts on its duplicate
    }
  }

  private listenFd(fd: number, listen: ListenAddress, settings: ServerSettings, port: number, tlsServer?: tls.Server): number {
    const id = nextListenerId++;
    const { header, handshake } = settings.requestReadTimeouts;
    this.engine.frontListen(
      id,
      fd,
      settings.timeoutMs,
      TCP_KEEPALIVE_DELAY_MS / 1000,
      header.timeoutMs,
      header.maxTimeoutMs,
      header.minRate,
      tlsServer !== undefined,
      handshake.timeoutMs,
      handshake.maxTimeoutMs,
      handshake.minRate,
    );
    listeners.set(id, { front: this, listen, port, ...(tlsServer !== undefined ? { tlsServer } : {}) });
    return id;
  }

  /**
   * A reload kept the port: the socket stays as it is; its Listen line (the config's object) and
   * the head limits of the connections it accepts from now on are the new config's.
   */
  relisten(id: number, listen: ListenAddress, settings: ServerSettings): void {
    const { header, handshake } = settings.requestReadTimeouts;
    this.engine.frontLimits(
      id,
      settings.timeoutMs,
      header.timeoutMs,
      header.maxTimeoutMs,
      header.minRate,
      handshake.timeoutMs,
      handshake.maxTimeoutMs,
      handshake.minRate,
    );
    const entry = listeners.get(id);
    if (entry !== undefined) entry.listen = listen;
  }

  unlisten(id: number): void {
    this.engine.frontUnlisten(id);
    listeners.delete(id);
  }

  /** Upgrade handshakes in progress (they are connections that are not tunnels yet). */
  get pending(): number {
    return this.mine.size;
  }

  /** Closes every handshake in progress (shutdown). */
  abortAll(): void {
    for (const u of [...this.mine]) u.abort();
  }

  upgradeDone(u: NativeUpgrade): void {
    this.mine.delete(u);
    upgrades.delete(u.id);
    this.tlsOf.delete(u.id);
  }

  resumeOnNode(u: NativeUpgrade, clientFd: number, backendFd: number, answer: Buffer): void {
    const t = this.tlsOf.get(u.id);
    this.tlsOf.delete(u.id);
    const client = t === undefined ? socketFor(clientFd) : asTlsSocket(socketFor(clientFd), t.info, u.clientIp, t.local, t.port);
    const backend = socketFor(backendFd);
    const conn = this.host.adoptConnection(client, u.listen);
    conn.resumeUpgrade(u.vhost, u.req, u.up, u.rest, backend, answer);
  }

  /** @internal A head arrived on one of this front's ports. */
  onHead(id: number, port: FrontPort, clientIp: string, bytes: Buffer): void {
    const listen = port.listen;
    // On an https port the engine terminated TLS: what the HTTP/1 path needs of the session is read now.
    const tlsInfo = port.tlsServer !== undefined ? tlsInfoOf(this.engine, id) : undefined;
    // A head after empty lines is the HTTP/1 path's, which skips them.
    const end = bytes[0] === 0x0d ? -1 : findHeadEnd(bytes);
    let req: RequestHead | undefined;
    // The same limits as the HTTP/1 path, which answers (and finishes reading) what fails here.
    const localAddress = (): string => this.engine.frontLocalAddress(id);
    const limits = end === -1 ? undefined : headLimits(this.host.config, listen, localAddress);
    if (limits !== undefined && end <= requestHeadCap(limits)) {
      try {
        req = parseRequestHead(bytes, end, limits);
      } catch (e) {
        if (!(e instanceof HeadError)) throw e;
      }
    }
    // Only a bodiless upgrade is the front's; the HTTP/1 path answers everything else,
    // malformed heads included (it parses them again and says what is wrong).
    if (req === undefined || req.upgrade === undefined || req.chunked || req.contentLength > 0) {
      this.handOff(id, port, clientIp, tlsInfo, bytes);
      return;
    }
    const { vhost, decision } = routeHead(this.host.config, listen, localAddress, req, clientIp);
    // Local answers (refusals by access control, redirects) are the HTTP/1 path's: it routes again and answers.
    if ((decision.kind !== 'proxy' && decision.kind !== 'balance') || decision.mode !== 'upgrade' || !plainTcp(decision)) {
      this.handOff(id, port, clientIp, tlsInfo, bytes);
      return;
    }
    // The rate and the tunnel caps are counted here, not in routeHead: a handshake handed off
    // above is counted once, on the HTTP/1 path.
    const refusal = checkWebSocketLimits(vhost, decision.route, req.method, req.target, req.headers, clientIp, this.host.wsLimits);
    if (refusal !== undefined) {
      this.refuse(id, listen, clientIp, req, refusal, tlsInfo);
      return;
    }
    const rest = end < bytes.length ? bytes.subarray(end) : undefined;
    const record = this.record(listen, clientIp, req, tlsInfo);
    record.routed(vhost, decision.route);
    if (tlsInfo !== undefined) this.tlsOf.set(id, { info: tlsInfo, local: this.engine.frontLocalAddress(id), port: port.port });
    const u = new NativeUpgrade(
      this,
      id,
      listen,
      clientIp,
      vhost,
      req,
      new Upstream(
        this.host,
        decision,
        record,
        req.headers,
        headerScope(vhost, req.method, req.target, tlsInfo === undefined ? undefined : tlsView(tlsInfo)),
      ),
      rest,
    );
    this.mine.add(u);
    upgrades.set(id, u);
    u.start();
  }

  /**
   * @internal A head took too long (RequestReadTimeout's header stage) or went silent (Timeout),
   * as on the HTTP/1 path: a request line already in → 408 and close; less → closed without an
   * answer; one log line, none for a connection that sent nothing.
   */
  headTimedOut(id: number, clientIp: string, partial: Buffer | undefined): void {
    if (partial?.includes(0x0a)) {
      this.host.log.warn('request head timed out', { status: 408, client: clientIp });
      this.engine.frontRespond(id, nativeErrorAnswer(408));
      return;
    }
    if (partial !== undefined && partial.length > 0) this.host.log.warn('request head timed out', { client: clientIp });
    this.engine.frontAbort(id);
  }

  /** @internal */
  headEvicted(): void {
    evictions.evicted(this.host.log);
  }

  /** A WebSocket limit refused the upgrade: answered by the engine, which then closes the connection. */
  private refuse(
    id: number,
    listen: ListenAddress,
    clientIp: string,
    req: RequestHead,
    refusal: LimitRefusal,
    tlsInfo?: NativeTlsInfo,
  ): void {
    this.host.log.info('request not proxied', {
      status: refusal.status,
      reason: refusal.reason,
      client: clientIp,
      method: req.method,
      path: req.target,
    });
    const extra = refusal.retryAfter === undefined ? '' : `Retry-After: ${refusal.retryAfter}\r\n`;
    this.engine.frontRespond(id, nativeErrorAnswer(refusal.status, extra, req.method !== 'HEAD'));
    const record = this.record(listen, clientIp, req, tlsInfo);
    if (req.method !== 'HEAD') record.bytesOut = errorBody(refusal.status).length;
    record.end({ kind: 'answered', status: refusal.status, reason: refusal.reason });
  }

  /** The record of a request the front read (after the engine's TLS handshake when `tlsInfo` is set). */
  private record(listen: ListenAddress, clientIp: string, req: RequestHead, tlsInfo: NativeTlsInfo | undefined): RequestRecord {
    // The engine reports a connection once its head is in: accepted and head read are one moment here.
    const now = Date.now();
    const from = {
      clientIp: plainAddress(clientIp),
      clientPort: undefined,
      listen,
      tls: tlsInfo !== undefined,
      alpn: tlsInfo?.alpn,
      protocol: 'http/1.1' as const,
      sink: this.host.observers,
    };
    return new RequestRecord(from, req, now, now);
  }

  /**
   * The connection goes to the HTTP/1 path, with what was read from it. After the engine's TLS
   * handshake that is a socket pair carrying the decrypted bytes, which reads as a TLS socket.
   */
  private handOff(id: number, port: FrontPort, clientIp: string, tlsInfo: NativeTlsInfo | undefined, bytes: Buffer): void {
    const local = tlsInfo !== undefined ? this.engine.frontLocalAddress(id) : '';
    const fds = this.engine.frontHandoff(id);
    if (fds === undefined) return;
    const socket = tlsInfo === undefined ? socketFor(fds[0]) : asTlsSocket(socketFor(fds[0]), tlsInfo, clientIp, local, port.port);
    this.host.adoptConnection(socket, port.listen).feed(bytes);
  }

  /**
   * @internal A ClientHello came on an https port. The engine runs the handshake when it can do
   * what Node's TLS server would: a hello it can read, an ALPN choice other than h2 (HTTP/2 is
   * Node's), a certificate it has a context for (not one with DH parameters or OCSP stapling);
   * anything else goes to Node's TLS server, which reads the hello from the socket (and starts
   * RequestReadTimeout's handshake stage again from there).
   */
  onHello(id: number, port: FrontPort, bytes: Buffer): void {
    const hello = parseClientHello(bytes);
    const config = this.host.config;
    if (hello !== undefined) {
      const local = this.engine.frontLocalAddress(id);
      let alpn: string | undefined = '';
      if (hello.alpn.length > 0) alpn = selectAlpn(config, port.listen, local, hello.servername, hello.alpn);
      const t = alpn === undefined || alpn === 'h2' ? undefined : frontTlsFor(config, port.listen, local, hello.servername);
      const ctx = t === undefined ? undefined : nativeContext(this.engine, t);
      if (ctx !== undefined && this.engine.frontTlsStart(id, ctx, alpn!)) return;
    }
    const fds = this.engine.frontHandoff(id);
    if (fds === undefined || port.tlsServer === undefined) return;
    port.tlsServer.emit('connection', socketFor(fds[0]));
  }

  /** @internal RequestReadTimeout's handshake stage cut the engine's TLS handshake: the line of Node's path (listeners/tls.ts). */
  tlsStageTimedOut(clientIp: string, text: string): void {
    const local = text.slice(text.indexOf('\n') + 1);
    this.host.log.info('TLS handshake with client timed out', { client: plainAddress(clientIp), local });
  }

  /** @internal The engine's TLS handshake failed or timed out (Timeout): the line Node's TLS server would log. */
  tlsFailed(clientIp: string, text: string): void {
    const [reason = '', local = ''] = text.split('\n');
    const [code, message] = reason.split('\t');
    this.host.log.info('TLS handshake with client failed', {
      client: plainAddress(clientIp),
      local,
      reason: code,
      detail: message ?? TLS_FAILURE_TEXT[code ?? ''],
    });
  }
}

function dispatch(type: FrontEvent, id: number, a: number, text: string | undefined, bytes: Buffer | undefined): void {
  try {
    dispatchOne(type, id, a, text, bytes);
  } catch (e) {
    // A bug must not take the process (and the other events of this batch) down: this
    // connection is closed, logged, and the others go on.
    nativeEngine()!.frontAbort(id);
    const u = upgrades.get(id);
    if (u !== undefined) u.abort();
    const log = u?.host.ctx.log ?? (type === FrontEvent.Head ? listeners.get(a)?.front.ctx.log : undefined);
    log?.error('native front: internal error', { handshake: id, event: type, reason: (e as Error).stack ?? String(e) });
  }
}

function dispatchOne(type: FrontEvent, id: number, a: number, text: string | undefined, bytes: Buffer | undefined): void {
  switch (type) {
    case FrontEvent.Head: {
      const l = listeners.get(a);
      if (l === undefined)
        nativeEngine()!.frontAbort(id); // its port was closed meanwhile
      else l.front.onHead(id, l, text ?? '', bytes!);
      return;
    }
    case FrontEvent.Hello: {
      const l = listeners.get(a);
      if (l === undefined) nativeEngine()!.frontAbort(id);
      else l.front.onHello(id, l, bytes!);
      return;
    }
    case FrontEvent.TlsFailed:
      listeners.get(a)?.front.tlsFailed(text ?? '', bytes?.toString('latin1') ?? '');
      return;
    case FrontEvent.TlsStageTimeout:
      listeners.get(a)?.front.tlsStageTimedOut(text ?? '', bytes?.toString('latin1') ?? '');
      return;
    case FrontEvent.HeadTimeout: {
      const l = listeners.get(a);
      if (l === undefined) nativeEngine()!.frontAbort(id);
      else l.front.headTimedOut(id, text ?? '', bytes);
      return;
    }
    case FrontEvent.HeadEvicted:
      listeners.get(a)?.front.headEvicted();
      return;
  }
  const u = upgrades.get(id);
  if (u === undefined) return;
  switch (type) {
    case FrontEvent.ConnectFailed:
      u.onConnectFailed(a);
      return;
    case FrontEvent.Answer:
      u.onAnswer(bytes!);
      return;
    case FrontEvent.BackendLost:
      u.onBackendLost(a);
      return;
    case FrontEvent.AnswerTimeout:
      u.onAnswerTimeout();
      return;
    case FrontEvent.ClientGone:
      u.onClientGone(a);
      return;
  }
}

/** Node's messages for the failures the engine names by Node's codes alone. */
const TLS_FAILURE_TEXT: Readonly<Record<string, string>> = {
  ECONNRESET: 'Client network socket disconnected before secure TLS connection was established',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'TLS handshake timeout',
};

/** Whether every backend the route may use is plain TCP (TLS backends need Node's TLS). */
function plainTcp(decision: ProxyDecision): boolean {
  if (decision.kind === 'proxy') return !decision.backend.origin.tls;
  return decision.balancer.members.every((m) => !m.backend.origin.tls);
}

/** A Node socket on a connected TCP fd the engine gave up. */
function socketFor(fd: number): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  s.setNoDelay(true);
  return s;
}

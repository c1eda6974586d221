// Run-time state per backend origin: its pool of idle keep-alive connections and, for the
// requests of plain ProxyPass routes, its counters (a balancer member has its own: MemberState).
//
// State is keyed by the origin's key (`http://host:port`), not by a config object, so that a
// reloaded config finds the counters and pool of the previous one.

import * as net from 'node:net';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { BackendTls, Config, Origin } from '../config/model';
import { BackendCounters } from './counters';
import { TCP_KEEPALIVE_DELAY_MS } from '../tunnel/tunnel';

/** An idle pooled connection is closed after this long; shorter than common backend keep-alive timeouts (Node's is 5 s). */
const POOL_IDLE_MS = 4_000;
/** At most this many idle connections are kept per origin. */
const POOL_MAX_IDLE = 64;

const kPooled = Symbol('wsgate.pooled');
type PooledSocket = net.Socket & { [kPooled]?: OriginState };

export class OriginState {
  /** The counters of the requests that reach this origin through a plain ProxyPass route. */
  readonly counters = new BackendCounters();
  private readonly idle: net.Socket[] = [];

  constructor(public origin: Origin) {}

  /** A connected idle socket from the pool, or undefined. The caller owns it from now on. */
  takeIdle(): net.Socket | undefined {
    for (;;) {
      const s = this.idle.pop();
      if (s === undefined) return undefined;
      unpool(s as PooledSocket);
      if (!s.destroyed && s.readyState === 'open') return s;
      s.destroy();
    }
  }

  /** Gives a socket whose last response completed back for reuse. */
  release(s: net.Socket): void {
    if (s.destroyed || s.readyState !== 'open' || this.idle.length >= POOL_MAX_IDLE) {
      s.destroy();
      return;
    }
    const ps = s as PooledSocket;
    ps[kPooled] = this;
    ps.on('data', pooledOnUnexpected);
    ps.on('end', pooledOnUnexpected);
    ps.on('close', pooledOnUnexpected);
    ps.on('timeout', pooledOnUnexpected);
    ps.setTimeout(POOL_IDLE_MS);
    ps.resume();
    this.idle.push(s);
  }

  /** Closes every idle connection (shutdown, or the origin left the config). */
  closeIdle(): void {
    for (const s of this.idle.splice(0)) s.destroy();
  }

  /** @internal */
  drop(s: net.Socket): void {
    const i = this.idle.indexOf(s);
    if (i !== -1) this.idle.splice(i, 1);
    unpool(s as PooledSocket);
    s.destroy();
  }
}

function unpool(s: PooledSocket): void {
  s[kPooled] = undefined;
  s.removeListener('data', pooledOnUnexpected);
  s.removeListener('end', pooledOnUnexpected);
  s.removeListener('close', pooledOnUnexpected);
  s.removeListener('timeout', pooledOnUnexpected);
  s.setTimeout(0);
  s.pause();
}

/** An idle pooled socket that speaks, ends or times out is no longer reusable. */
function pooledOnUnexpected(this: PooledSocket): void {
  this[kPooled]?.drop(this);
}

export class OriginRegistry {
  private readonly states = new Map<string, OriginState>();

  get(origin: Origin): OriginState {
    let st = this.states.get(origin.key);
    if (st === undefined) {
      st = new OriginState(origin);
      this.states.set(origin.key, st);
    } else {
      st.origin = origin;
    }
    return st;
  }

  all(): IterableIterator<OriginState> {
    return this.states.values();
  }

  closeIdle(): void {
    for (const st of this.states.values()) st.closeIdle();
  }

  /**
   * Drops the state of origins `config` no longer names, closing their idle connections. One
   * still in use (a request in flight, a tunnel open) is kept until a later prune finds it idle,
   * so its counts are never split between an old and a new object.
   */
  prune(config: Config): void {
    const wanted = new Set(config.origins.map((o) => o.key));
    for (const [key, st] of this.states) {
      if (wanted.has(key)) continue;
      st.closeIdle();
      if (st.counters.idle) this.states.delete(key);
    }
  }

  /** The state of the origin keyed `key`, if there is one (no state is made). */
  peek(key: string): OriginState | undefined {
    return this.states.get(key);
  }
}

export type ConnectCallback = (err: Error | undefined, socket: net.Socket) => void;

/**
 * The TCP connection to the backend was made but TLS failed: the handshake was refused or broke
 * off, or the backend's certificate did not verify. The exchange answers 502 for it (a TCP
 * connect failure stays 503).
 */
export class BackendTlsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BackendTlsError';
  }
}

const contexts = new WeakMap<BackendTls, tls.SecureContext>();

/** One secure context per TLS profile of a loaded config: the system CAs plus SSLProxyCACertificateFile, and the client certificate. */
function secureContextFor(t: BackendTls): tls.SecureContext {
  let sc = contexts.get(t);
  if (sc === undefined) {
    sc = tls.createSecureContext({
      ...(t.ca !== undefined ? { ca: [...tls.rootCertificates, t.ca] } : {}),
      ...(t.clientCert !== undefined ? { cert: t.clientCert, key: t.clientKey } : {}),
    });
    contexts.set(t, sc);
  }
  return sc;
}

const DEFAULT_BACKEND_TLS: BackendTls = { verify: true, checkPeerName: true, checkPeerExpire: true, profile: 'default' };
const EXPIRY_ERRORS = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

function tlsConnect(origin: Origin): tls.TLSSocket {
  const t = origin.tlsClient ?? DEFAULT_BACKEND_TLS;
  // allowHalfOpen and noDelay are honoured by tls.connect (they reach the TLSSocket and its connect) but missing from @types/node.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean; noDelay: boolean } = {
    host: origin.host,
    port: origin.port,
    servername: net.isIP(origin.host) ? undefined : origin.host,
    secureContext: secureContextFor(t),
    // Expiry is checked after the handshake when SSLProxyCheckPeerExpire is off (verifyPeer).
    rejectUnauthorized: t.verify && t.checkPeerExpire,
    checkServerIdentity: t.verify && t.checkPeerName ? tls.checkServerIdentity : () => undefined,
    allowHalfOpen: true,
    noDelay: true,
  };
  return tls.connect(options);
}

/**
 * After the handshake, with SSLProxyCheckPeerExpire off: OpenSSL reported a problem, which is
 * acceptable only if it is the validity period and the chain is otherwise trusted (each
 * signature checked up to a trusted certificate, dates ignored). Returns the failure, if any.
 */
function verifyPeer(socket: tls.TLSSocket, t: BackendTls, host: string): string | undefined {
  if (!t.verify || t.checkPeerExpire || socket.authorized) return undefined;
  const why = String(socket.authorizationError ?? 'unknown');
  if (!EXPIRY_ERRORS.has(why)) return why;
  const trusted = [
    ...tls.rootCertificates,
    ...(t.ca !== undefined ? (t.ca.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) : []),
  ];
  let cert = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  for (let depth = 0; cert !== undefined && cert.raw !== undefined && depth < 10; depth++) {
    const x = new X509Certificate(cert.raw);
    if (seen.has(x.fingerprint256)) break;
    seen.add(x.fingerprint256);
    for (const pem of trusted) {
      const ca = new X509Certificate(pem);
      if (x.checkIssued(ca) && x.verify(ca.publicKey)) {
        // Node checks the name only when OpenSSL found nothing wrong: do it here.
        const nameErr = t.checkPeerName ? tls.checkServerIdentity(host, socket.getPeerCertificate()) : undefined;
        return nameErr === undefined
          ? undefined
          : `${(nameErr as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID'} ${nameErr.message}`;
      }
    }
    const up = cert.issuerCertificate;
    if (up === undefined || up === cert) break;
    if (!x.checkIssued(new X509Certificate(up.raw)) || !x.verify(new X509Certificate(up.raw).publicKey)) break;
    cert = up;
  }
  return `${why}, and the certificate chain does not lead to a trusted CA`;
}

/**
 * Opens a connection to `origin`, bounded by `timeoutMs` (connect and, for TLS, the TLS
 * handshake). The callback runs once. The socket always has an error handler attached by the
 * caller's callback path, and one from here until then.
 */
export function connectOrigin(origin: Origin, timeoutMs: number, keepalive: boolean, cb: ConnectCallback): net.Socket {
  const socket: net.Socket = origin.tls
    ? tlsConnect(origin)
    : net.connect({ host: origin.host, port: origin.port, allowHalfOpen: true, noDelay: true });
  let done = false;
  // For TLS: set once TCP is up, so that a later failure is told apart as a TLS one.
  let tcpUp = false;
  const finish = (err: Error | undefined): void => {
    if (done) return;
    done = true;
    socket.removeListener('timeout', onTimeout);
    socket.removeListener(origin.tls ? 'secureConnect' : 'connect', onConnect);
    socket.setTimeout(0);
    if (err !== undefined) socket.destroy();
    cb(err, socket);
  };
  const onConnect = (): void => {
    if (origin.tls) {
      const bad = verifyPeer(socket as tls.TLSSocket, origin.tlsClient ?? DEFAULT_BACKEND_TLS, origin.host);
      if (bad !== undefined) {
        finish(new BackendTlsError('CERT_VERIFY', `TLS handshake with the backend failed: ${bad}`));
        return;
      }
    }
    if (keepalive) socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    finish(undefined);
  };
  const onTimeout = (): void => {
    const e = new Error(`connect timed out after ${timeoutMs} ms`) as NodeJS.ErrnoException;
    e.code = 'ETIMEDOUT';
    finish(e);
  };
  socket.on('error', (err) => {
    if (origin.tls && tcpUp && !(err instanceof BackendTlsError)) {
      const e = err as NodeJS.ErrnoException;
      const code = e.code ?? 'TLS_ERROR';
      finish(new BackendTlsError(code, `TLS handshake with the backend failed: ${code === e.message ? code : `${code} ${e.message}`}`));
      return;
    }
    finish(err);
  });
  if (origin.tls) socket.once('connect', () => (tcpUp = true));
  socket.once(origin.tls ? 'secureConnect' : 'connect', onConnect);
  if (timeoutMs > 0) {
    socket.setTimeout(timeoutMs);
    socket.once('timeout', onTimeout);
  }
  return socket;
}

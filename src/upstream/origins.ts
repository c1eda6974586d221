// Run-time state per backend origin: its counters and its pool of idle keep-alive connections.
//
// State is keyed by the origin's key (`http://host:port`), not by a config object, so that a
// reloaded config finds the counters and pool of the previous one.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Origin } from '../config/model';
import { TCP_KEEPALIVE_DELAY_MS } from '../tunnel/tunnel';

/** Counters kept per origin; the metrics and status page of a later issue read them. */
export class OriginCounters {
  /** Tunnels open now. */
  openTunnels = 0;
  /** Plain HTTP requests in flight now. */
  inFlight = 0;
  tunnels = 0;
  requests = 0;
  /** Connect failures and handshake failures. */
  failures = 0;
  bytesUp = 0;
  bytesDown = 0;
}

/** An idle pooled connection is closed after this long; shorter than common backend keep-alive timeouts (Node's is 5 s). */
const POOL_IDLE_MS = 4_000;
/** At most this many idle connections are kept per origin. */
const POOL_MAX_IDLE = 64;

const kPooled = Symbol('wsgate.pooled');
type PooledSocket = net.Socket & { [kPooled]?: OriginState };

export class OriginState {
  readonly counters = new OriginCounters();
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
}

export type ConnectCallback = (err: Error | undefined, socket: net.Socket) => void;

/**
 * Opens a connection to `origin`, bounded by `timeoutMs` (connect and, for TLS, the TLS
 * handshake). The callback runs once. The socket always has an error handler attached by the
 * caller's callback path, and one from here until then.
 */
export function connectOrigin(origin: Origin, timeoutMs: number, keepalive: boolean, cb: ConnectCallback): net.Socket {
  const socket: net.Socket = origin.tls
    ? tls.connect({ host: origin.host, port: origin.port, servername: net.isIP(origin.host) ? undefined : origin.host })
    : net.connect({ host: origin.host, port: origin.port, allowHalfOpen: true, noDelay: true });
  let done = false;
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
    if (keepalive) socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    finish(undefined);
  };
  const onTimeout = (): void => {
    const e = new Error(`connect timed out after ${timeoutMs} ms`) as NodeJS.ErrnoException;
    e.code = 'ETIMEDOUT';
    finish(e);
  };
  socket.on('error', (err) => finish(err));
  socket.once(origin.tls ? 'secureConnect' : 'connect', onConnect);
  if (timeoutMs > 0) {
    socket.setTimeout(timeoutMs);
    socket.once('timeout', onTimeout);
  }
  return socket;
}

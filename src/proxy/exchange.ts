// One proxied request: pick the route, reach the backend, send the request (head and streamed
// body), read the answer, then either relay it as HTTP or, after a valid 101, hand both sockets
// to a Tunnel. Every failure before the answer maps to one status (REFERENCE §4) and one log line.

import type { Socket } from 'node:net';
import type { VirtualHost } from '../config/model';
import { BodyError, type BodyFramer, Framing, requestFraming, responseFraming } from '../http/body';
import { buildClientResponse, buildInterimResponse, buildSwitchingResponse } from '../http/forward';
import { websocketFlagsOf } from '../tunnel/wsframe';
import { findHeadEnd, type HeadError, MAX_HEAD_BYTES, parseResponseHead, type RequestHead, type ResponseHead } from '../http/head';
import type { GatewayContext } from './context';
import type { Upstream, Refusal } from './upstream';
import { bodyLimitsOf } from '../listeners/limits';

/** The client side of an exchange: the HTTP/1.1 connection that sent the request. */
export interface ExchangeOwner {
  readonly socket: Socket;
  readonly clientIp: string;
  /** The exchange is over; `keepAlive` tells whether the connection may read the next request. */
  exchangeDone(keepAlive: boolean, leftover: Buffer | undefined): void;
  /** The exchange turned into a tunnel: the connection must drop its listeners now. */
  detach(): void;
}

const enum Phase {
  Connecting,
  AwaitingHead,
  RelayingBody,
  Done,
}

/** The client's connection is TLS (a `TLSSocket`): mapped Locations name the front as https. */
function isTls(socket: Socket): boolean {
  return (socket as Socket & { encrypted?: boolean }).encrypted === true;
}

/** Most interim (1xx) responses relayed before the final one, as Apache's limit. */
const MAX_INTERIM = 10;

export class Exchange {
  private phase = Phase.Connecting;
  private backendSocket: Socket | undefined;
  private reused = false;
  private retried = false;
  private readonly reqFramer: BodyFramer;
  private resFramer: BodyFramer | undefined;
  /** Client bytes after the request body: early tunnel bytes, or the next pipelined request. */
  private extra: Buffer | undefined;
  /** Client bytes that arrived before the backend connection was ready. */
  private pending: Buffer | undefined;
  private resBuf: Buffer | undefined;
  private interim = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly upgradeValue: string | undefined;
  /** The backend (or balancer member) and the request's slot in its counters. */
  private readonly up: Upstream;
  private clientEnded = false;
  /** Whether the client connection and the backend connection may serve another request. */
  private keepClient = false;
  private keepBackend = false;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly owner: ExchangeOwner,
    private readonly vhost: VirtualHost,
    private readonly req: RequestHead,
    up: Upstream,
    rest: Buffer | undefined,
  ) {
    this.up = up;
    this.upgradeValue = up.upgradeValue;
    this.reqFramer = requestFraming(req.chunked, req.contentLength, bodyLimitsOf(vhost.settings));
    this.pending = rest !== undefined && rest.length > 0 ? rest : undefined;
  }

  get isUpgrade(): boolean {
    return this.upgradeValue !== undefined;
  }

  start(): void {
    this.up.choose(this);
  }

  /** @internal A backend is chosen: reuse a pooled connection or connect (at once after a failover). */
  upstreamChosen(failover: boolean): void {
    if (failover) this.up.connect(this);
    else this.proceed();
  }

  /** @internal */
  upstreamRefused(r: Refusal): void {
    this.fail(r.status, r.reason, r.retryAfterS);
  }

  /** The backend is chosen and the slot taken: reuse a pooled connection or connect. */
  private proceed(): void {
    this.owner.socket.pause();
    if (!this.isUpgrade) {
      const idle = this.up.state.takeIdle();
      if (idle !== undefined) {
        this.reused = true;
        this.attachBackend(idle);
        return;
      }
    }
    this.up.connect(this);
  }

  /** @internal */
  get upstreamOver(): boolean {
    return this.phase === Phase.Done;
  }

  /** @internal */
  upstreamConnected(socket: Socket): void {
    this.attachBackend(socket);
  }

  /**
   * Carries on an upgrade whose backend connection, request head and answer the native front
   * handled (src/listeners/native-front.ts), from the answer on: it was not a 101 it could take
   * (another status to relay, an interim response, a malformed head). The request had no body.
   */
  resumeAtAnswer(backend: Socket, answer: Buffer): void {
    this.owner.socket.pause();
    // What followed the request head is early tunnel bytes (or unused, if there is no tunnel).
    this.extra = this.pending;
    this.pending = undefined;
    this.listenBackend(backend);
    this.phase = Phase.AwaitingHead;
    this.timer = setTimeout(onResponseTimeout, this.up.backend.responseTimeoutMs, this);
    this.onHeadBytes(answer);
  }

  private listenBackend(socket: Socket): void {
    this.backendSocket = socket;
    (socket as ExchangeSocket)[kExchange] = this;
    socket.on('data', backendOnData);
    socket.on('end', backendOnEnd);
    socket.on('error', backendOnError);
    socket.on('close', backendOnClose);
    socket.on('drain', backendOnDrain);
  }

  private attachBackend(socket: Socket): void {
    this.listenBackend(socket);
    // A socket taken from the keep-alive pool comes back paused (origins.ts unpool).
    if (this.reused) socket.resume();

    const head = this.up.requestHead(this.vhost, this.req, this.owner.clientIp, isTls(this.owner.socket));
    this.up.sent(head.length);
    socket.write(head);
    this.phase = Phase.AwaitingHead;
    this.timer = setTimeout(onResponseTimeout, this.up.backend.responseTimeoutMs, this);
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) this.onClientData(pending);
    if (!this.reqFramer.done && this.extra === undefined) this.owner.socket.resume();
  }

  /** Bytes from the client while this exchange owns the connection. */
  onClientData(chunk: Buffer): void {
    if (this.backendSocket === undefined) {
      this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
      this.owner.socket.pause();
      return;
    }
    let used = 0;
    if (!this.reqFramer.done) {
      try {
        used = this.reqFramer.consume(chunk, 0, chunk.length);
      } catch (e) {
        if (!(e instanceof BodyError)) throw e;
        // Nothing of the bad bytes has reached the backend; its connection is closed, never pooled.
        this.abort(e.status === 400 ? `malformed request body: ${e.message}` : e.message, e.status);
        return;
      }
      if (used > 0) {
        this.up.sent(used);
        if (this.timer !== undefined) this.timer.refresh();
        if (!this.backendSocket.write(used === chunk.length ? chunk : chunk.subarray(0, used))) this.owner.socket.pause();
      }
    }
    if (used < chunk.length) {
      const rest = chunk.subarray(used);
      this.extra = this.extra === undefined ? rest : Buffer.concat([this.extra, rest]);
      // The body is complete: what follows belongs to the tunnel or the next request. Hold it.
      this.owner.socket.pause();
    }
  }

  onClientEnd(): void {
    this.clientEnded = true;
    if (!this.reqFramer.done) this.abort('client closed before sending the whole request body');
  }

  /** The client connection failed or closed while this exchange was running. */
  onClientGone(detail: string): void {
    if (this.phase === Phase.Done) return;
    this.ctx.log.debug('client went away during exchange', { client: this.owner.clientIp, path: this.req.target, reason: detail });
    this.finish();
    this.backendSocket?.destroy();
  }

  /** @internal The backend drained: read the request body again. */
  resumeClient(): void {
    this.owner.socket.resume();
  }

  onClientDrain(): void {
    if (this.phase === Phase.RelayingBody) this.backendSocket?.resume();
  }

  /** @internal */
  onBackendData(chunk: Buffer): void {
    if (this.phase === Phase.AwaitingHead) {
      this.onHeadBytes(chunk);
    } else if (this.phase === Phase.RelayingBody) {
      this.relayBody(chunk, 0);
    }
  }

  private onHeadBytes(chunk: Buffer): void {
    const prevLen = this.resBuf === undefined ? 0 : this.resBuf.length;
    const buf = this.resBuf === undefined ? chunk : Buffer.concat([this.resBuf, chunk]);
    const end = findHeadEnd(buf, prevLen);
    // The same bound whether the head came in pieces or at once (the native front's is the same).
    if (end > MAX_HEAD_BYTES || (end === -1 && buf.length > MAX_HEAD_BYTES)) {
      this.fail(502, 'backend response head too large');
      return;
    }
    if (end === -1) {
      this.resBuf = buf;
      return;
    }
    this.resBuf = undefined;
    this.up.received(end);
    let res: ResponseHead;
    try {
      res = parseResponseHead(buf, end);
    } catch (e) {
      this.fail(502, (e as HeadError).reason ?? 'malformed response head');
      return;
    }
    const rest = end < buf.length ? buf.subarray(end) : undefined;
    if (res.status === 101) {
      this.onSwitching(res, rest);
      return;
    }
    if (res.status >= 100 && res.status < 200) {
      if (++this.interim > MAX_INTERIM) {
        this.fail(502, 'too many interim responses');
        return;
      }
      this.owner.socket.write(buildInterimResponse(res));
      if (rest !== undefined) this.onHeadBytes(rest);
      return;
    }
    this.onFinalResponse(res, rest);
  }

  private onSwitching(res: ResponseHead, rest: Buffer | undefined): void {
    const asked = this.upgradeValue;
    if (asked === undefined) {
      this.fail(502, `unexpected 101 (Upgrade: ${res.upgrade ?? 'none'}) to a request that asked no upgrade`);
      return;
    }
    if (res.upgrade === undefined || res.upgrade.toLowerCase() !== asked.toLowerCase()) {
      this.fail(502, `backend switched to "${res.upgrade ?? ''}" but "${asked}" was asked`);
      return;
    }
    if (!this.reqFramer.done) {
      this.fail(502, 'backend switched protocols before the request body was sent');
      return;
    }
    const client = this.owner.socket;
    const backend = this.backendSocket!;
    const onTunnelClosed = this.up.tunnel();
    this.finish();
    this.owner.detach();
    releaseBackend(backend);
    backend.pause();
    client.write(buildSwitchingResponse(this.up.relayed(this.vhost, res, this.req)));
    this.ctx.startTunnel(
      client,
      backend,
      this.vhost,
      this.up.route,
      this.up.backend,
      this.up.counters,
      this.extra,
      rest,
      onTunnelClosed,
      undefined,
      websocketFlagsOf(res, this.vhost.settings.websocketStrict),
    );
  }

  private onFinalResponse(res: ResponseHead, rest: Buffer | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.up.answered(res.status);
    this.resFramer = responseFraming(this.req.method, res.status, res.chunked, res.contentLength);
    // After a refused upgrade the client may already have sent frames: close rather than parse them as HTTP.
    this.keepClient =
      !this.isUpgrade &&
      !this.clientEnded &&
      this.resFramer.framing !== Framing.UntilClose &&
      this.req.versionMinor === 1 &&
      !this.req.connectionTokens.includes('close') &&
      this.reqFramer.done;
    this.keepBackend =
      !this.isUpgrade && res.versionMinor === 1 && this.resFramer.framing !== Framing.UntilClose && !res.connectionTokens.includes('close');
    const keepUpgrade = this.isUpgrade && res.upgrade !== undefined && this.allows(res.upgrade);
    this.owner.socket.write(buildClientResponse(this.up.relayed(this.vhost, res, this.req), this.keepClient, keepUpgrade));
    this.phase = Phase.RelayingBody;
    if (this.resFramer.done) this.completeResponse(rest);
    else if (rest !== undefined) this.relayBody(rest, 0);
  }

  private relayBody(chunk: Buffer, from: number): void {
    const framer = this.resFramer!;
    let n: number;
    try {
      n = framer.consume(chunk, from, chunk.length);
    } catch (e) {
      this.abort(`malformed response body from backend: ${(e as BodyError).message}`);
      return;
    }
    if (n > 0) {
      this.up.received(n);
      const part = from === 0 && n === chunk.length ? chunk : chunk.subarray(from, from + n);
      if (!this.owner.socket.write(part)) this.backendSocket?.pause();
    }
    if (framer.done) this.completeResponse(from + n < chunk.length ? chunk.subarray(from + n) : undefined);
  }

  private completeResponse(trailing: Buffer | undefined): void {
    const backend = this.backendSocket!;
    // Bytes after the response are a protocol error by the backend; never reuse such a socket.
    const reusable = this.keepBackend && trailing === undefined && this.reqFramer.done;
    this.finish();
    releaseBackend(backend);
    if (reusable) this.up.state.release(backend);
    else backend.destroy();
    this.owner.exchangeDone(this.keepClient, this.extra);
  }

  /** @internal */
  onBackendEnd(): void {
    if (this.phase === Phase.RelayingBody && this.resFramer!.framing === Framing.UntilClose) {
      this.completeResponse(undefined);
      return;
    }
    this.onBackendLost('backend closed the connection');
  }

  /** @internal */
  onBackendClose(): void {
    if (this.phase !== Phase.Done) this.onBackendLost('backend connection closed');
  }

  /** @internal */
  onBackendError(err: Error): void {
    this.onBackendLost(`backend error: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  }

  private onBackendLost(reason: string): void {
    if (this.phase === Phase.Done) return;
    if (this.phase === Phase.AwaitingHead) {
      // A pooled connection the backend had just closed: try once more on a fresh one, if
      // nothing of the answer arrived and the request had no body that we cannot replay.
      if (this.reused && !this.retried && this.resBuf === undefined && this.reqFramer.framing === Framing.None) {
        this.retried = true;
        this.reused = false;
        const old = this.backendSocket!;
        releaseBackend(old);
        old.destroy();
        this.backendSocket = undefined;
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timer = undefined;
        this.phase = Phase.Connecting;
        this.up.connect(this);
        return;
      }
      this.fail(502, `${reason} before answering`);
      return;
    }
    // Mid-body: the status line is gone already; all we can do is cut the client off.
    this.abort(`${reason} while relaying the response`);
  }

  /** @internal */
  onResponseTimeout(): void {
    this.timer = undefined;
    if (this.phase !== Phase.AwaitingHead) return;
    const reason = `no answer from backend within ${this.up.backend.responseTimeoutMs} ms`;
    this.up.timedOut(reason);
    this.fail(504, reason);
  }

  private allows(value: string): boolean {
    const p = this.up.backend.upgrade;
    if (p.kind !== 'tokens') return true;
    return p.tokens.includes(value.toLowerCase());
  }

  /** Answers the client with an error status (nothing was sent yet) and ends the exchange. */
  private fail(status: number, reason: string, retryAfterS?: number): void {
    if (this.phase === Phase.Done) return;
    this.up.logFailure(status, reason, this.owner.clientIp, this.req);
    this.finish();
    if (this.backendSocket !== undefined) {
      releaseBackend(this.backendSocket);
      this.backendSocket.destroy();
    }
    // The request body may not have been read: the connection cannot carry another request.
    this.ctx.respondError(this.owner.socket, status, false, this.up.errorHeaders(retryAfterS, this.req.headers));
    this.owner.exchangeDone(false, undefined);
  }

  /** Ends the exchange without an answer (the head was sent already, or the client is broken). */
  private abort(reason: string, status?: number): void {
    if (this.phase === Phase.Done) return;
    if (status !== undefined && this.phase !== Phase.RelayingBody) {
      this.fail(status, reason);
      return;
    }
    this.ctx.log.warn('proxy request aborted', {
      reason,
      client: this.owner.clientIp,
      method: this.req.method,
      path: this.req.target,
      // While waiting for a member (balancer timeout=) none is elected yet.
      backend: this.up.backend?.url ?? this.up.lb?.balancer.url,
    });
    this.finish();
    this.backendSocket?.destroy();
    this.owner.socket.destroy();
  }

  private finish(): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.up.finish();
  }
}

function onResponseTimeout(x: Exchange): void {
  x.onResponseTimeout();
}

const kExchange = Symbol('wsgate.exchange');
type ExchangeSocket = Socket & { [kExchange]?: Exchange };

// Backend socket handlers: module-level, finding their exchange through the socket, so a
// request allocates no closures for them.
function backendOnData(this: ExchangeSocket, chunk: Buffer): void {
  this[kExchange]?.onBackendData(chunk);
}
function backendOnEnd(this: ExchangeSocket): void {
  this[kExchange]?.onBackendEnd();
}
function backendOnError(this: ExchangeSocket, err: Error): void {
  this[kExchange]?.onBackendError(err);
}
function backendOnClose(this: ExchangeSocket): void {
  this[kExchange]?.onBackendClose();
}
function backendOnDrain(this: ExchangeSocket): void {
  this[kExchange]?.resumeClient();
}

/**
 * Drops this exchange's listeners from a backend socket it is done with (Node's own listeners
 * stay), leaving an error handler so a late error can never become an uncaught exception.
 */
function releaseBackend(socket: Socket): void {
  const s = socket as ExchangeSocket;
  s[kExchange] = undefined;
  s.removeListener('data', backendOnData);
  s.removeListener('end', backendOnEnd);
  s.removeListener('error', backendOnError);
  s.removeListener('close', backendOnClose);
  s.removeListener('drain', backendOnDrain);
  if (s.listenerCount('error') === 0) s.on('error', ignoreError);
}

function ignoreError(): void {}

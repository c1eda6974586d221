// The client side of an exchange on an HTTP/1.1 connection: the request body read off the socket
// with its own framing (what follows it is early tunnel bytes or the next pipelined request),
// answers written as HTTP/1.1 bytes, and the socket itself handed to a tunnel after a 101.

import type { Socket } from 'node:net';
import type { ReadStage } from '../config/model';
import { stageDeadline } from '../config/reqtimeout';
import { BodyError, type BodyFramer, Framing, requestFraming } from '../http/body';
import { buildClientResponse, buildInterimResponse, buildSwitchingResponse } from '../http/forward';
import type { RequestHead, ResponseHead } from '../http/head';
import { headerLines } from '../http/headers-directive';
import { bodyLimitsOf } from '../listeners/limits';
import type { TunnelClient } from '../tunnel/tunnel';
import { respondHttp1Error } from './answers';
import type { ClientSide, Exchange } from './exchange';

/** The connection an HTTP/1.1 exchange runs on. */
export interface ExchangeOwner {
  readonly socket: Socket;
  readonly clientIp: string;
  /** The exchange is over; `keepAlive` tells whether the connection may read the next request. */
  exchangeDone(keepAlive: boolean, leftover: Buffer | undefined): void;
  /** The exchange turned into a tunnel: the connection must drop its listeners now. */
  detach(): void;
}

export class Http1Client implements ClientSide {
  readonly protocol = 'http/1.1';
  readonly mayUpgrade = true;
  readonly chunkBody = false;
  readonly dechunk = false;
  readonly wsKey = undefined;
  readonly clientIp: string;
  readonly secure: boolean;
  readonly hasBody: boolean;
  /** The exchange this side serves (set once, right after both are made). */
  x!: Exchange;
  private readonly reqFramer: BodyFramer;
  /** Client bytes after the request body: early tunnel bytes, or the next pipelined request. */
  private extra: Buffer | undefined;
  private clientEnded = false;
  /**
   * Client bytes that came before the backend connection was ready: framed only once the head is
   * sent, so that the backend sees the request up to where its body goes wrong, as from Apache.
   */
  private held: Buffer | undefined;
  /** Whether the connection may serve another request after this answer. */
  private keepClient = false;
  /**
   * RequestReadTimeout's body stage while the body arrives: when it started, the socket's byte
   * count then, its timer (undefined once the body is complete or the exchange is over).
   */
  private bodyStartedAt = 0;
  private bodyStartBytes = 0;
  private bodyTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly owner: ExchangeOwner,
    req: RequestHead,
    limits: Parameters<typeof bodyLimitsOf>[0],
    /** RequestReadTimeout's body stage (a server-wide setting). */
    private readonly bodyStage: ReadStage,
  ) {
    this.clientIp = owner.clientIp;
    this.secure = (owner.socket as Socket & { encrypted?: boolean }).encrypted === true;
    this.reqFramer = requestFraming(req.chunked, req.contentLength, bodyLimitsOf(limits));
    this.hasBody = this.reqFramer.framing !== Framing.None;
  }

  /** Starts the body stage from now (the head is read; or wsgate held the body back meanwhile). */
  private startBodyStage(): void {
    this.bodyStartedAt = Date.now();
    this.bodyStartBytes = this.owner.socket.bytesRead;
    this.armBodyTimer(this.bodyStage.timeoutMs);
  }

  private armBodyTimer(ms: number): void {
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    this.bodyTimer = setTimeout(clientOnBodyTimer, ms, this);
    this.bodyTimer.unref();
  }

  private stopBodyStage(): void {
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    this.bodyTimer = undefined;
  }

  /**
   * @internal The body stage's timer. The bytes received meanwhile may have moved the deadline
   * (MinRate). A socket wsgate itself paused (the backend not connected yet, or not reading) is
   * not the client's delay: the stage starts again. Past the deadline, as mod_reqtimeout: 408 if
   * no answer has begun, else the connection is cut; the failure line says why.
   */
  onBodyTimer(): void {
    this.bodyTimer = undefined;
    if (this.reqFramer.done || this.owner.socket.destroyed) return;
    if (this.owner.socket.isPaused()) {
      this.startBodyStage();
      return;
    }
    const now = Date.now();
    const deadline = stageDeadline(this.bodyStage, this.bodyStartedAt, this.owner.socket.bytesRead - this.bodyStartBytes);
    if (deadline > now) {
      this.armBodyTimer(Math.ceil(deadline - now));
      return;
    }
    const stage = this.bodyStage;
    const rate = stage.minRate > 0 ? `,MinRate=${stage.minRate}` : '';
    const max = stage.maxTimeoutMs > 0 ? `-${stage.maxTimeoutMs / 1000}` : '';
    this.x.clientBodyError(`request body timed out (RequestReadTimeout body=${stage.timeoutMs / 1000}${max}${rate})`, 408);
  }

  /** Bytes from the client while the exchange owns the connection. */
  onData(chunk: Buffer): void {
    const x = this.x;
    if (!x.connected && !this.reqFramer.done) {
      this.held = this.held === undefined ? chunk : Buffer.concat([this.held, chunk]);
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
        x.clientBodyError(e.status === 400 ? `malformed request body: ${e.message}` : e.message, e.status);
        return;
      }
      if (used > 0 && !x.bodyBytes(used === chunk.length ? chunk : chunk.subarray(0, used))) this.owner.socket.pause();
      if (this.reqFramer.done) {
        this.stopBodyStage();
        x.bodyEnd();
      }
    }
    if (used < chunk.length) {
      const rest = chunk.subarray(used);
      this.extra = this.extra === undefined ? rest : Buffer.concat([this.extra, rest]);
      // The body is complete: what follows belongs to the tunnel or the next request. Hold it.
      this.owner.socket.pause();
    }
  }

  /** The client's connection failed or closed. */
  gone(detail: string): void {
    this.x.clientGone(detail);
  }

  /** The client's connection can take more bytes. */
  drained(): void {
    this.x.clientDrained();
  }

  /** The client's FIN. */
  onEnd(): void {
    this.clientEnded = true;
    this.stopBodyStage();
    if (!this.reqFramer.done) this.x.clientBodyError('client closed before sending the whole request body', undefined);
  }

  /**
   * Starts the exchange with what followed the request head; with `backend` and `answer`, from
   * the answer the native front read on a connection it made (Exchange.resumeAtAnswer).
   */
  start(rest: Buffer | undefined, backend?: Socket, answer?: Buffer): void {
    if (this.reqFramer.done) this.x.bodyEnd();
    else if (this.bodyStage.timeoutMs > 0) this.startBodyStage();
    if (rest !== undefined && rest.length > 0) this.onData(rest);
    if (backend !== undefined && answer !== undefined) this.x.resumeAtAnswer(backend, answer);
    else this.x.start();
  }

  pause(): void {
    this.owner.socket.pause();
  }

  backendReady(): void {
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.onData(held);
  }

  resume(): void {
    this.owner.socket.resume();
  }

  interim(res: ResponseHead): void {
    this.owner.socket.write(buildInterimResponse(res));
  }

  answerHead(x: Exchange, res: ResponseHead, framer: BodyFramer): boolean {
    const req = x.req;
    // After a refused upgrade the client may already have sent frames: close rather than parse them as HTTP.
    this.keepClient =
      !x.isUpgrade &&
      !this.clientEnded &&
      framer.framing !== Framing.UntilClose &&
      req.versionMinor === 1 &&
      !req.connectionTokens.includes('close') &&
      this.reqFramer.done;
    const keepUpgrade = x.isUpgrade && res.upgrade !== undefined && x.allows(res.upgrade);
    this.owner.socket.write(buildClientResponse(res, this.keepClient, keepUpgrade));
    return true;
  }

  answerBody(part: Buffer): boolean {
    return this.owner.socket.write(part);
  }

  answerDone(): void {
    this.stopBodyStage();
    this.owner.exchangeDone(this.keepClient, this.extra);
  }

  error(status: number, fields: readonly string[]): void {
    this.stopBodyStage();
    // The request body may not have been read: the connection cannot carry another request.
    respondHttp1Error(this.owner.socket, status, false, headerLines(fields));
    this.owner.exchangeDone(false, undefined);
  }

  abort(): void {
    this.stopBodyStage();
    this.owner.socket.destroy();
  }

  switchHead(_x: Exchange, res: ResponseHead): boolean {
    // A tunnel is never subject to RequestReadTimeout (mod_proxy_wstunnel removes mod_reqtimeout).
    this.stopBodyStage();
    this.owner.detach();
    this.owner.socket.write(buildSwitchingResponse(res));
    return true;
  }

  tunnelEnd(): { client: TunnelClient; early: Buffer | undefined } {
    return { client: this.owner.socket, early: this.extra };
  }
}

function clientOnBodyTimer(side: Http1Client): void {
  side.onBodyTimer();
}

// One upgrade handshake run by the native front: the engine holds the client connection, makes
// the backend connection, sends the head built here and reads the answer; this object decides
// everything with the exchange's own functions (exchange.ts: readAnswerHead, switchRefusal,
// becomeTunnel) and Upstream's failure line, so where to, what to send, whether the answer is a
// 101 to take and which status a failure gets are the same as on the other fronts. A valid 101
// becomes a native tunnel with no Node socket ever made; any other answer goes to the HTTP/1 path
// (ClientConnection.resumeUpgrade) with both connections, as Node sockets.

import * as dns from 'node:dns';
import * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import type { ListenAddress, VirtualHost } from '../config/model';
import { buildSwitchingResponse } from '../http/forward';
import type { RequestHead } from '../http/head';
import { headerLines } from '../http/headers-directive';
import { TCP_KEEPALIVE_DELAY_MS } from '../tunnel/tunnel';
import { errnoName, type NativeBinding } from '../tunnel/native';
import { websocketFlagsOf } from '../tunnel/wsframe';
import { nativeErrorAnswer } from './answers';
import type { GatewayContext } from './context';
import { becomeTunnel, readAnswerHead, switchRefusal } from './exchange';
import type { Refusal, Upstream } from './upstream';

/** What a native upgrade needs from the front that runs it. */
export interface NativeUpgradeHost {
  readonly engine: NativeBinding;
  readonly ctx: GatewayContext;
  /** The handshake is over, whatever its outcome. */
  upgradeDone(u: NativeUpgrade): void;
  /** Hands both connections to the HTTP/1 path to relay a non-101 answer. */
  resumeOnNode(u: NativeUpgrade, clientFd: number, backendFd: number, answer: Buffer): void;
}

export class NativeUpgrade {
  private done = false;
  /** The 101's WebSocket tracker flags (0: not WebSocket) and the length of the 101 head sent to the client. */
  private wsFlags = 0;
  private headLength = 0;

  constructor(
    readonly host: NativeUpgradeHost,
    /** The engine's handshake id. */
    readonly id: number,
    readonly listen: ListenAddress,
    readonly clientIp: string,
    readonly vhost: VirtualHost,
    readonly req: RequestHead,
    readonly up: Upstream,
    /** What the client sent after its head: early tunnel bytes, sent to the backend after the 101. */
    readonly rest: Buffer | undefined,
  ) {}

  start(): void {
    this.up.choose(this);
  }

  /** @internal */
  upstreamChosen(): void {
    this.connect();
  }

  /** @internal */
  upstreamRefused(r: Refusal): void {
    this.fail(r.status, r.reason, r.retryAfterS);
  }

  /** The backend's other addresses, tried in turn after a failed connect (as Node's net.connect does). */
  private moreAddresses: string[] = [];
  /** When the connect timeout of this attempt at the backend ends (epoch ms; 0: none). */
  private connectDeadline = 0;
  /** The size of the head the engine writes once connected (counted when the backend answers). */
  private headBytes = 0;

  private connect(): void {
    const origin = this.up.backend.origin;
    this.moreAddresses = [];
    const ms = this.up.backend.connectTimeoutMs;
    this.connectDeadline = ms > 0 ? Date.now() + ms : 0;
    if (net.isIP(origin.host) !== 0) {
      this.connectTo(origin.host);
      return;
    }
    dns.lookup(origin.host, { all: true }, (err, addresses) => {
      if (this.done) return;
      if (err !== null || addresses.length === 0) {
        this.connectFailed(
          `backend unreachable: ${err?.code ?? 'ENOTFOUND'} ${err?.message ?? `no address for ${origin.host}`}`.trim(),
          err?.code,
        );
        return;
      }
      this.moreAddresses = addresses.slice(1).map((a) => a.address);
      this.connectTo(addresses[0].address);
    });
  }

  private connectTo(ip: string): void {
    const b = this.up.backend;
    // (An https port's: the engine terminated the client's TLS.)
    const head = this.up.requestHead(this.vhost, this.req, this.clientIp, this.listen.protocol === 'https');
    this.headBytes = head.length;
    // With more addresses to try, each gets a short attempt (as Node's net.connect does), all
    // within the one connect timeout; the last gets what is left.
    const left = this.connectDeadline === 0 ? 0 : Math.max(1, this.connectDeadline - Date.now());
    const attempt = this.moreAddresses.length > 0 ? Math.min(ADDRESS_ATTEMPT_MS, left || ADDRESS_ATTEMPT_MS) : left;
    this.up.record.tries++;
    const errno = this.host.engine.frontConnect(this.id, ip, b.origin.port, head, attempt, b.responseTimeoutMs);
    if (errno !== 0) this.onConnectFailed(errno);
  }

  /** @internal The connection to the backend failed (or its connect timeout passed). */
  onConnectFailed(errno: number): void {
    const next = this.moreAddresses.shift();
    if (next !== undefined && (this.connectDeadline === 0 || Date.now() < this.connectDeadline)) {
      this.connectTo(next);
      return;
    }
    const o = this.up.backend.origin;
    const code = errnoName(errno);
    this.connectFailed(
      errno === osConstants.errno.ETIMEDOUT
        ? `backend unreachable: ETIMEDOUT connect timed out after ${this.up.backend.connectTimeoutMs} ms`
        : `backend unreachable: ${code} connect ${code} ${o.host}:${o.port}`,
      code,
    );
  }

  private connectFailed(reason: string, code: string | undefined): void {
    if (this.done) return;
    this.up.chooseAfterFailure(this, reason, code);
  }

  /** @internal The backend's answer head (or more than a head's worth of bytes without one). */
  onAnswer(answer: Buffer): void {
    if (this.done) return;
    this.up.sent(this.headBytes);
    // The engine reports no separate connect: an answer means the connection was made.
    this.up.record.connectedAt = Date.now();
    const head = readAnswerHead(answer);
    if (typeof head !== 'object') {
      // A whole head's worth of bytes came without one (the engine's bound), or it is unusable.
      this.fail(502, head ?? 'backend response head too large');
      return;
    }
    const { res, end } = head;
    if (res.status !== 101) {
      // Another status to relay as HTTP (with its body), or an interim response: the HTTP/1 path.
      const fds = this.host.engine.frontHandoff(this.id);
      this.finishHere();
      if (fds !== undefined) this.host.resumeOnNode(this, fds[0], fds[1], answer);
      else this.up.finish();
      return;
    }
    // The client's own key went to the backend: its Accept is the client's to check. No body.
    const refused = switchRefusal(res, this.up.upgradeValue, undefined, true);
    if (refused !== undefined) {
      this.fail(502, refused);
      return;
    }
    const switching = buildSwitchingResponse(this.up.relayed(this.vhost, res, this.req));
    const toClient = end < answer.length ? Buffer.concat([switching, answer.subarray(end)]) : switching;
    // The answer head; what follows it is the tunnel's (counted there as early bytes).
    this.up.received(end);
    this.up.record.answeredAt = Date.now();
    this.finishHere();
    this.wsFlags = websocketFlagsOf(res, this.vhost.settings.websocketStrict);
    this.headLength = switching.length;
    becomeTunnel(
      this.host.ctx,
      this.up,
      this.vhost,
      res,
      {
        kind: 'engine',
        establish: (tunnelId) => this.establish(tunnelId, toClient),
        earlyUp: this.rest?.length ?? 0,
        earlyDown: answer.length - end,
      },
      this.wsFlags,
    );
  }

  /** Establishes the tunnel in the engine under `tunnelId`; false when the client had gone. */
  establish(tunnelId: number, toClient: Buffer): boolean {
    const keepalive = TCP_KEEPALIVE_DELAY_MS / 1000;
    return this.host.engine.frontEstablish(this.id, tunnelId, toClient, this.rest, keepalive, this.wsFlags, this.headLength);
  }

  /** @internal The backend closed or failed before its answer head was complete. */
  onBackendLost(errno: number): void {
    this.fail(502, `${errno === 0 ? 'backend closed the connection' : `backend error: ${errnoName(errno)}`} before answering`);
  }

  /** @internal */
  onAnswerTimeout(): void {
    if (this.done) return;
    const reason = `no answer from backend within ${this.up.backend.responseTimeoutMs} ms`;
    this.up.timedOut(reason);
    this.fail(504, reason);
  }

  /** @internal The client reset or failed while the backend was being asked (the engine closed both). */
  onClientGone(errno: number): void {
    if (this.done) return;
    const reason = errnoName(errno);
    this.host.ctx.log.debug('client went away during exchange', {
      client: this.clientIp,
      path: this.req.target,
      reason,
      protocol: this.up.record.protocol,
    });
    this.up.record.end({ kind: 'client-gone', reason });
    this.finishHere();
    this.up.finish();
  }

  /** Closes both connections without an answer (shutdown). */
  abort(): void {
    if (this.done) return;
    this.up.record.end({ kind: 'aborted', reason: 'shutdown' });
    this.host.engine.frontAbort(this.id);
    this.finishHere();
    this.up.finish();
  }

  /** Answers the client with an error status (nothing was sent to it yet) and closes. */
  private fail(status: number, reason: string, retryAfterS?: number): void {
    if (this.done) return;
    this.up.logFailure(status, reason);
    this.finishHere();
    this.up.finish();
    this.host.engine.frontRespond(this.id, nativeErrorAnswer(status, headerLines(this.up.errorFields(retryAfterS, this.req.headers))));
  }

  /** This object's part is over; the Upstream is finished by whoever takes it from here. */
  private finishHere(): void {
    this.done = true;
    this.host.upgradeDone(this);
  }
}

/** Node's autoSelectFamily attempt timeout: how long one address of several gets. */
const ADDRESS_ATTEMPT_MS = 250;

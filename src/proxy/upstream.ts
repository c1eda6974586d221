// Where one proxied request goes: the route's backend or, for a balancer, the elected member and
// the next one after a connect failure; the request's slot in that backend's counters (max=). The
// HTTP/1 exchange and the native front's upgrades both go through it, so elections, limits,
// failover and the failure log line are the same whichever path a request takes.

import type { Socket } from 'node:net';
import type * as tls from 'node:tls';
import type { Backend, Route, VirtualHost } from '../config/model';
import { buildBackendRequest } from '../http/forward';
import type { RequestHead, ResponseHead } from '../http/head';
import { proxiedAnswerHead } from '../http/reverse-map';
import { viaElement } from '../http/via';
import type { ProxyDecision } from '../routing/router';
import { sectionApplies } from '../routing/section';
import { parseTarget } from '../routing/target';
import {
  applyHeaderRules,
  EMPTY_ENV,
  errorAnswerFields,
  headerRulesFor,
  nowUs,
  relayedFields,
  type FormatExtras,
  type HeaderRules,
  type RequestEnv,
} from '../http/headers-directive';
import { BalancerSession } from '../upstream/balancer/session';
import { connectFailureClass, type BackendCounters } from '../upstream/counters';
import { BackendTlsError, connectOrigin, type OriginState } from '../upstream/origins';
import type { GatewayContext } from './context';
import type { RequestRecord } from './record';

/** Why a request cannot be sent anywhere: the client's status and the log's reason. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly retryAfterS?: number;
  /**
   * Set while the balancer's `timeout=` lets the request wait for a usable member: not an answer
   * yet; call `again()` after this many ms (Apache's find_best_worker re-elects every hundredth
   * of the timeout).
   */
  readonly waitMs?: number;
}

/** What goes through an Upstream: told once a backend is chosen, or that none will be. */
export interface UpstreamUser {
  /** A backend is chosen and a slot held; `failover`: it replaces one that could not be reached. */
  upstreamChosen(failover: boolean): void;
  /** No backend can take the request: the client's answer. */
  upstreamRefused(r: Refusal): void;
}

/** A user that connects with Node's sockets (the HTTP/1 and HTTP/2 exchanges). */
export interface UpstreamConnectUser extends UpstreamUser {
  /** The request ended meanwhile: a late connection is closed. */
  readonly upstreamOver: boolean;
  upstreamConnected(socket: Socket): void;
}

/** What mod_headers' rules of one request see: the rules in effect, and the client's TLS connection. */
export interface HeaderScope {
  readonly rules: HeaderRules;
  readonly tls: tls.TLSSocket | undefined;
}

/** The header scope of a request for `target` on `vhost`; `socket` is the client's connection (TLS or not). */
export function headerScope(vhost: VirtualHost, method: string, target: string, socket: unknown): HeaderScope {
  return { rules: headerRulesFor(vhost, method, target), tls: isTls(socket) ? socket : undefined };
}

function isTls(socket: unknown): socket is tls.TLSSocket {
  return typeof socket === 'object' && socket !== null && (socket as { encrypted?: unknown }).encrypted === true;
}

const HTTPS_ENV: RequestEnv = new Map([['HTTPS', 'on']]);

/** SetEnvIf/SetEnv's variables with HTTPS=on added on a TLS connection (shared maps where nothing is added). */
function requestEnvOf(set: ReadonlyMap<string, string> | undefined, tls: boolean): RequestEnv {
  if (set === undefined || set.size === 0) return tls ? HTTPS_ENV : EMPTY_ENV;
  return tls ? new Map([...set, ...HTTPS_ENV]) : set;
}

/** ProxyPreserveHost for this request: the last matching section that sets it, else the server's. */
function preserveHost(vhost: VirtualHost, req: RequestHead): boolean {
  const sections = vhost.sectionPreserveHost;
  if (sections === undefined) return vhost.settings.preserveHost;
  const t = parseTarget(req.method, req.target);
  const path = typeof t === 'number' ? undefined : t.path;
  for (let i = sections.length - 1; i >= 0; i--) {
    if (sectionApplies(sections[i]!.section, path)) return sections[i]!.preserveHost;
  }
  return vhost.settings.preserveHost;
}

export class Upstream {
  // For a balancer route these are set by each election (begin, failover).
  backend!: Backend;
  path!: string;
  /** The chosen backend's origin: its pool of idle connections. */
  state!: OriginState;
  /** The chosen backend's counters: the balancer member's, or the origin's for a plain route. */
  counters!: BackendCounters;
  readonly route: Route;
  /** The Upgrade value the request forwards (the route's mode is upgrade), else undefined. */
  readonly upgradeValue: string | undefined;
  readonly lb: BalancerSession | undefined;
  /** Whether this request holds an in-flight slot in `counters`. */
  private counted = false;
  /** Balancer `timeout=`: when the wait for a usable member ends (epoch ms), once a wait began. */
  private waitUntil = 0;
  /** The refused election was a failover's (again() elects, without taking a new slot). */
  private failingOver = false;
  /** The balancer `timeout=` wait in progress. */
  private waitTimer: NodeJS.Timeout | undefined;
  /** The refusal in progress is a TLS failure (counted as such, not as a bad answer). */
  private tlsFailed = false;

  /** For `%t`/`%D` and TLS variables in Header/RequestHeader values. */
  private readonly extras: FormatExtras;

  constructor(
    private readonly ctx: GatewayContext,
    decision: ProxyDecision,
    /** The request's record: the backend chosen, the tries, the outcome are written there. */
    readonly record: RequestRecord,
    headers: readonly string[],
    private readonly scope: HeaderScope = { rules: { request: [], response: [] }, tls: undefined },
  ) {
    // The receive time is read only for Header rules, the one thing that prints it (%t, %D).
    const rules = scope.rules.request.length + scope.rules.response.length > 0;
    this.extras = { tls: scope.tls, receivedUs: rules ? nowUs() : undefined };
    this.route = decision.route;
    this.requestEnv = requestEnvOf(decision.env, scope.tls !== undefined);
    record.vars = this;
    if (decision.user !== undefined) record.user = decision.user;
    this.upgradeValue = decision.mode === 'upgrade' ? decision.upgradeValue : undefined;
    if (decision.kind === 'balance') {
      this.lb = new BalancerSession(ctx.balancers, decision.balancer, decision.path, this.upgradeValue, headers);
      record.backend = decision.balancer.url;
    } else {
      this.lb = undefined;
      this.backend = decision.backend;
      this.path = decision.path;
      this.state = ctx.origins.get(decision.backend.origin);
      this.counters = this.state.counters;
      record.backend = decision.backend.url;
    }
  }

  /** Elects a member (balancer) and takes an in-flight slot within `max=`; a refusal if neither can be had. */
  begin(): Refusal | undefined {
    this.failingOver = false;
    if (this.lb !== undefined) {
      // The election skips members at their max= and takes the winner's slot.
      const refused = this.elect();
      if (refused !== undefined) return refused;
    } else {
      if (this.counters.full(this.backend.max)) return { status: 503, reason: `max=${this.backend.max} connections reached` };
      this.counters.claim();
    }
    this.counted = true;
    return undefined;
  }

  /** begin(), and the balancer `timeout=` waits it asks for; the outcome goes to `user`. */
  choose(user: UpstreamUser): void {
    this.settle(user, this.begin(), false);
  }

  /** After a TCP connect failure (`code`: the error's, e.g. ECONNREFUSED): the next member (`upstreamChosen(true)`), or the refusal. */
  chooseAfterFailure(user: UpstreamUser, reason: string, code: string | undefined): void {
    this.settle(user, this.connectFailed(reason, code), true);
  }

  /**
   * Connects to the chosen backend: the socket goes to `user`. A TCP failure elects the next
   * member (`upstreamChosen(true)`) or refuses (503); a TLS failure is a 502 with no failover
   * (the member is up, its TLS is wrong).
   */
  connect(user: UpstreamConnectUser): void {
    const b = this.backend;
    this.record.tries++;
    connectOrigin(b.origin, b.connectTimeoutMs, b.keepalive, (err, socket) => {
      if (user.upstreamOver) socket.destroy();
      else if (err === undefined) user.upstreamConnected(socket);
      else if (err instanceof BackendTlsError) {
        this.counters.failed('tls');
        this.tlsFailed = true;
        user.upstreamRefused({ status: 502, reason: err.message });
      } else {
        const code = (err as NodeJS.ErrnoException).code;
        this.chooseAfterFailure(user, `backend unreachable: ${code ?? ''} ${err.message}`.trim(), code);
      }
    });
  }

  private settle(user: UpstreamUser, refused: Refusal | undefined, failover: boolean): void {
    if (refused === undefined) user.upstreamChosen(failover);
    else if (refused.waitMs === undefined) user.upstreamRefused(refused);
    else {
      // Try the refused step again (the first election, or a failover's) after the wait.
      this.waitTimer = setTimeout(() => {
        this.waitTimer = undefined;
        const again = this.failingOver;
        this.settle(user, again ? this.elect() : this.begin(), again);
      }, refused.waitMs);
    }
  }

  /** Takes the next member of the balancer; without one, waits up to the balancer's `timeout=` for one. */
  private elect(): Refusal | undefined {
    const e = this.lb!.next();
    if ('reason' in e) {
      const wait = this.lb!.balancer.timeoutMs;
      const now = Date.now();
      if (wait > 0 && this.waitUntil === 0) {
        this.waitUntil = now + wait;
        this.ctx.log.info('balancer wait for a usable member', { balancer: this.lb!.balancer.url, timeout_ms: wait, reason: e.reason });
      }
      if (now < this.waitUntil) {
        return { status: 503, reason: e.reason, waitMs: Math.min(Math.max(wait / 100, 10), this.waitUntil - now) };
      }
      const reason = this.waitUntil === 0 ? e.reason : `${e.reason}, after waiting timeout=${wait} ms`;
      return { status: 503, reason, retryAfterS: e.retryAfterS };
    }
    this.waitUntil = 0;
    this.backend = e.member.backend;
    this.path = e.path;
    this.state = this.ctx.origins.get(e.member.backend.origin);
    this.counters = e.counters;
    this.counted = true;
    this.record.backend = e.member.backend.url;
    return undefined;
  }

  /**
   * The backend could not be reached (TCP). Undefined when another balancer member was elected
   * to try next (maxattempts), else the refusal (503).
   */
  connectFailed(reason: string, code: string | undefined): Refusal | undefined {
    this.counters.failed(connectFailureClass(code));
    if (this.lb === undefined) return { status: 503, reason };
    // The slot leaves the member that failed; the next election takes one on its successor.
    this.releaseSlot();
    const next = this.lb.failed(reason);
    if (!next.again) return { status: 503, reason, retryAfterS: next.retryAfterS };
    this.ctx.log.info('balancer failover', { balancer: this.lb.balancer.url, from: this.backend.url, reason });
    this.failingOver = true;
    return this.elect();
  }

  /** The member's final status: one listed in the balancer's `failonstatus=` puts it in error state (the answer is still relayed). */
  answered(status: number): void {
    if (this.lb?.balancer.failOnStatus.includes(status)) {
      this.lb.memberFailed(`answered ${status}, listed in failonstatus=`);
    }
  }

  /** No answer within the backend's timeout: counted, and with `failontimeout=On` the member goes into error state. */
  timedOut(reason: string): void {
    this.counters.failed('timeout');
    if (this.lb?.balancer.failOnTimeout) this.lb.memberFailed(`${reason} (failontimeout=On)`);
  }

  /** The variables known before an election: SetEnvIf/SetEnv's (src/access), and HTTPS on a TLS connection. */
  private readonly requestEnv: RequestEnv;

  /** The request's environment for `Header` rules: requestEnv, then the BALANCER_* variables after an election. */
  get env(): RequestEnv {
    const lb = this.lb?.env;
    if (lb === undefined || lb.size === 0) return this.requestEnv;
    return this.requestEnv.size === 0 ? lb : new Map([...this.requestEnv, ...lb]);
  }

  /**
   * A relayed response head (final, 101 or a refused upgrade's) as the client gets it, on every
   * front: ProxyPassReverse* and ProxyVia first (mod_proxy does them while reading the backend's
   * head), then the `Header` rules in effect (mod_headers' output fixup).
   */
  relayed(vhost: VirtualHost, res: ResponseHead, req: RequestHead, h2 = false): ResponseHead {
    const mapped = proxiedAnswerHead(vhost, res, req, this.scope.tls !== undefined, h2);
    const rules = this.scope.rules.response;
    return rules.length === 0 ? mapped : { ...mapped, headers: relayedFields(rules, mapped.headers, this.env, req.headers, this.extras) };
  }

  /** The extra fields of an error answer wsgate makes for this request: Retry-After, then `Header always`. */
  errorFields(retryAfterS: number | undefined, requestFields: readonly string[]): string[] {
    return errorAnswerFields(this.scope.rules.response, retryAfterS, this.env, requestFields, this.extras);
  }

  /**
   * The request head for the chosen backend: its path, Host (ProxyPreserveHost), X-Forwarded-*
   * (ProxyAddHeaders), Via (ProxyVia) and, for an upgrade, the Upgrade to ask for. `secure`: the
   * client's connection is TLS; `h2`: it is HTTP/2 (the Via version).
   */
  requestHead(vhost: VirtualHost, req: RequestHead, clientIp: string, secure = false, h2 = false): Buffer {
    const settings = vhost.settings;
    const via = viaElement(vhost, req, secure, h2);
    const server = this.ctx.serverName(vhost);
    // RequestHeader acts on the client's fields before mod_proxy's own (X-Forwarded-*, Host, Upgrade) are added.
    const rules = this.scope.rules.request;
    const head =
      rules.length === 0 ? req : { ...req, headers: applyHeaderRules(rules, req.headers, this.requestEnv, undefined, true, this.extras) };
    return buildBackendRequest(head, {
      method: req.method,
      path: this.path,
      host: preserveHost(vhost, req) ? (req.host ?? server) : this.backend.origin.hostHeader,
      forwardedFor: settings.addHeaders ? clientIp : undefined,
      forwardedServer: server,
      upgrade: this.upgradeValue,
      // An HTTP/1.0 client's request goes as HTTP/1.0 (an upgrade needs 1.1).
      http10: req.versionMinor === 0 && this.upgradeValue === undefined,
      ...(via !== undefined ? { via } : {}),
      ...(settings.via === 'block' ? { blockVia: true } : {}),
    });
  }

  /** Bytes sent to the backend (a request head, body bytes), counted as they are written. */
  sent(n: number): void {
    this.counters.bytesUp += n;
  }

  /** Bytes of the backend's answer (head, body) relayed or used, counted as they are read. */
  received(n: number): void {
    this.counters.bytesDown += n;
  }

  /**
   * The request became a tunnel: its slot becomes an open tunnel in the backend's counters. True
   * when it held one: whoever ends the tunnel then calls `counters.tunnelClosed()` once. (A
   * boolean, not a closure: a tunnel lives long, and 10,000 of them should not each hold one.)
   */
  tunnel(): boolean {
    if (!this.counted) return false;
    this.counted = false;
    this.counters.tunnelOpened();
    return true;
  }

  /** The request is over (an answer relayed, a failure, or a tunnel started); idempotent. */
  finish(): void {
    if (this.waitTimer !== undefined) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    this.releaseSlot();
  }

  private releaseSlot(): void {
    if (!this.counted) return;
    this.counted = false;
    this.counters.release();
  }

  /**
   * The one log line of a request that failed before any answer reached the client, the same on
   * every front; the record keeps the outcome.
   */
  logFailure(status: number, reason: string): void {
    // A 502 not from TLS is an answer the proxy could not use (503 and 504 are counted where they arise).
    if (status === 502 && !this.tlsFailed && this.counters !== undefined) this.counters.failed('badAnswer');
    this.record.end({ kind: 'failed', status, reason });
    this.ctx.log.warn('proxy request failed', { status, reason, ...this.logFields() });
  }

  /** The one log line of a request cut off after its answer began (or with a broken client). */
  logAbort(reason: string): void {
    this.record.end({ kind: 'aborted', reason });
    this.ctx.log.warn('proxy request aborted', { reason, ...this.logFields() });
  }

  private logFields(): Record<string, string | number | undefined> {
    const r = this.record;
    return {
      client: r.clientIp,
      method: r.method,
      path: r.path,
      // No member elected yet: the balancer.
      backend: r.backend,
      route: r.route,
      protocol: r.protocol,
    };
  }
}

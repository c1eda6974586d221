// One request from the moment its head is read to the moment it ends: who asked, by which
// listener and protocol, what was routed where, how many tries it took, when each step happened
// and how it ended. Made by the front that read the head, filled in by Upstream and the
// exchange, carried into the tunnel and read by the lines written when the request or the tunnel
// ends. Later records (access log, metrics, status page) read this and nothing else.

import type { ListenAddress, Route, VirtualHost } from '../config/model';
import type { RequestHead } from '../http/head';
import { ticksNow, toEpochMs, toTicks } from '../observe/clock';

/** How the client spoke to wsgate. */
export type FrontProtocol = 'http/1.1' | 'h2';

/** How the request ended: a status answered (relayed or wsgate's own), a tunnel, or cut off. */
export type Outcome =
  | { readonly kind: 'answered'; readonly status: number; readonly reason?: string }
  | { readonly kind: 'failed'; readonly status: number; readonly reason: string }
  | { readonly kind: 'aborted'; readonly reason: string }
  | { readonly kind: 'client-gone'; readonly reason: string }
  | { readonly kind: 'tunnel' };

let nextRequestId = 1;
const NO_FIELDS: readonly string[] = [];

/** The request's variables, as `%{VAR}e` and `CustomLog … env=VAR` read them. */
export interface RequestVars {
  readonly env: ReadonlyMap<string, string>;
}

/** The outcome of every request that became a tunnel: one object, as a tunnel keeps its record for its whole life. */
const TUNNEL: Outcome = Object.freeze({ kind: 'tunnel' });

/** Told once when a request ends without becoming a tunnel (observe/observers.ts). */
export interface RecordSink {
  requestEnded(rec: RequestRecord): void;
}

export class RequestRecord {
  readonly id = nextRequestId++;
  readonly clientIp: string;
  readonly clientPort: number;
  /** The Listen address it came in by (`host:port`, `*` for any host). */
  readonly listener: string;
  readonly tls: boolean;
  /** The ALPN protocol of a TLS connection, when one was chosen. */
  readonly alpn: string | undefined;
  readonly protocol: FrontProtocol;
  readonly method: string;
  readonly path: string;
  /** The Upgrade token the client asked for (an RFC 8441 CONNECT's `:protocol`), if any. */
  readonly upgrade: string | undefined;
  /**
   * The request's header fields as read, `[name0, value0, …]` (the same array the head holds: no
   * copy); empty when the front had none to give, or once a tunnel let them go (`releaseHeaders`).
   */
  headers: readonly string[];
  /** The Host the client named (`:authority` on HTTP/2), if any. */
  readonly host: string | undefined;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (HTTP/2 requests: see `protocol`). */
  readonly versionMinor: number;
  /** The user Basic authentication let in, if any. */
  user: string | undefined;
  /** The server block that took the request, as configured (for its logs and its name). */
  server: VirtualHost | undefined;
  /** Where the request's environment is read (SetEnv/SetEnvIf, and BALANCER_* after an election): its Upstream. */
  vars: RequestVars | undefined;
  /** The answer head's fields as relayed to the client, when a backend answered (the same array: no copy). */
  answerHeaders: readonly string[] | undefined;
  /** The server block that took the request. */
  vhost: string | undefined;
  /** The ProxyPass or RewriteRule that sent it on, as `file:line`. */
  route: string | undefined;
  /** The backend, or balancer member, it went to last (the balancer itself while none is elected). */
  backend: string | undefined;
  /** Connection attempts to a backend (1 without failover; 0 when none was tried). */
  tries = 0;
  // Timestamps, epoch ms; 0 until the step happens. Kept as ticks (observe/clock.ts): a tunnel
  // keeps its record for its whole life.
  private readonly accepted: number;
  private readonly head: number;
  private connected = 0;
  private answered = 0;
  private tunneled = 0;
  private finished = 0;
  /** The status the client got, relayed or wsgate's own (the 101 of a tunnel); 0 until known. */
  status = 0;
  /** Answer body bytes handed to the client (as relayed: an HTTP/1.1 chunked body with its framing). */
  bytesOut = 0;
  outcome: Outcome | undefined;
  private readonly sink: RecordSink | undefined;

  constructor(
    from: RecordSource,
    req: Pick<RequestHead, 'method' | 'target' | 'upgrade'> & Partial<Pick<RequestHead, 'headers' | 'host' | 'versionMinor'>>,
    acceptedAt: number,
    headAt = Date.now(),
  ) {
    this.clientIp = from.clientIp;
    this.clientPort = from.clientPort ?? 0;
    this.listener = describeListen(from.listen);
    this.tls = from.tls;
    this.alpn = from.alpn;
    this.protocol = from.protocol;
    this.method = commonToken(req.method);
    this.path = req.target;
    this.upgrade = req.upgrade === undefined ? undefined : commonToken(req.upgrade);
    this.headers = req.headers ?? NO_FIELDS;
    this.host = req.host;
    this.versionMinor = req.versionMinor ?? 1;
    this.user = undefined;
    this.server = undefined;
    this.vars = undefined;
    this.answerHeaders = undefined;
    this.accepted = toTicks(acceptedAt);
    this.head = toTicks(headAt);
    this.sink = from.sink;
  }

  get acceptedAt(): number {
    return toEpochMs(this.accepted);
  }
  get headAt(): number {
    return toEpochMs(this.head);
  }
  get connectedAt(): number {
    return toEpochMs(this.connected);
  }
  set connectedAt(ms: number) {
    this.connected = toTicks(ms);
  }
  get answeredAt(): number {
    return toEpochMs(this.answered);
  }
  set answeredAt(ms: number) {
    this.answered = toTicks(ms);
  }
  get tunnelAt(): number {
    return toEpochMs(this.tunneled);
  }
  set tunnelAt(ms: number) {
    this.tunneled = toTicks(ms);
  }
  /** When the request ended (its answer handed to the client, or it failed); 0 for a tunnel, whose end its record keeps. */
  get finishedAt(): number {
    return toEpochMs(this.finished);
  }
  set finishedAt(ms: number) {
    this.finished = toTicks(ms);
  }

  /** The server and route that took the request (set once routing has decided; no route for wsgate's own answers). */
  routed(vhost: VirtualHost, route: Route | undefined): void {
    this.server = vhost;
    this.vhost = vhostName(vhost);
    if (route !== undefined) this.route = routeSource(route);
  }

  /** Lets the request's fields go: a tunnel whose access-log line prints none does not keep them while it lasts. */
  releaseHeaders(): void {
    this.headers = NO_FIELDS;
  }

  /** The first outcome sticks: a request ends once, and (unless it became a tunnel) its sink hears of it then. */
  end(outcome: Outcome): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome.kind === 'tunnel' ? TUNNEL : outcome;
    if (outcome.kind === 'tunnel') return;
    this.finished = ticksNow();
    if (outcome.kind === 'answered' || outcome.kind === 'failed') this.status = outcome.status;
    this.sink?.requestEnded(this);
  }
}

/** Who the client is and how it reached wsgate. */
export interface RecordSource {
  readonly clientIp: string;
  readonly clientPort: number | undefined;
  readonly listen: ListenAddress;
  readonly tls: boolean;
  readonly alpn: string | undefined;
  readonly protocol: FrontProtocol;
  /** Who hears when the request ends (the gateway's observers); none in unit tests. */
  readonly sink?: RecordSink;
}

// The strings a record names its listener, server and route by are made once per config object
// and shared: every live tunnel keeps its record, and 10,000 copies of "ws.conf:12" add up.
const listenNames = new WeakMap<ListenAddress, string>();
const vhostNames = new WeakMap<VirtualHost, string>();
const routeSources = new WeakMap<Route, string>();

export function describeListen(l: ListenAddress): string {
  let s = listenNames.get(l);
  if (s === undefined) listenNames.set(l, (s = `${l.host ?? '*'}:${l.port}`));
  return s;
}

function vhostName(vhost: VirtualHost): string {
  let s = vhostNames.get(vhost);
  if (s === undefined) {
    s = vhost.serverName ?? (vhost.addresses.length > 0 ? vhost.addresses.map((a) => `${a.host}:${a.port}`).join(' ') : 'main');
    vhostNames.set(vhost, s);
  }
  return s;
}

function routeSource(route: Route): string {
  let s = routeSources.get(route);
  if (s === undefined) routeSources.set(route, (s = `${route.source.file}:${route.source.line}`));
  return s;
}

/** The usual methods and upgrade tokens as one shared string each (the parser makes a new one per head). */
function commonToken(t: string): string {
  switch (t) {
    case 'GET':
      return 'GET';
    case 'websocket':
      return 'websocket';
    case 'CONNECT':
      return 'CONNECT';
    case 'POST':
      return 'POST';
    default:
      return t;
  }
}

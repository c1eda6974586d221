// The one set of counters per backend: a balancer member (BalancerRegistry, by member key) or a
// plain ProxyPass origin (OriginRegistry, by origin key). The lb methods, `max=` and the metrics
// of a later issue read the same numbers the request and tunnel paths write.
//
// Bytes are added while they flow: the exchanges count the heads and bodies they relay, the
// JavaScript pump counts every chunk, and a native tunnel's counts are read from the engine at
// least once a second (tunnel.ts). So `lbmethod=bytraffic` sees plain HTTP traffic and open
// tunnels, not only tunnels that have closed.

/** Why a backend failed a request. */
export type FailureClass =
  /** The TCP connection was refused (ECONNREFUSED). */
  | 'refused'
  /** The TCP connection was not made within `connectiontimeout=`. */
  | 'connectTimeout'
  /** Any other connect failure: no route, no address, reset during connect. */
  | 'connect'
  /** TCP was up but the TLS handshake or the certificate check failed. */
  | 'tls'
  /** The answer could not be used: malformed or oversized head, a wrong 101, closed before answering. */
  | 'badAnswer'
  /** No answer within the backend's timeout. */
  | 'timeout';

export type FailureCounts = Record<FailureClass, number>;

export class BackendCounters {
  /** Tunnels open now. */
  openTunnels = 0;
  /** Requests holding a slot now: elected or admitted, not yet answered or turned into a tunnel. */
  inFlight = 0;
  /** Requests that took a slot here, ever (failovers count for each backend tried). */
  requests = 0;
  /** Requests that became tunnels, ever. */
  tunnels = 0;
  /** Bytes sent to the backend: request heads and bodies, and tunnel bytes client → backend. */
  bytesUp = 0;
  /** Bytes received from the backend that were relayed: answer heads and bodies, and tunnel bytes backend → client. */
  bytesDown = 0;
  readonly failures: FailureCounts = { refused: 0, connectTimeout: 0, connect: 0, tls: 0, badAnswer: 0, timeout: 0 };

  /** Open tunnels plus requests in flight: what `max=` and `lbmethod=bybusyness` look at. */
  get busy(): number {
    return this.openTunnels + this.inFlight;
  }

  /** Both directions (`lbmethod=bytraffic`). */
  get bytes(): number {
    return this.bytesUp + this.bytesDown;
  }

  /** The `max=` rule, the only place it is checked: no new request while this many are busy (0 = no limit). */
  full(max: number): boolean {
    return max > 0 && this.busy >= max;
  }

  /** A request takes a slot (after `full()` said there is room). */
  claim(): void {
    this.inFlight++;
    this.requests++;
  }

  /** A request gives its slot back: answered, failed, or moved to another member. */
  release(): void {
    this.inFlight--;
  }

  /** The request holding a slot became a tunnel: it stays busy until `tunnelClosed()`. */
  tunnelOpened(): void {
    this.openTunnels++;
    this.tunnels++;
    this.inFlight--;
  }

  tunnelClosed(): void {
    this.openTunnels--;
  }

  failed(why: FailureClass): void {
    this.failures[why]++;
  }

  /** True when nothing holds this backend: its state may be dropped once it leaves the config. */
  get idle(): boolean {
    return this.busy === 0;
  }
}

/** The class of a connect failure by its error code (Node's, or the native engine's errno name). */
export function connectFailureClass(code: string | undefined): FailureClass {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'connectTimeout';
  return 'connect';
}

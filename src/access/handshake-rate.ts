// `ProxyWebsocketRate`: how many upgrade handshakes each client address may start per second.
//
// Counted in whole seconds of the monotonic clock: a count per address for the current second,
// and the map is replaced when the second changes. That is one hash probe per handshake, no timer,
// and memory bounded by the addresses seen within one second (a sliding window or a token bucket
// per address would have to be swept). An address gets at most N in each whole second, so up to
// 2N across the boundary of two seconds.

export class HandshakeRate {
  private second = -1;
  private counts = new Map<string, number>();

  /**
   * Counts one handshake from `ip` against `perSecond` (0 = no limit); false when it is over the
   * limit (a refused handshake is counted too: retrying at once does not help).
   */
  take(ip: string, perSecond: number, nowMs?: number): boolean {
    if (perSecond <= 0) return true;
    // The clock is read only when there is a limit (a default parameter would read it every time).
    const second = Math.floor((nowMs ?? performance.now()) / 1000);
    if (second !== this.second) {
      this.second = second;
      this.counts = new Map();
    }
    const n = (this.counts.get(ip) ?? 0) + 1;
    this.counts.set(ip, n);
    return n <= perSecond;
  }
}

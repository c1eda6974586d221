// A bound on connections that were accepted and have not finished their first request head, so
// that a flood of slow heads (each one trickling bytes to hold a descriptor) cannot keep new
// clients out: past the bound, the oldest such connection is closed for each new one. A client
// sending a head at any sensible rate is done within milliseconds, so the oldest are the slowest.
// The native front keeps its own list with the same bound (native/front.cc); this one is for the
// connections Node accepts. Evictions are logged as one line per second at most.

import { readFileSync } from 'node:fs';
import type { Logger } from '../observe/log';
import { nativeEngine } from '../tunnel/native';

/** The smallest bound, and the share of the descriptor limit (1/4) — the engine's formula. */
const MIN_UNREAD = 64;

let cap: number | undefined;

/** How many connections may be reading their first head at once (per accepting side: Node, engine). */
export function maxUnreadHeads(): number {
  if (cap !== undefined) return cap;
  const fromEngine = nativeEngine()?.contract.limits.maxUnreadHeads;
  cap = fromEngine ?? Math.max(MIN_UNREAD, Math.floor(softFdLimit() / 4));
  return cap;
}

/** The soft RLIMIT_NOFILE of this process (Linux /proc), else the common default. */
function softFdLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (m !== null) return Number(m[1]);
  } catch {
    // not Linux
  }
  return 1024;
}

/** One line per second at most, however many connections are closed to make room. */
export class EvictionLog {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private log: Logger | undefined;

  evicted(log: Logger): void {
    this.log = log;
    if (this.timer === undefined) {
      this.write(1);
      this.timer = setTimeout(flushEvictions, 1000, this);
      this.timer.unref();
    } else {
      this.pending++;
    }
  }

  /** @internal */
  flush(): void {
    this.timer = undefined;
    if (this.pending > 0) this.evictedMany();
  }

  private evictedMany(): void {
    const n = this.pending;
    this.pending = 0;
    this.write(n);
    this.timer = setTimeout(flushEvictions, 1000, this);
    this.timer.unref();
  }

  private write(n: number): void {
    this.log?.warn('too many connections reading a request head: the oldest closed', { closed: n, limit: maxUnreadHeads() });
  }
}

function flushEvictions(l: EvictionLog): void {
  l.flush();
}

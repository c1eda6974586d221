// Paced drain: a stop, a reload or a balancer member's drain closes its WebSocket tunnels a few at a time
// (ProxyWebsocketDrainRate), so the clients told to go away (1001) or to come back (1012) do not
// all reconnect in the same second. Each tunnel gets a slot of 1/rate s in turn and is closed at
// a random moment inside it (jitter), with a close frame toward each side; a tunnel that is not a
// WebSocket is closed at its turn. At the deadline the rest are closed at once.

import type { CloseReason, Tunnel } from './tunnel';

export interface DrainOptions {
  /** The close frames' status code: 1001 going away (stop, member drain) or 1012 service restart (reload). */
  readonly code: 1001 | 1012;
  readonly reason: string;
  /** What the tunnels report as their close reason. */
  readonly why: CloseReason;
  /** Tunnels closed per second; 0: all at once. */
  readonly ratePerSec: number;
  /** From the start, after this many ms every tunnel not yet closed is closed at once. */
  readonly deadlineMs: number;
}

/** How often the drain looks for tunnels whose moment came, at most (a fast rate closes several per look). */
const MIN_STEP_MS = 10;

/**
 * Closes `tunnels` (a snapshot is taken now) at `opts.ratePerSec` with jitter; resolves when
 * every one has finished (a WebSocket's peers answered its close frame, or its grace passed).
 */
export async function drainTunnels(tunnels: Iterable<Tunnel>, opts: DrainOptions): Promise<void> {
  const list = [...tunnels];
  const finishing: Promise<void>[] = [];
  const closeOne = (t: Tunnel): void => {
    if (t.ended) return;
    // Already sending close frames (an overlapping stop or drain, the idle limit): left to finish
    // them, not cut by a second close.
    if (t.closingWebSocket) {
      finishing.push(t.whenFinished());
      return;
    }
    if (t.closeWebSocket(opts.code, opts.reason, opts.why)) finishing.push(t.whenFinished());
    else t.close(opts.why);
  };
  if (opts.ratePerSec <= 0 || list.length <= 1) {
    for (const t of list) closeOne(t);
  } else {
    const slotMs = 1000 / opts.ratePerSec;
    // Tunnel i's moment: somewhere in its own slot [i, i + 1) × slotMs, so the order is kept and
    // two moments are never further apart than two slots.
    const at = list.map((_, i) => (i + Math.random()) * slotMs);
    const start = Date.now();
    const step = Math.max(MIN_STEP_MS, Math.min(slotMs, 1000));
    let next = 0;
    while (next < list.length) {
      const elapsed = Date.now() - start;
      if (elapsed >= opts.deadlineMs) break;
      while (next < list.length && at[next] <= elapsed) closeOne(list[next++]);
      if (next < list.length) await delay(Math.min(step, Math.max(1, at[next] - elapsed), opts.deadlineMs - elapsed));
    }
    while (next < list.length) closeOne(list[next++]);
  }
  await Promise.all(finishing);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

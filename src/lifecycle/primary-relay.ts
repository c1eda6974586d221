// The `-w N` primary's part of the all-workers view (messages: worker-messages.ts; the worker's
// part: worker-link.ts). It answers a worker's gather with every listening worker's piece — those
// that answer within GATHER_MS; a worker that is stuck or just died is left out, and the merged
// answer says how many reported — and passes member changes on, keeping the latest of each
// member for the workers that start later.

import type { Worker } from 'node:cluster';
import type { GatherWhat, Piece, PrimaryMessage, SharedMemberChange, WorkerMessage } from './worker-messages';

/** How long the primary waits for the workers' pieces of one gather. */
export const GATHER_MS = 1000;

interface Gathering {
  readonly asker: Worker;
  readonly id: number;
  /** Workers (by cluster id) not heard from yet. */
  readonly pending: Set<number>;
  readonly pieces: Piece[];
  readonly timer: NodeJS.Timeout;
}

export class PrimaryRelay {
  private nextGid = 1;
  private readonly gatherings = new Map<number, Gathering>();
  /** The latest change of each member (`balancer|member`), in the order they were first made. */
  private readonly changes = new Map<string, SharedMemberChange>();

  /**
   * `listening`: the workers that listen now (a gather asks only those: one still starting would
   * hold every scrape up to the bound); `running`: how many workers the primary runs.
   */
  constructor(
    private readonly listening: () => Worker[],
    private readonly running: () => number,
  ) {}

  /** Every member change made so far, for a worker about to start. */
  memberChanges(): SharedMemberChange[] {
    return [...this.changes.values()];
  }

  message(from: Worker, m: WorkerMessage): void {
    switch (m.wsgate) {
      case 'gather':
        this.gather(from, m.id, m.what);
        return;
      case 'piece':
        this.piece(from, m.gid, m.data);
        return;
      case 'member':
        this.changes.set(`${m.change.balancer}|${m.change.member}`, m.change);
        for (const w of this.listening()) if (w !== from) send(w, { wsgate: 'member', change: m.change });
        return;
    }
  }

  /** A worker that now listens gets every change again: one made while it started may have missed it. */
  listeningNow(w: Worker): void {
    for (const change of this.changes.values()) send(w, { wsgate: 'member', change });
  }

  /** A worker that exited answers no gather. */
  gone(w: Worker): void {
    for (const g of this.gatherings.values()) {
      if (g.pending.delete(w.id) && g.pending.size === 0) this.finish(g.id);
    }
  }

  private gather(asker: Worker, id: number, what: GatherWhat): void {
    const ask = this.listening();
    if (!ask.includes(asker)) ask.push(asker);
    const gid = this.nextGid++;
    const g: Gathering = {
      asker,
      id,
      pending: new Set(ask.map((w) => w.id)),
      pieces: [],
      timer: setTimeout(() => this.finish(gid), GATHER_MS),
    };
    this.gatherings.set(gid, g);
    for (const w of ask) if (!send(w, { wsgate: 'collect', gid, what })) g.pending.delete(w.id);
    if (g.pending.size === 0) this.finish(gid);
  }

  private piece(from: Worker, gid: number, data: unknown): void {
    const g = this.gatherings.get(gid);
    if (g === undefined || !g.pending.delete(from.id)) return;
    const pid = from.process.pid;
    if (pid !== undefined) g.pieces.push({ pid, data });
    if (g.pending.size === 0) this.finish(gid);
  }

  private finish(gid: number): void {
    const g = this.gatherings.get(gid);
    if (g === undefined) return;
    this.gatherings.delete(gid);
    clearTimeout(g.timer);
    // The asker's piece first: the merged view is headed by the worker that answers.
    const pid = g.asker.process.pid;
    g.pieces.sort((a, b) => Number(b.pid === pid) - Number(a.pid === pid));
    send(g.asker, { wsgate: 'gathered', id: g.id, pieces: g.pieces, running: this.running() });
  }
}

/** False when `w`'s channel is closed (it is exiting). */
function send(w: Worker, m: PrimaryMessage): boolean {
  if (!w.isConnected()) return false;
  // With a callback, a send that fails as the worker exits is not an 'error' event.
  w.send(m, undefined, {}, () => {});
  return true;
}

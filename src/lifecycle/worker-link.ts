// A `-w N` worker's side of the all-workers view (messages: worker-messages.ts). The worker that
// is asked for /metrics or the status page asks the primary, which collects every worker's piece
// (this worker's too, through the same message) and answers with those it got within its bound;
// the pieces are merged here (observe/merge-metrics.ts, observe/merge-status.ts). A member change
// made here goes to the primary, which passes it to the other workers and keeps it for the ones
// that start later; one that comes from the primary is applied to this worker's member state.

import type { WorkerView } from '../handlers/handler';
import { applySharedChange } from '../handlers/balancer-manager';
import type { Gateway } from '../gateway';
import { mergeMetrics } from '../observe/merge-metrics';
import { mergeStatus } from '../observe/merge-status';
import type { StatusSnapshot } from '../observe/status';
import {
  type GatherWhat,
  isPrimaryMessage,
  type Piece,
  type PrimaryMessage,
  type SharedMemberChange,
  type WorkerMessage,
} from './worker-messages';

/**
 * How long a worker waits for the primary's answer before it answers with its own piece alone.
 * Longer than the primary's own bound (GATHER_MS, workers.ts): only a primary that is gone, or
 * stuck, makes it wait this long.
 */
export const GATHER_WAIT_MS = 3000;

interface Gathered {
  readonly pieces: Piece[];
  readonly running: number;
}

export class WorkerLink implements WorkerView {
  private nextId = 1;
  private readonly waiting = new Map<number, (g: Gathered | undefined) => void>();
  /** A gather under way, by what it collects: page clients that ask at the same time share it. */
  private readonly underWay = new Map<GatherWhat, Promise<Gathered | undefined>>();

  constructor(private readonly gateway: Gateway) {
    process.on('message', (m: unknown) => {
      if (isPrimaryMessage(m)) this.onMessage(m);
    });
  }

  async metrics(): Promise<{ contentType: string; text: string }> {
    const g = await this.gather('metrics');
    if (g !== undefined) return mergeMetrics(g.pieces, g.running);
    return mergeMetrics([{ pid: process.pid, data: await this.gateway.metrics.json(this.gateway) }], 0);
  }

  async status(): Promise<StatusSnapshot> {
    const g = await this.gather('status');
    const own = this.gateway.status.snapshot(this.gateway, Date.now());
    if (g === undefined) return mergeStatus([own], 0);
    // This worker's own snapshot first (its pid, state and nonce head the page), fresh rather than the collected one.
    const others = g.pieces.filter((p) => p.pid !== process.pid).map((p) => p.data as StatusSnapshot);
    return mergeStatus([own, ...others], g.running);
  }

  shareMemberChange(change: SharedMemberChange): void {
    this.send({ wsgate: 'member', change });
  }

  private gather(what: GatherWhat): Promise<Gathered | undefined> {
    const had = this.underWay.get(what);
    if (had !== undefined) return had;
    const id = this.nextId++;
    const p = new Promise<Gathered | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, GATHER_WAIT_MS);
      this.waiting.set(id, (g) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(g);
      });
      if (!this.send({ wsgate: 'gather', id, what })) this.waiting.get(id)?.(undefined);
    }).finally(() => this.underWay.delete(what));
    this.underWay.set(what, p);
    return p;
  }

  private onMessage(m: PrimaryMessage): void {
    switch (m.wsgate) {
      case 'collect':
        void this.piece(m.what).then(
          (data) => this.send({ wsgate: 'piece', gid: m.gid, data }),
          (e: Error) => this.gateway.log.warn('could not read this worker for the all-workers view', { reason: e.message }),
        );
        return;
      case 'gathered':
        this.waiting.get(m.id)?.({ pieces: m.pieces, running: m.running });
        return;
      case 'member':
        applySharedChange(this.gateway, m.change, Date.now());
        return;
    }
  }

  private async piece(what: GatherWhat): Promise<unknown> {
    if (what === 'metrics') return this.gateway.metrics.json(this.gateway);
    return this.gateway.status.snapshot(this.gateway, Date.now());
  }

  /** False when there is no primary to send to (its channel closed). */
  private send(m: WorkerMessage): boolean {
    if (process.send === undefined || !process.connected) return false;
    // With a callback, a send that fails (the primary just went) is not an 'error' event.
    process.send(m, undefined, {}, () => {});
    return true;
  }
}

// What the `-w N` primary and its workers say to each other over the cluster IPC channel, besides
// `ready` (workers.ts): a worker asked for /metrics or the status page gathers every worker's
// piece through the primary, and a member change made in one worker is passed to all.
//
//   worker → primary   gather {id, what}        answer one scrape or snapshot with every worker's piece
//   primary → worker   collect {gid, what}      send your piece
//   worker → primary   piece {gid, data}
//   primary → worker   gathered {id, pieces, running}
//   worker → primary   member {change}          a member changed here: tell the others
//   primary → worker   member {change}          apply it (also every known change, to a worker that starts)

import type { MemberStatus } from '../config/model';

/** What a gather collects: a registry's `getMetricsAsJSON()`, or a status snapshot. */
export type GatherWhat = 'metrics' | 'status';

/** One worker's part of a gather. */
export interface Piece {
  readonly pid: number;
  readonly data: unknown;
}

/**
 * A member change as every worker applies it: the member is found by its balancer's name and its
 * URL, and its run-time state gets `status` over the `configured` status= it overrode (MemberState.admin).
 */
export interface SharedMemberChange {
  readonly balancer: string;
  readonly member: string;
  readonly configured: MemberStatus;
  readonly status: MemberStatus;
  /** The change asked for a drain (`w_status_N=1`): each worker closes its own tunnels to the member, paced. */
  readonly drainNow: boolean;
}

export type WorkerMessage =
  | { readonly wsgate: 'gather'; readonly id: number; readonly what: GatherWhat }
  | { readonly wsgate: 'piece'; readonly gid: number; readonly data: unknown }
  | { readonly wsgate: 'member'; readonly change: SharedMemberChange };

export type PrimaryMessage =
  | { readonly wsgate: 'collect'; readonly gid: number; readonly what: GatherWhat }
  /** `running`: how many workers the primary runs (those that did not answer in time are not in `pieces`). */
  | { readonly wsgate: 'gathered'; readonly id: number; readonly pieces: Piece[]; readonly running: number }
  | { readonly wsgate: 'member'; readonly change: SharedMemberChange };

const WORKER_KINDS = new Set(['gather', 'piece', 'member']);
const PRIMARY_KINDS = new Set(['collect', 'gathered', 'member']);

function kindOf(m: unknown): unknown {
  return typeof m === 'object' && m !== null ? (m as { wsgate?: unknown }).wsgate : undefined;
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return WORKER_KINDS.has(kindOf(m) as string);
}

export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return PRIMARY_KINDS.has(kindOf(m) as string);
}

// The lb methods behind one interface: each picks one of the usable candidates of one lbset.

import type { LbMethod } from '../../config/model';
import { byBusyness } from './bybusyness';
import { byRequests } from './byrequests';
import { byTraffic } from './bytraffic';
import type { Candidate } from './state';

export interface LbMethodImpl {
  /** Picks one of `candidates` (never empty), updating the method's counters in their state. */
  pick(candidates: readonly Candidate[]): Candidate;
}

const METHODS: Record<LbMethod, LbMethodImpl> = {
  byrequests: byRequests,
  bytraffic: byTraffic,
  bybusyness: byBusyness,
};

export function lbMethod(name: LbMethod): LbMethodImpl {
  return METHODS[name];
}

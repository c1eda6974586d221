// lbmethod=bybusyness: the candidate with the fewest open tunnels plus requests in flight; ties go
// to the highest byrequests-style lbstatus (mod_lbmethod_bybusyness.c), so equally busy members
// still take turns by loadfactor.

import type { LbMethodImpl } from './method';
import { weight, type Candidate } from './state';

export const byBusyness: LbMethodImpl = {
  pick(candidates: readonly Candidate[]): Candidate {
    let best = candidates[0] as Candidate;
    let total = 0;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i] as Candidate;
      const w = weight(c);
      c.state.lbstatus += w;
      total += w;
      if (i === 0) continue;
      const busy = c.state.counters.busy;
      if (busy < best.state.counters.busy || (busy === best.state.counters.busy && c.state.lbstatus > best.state.lbstatus)) best = c;
    }
    best.state.lbstatus -= total;
    return best;
  },
};

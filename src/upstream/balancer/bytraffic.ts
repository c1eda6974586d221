// lbmethod=bytraffic: the candidate with the fewest bytes per loadfactor (mod_lbmethod_bytraffic.c).
// The bytes are the member's counters both ways, added while they flow (plain HTTP heads and
// bodies, and tunnel bytes, which Apache does not count); the first candidate wins a tie.

import type { LbMethodImpl } from './method';
import { weight, type Candidate } from './state';

export const byTraffic: LbMethodImpl = {
  pick(candidates: readonly Candidate[]): Candidate {
    let best = candidates[0] as Candidate;
    let bestLoad = best.state.counters.bytes / weight(best);
    for (let i = 1; i < candidates.length; i++) {
      const c = candidates[i] as Candidate;
      const load = c.state.counters.bytes / weight(c);
      if (load < bestLoad) {
        best = c;
        bestLoad = load;
      }
    }
    return best;
  },
};

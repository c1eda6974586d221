// lbmethod=bytraffic: the candidate with the fewest bytes per loadfactor (mod_lbmethod_bytraffic.c).
// wsgate counts the bytes of tunnels too (both ways, added when the tunnel closes), which Apache
// does not; the first candidate wins a tie.

import type { LbMethodImpl } from './method';
import { weight, type Candidate } from './state';

export const byTraffic: LbMethodImpl = {
  pick(candidates: readonly Candidate[]): Candidate {
    let best = candidates[0] as Candidate;
    let bestLoad = best.state.bytes / weight(best);
    for (let i = 1; i < candidates.length; i++) {
      const c = candidates[i] as Candidate;
      const load = c.state.bytes / weight(c);
      if (load < bestLoad) {
        best = c;
        bestLoad = load;
      }
    }
    return best;
  },
};

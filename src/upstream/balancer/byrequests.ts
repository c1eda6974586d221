// lbmethod=byrequests: Apache's smooth weighted round robin (mod_lbmethod_byrequests.c). Every
// election adds each candidate's loadfactor to its lbstatus, takes the highest (the first on a
// tie), then subtracts the total from the winner: loadfactors 3:1 give A A B A, A A B A, …

import type { LbMethodImpl } from './method';
import { weight, type Candidate } from './state';

export const byRequests: LbMethodImpl = {
  pick(candidates: readonly Candidate[]): Candidate {
    let best = candidates[0] as Candidate;
    let total = 0;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i] as Candidate;
      const w = weight(c);
      c.state.lbstatus += w;
      total += w;
      if (i > 0 && c.state.lbstatus > best.state.lbstatus) best = c;
    }
    best.state.lbstatus -= total;
    return best;
  },
};

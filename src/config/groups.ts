// The two ways a directive that wsgate does not honour is taken (see DirectiveGroup): with a notice,
// or as a FILE:LINE error. One home for both, used by every directive table.

import type { DirectiveSpec } from './directives';
import { ConfigError } from './errors';

/** Accepted, no effect; one notice per directive name per load. `why`: why nothing observable changes. */
export function notice(name: string, why: string): DirectiveSpec & { group: 'notice' } {
  return {
    name,
    group: 'notice',
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    handle: (node, ctx) => {
      ctx.state.notices.once(`ignored:${name.toLowerCase()}`, node.source, `${name} is ignored: ${why}`);
    },
  };
}

/** Known, but an error with `reason` (what is not supported, and what to do instead). */
export function refused(name: string, reason: string): DirectiveSpec & { group: 'refused' } {
  return {
    name,
    group: 'refused',
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    handle: (node) => {
      throw ConfigError.at(node.source, `${node.name}: ${reason}`);
    },
  };
}

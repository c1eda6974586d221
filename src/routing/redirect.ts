// Answers mod_alias redirects (config/redirect.ts) as Apache's request phases order them:
// mod_rewrite and then ProxyPass translate a request first (mod_proxy's translate hook runs
// before mod_alias's), so a server-level `Redirect` only applies to requests no ProxyPass or
// RewriteRule [P] took (or that `ProxyPass … !` excluded); the lines of a `<Location>` are
// mod_alias's per-directory ones, checked in the fixups phase, which every request passes,
// proxied or not (mod_rewrite's section rules run before them). A section's one-URL form comes
// first in both phases; the sections' lines are tried innermost (last merged) section first.

import type { FrontName, RedirectRule, Redirects } from '../config/model';
import { frontUrl, isUrl } from '../http/front-url';
import { aliasMatch, canonPath, hasControlOrSpace, substitute } from './mapping';
import { sectionApplies } from './section';
import type { Target } from './target';

export interface RedirectAnswer {
  readonly status: number;
  /** The absolute `Location` (3xx only). */
  readonly location?: string;
  readonly rule: RedirectRule;
}

export interface FrontOf {
  readonly host: string | undefined;
  readonly secure: boolean;
  readonly name: FrontName | undefined;
}

/** mod_alias in the translate-name phase, for a request no ProxyPass took: a section's one-URL form, then the server's lines. */
export function translateRedirect(r: Redirects, target: Target, front: FrontOf): RedirectAnswer | 500 | undefined {
  const { whole } = inSections(r, target.path);
  if (whole !== undefined) return answer(whole, whole.url ?? '', target, front);
  for (const rule of r.server) {
    const to = target1(rule, target.path);
    if (to !== undefined) return answer(rule, to, target, front);
  }
  return undefined;
}

/** mod_alias in the fixups phase, for every request: a section's one-URL form, then the sections' lines. */
export function fixupRedirect(r: Redirects, target: Target, front: FrontOf): RedirectAnswer | 500 | undefined {
  const { whole, rules } = inSections(r, target.path);
  if (whole !== undefined) return answer(whole, whole.url ?? '', target, front);
  for (const rule of rules) {
    const to = target1(rule, target.path);
    if (to !== undefined) return answer(rule, to, target, front);
  }
  return undefined;
}

/** The one-URL form of the innermost matching section that has one, and the matching sections' lines, innermost first. */
function inSections(r: Redirects, path: string): { whole: RedirectRule | undefined; rules: RedirectRule[] } {
  let whole: RedirectRule | undefined;
  const rules: RedirectRule[] = [];
  for (let i = r.sections.length - 1; i >= 0; i--) {
    const s = r.sections[i]!;
    if (!sectionApplies(s.section, path)) continue;
    whole ??= s.whole;
    rules.push(...s.rules);
  }
  return { whole, rules };
}

/** Where a rule sends `path` (mod_alias's escaping applied), or undefined when it does not match. */
function target1(rule: RedirectRule, path: string): string | undefined {
  const m = rule.match;
  if (m.kind === 'prefix') {
    const n = aliasMatch(path, m.prefix);
    if (n === 0) return undefined;
    return (rule.url ?? '') + canonPath(path.slice(n));
  }
  if (m.kind === 'regex') {
    const groups = m.regex.exec(path);
    if (groups === null) return undefined;
    if (rule.url === undefined) return '';
    // The substituted URL is escaped except for its query and fragment.
    const found = substitute(rule.url, groups);
    const hash = found.indexOf('#');
    const beforeHash = hash < 0 ? found : found.slice(0, hash);
    const q = beforeHash.indexOf('?');
    const main = q < 0 ? beforeHash : beforeHash.slice(0, q);
    return canonPath(main) + (q < 0 ? '' : beforeHash.slice(q)) + (hash < 0 ? '' : found.slice(hash));
  }
  return rule.url ?? '';
}

function answer(rule: RedirectRule, to: string, target: Target, front: FrontOf): RedirectAnswer | 500 {
  if (rule.status < 300 || rule.status > 399) return { status: rule.status, rule };
  let location = to;
  if (location.startsWith('/')) location = frontUrl(front.name, front.host, front.secure) + location;
  else if (!isUrl(location)) return 500;
  // The request's query goes along unless the target has its own.
  if (target.query !== undefined && !location.includes('?')) location += '?' + target.query;
  if (hasControlOrSpace(location)) return 500;
  return { status: rule.status, location, rule };
}

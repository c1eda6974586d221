// Whether a request is inside a `<Location>`/`<LocationMatch>` section, as Apache's location walk
// decides it for per-directory settings (ProxyPassReverse*, mod_alias redirects): not the
// ProxyPass matching of routing/mapping.ts.

import type { SectionMatch } from '../config/model';

/** `path`: the decoded request path; undefined when it cannot be read (then no section applies). */
export function sectionApplies(section: SectionMatch | undefined, path: string | undefined): boolean {
  if (section === undefined) return true;
  if (path === undefined) return false;
  if (section.kind === 'regex') return section.regex.test(path);
  // A plain prefix that must end at a `/` or at the end of the path, unless the section's own path ends with `/`.
  const p = section.prefix;
  if (!path.startsWith(p)) return false;
  return p.length === 0 || p.endsWith('/') || path.length === p.length || path.charCodeAt(p.length) === 0x2f;
}

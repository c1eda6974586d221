// mod_rewrite, the part of it that proxy configs use (Socket.IO's documented Apache setup among
// them): RewriteEngine, RewriteOptions Inherit|InheritBefore, RewriteCond on request headers and
// a few server variables, and RewriteRule handing the request to a proxy URL with [P]. Anything
// else is refused at FILE:LINE, because a rule wsgate skipped would send requests elsewhere than
// the author meant. The rules run per request in src/routing/rewrite.ts.

import type { BalancerRefDraft, Ctx, LocationDraft, RouteDraft, TargetDraft } from './drafts';
import { ConfigError, type Notices } from './errors';
import type { Route, SectionMatch, SourceRef } from './model';
import type { DirectiveNode } from './parser';
import { parseBalancerUrl } from './balancer';
import { parseOnOff } from './values';
import { parseTarget } from './worker';

/** A RewriteCond's CondPattern: `=text` (lexical equality) or a regular expression. */
export type CondPattern = { readonly kind: 'equal'; readonly value: string } | { readonly kind: 'regex'; readonly regex: RegExp };

export interface RewriteCondition {
  /** TestString as written: literal text with `%{VAR}`, `%{HTTP:Name}`, `$N` and `%N`. */
  readonly test: string;
  readonly pattern: CondPattern;
  /** `!` in front of the pattern. */
  readonly negate: boolean;
  /** `[NC]`: `=text` compares without case; a regex gets the `i` flag. */
  readonly nocase: boolean;
  /** `[OR]`: this condition or the next one. */
  readonly or: boolean;
  readonly source: SourceRef;
}

/** What a rule whose pattern and conditions hold does. */
export type RewriteAction =
  /** `[P]`: proxy to `route` with the substituted path and query. */
  | { readonly kind: 'proxy' }
  /** `[R=code]`, or an absolute URL: an external redirect to the substitution. */
  | { readonly kind: 'redirect'; readonly status: number }
  /** `-`: nothing is substituted (flags such as [L] still act). */
  | { readonly kind: 'none' }
  /** `[F]` (403) or `[G]` (410). */
  | { readonly kind: 'status'; readonly status: 403 | 410 };

/** Flags that change how a matching rule's result is built. */
export interface RuleFlags {
  /** `[L]`/`[END]`, or implied by [P], [R], [F], [G]: no later rule is tried. */
  readonly last: boolean;
  /** `[QSA]`: a query in the substitution is followed by the request's. */
  readonly qsa: boolean;
  /** `[QSD]`: the request's query is dropped. */
  readonly qsd: boolean;
  /** `[NE]`: the result is not escaped (a [P] target is sent as it is, like `nocanon`). */
  readonly noescape: boolean;
}

/** One `RewriteRule Pattern Substitution [flags]` with the conditions written before it. */
export interface RewriteRule {
  /** Matched against the decoded URL-path (`/socket.io/`), as in server context. */
  readonly pattern: RegExp;
  readonly negate: boolean;
  readonly conditions: readonly RewriteCondition[];
  /** The substitution's path (after the host), with `$N`, `%N` and `%{VAR}`; '' when the URL had none. */
  readonly pathTemplate: string;
  /** The substitution's query (after `?`), or undefined: then the request's query is kept. */
  readonly queryTemplate?: string;
  /** [P] rules: where the rule proxies to, a route with its backend (or balancer) resolved like a ProxyPass target. */
  readonly route?: Route;
  readonly action: RewriteAction;
  readonly flags: RuleFlags;
  /** Redirect rules: the whole substitution (scheme, host, path and query), expanded per request. */
  readonly substitution: string;
  readonly source: SourceRef;
}

/** The rules in force for one server, in the order they are tried (absent when RewriteEngine is not On). */
export interface RewriteConfig {
  readonly rules: readonly RewriteRule[];
}

/** The rules of one `<Location>`/`<LocationMatch>`, tried after ProxyPass (mod_rewrite's fixup). */
export interface SectionRewrite {
  readonly section: SectionMatch;
  /** A `<Location>`'s path with a trailing `/`: removed from the path the patterns see. */
  readonly directory?: string;
  /** RewriteEngine in the section, else the server's. */
  readonly engine: boolean;
  readonly rules: readonly RewriteRule[];
}

/** A `<Location>` path as mod_rewrite's per-directory prefix: with a trailing `/`. */
export function sectionDirectory(prefix: string): string {
  return prefix.endsWith('/') ? prefix : prefix + '/';
}

/** A rule as read, before its target is resolved (build.ts). */
export interface RuleDraft {
  readonly pattern: RegExp;
  readonly negate: boolean;
  readonly conditions: readonly RewriteCondition[];
  readonly pathTemplate: string;
  readonly queryTemplate?: string;
  /** [P] rules: the route to assemble, a `balancer://` reference or a ws/wss/http/https target. */
  readonly route?: RouteDraft;
  readonly action: RewriteAction;
  readonly flags: RuleFlags;
  readonly substitution: string;
  readonly source: SourceRef;
}

export interface RewriteDraft {
  engine?: boolean;
  /** RewriteOptions Inherit (`after`: the main server's rules after this server's) or InheritBefore. */
  inherit?: 'after' | 'before';
  /** RewriteCond lines waiting for their RewriteRule. */
  pending: RewriteCondition[];
  readonly rules: RuleDraft[];
}

export function newRewriteDraft(): RewriteDraft {
  return { pending: [], rules: [] };
}

/** Server variables a TestString may name; the values are computed per request (routing/rewrite.ts). */
export const SERVER_VARIABLES = new Set([
  'HTTP_ACCEPT',
  'HTTP_COOKIE',
  'HTTP_FORWARDED',
  'HTTP_HOST',
  'HTTP_PROXY_CONNECTION',
  'HTTP_REFERER',
  'HTTP_USER_AGENT',
  'REQUEST_URI',
  'QUERY_STRING',
  'REQUEST_METHOD',
  'HTTPS',
  'REQUEST_SCHEME',
  'SERVER_NAME',
  'SERVER_PORT',
]);

/** The rewrite lines of a `<Location>`/`<LocationMatch>` (mod_rewrite's per-directory context). */
export interface SectionRewriteDraft {
  readonly section: LocationDraft;
  readonly draft: RewriteDraft;
}

/** The draft the line belongs to: the server's, or its section's; `<Proxy>` is refused. */
function draftOf(node: DirectiveNode, ctx: Ctx): RewriteDraft {
  if (ctx.kind === 'server' || ctx.kind === 'vhost') return ctx.server.rewrite;
  if (ctx.location === undefined) {
    throw ConfigError.at(
      node.source,
      `${node.name} is not supported inside <Proxy>: put it at the top level, in a <VirtualHost> or in a <Location>`,
    );
  }
  let entry = ctx.server.sectionRewrites.find((e) => e.section === ctx.location);
  if (entry === undefined) {
    entry = { section: ctx.location, draft: newRewriteDraft() };
    ctx.server.sectionRewrites.push(entry);
  }
  return entry.draft;
}

export function rewriteEngine(node: DirectiveNode, ctx: Ctx): void {
  draftOf(node, ctx).engine = parseOnOff(node.args[0] as string, 'RewriteEngine', node.source);
}

export function rewriteOptions(node: DirectiveNode, ctx: Ctx): void {
  if (ctx.kind !== 'server' && ctx.kind !== 'vhost') {
    throw ConfigError.at(
      node.source,
      'RewriteOptions is only supported at the top level or in a <VirtualHost>: a section uses its own rules only',
    );
  }
  for (const option of node.args) {
    const o = option.toLowerCase();
    if (o === 'inherit') ctx.server.rewrite.inherit = 'after';
    else if (o === 'inheritbefore') ctx.server.rewrite.inherit = 'before';
    else throw ConfigError.at(node.source, `RewriteOptions ${option} is not supported (only Inherit and InheritBefore)`);
  }
}

/** `[A,B,…]` → the flag words, upper-cased; undefined when `word` is not a flag list. */
function flagList(word: string | undefined, directive: string, where: SourceRef): string[] | undefined {
  if (word === undefined) return undefined;
  if (!word.startsWith('[') || !word.endsWith(']'))
    throw ConfigError.at(where, `${directive}: flags must be written [FLAG,…], got "${word}"`);
  return word
    .slice(1, -1)
    .split(',')
    .map((f) => f.trim().toUpperCase())
    .filter((f) => f !== '');
}

/** Checks `%{…}` and `%N`/`$N` references of a TestString or substitution. */
function checkReferences(text: string, directive: string, where: SourceRef): void {
  for (const m of text.matchAll(/%\{([^}]*)\}/g)) {
    const name = m[1] as string;
    if (/^HTTP:[!#$%&'*+.^_`|~0-9A-Za-z-]+$/i.test(name)) continue;
    if (SERVER_VARIABLES.has(name.toUpperCase())) continue;
    throw ConfigError.at(
      where,
      `${directive}: %{${name}} is not supported (supported: %{HTTP:Header-Name}, ${[...SERVER_VARIABLES].map((v) => `%{${v}}`).join(', ')})`,
    );
  }
  if (/%\{[^}]*$/.test(text)) throw ConfigError.at(where, `${directive}: unterminated %{ in "${text}"`);
}

export function rewriteCond(node: DirectiveNode, ctx: Ctx): void {
  const draft = draftOf(node, ctx);
  const where = node.source;
  const [test, rawPattern, flagWord] = node.args as [string, string, string | undefined];
  checkReferences(test, 'RewriteCond', where);
  let nocase = false;
  let or = false;
  for (const flag of flagList(flagWord, 'RewriteCond', where) ?? []) {
    if (flag === 'NC' || flag === 'NOCASE') nocase = true;
    else if (flag === 'OR' || flag === 'ORNEXT') or = true;
    else throw ConfigError.at(where, `RewriteCond: flag [${flag}] is not supported (only [NC] and [OR])`);
  }
  let text = rawPattern;
  const negate = text.startsWith('!');
  if (negate) text = text.slice(1);
  let pattern: CondPattern;
  if (text.startsWith('=')) {
    let value = text.slice(1);
    // `=""` is Apache's way to write "is empty".
    if (value === '""') value = '';
    pattern = { kind: 'equal', value: nocase ? value.toLowerCase() : value };
  } else if (/^(<=?|>=?|-[a-zA-Z]+$)/.test(text)) {
    throw ConfigError.at(where, `RewriteCond: CondPattern "${rawPattern}" is not supported (only =text, !=text and regular expressions)`);
  } else {
    try {
      pattern = { kind: 'regex', regex: new RegExp(text, nocase ? 'i' : '') };
    } catch (err) {
      throw ConfigError.at(where, `RewriteCond: bad regular expression "${text}": ${(err as Error).message}`);
    }
  }
  draft.pending.push({ test, pattern, negate, nocase, or, source: where });
}

const REDIRECT_WORDS: Record<string, number> = { PERMANENT: 301, TEMP: 302, SEEOTHER: 303 };

export function rewriteRule(node: DirectiveNode, ctx: Ctx): void {
  const draft = draftOf(node, ctx);
  const where = node.source;
  const [rawPattern, written, flagWord] = node.args as [string, string, string | undefined];
  const flags = flagList(flagWord, 'RewriteRule', where);
  let proxy = false;
  let nocase = false;
  let redirect: number | undefined;
  let status: 403 | 410 | undefined;
  let last = false;
  let qsa = false;
  let qsd = false;
  let noescape = false;
  for (const flag of flags ?? []) {
    const [name, value] = flag.split('=', 2) as [string, string | undefined];
    if (name === 'P' || name === 'PROXY') proxy = true;
    else if (name === 'L' || name === 'LAST' || name === 'END') last = true;
    else if (name === 'NC' || name === 'NOCASE') nocase = true;
    else if (name === 'QSA' || name === 'QSAPPEND') qsa = true;
    else if (name === 'QSD' || name === 'QSDISCARD') qsd = true;
    else if (name === 'NE' || name === 'NOESCAPE') noescape = true;
    else if (name === 'F' || name === 'FORBIDDEN') status = 403;
    else if (name === 'G' || name === 'GONE') status = 410;
    else if (name === 'R' || name === 'REDIRECT') {
      const code = value === undefined ? 302 : (REDIRECT_WORDS[value] ?? (/^\d{3}$/.test(value) ? Number(value) : NaN));
      if (!(code >= 300 && code <= 399)) {
        throw ConfigError.at(
          where,
          `RewriteRule: [${flag}] is not supported (a redirect status 300–399, permanent, temp or seeother; [F] and [G] for 403 and 410)`,
        );
      }
      redirect = code;
    } else {
      throw ConfigError.at(where, `RewriteRule: flag [${flag}] is not supported (supported: P, R[=code], L, END, NC, QSA, QSD, NE, F, G)`);
    }
  }
  if ([proxy, redirect !== undefined, status !== undefined].filter(Boolean).length > 1) {
    throw ConfigError.at(where, 'RewriteRule: [P], [R], [F] and [G] exclude one another');
  }
  const negate = rawPattern.startsWith('!');
  let regex: RegExp;
  try {
    regex = new RegExp(negate ? rawPattern.slice(1) : rawPattern, nocase ? 'i' : '');
  } catch (err) {
    throw ConfigError.at(where, `RewriteRule: bad regular expression "${rawPattern}": ${(err as Error).message}`);
  }
  checkReferences(written, 'RewriteRule', where);
  let substitution = written;
  const relative = written !== '-' && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(written) && !written.startsWith('/') && !written.startsWith('%{');
  if (relative && ctx.location !== undefined && redirect !== undefined) {
    // In a section a relative target is below the section's path (mod_rewrite's per-directory prefix).
    if (ctx.location.match.kind !== 'prefix') {
      throw ConfigError.at(where, 'RewriteRule in <LocationMatch>: a relative substitution has no base; write an absolute path or URL');
    }
    substitution = sectionDirectory(ctx.location.match.prefix) + written;
  }
  const conditions = draft.pending;
  draft.pending = [];
  const common = { pattern: regex, negate, conditions, substitution, source: where };
  const ruleFlags = (implied: boolean): RuleFlags => ({ last: last || implied, qsa, qsd, noescape });
  if (status !== undefined) {
    // [F] and [G] answer at once; the substitution is not used (usually "-").
    draft.rules.push({ ...common, pathTemplate: '', action: { kind: 'status', status }, flags: ruleFlags(true) });
    return;
  }
  if (!proxy) {
    const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(substitution);
    if (substitution === '-' && redirect === undefined) {
      draft.rules.push({ ...common, pathTemplate: '', action: { kind: 'none' }, flags: ruleFlags(false) });
      return;
    }
    if (redirect !== undefined && substitution !== '-' && (absolute || substitution.startsWith('/') || /^%\{/.test(substitution))) {
      draft.rules.push({ ...common, pathTemplate: '', action: { kind: 'redirect', status: redirect }, flags: ruleFlags(true) });
      return;
    }
    if (absolute) {
      throw ConfigError.at(
        where,
        `RewriteRule: the substitution "${substitution}" is a URL: add [R] (or [R=301]) to redirect to it, or [P] to proxy to it`,
      );
    }
    throw ConfigError.at(
      where,
      'RewriteRule: internal rewrites to a path are not supported; wsgate supports proxying rules ([P]), redirects ([R=code] to a URL or /path), "-" (no substitution), [F] and [G]',
    );
  }
  const parsed = proxyTarget(substitution, where, ctx.state.notices);
  const route: RouteDraft = {
    match: { kind: 'regex', regex, pattern: rawPattern },
    exclude: false,
    ...parsed.target,
    regex: true,
    fromLocation: false,
    source: where,
  };
  draft.rules.push({
    ...common,
    pathTemplate: parsed.pathTemplate,
    ...(parsed.queryTemplate !== undefined ? { queryTemplate: parsed.queryTemplate } : {}),
    route,
    action: { kind: 'proxy' },
    flags: ruleFlags(true),
  });
}

/** The substitution URL → its target and its path/query templates. The scheme and host must be written out. */
function proxyTarget(
  substitution: string,
  where: SourceRef,
  notices: Notices,
): { target: { target: TargetDraft } | { balancer: BalancerRefDraft }; pathTemplate: string; queryTemplate?: string } {
  // The authority ends at the path, the query, or a variable or back-reference right after
  // host:port (`ws://127.0.0.1:8065%{REQUEST_URI}`, Mattermost's form): that starts the path.
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/((?:[^/?#$%\\]|%(?![{0-9]))*)([^?#]*)(?:\?([^#]*))?$/.exec(substitution);
  if (m === null) {
    throw ConfigError.at(where, `RewriteRule [P]: the substitution must be a URL (scheme://host/path), got "${substitution}"`);
  }
  const scheme = (m[1] as string).toLowerCase();
  const authority = m[2] as string;
  const pathTemplate = m[3] as string;
  const queryTemplate = m[4];
  // A reference right after the authority is the path only when it cannot be part of the host: after
  // `:port`, or %{REQUEST_URI} (always a path).
  const glued = pathTemplate !== '' && pathTemplate[0] !== '/';
  const hostEnds = /:\d+$/.test(authority) || /^%\{REQUEST_URI\}/i.test(pathTemplate);
  if (/[$%\\]/.test(authority) || /[$%]/.test(scheme) || authority === '' || (glued && !hostEnds)) {
    throw ConfigError.at(
      where,
      `RewriteRule [P] ${substitution}: back-references and variables are only supported after host:port (in the path and query), not in the scheme or host: wsgate resolves each backend when it loads the config`,
    );
  }
  const base = `${scheme}://${authority}`;
  const q = queryTemplate !== undefined ? { queryTemplate } : {};
  if (scheme === 'balancer') {
    const url = parseBalancerUrl(base, where);
    return {
      target: { balancer: { raw: substitution, name: url.name, path: '/', pathWasEmpty: pathTemplate === '', params: {}, nocanon: false } },
      pathTemplate,
      ...q,
    };
  }
  if (scheme !== 'ws' && scheme !== 'wss' && scheme !== 'http' && scheme !== 'https') {
    throw ConfigError.at(where, `RewriteRule [P]: unsupported scheme "${scheme}" in "${substitution}" (ws, wss, http, https or balancer)`);
  }
  // The backend is the scheme and host; the path is built per request from the template.
  return { target: { target: parseTarget(base, [], 'RewriteRule', false, undefined, where, notices) }, pathTemplate, ...q };
}

/** RewriteCond lines after the last RewriteRule of a server apply to nothing (Apache drops them too). */
export function noteDanglingConditions(draft: RewriteDraft, notices: Notices): void {
  const first = draft.pending[0];
  if (first !== undefined) notices.add(first.source, 'RewriteCond is not followed by a RewriteRule in this server: it has no effect');
}

/** The rule drafts a server uses: its own, with the main server's per RewriteOptions; none when the engine is off. */
export function effectiveRules(own: RewriteDraft, main: RewriteDraft | undefined): RuleDraft[] {
  const engine = own.engine ?? main?.engine ?? false;
  if (!engine) return [];
  if (main === undefined || own.inherit === undefined) return own.rules;
  return own.inherit === 'before' ? [...main.rules, ...own.rules] : [...own.rules, ...main.rules];
}

/** The rules of one server with their targets resolved by `route` (build.ts's Assembler); undefined when there are none. */
export function assembleRewrite(drafts: readonly RuleDraft[], route: (r: RouteDraft) => Route): RewriteConfig | undefined {
  if (drafts.length === 0) return undefined;
  return {
    rules: drafts.map(
      (d): RewriteRule => ({
        pattern: d.pattern,
        negate: d.negate,
        conditions: d.conditions,
        pathTemplate: d.pathTemplate,
        ...(d.queryTemplate !== undefined ? { queryTemplate: d.queryTemplate } : {}),
        ...(d.route !== undefined ? { route: route(d.route) } : {}),
        action: d.action,
        flags: d.flags,
        substitution: d.substitution,
        source: d.source,
      }),
    ),
  };
}

/**
 * The section rules of a server (the main server's sections first, as Apache merges them), with
 * their targets resolved by `route`; undefined when there are none.
 */
export function assembleSectionRewrites(
  sections: readonly SectionRewriteDraft[],
  serverEngine: boolean,
  route: (r: RouteDraft) => Route,
): SectionRewrite[] | undefined {
  const out: SectionRewrite[] = [];
  for (const { section, draft } of sections) {
    if (draft.rules.length === 0) continue;
    const assembled = assembleRewrite(draft.rules, route)!;
    const m = section.match;
    out.push({
      section: m,
      ...(m.kind === 'prefix' ? { directory: sectionDirectory(m.prefix) } : {}),
      engine: draft.engine ?? serverEngine,
      rules: assembled.rules,
    });
  }
  return out.length === 0 ? undefined : out;
}

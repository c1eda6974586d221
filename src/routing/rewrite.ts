// RewriteRule per request (config in src/config/rewrite.ts). As in Apache, mod_rewrite acts in
// the translate-name phase, before ProxyPass is looked at: rules are tried in order on the
// decoded URL-path; one whose pattern and conditions hold proxies ([P]), redirects ([R]) or
// answers 403/410 ([F]/[G]), which ends rewriting; a `-` rule changes nothing and ends it with
// [L]. When no rule decides, the ProxyPass routes do. Conditions are evaluated as mod_rewrite's
// apply_rewrite_rule does, including its [OR] chains.

import type { FrontName, VirtualHost } from '../config/model';
import { frontHostPort, frontUrl, isUrl } from '../http/front-url';
import type { RewriteCondition, RewriteConfig, RewriteRule, SectionRewrite } from '../config/rewrite';
import { canonPath, hasControlOrSpace } from './mapping';
import { acceptedUpgrade, type ProxyDecision, type RouteResult } from './router';
import { sectionApplies } from './section';
import type { Target } from './target';

export interface RewriteRequest {
  readonly method: string;
  readonly target: Target;
  /** The request's header fields, [name0, value0, …]. */
  readonly headers: readonly string[];
  readonly upgrade: string | undefined;
  /** `Host` (or `:authority`): %{SERVER_NAME}, %{SERVER_PORT} and the URL of a redirect to a path. */
  readonly host?: string | undefined;
  /** The client's connection is TLS (%{HTTPS}, %{REQUEST_SCHEME}). */
  readonly secure?: boolean;
  readonly frontName?: FrontName | undefined;
}

type Groups = readonly (string | undefined)[];
const NONE: Groups = [];

/**
 * The decision of the first rule that decides, or undefined when none does (then ProxyPass
 * decides). `subject`: what the patterns see (the decoded path; for a section's rules, see
 * sectionRewrite).
 */
export function rewriteRequest(
  rewrite: RewriteConfig,
  vhost: VirtualHost,
  req: RewriteRequest,
  subject = req.target.path,
): RouteResult | undefined {
  for (const rule of rewrite.rules) {
    const m = rule.pattern.exec(subject);
    if (rule.negate ? m !== null : m === null) continue;
    const ruleGroups: Groups = m ?? NONE;
    const condGroups = conditionsHold(rule.conditions, ruleGroups, req);
    if (condGroups === undefined) continue;
    const action = rule.action;
    switch (action.kind) {
      case 'proxy':
        return proxyTo(rule, vhost, req, ruleGroups, condGroups);
      case 'redirect':
        return redirectTo(rule, action.status, req, ruleGroups, condGroups);
      case 'status':
        if (action.status === 403) return { kind: 'local', status: 403, reason: `forbidden by RewriteRule [F] (${where(rule)})` };
        return { kind: 'redirect', status: 410, reason: `gone by RewriteRule [G] (${where(rule)})` };
      case 'none':
        if (rule.flags.last) return undefined;
    }
  }
  return undefined;
}

function where(rule: RewriteRule): string {
  return `${rule.source.file}:${rule.source.line}`;
}

/** The query a rule leaves: the substitution's (with [QSA] the request's after it), else the request's; [QSD] drops it. */
function ruleQuery(rule: RewriteRule, newQuery: string | undefined, original: string | undefined): string | undefined {
  const kept = rule.flags.qsd ? undefined : original;
  if (newQuery === undefined) return kept;
  if (rule.flags.qsa && newQuery !== '' && kept !== undefined && kept !== '') return `${newQuery}&${kept}`;
  return newQuery === '' ? undefined : newQuery;
}

/**
 * `[R]`: the substitution, made absolute with the front's URL when it is a path, its path escaped
 * and its query (the request's unless it has its own) escaped unless it is the request's, all
 * left as they are with [NE] (mod_rewrite's redirect handling).
 */
function redirectTo(rule: RewriteRule, status: number, req: RewriteRequest, ruleGroups: Groups, condGroups: Groups): RouteResult {
  let url = expand(rule.substitution, ruleGroups, condGroups, req);
  if (url.startsWith('/')) url = frontUrl(req.frontName, req.host, req.secure === true) + url;
  if (!isUrl(url)) return { kind: 'local', status: 500, reason: `RewriteRule redirect target "${url.slice(0, 80)}" is not a URL` };
  const hash = url.indexOf('#');
  const q = url.indexOf('?');
  let newQuery: string | undefined;
  if (q >= 0 && (hash < 0 || q < hash)) {
    newQuery = url.slice(q + 1, hash < 0 ? undefined : hash);
    url = url.slice(0, q) + (hash < 0 ? '' : url.slice(hash));
  }
  const query = ruleQuery(rule, newQuery, req.target.query);
  if (!rule.flags.noescape) {
    // Only what follows the authority is escaped.
    const start = url.indexOf('/', url.indexOf('://') + 3);
    if (start > 0) url = url.slice(0, start) + canonPath(url.slice(start));
  }
  if (query !== undefined) url += '?' + (rule.flags.noescape || query === req.target.query ? query : canonPath(query));
  // With [NE] a decoded %0D%0A or space would reach the header as it is: answered 500 instead.
  if (hasControlOrSpace(url))
    return { kind: 'local', status: 500, reason: `RewriteRule redirect target holds control characters or spaces (${where(rule)})` };
  return { kind: 'redirect', status, location: url, reason: `redirected by RewriteRule (${where(rule)})` };
}

/**
 * Evaluates a rule's conditions: undefined when they fail, else the groups of the last regex
 * condition that matched (for `%N`). An [OR] condition that holds skips the rest of its chain; one
 * that fails lets the next decide (so a trailing [OR] that fails does not fail the rule, as in Apache).
 */
export function conditionsHold(conds: readonly RewriteCondition[], ruleGroups: Groups, req: RewriteRequest): Groups | undefined {
  let condGroups: Groups = NONE;
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const value = expand(c.test, ruleGroups, condGroups, req);
    let matched: boolean;
    let groups: Groups | undefined;
    if (c.pattern.kind === 'equal') {
      matched = (c.nocase ? value.toLowerCase() : value) === c.pattern.value;
    } else {
      const m = c.pattern.regex.exec(value);
      matched = m !== null;
      if (m !== null) groups = m;
    }
    const holds = c.negate ? !matched : matched;
    if (c.or) {
      if (!holds) continue;
      while (i < conds.length && conds[i]!.or) i++;
    } else if (!holds) {
      return undefined;
    }
    if (!c.negate && groups !== undefined) condGroups = groups;
  }
  return condGroups;
}

/**
 * Expands `$N` (rule groups), `%N` (last condition's groups), `%{VAR}` / `%{HTTP:Name}` and `\c`
 * (the character c itself) in a TestString or substitution.
 */
export function expand(text: string, ruleGroups: Groups, condGroups: Groups, req: RewriteRequest): string {
  if (!/[$%\\]/.test(text)) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '\\' && next !== undefined) {
      out += next;
      i++;
    } else if ((c === '$' || c === '%') && next !== undefined && next >= '0' && next <= '9') {
      out += (c === '$' ? ruleGroups : condGroups)[next.charCodeAt(0) - 0x30] ?? '';
      i++;
    } else if (c === '%' && next === '{') {
      const close = text.indexOf('}', i + 2);
      // The config loader refused unterminated references.
      out += variable(text.slice(i + 2, close), req);
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

const HEADER_VARIABLES: Record<string, string> = {
  HTTP_ACCEPT: 'accept',
  HTTP_COOKIE: 'cookie',
  HTTP_FORWARDED: 'forwarded',
  HTTP_HOST: 'host',
  HTTP_PROXY_CONNECTION: 'proxy-connection',
  HTTP_REFERER: 'referer',
  HTTP_USER_AGENT: 'user-agent',
};

/** A server variable's value for this request ('' when unset, as mod_rewrite). */
function variable(name: string, req: RewriteRequest): string {
  if (name.length > 5 && name.slice(0, 5).toUpperCase() === 'HTTP:') return header(req.headers, name.slice(5).toLowerCase());
  const upper = name.toUpperCase();
  const h = HEADER_VARIABLES[upper];
  if (h !== undefined) return header(req.headers, h);
  switch (upper) {
    case 'REQUEST_URI':
      return req.target.path;
    case 'QUERY_STRING':
      return req.target.query ?? '';
    case 'REQUEST_METHOD':
      return req.method;
    case 'HTTPS':
      return req.secure === true ? 'on' : 'off';
    case 'REQUEST_SCHEME':
      return req.secure === true ? 'https' : 'http';
    case 'SERVER_NAME':
      return frontHostPort(req.frontName, req.host, req.secure === true).host;
    case 'SERVER_PORT':
      return String(frontHostPort(req.frontName, req.host, req.secure === true).port);
    default:
      return '';
  }
}

/** Every field `lower` joined with ", " (Apache merges repeated request headers when it reads them). */
function header(headers: readonly string[], lower: string): string {
  let value: string | undefined;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== lower) continue;
    value = value === undefined ? headers[i + 1]! : `${value}, ${headers[i + 1]!}`;
  }
  return value ?? '';
}

/** The rule's target with the substituted path; the mode as for a ProxyPass to the same URL. */
function proxyTo(rule: RewriteRule, vhost: VirtualHost, req: RewriteRequest, ruleGroups: Groups, condGroups: Groups): RouteResult {
  const route = rule.route!;
  let path = expand(rule.pathTemplate, ruleGroups, condGroups, req);
  if (path === '') path = '/';
  // A variable right after host:port must give a path (`ws://h:8065%{REQUEST_URI}`).
  if (path.charCodeAt(0) !== 0x2f)
    return { kind: 'local', status: 500, reason: `RewriteRule [P] (${where(rule)}) maps to a URL with no '/' after the host` };
  // A substitution with `?` sets the query (an empty one drops it; [QSA] appends the request's); without, the request's is kept.
  const newQuery = rule.queryTemplate !== undefined ? expand(rule.queryTemplate, ruleGroups, condGroups, req) : undefined;
  const query = ruleQuery(rule, newQuery, req.target.query);
  // [NE] sends the path as it is, as `nocanon` does (no re-encoding): then it must hold no space or control.
  if (rule.flags.noescape) {
    if (hasControlOrSpace(path)) return { kind: 'local', status: 403, reason: 'RewriteRule [NE] path holds control characters or spaces' };
  } else {
    path = canonPath(path);
  }
  if (query !== undefined && query !== '') {
    if (hasControlOrSpace(query)) return { kind: 'local', status: 403, reason: 'query holds control characters or spaces' };
    path += '?' + query;
  }

  let upgradeValue: string | undefined;
  let http = false;
  if (route.backend !== undefined) {
    upgradeValue = acceptedUpgrade(route.backend.upgrade, req.upgrade);
    http = route.backend.scheme === 'http' || route.backend.scheme === 'https';
  } else {
    for (const member of route.balancer!.balancer.members) {
      upgradeValue ??= acceptedUpgrade(member.backend.upgrade, req.upgrade);
      if (member.backend.scheme === 'http' || member.backend.scheme === 'https') http = true;
    }
  }
  if (upgradeValue === undefined && !http && !vhost.settings.websocketFallbackToProxyHttp) {
    return { kind: 'local', status: 404, reason: 'RewriteRule target takes no such Upgrade, and ProxyWebsocketFallbackToProxyHttp is Off' };
  }
  const mode = upgradeValue !== undefined ? 'upgrade' : 'http';
  if (route.backend !== undefined) {
    const backend = { ...route.backend, url: route.backend.url + path, path };
    return { kind: 'proxy', route, backend, path, mode, upgradeValue };
  }
  return { kind: 'balance', route, balancer: route.balancer!.balancer, path, mode, upgradeValue };
}

/**
 * A request's `<Location>` rules (mod_rewrite's fixup, after ProxyPass): those of the last
 * matching section that has rules, when its engine is on. For a request a ProxyPass or a server
 * RewriteRule [P] already maps, the patterns see what Apache's see there, `proxied`
 * (proxyFilename); for any other request the path below the section's path (`<Location /app/>`:
 * `/app/x` → `x`), as in a `<Directory>` section.
 */
export function sectionRewrite(
  sections: readonly SectionRewrite[],
  vhost: VirtualHost,
  req: RewriteRequest,
  proxied: string | undefined,
): RouteResult | undefined {
  const path = req.target.path;
  for (let i = sections.length - 1; i >= 0; i--) {
    const s = sections[i]!;
    if (!sectionApplies(s.section, path)) continue;
    if (!s.engine) return undefined;
    if (proxied !== undefined) return rewriteRequest(s, vhost, req, proxied);
    const subject = s.directory !== undefined && path.startsWith(s.directory) ? path.slice(s.directory.length) : path;
    return rewriteRequest(s, vhost, req, subject);
  }
  return undefined;
}

/**
 * Apache's file name of a request mod_proxy has mapped, as mod_rewrite's fixup reads it:
 * `proxy:` + the backend (or `balancer://`) URL with the decoded path and no query, since
 * mod_proxy canonicalises it and adds the query only in its own fixup, which runs later.
 */
export function proxyFilename(decision: ProxyDecision): string {
  const url = decision.kind === 'proxy' ? decision.backend.url : decision.route.balancer!.url;
  const slash = url.indexOf('/', url.indexOf('://') + 3);
  const origin = slash < 0 ? url : url.slice(0, slash);
  const q = decision.path.indexOf('?');
  return `proxy:${origin}${unescapeBytes(q < 0 ? decision.path : decision.path.slice(0, q))}`;
}

/** `%XX` → the byte, one char per byte (the inverse of canonPath for the paths routing builds). */
function unescapeBytes(path: string): string {
  if (path.indexOf('%') < 0) return path;
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

// ProxyPass / ProxyPassMatch / ProxySet arguments: the target URL and its key=value parameters.

import { applyBalancerParam, parseBalancerUrl } from './balancer';
import type { BalancerParams, Ctx, RouteDraft, TargetDraft, WorkerParams } from './drafts';
import { ConfigError, type Notices } from './errors';
import { fnmatchRegExp, hasWildcard } from './glob';
import type { RouteMatch, SourceRef } from './model';
import { parseBackendUrl, parseCount, parseDuration, parseOnOff, parseRegex, parseUpgrade } from './values';

/** Apache worker keys wsgate does not implement (yet): a clear error instead of "unknown". */
const UNSUPPORTED_KEYS = new Set([
  'acquire',
  'addressttl',
  'disablereuse',
  'enablereuse',
  'iobuffersize',
  'min',
  'smax',
  'ttl',
  'ping',
  'receivebuffersize',
  'responsefieldsize',
  'secret',
  'mapping',
]);
/** Balancer keys (balancer.ts), and balancer-member keys. */
const BALANCER_KEYS = new Set([
  'lbmethod',
  'stickysession',
  'stickysessionsep',
  'scolonpathdelim',
  'nofailover',
  'maxattempts',
  'failonstatus',
  'failontimeout',
  'forcerecovery',
  'growth',
  'nonce',
]);
const MEMBER_KEYS = new Set([
  'lbset',
  'loadfactor',
  'route',
  'redirect',
  'status',
  'hcmethod',
  'hcinterval',
  'hcpasses',
  'hcfails',
  'hcuri',
  'hcexpr',
  'hctemplate',
]);

/** Applies one `key=value` to `params`. `directive` names the line in messages. */
export function applyWorkerParam(params: WorkerParams, word: string, directive: string, where: SourceRef, notices: Notices): void {
  const eq = word.indexOf('=');
  if (eq <= 0) throw ConfigError.at(where, `${directive}: bad parameter "${word}": expected key=value`);
  const key = word.slice(0, eq).toLowerCase();
  const value = word.slice(eq + 1);
  switch (key) {
    case 'timeout':
      params.timeoutMs = parseDuration(value, `${directive} timeout=`, where, false);
      return;
    case 'connectiontimeout':
      params.connectTimeoutMs = parseDuration(value, `${directive} connectiontimeout=`, where, false);
      return;
    case 'retry':
      params.retryMs = parseDuration(value, `${directive} retry=`, where, true);
      return;
    case 'max':
      params.max = parseCount(value, `${directive} max=`, where);
      return;
    case 'keepalive':
      params.keepalive = parseOnOff(value, `${directive} keepalive=`, where);
      return;
    case 'upgrade': {
      const upgrade = parseUpgrade(value, where);
      if (upgrade.kind === 'any') {
        notices.add(where, `upgrade=${value} is for testing only: any protocol the client asks for is tunnelled`);
      } else if (upgrade.kind === 'none') {
        notices.add(
          where,
          `upgrade=${value} is for testing only: the Upgrade header is not checked and every request is forwarded as a WebSocket upgrade`,
        );
      }
      params.upgrade = upgrade;
      return;
    }
    case 'flushpackets':
      // wsgate never holds back what a backend sent (no output buffering to flush): every value has Apache's `on` effect.
      if (!['on', 'off', 'auto'].includes(value.toLowerCase())) {
        throw ConfigError.at(where, `${directive} flushpackets= must be on, off or auto, got "${value}"`);
      }
      return;
    case 'flushwait':
      if (!/^\d+$/.test(value) || Number(value) > 1000) {
        throw ConfigError.at(where, `${directive} flushwait= must be a number of milliseconds from 0 to 1000, got "${value}"`);
      }
      return;
    default:
      if (MEMBER_KEYS.has(key)) throw ConfigError.at(where, `${directive} ${key}= is only valid on a BalancerMember line`);
      if (BALANCER_KEYS.has(key)) {
        throw ConfigError.at(
          where,
          `${directive} ${key}= is a balancer parameter: use it with a balancer://name target or in <Proxy balancer://name>`,
        );
      }
      if (UNSUPPORTED_KEYS.has(key)) throw ConfigError.at(where, `${directive} ${key}= is not supported yet`);
      throw ConfigError.at(where, `${directive}: unknown parameter "${key}"`);
  }
}

export function parseTarget(
  raw: string,
  words: readonly string[],
  directive: string,
  regex: boolean,
  localPrefix: string | undefined,
  where: SourceRef,
  notices: Notices,
  /** BalancerMember lines: takes the member keys first (returns true when it used the word). */
  memberParam?: (word: string) => boolean,
): TargetDraft {
  const url = parseBackendUrl(raw, where, regex);
  const params: WorkerParams = {};
  let nocanon = false;
  for (const word of words) {
    const flag = word.toLowerCase();
    if (memberParam?.(word)) continue;
    if (flag === 'nocanon') nocanon = true;
    else if (flag === 'noquery') notices.add(where, `${directive} noquery has no effect on ws/http backends (as in Apache)`);
    else if (flag === 'interpolate') throw ConfigError.at(where, `${directive} interpolate is not supported yet`);
    else applyWorkerParam(params, word, directive, where, notices);
  }
  slashNotice(directive, localPrefix, raw, url, where, notices);
  return { raw, url, params, nocanon };
}

function slashNotice(
  directive: string,
  localPrefix: string | undefined,
  raw: string,
  url: { readonly path: string; readonly pathWasEmpty: boolean },
  where: SourceRef,
  notices: Notices,
): void {
  if (localPrefix !== undefined) {
    const localSlash = localPrefix.endsWith('/');
    if (url.pathWasEmpty && localSlash) {
      notices.add(
        where,
        `${directive} "${localPrefix}" "${raw}": the URL has no path while the local path ends in "/"; ` +
          `Apache maps ${localPrefix}rest to ${raw}rest (glued onto the host); write "${raw}/" if you meant a path`,
      );
    } else if (!url.pathWasEmpty && localSlash !== url.path.endsWith('/')) {
      notices.add(
        where,
        `${directive} "${localPrefix}" "${raw}": only one of the two ends in "/", so mapped paths may get "//" or lose a "/" (as in Apache)`,
      );
    }
  }
}

/**
 * ProxyPass (`regex` false) or ProxyPassMatch (`regex` true), in any context. Returns the route;
 * the caller files it with the server or the Location.
 */
export function parseProxyPass(args: readonly string[], regex: boolean, ctx: Ctx, where: SourceRef): RouteDraft {
  const directive = regex ? 'ProxyPassMatch' : 'ProxyPass';
  const notices = ctx.state.notices;
  let match: RouteMatch;
  let useRegex = regex;
  let target: string;
  let rest: readonly string[];
  let fromLocation = false;

  if (ctx.kind === 'location' || ctx.kind === 'locationmatch') {
    const loc = ctx.location;
    if (!loc) throw new Error('location context without a location');
    if (regex && ctx.kind === 'location') {
      throw ConfigError.at(where, 'ProxyPassMatch is not allowed inside <Location>: use <LocationMatch>, or a ProxyPassMatch outside it');
    }
    if (!regex && ctx.kind === 'locationmatch') {
      throw ConfigError.at(where, 'ProxyPass is not allowed inside <LocationMatch>: use ProxyPassMatch there');
    }
    if (loc.route) {
      throw ConfigError.at(
        where,
        `only one ProxyPass per <Location>: this one already has one at ${loc.route.source.file}:${loc.route.source.line}`,
      );
    }
    const first = args[0] as string;
    if (first.startsWith('/')) {
      throw ConfigError.at(
        where,
        `${directive} inside <Location> takes no path (the path is the <Location>'s): ${directive} url [key=value…]`,
      );
    }
    match = loc.match;
    useRegex = match.kind === 'regex';
    target = first;
    rest = args.slice(1);
    fromLocation = true;
  } else {
    let i = 0;
    if (args[0] === '~') {
      if (regex) throw ConfigError.at(where, 'ProxyPassMatch takes a regex already: drop the "~"');
      useRegex = true;
      i = 1;
    }
    const local = args[i];
    const t = args[i + 1];
    if (local === undefined || t === undefined) {
      throw ConfigError.at(
        where,
        `${directive} with one argument is only valid inside <${regex ? 'LocationMatch' : 'Location'}>; here write ${directive} ${regex ? 'regex' : 'path'} url`,
      );
    }
    if (useRegex) {
      match = { kind: 'regex', regex: parseRegex(local, directive, where), pattern: local };
    } else {
      if (!local.startsWith('/')) throw ConfigError.at(where, `${directive}: the path "${local}" must start with "/"`);
      match = { kind: 'prefix', prefix: local };
    }
    target = t;
    rest = args.slice(i + 2);
  }

  if (target === '!') {
    if (rest.length > 0) throw ConfigError.at(where, `${directive} … ! takes no parameters`);
    return { match, exclude: true, regex: useRegex, fromLocation, source: where };
  }
  const keys = takeLineKeys(rest, directive, where);
  rest = keys.rest;
  const maxTunnels = {
    ...(keys.maxTunnels === undefined || keys.maxTunnels === 0 ? {} : { maxTunnels: keys.maxTunnels }),
    ...(keys.pingIntervalMs === undefined ? {} : { pingIntervalMs: keys.pingIntervalMs }),
  };
  const localPrefix = match.kind === 'prefix' ? match.prefix : undefined;
  if (isBalancerUrl(target)) {
    const url = parseBalancerUrl(target, where);
    const params: BalancerParams = {};
    let nocanon = false;
    for (const word of rest) {
      const flag = word.toLowerCase();
      if (flag === 'nocanon') nocanon = true;
      else if (flag === 'noquery') notices.add(where, `${directive} noquery has no effect on ws/http backends (as in Apache)`);
      else applyBalancerParam(params, word, directive, where, notices);
    }
    slashNotice(directive, localPrefix, target, url, where, notices);
    const balancer = { raw: target, name: url.name, path: url.path, pathWasEmpty: url.pathWasEmpty, params, nocanon };
    return { match, exclude: false, balancer, regex: useRegex, fromLocation, ...maxTunnels, source: where };
  }
  const draft = parseTarget(target, rest, directive, useRegex, localPrefix, where, notices);
  return { match, exclude: false, target: draft, regex: useRegex, fromLocation, ...maxTunnels, source: where };
}

/** wsgate's own keys of a ProxyPass line (not the worker's or the balancer's, so ProxySet does not take them). */
interface LineKeys {
  rest: readonly string[];
  maxTunnels?: number;
  pingIntervalMs?: number;
}

/** Takes wsgate's `maxtunnels=N` (0 = none) and `wspinginterval=` (0 = off) out of a ProxyPass line's keys. */
function takeLineKeys(words: readonly string[], directive: string, where: SourceRef): LineKeys {
  const out: LineKeys = { rest: [] };
  const rest: string[] = [];
  for (const word of words) {
    const key = word.slice(0, word.indexOf('=') + 1).toLowerCase();
    if (key === 'maxtunnels=') out.maxTunnels = parseCount(word.slice(11), `${directive} maxtunnels=`, where);
    else if (key === 'wspinginterval=') out.pingIntervalMs = parseDuration(word.slice(15), `${directive} wspinginterval=`, where, true);
    else rest.push(word);
  }
  out.rest = rest;
  return out;
}

/**
 * A `<Proxy>` pattern or ProxySet URL → a matcher on backend URLs as written: with wildcards
 * (`*`, `?`, `[..]`) the whole URL must match (`*` crosses `/`), else it is a case-insensitive
 * prefix, as Apache's proxy_walk does.
 */
export function proxyUrlMatcher(pattern: string): (backendUrl: string) => boolean {
  if (hasWildcard(pattern)) {
    const re = fnmatchRegExp(pattern, { slashes: true, ignoreCase: true });
    return (url) => re.test(url);
  }
  const prefix = pattern.toLowerCase();
  return (url) => url.toLowerCase().startsWith(prefix);
}

export function isBalancerUrl(s: string): boolean {
  return /^balancer:/i.test(s);
}

// Which rule of a virtual host takes a request, where it goes, and whether it is tunnelled
// (REFERENCE §2; research/apache-httpd.md §1b, §2.1–2.8).

import type {
  Backend,
  Balancer,
  Config,
  FileServing,
  HandlerName,
  HandlerSection,
  ListenAddress,
  Route,
  UpgradePolicy,
  VirtualHost,
} from '../config/model';
import type { RequestHead } from '../http/head';
import { aliasMatch, canonPath, hasControlOrSpace, substitute } from './mapping';
import { checkAccess } from '../access/evaluate';
import { fixupRedirect, translateRedirect, type RedirectAnswer } from './redirect';
import { proxyFilename, type RewriteRequest, rewriteRequest, sectionRewrite } from './rewrite';
import { parseTarget, type Target } from './target';
import { sectionApplies } from './section';
import { type FileTarget, mapFile } from './static';
import { selectVirtualHost } from './vhost';
import { checkWebSocketLimits, type LimitState } from './ws-limits';

export interface RequestFacts {
  method: string;
  /** Raw request-target from the request line: origin-form `/p?q`, absolute-form `http://h/p`, or `*`. */
  target: string;
  /** Value of the first Upgrade header, if any (as sent). */
  upgrade?: string;
  /** The request's header fields [name0, value0, …], for RewriteCond %{HTTP:Name}. */
  headers: readonly string[];
  /** `Host` (HTTP/1) or `:authority` (HTTP/2): how a redirect names the front. */
  host?: string;
  /** The client's connection is TLS: a redirect to a path names the front as https. */
  secure?: boolean;
}

/**
 * 400 bad request-target; 403 `nocanon` path or a query with controls or spaces; 404 nothing
 * proxies this path (no rule, `ProxyPass !`, a ws:// rule refused with fallback Off, `%2F`,
 * `OPTIONS *`); 500 the rule builds a URL with no `/` after the authority (`ws://h:1` + `x`); 501
 * TRACE under `TraceEnable Off`.
 */
export type LocalStatus = 400 | 401 | 403 | 404 | 429 | 500 | 501 | 503;

export type RouteResult =
  | {
      kind: 'proxy';
      /** The rule that matched (for logs/counters). */
      route: Route;
      /** The route's backend; for ProxyPassMatch with `$N`, a copy with url/path substituted (same origin). */
      backend: Backend;
      /** Request-target for the backend: path + `?` + query (query verbatim). */
      path: string;
      mode: 'upgrade' | 'http';
      /** Mode `upgrade`: the value to send in `Upgrade:`. */
      upgradeValue?: string;
      /** Variables SetEnvIf/SetEnv set for the request (for `Header … env=`); absent when none. */
      env?: ReadonlyMap<string, string>;
      /** The user Basic authentication let in (for `%u` in the access log); absent when none. */
      user?: string;
    }
  | {
      /** A `balancer://` rule: the exchange elects a member and puts the member's path in front of `path`. */
      kind: 'balance';
      route: Route;
      balancer: Balancer;
      /** Request-target below the balancer URL (its path + the mapped rest + `?` + query), canonicalised as for a backend. */
      path: string;
      mode: 'upgrade' | 'http';
      upgradeValue?: string;
      env?: ReadonlyMap<string, string>;
      user?: string;
    }
  | {
      kind: 'local';
      status: LocalStatus;
      reason: string;
      /** A 401 from access control: the realm for `WWW-Authenticate: Basic realm="…"`. */
      realm?: string;
      /** A 429 from the handshake rate: seconds for `Retry-After`. */
      retryAfter?: number;
    }
  | {
      /**
       * A path no rule proxies, in reach of a `SetHandler` for one of wsgate's handlers
       * (src/handlers/), or mapped to a file by DocumentRoot/Alias (`static`, with `file`).
       */
      kind: 'handler';
      handler: HandlerName | 'static';
      reason: string;
      file?: FileTarget;
    }
  | {
      /** mod_alias (`Redirect*`): answered by wsgate, nothing is proxied. */
      kind: 'redirect';
      /** 3xx with `location`, or the status a `Redirect gone` (410) or `Redirect 404 …` line gives. */
      status: number;
      location?: string;
      reason: string;
    };

/** Who asks: what access control (src/access) needs besides the request head. */
export interface ClientFacts {
  /** The client's address, IPv4 plain (plainAddress). */
  clientIp: string;
  /** The local address of the connection; called only when needed (it may cost a getsockname). */
  localAddress: () => string;
  /** `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`. */
  protocol: string;
  /** The gateway's open tunnels and handshake counts, for the WebSocket limits; without it only the Origin list applies. */
  limits?: LimitState;
}

/** A decision that sends the request to a backend or a balancer. */
export type ProxyDecision = Extract<RouteResult, { kind: 'proxy' | 'balance' }>;

const NO_RULE = 'no ProxyPass rule matches';
const EXCLUDED = 'excluded by ProxyPass !';

type Match = number | RegExpExecArray;

export function routeRequest(vhost: VirtualHost, req: RequestFacts): RouteResult {
  const target = parseTarget(req.method, req.target);
  if (typeof target === 'number') {
    return local(target, target === 400 ? 'invalid request-target' : 'path refused (encoded slash, NUL or OPTIONS *)');
  }
  // mod_proxy's own check (proxy_handler): TraceEnable Off refuses TRACE before any backend is asked.
  if (req.method === 'TRACE' && vhost.settings.traceEnable === 'off') return local(501, 'TRACE denied by TraceEnable Off');
  const routed = routeTarget(vhost, req, target);
  const result = vhost.redirects === undefined && vhost.sectionRewrites === undefined ? routed : afterTranslate(vhost, req, target, routed);
  const handled = vhost.handlers === undefined ? result : withHandler(vhost.handlers, target, result);
  return vhost.files === undefined ? handled : withFiles(vhost.files, target, handled);
}

/**
 * A request no rule proxies and no SetHandler claims goes to the file system when an Alias
 * matches or the server has a DocumentRoot (Apache's translate-name, then the default handler).
 */
function withFiles(files: FileServing, target: Target, result: RouteResult): RouteResult {
  if (result.kind !== 'local' || (result.reason !== NO_RULE && result.reason !== EXCLUDED)) return result;
  const file = mapFile(files, target.path);
  if (file === undefined) return result;
  if (file === 404) return local(404, 'the path names no file that may be served (not UTF-8, a backslash, or outside the root)');
  return { kind: 'handler', handler: 'static', reason: `file from ${file.via}`, file };
}

/**
 * A request no rule proxies (none matches, or `ProxyPass … !`) goes to the handler its sections
 * set, as in Apache, where mod_proxy takes a request it maps before any handler is chosen. The
 * last SetHandler that applies wins; `SetHandler none` clears what an earlier one set.
 */
function withHandler(handlers: readonly HandlerSection[], target: Target, result: RouteResult): RouteResult {
  if (result.kind !== 'local' || (result.reason !== NO_RULE && result.reason !== EXCLUDED)) return result;
  let found: HandlerSection | undefined;
  for (const h of handlers) if (sectionApplies(h.section, target.path)) found = h;
  if (found?.handler === undefined) return result;
  return { kind: 'handler', handler: found.handler, reason: `SetHandler ${found.handler} at ${found.source.file}:${found.source.line}` };
}

/**
 * What follows mod_rewrite's and ProxyPass's translation, in Apache's order: mod_alias's
 * translate-name (only for a request no rule took), then the fixups of the request's sections,
 * mod_rewrite's before mod_alias's (routing/redirect.ts, routing/rewrite.ts sectionRewrite).
 * A request already answered (400, 403, 500, a rewrite redirect) or proxied by a server-level
 * RewriteRule [P] keeps its decision until the fixups.
 */
function afterTranslate(vhost: VirtualHost, req: RequestFacts, target: Target, result: RouteResult): RouteResult {
  let proxied: ProxyDecision | undefined;
  if (result.kind === 'proxy' || result.kind === 'balance') proxied = result;
  else if (result.kind !== 'local' || (result.reason !== NO_RULE && result.reason !== EXCLUDED)) return result;
  const front = { host: req.host, secure: req.secure === true, name: vhost.frontName };
  const redirects = vhost.redirects;
  if (proxied === undefined && redirects !== undefined) {
    const found = translateRedirect(redirects, target, front);
    if (found !== undefined) return redirectResult(found);
  }
  if (vhost.sectionRewrites !== undefined) {
    const facts = rewriteFacts(vhost, req, target);
    const rewritten = sectionRewrite(vhost.sectionRewrites, vhost, facts, proxied && proxyFilename(proxied));
    if (rewritten !== undefined) return rewritten;
  }
  if (redirects !== undefined) {
    const found = fixupRedirect(redirects, target, front);
    if (found !== undefined) return redirectResult(found);
  }
  return result;
}

/** What mod_rewrite's conditions and targets read of a request. */
function rewriteFacts(vhost: VirtualHost, req: RequestFacts, target: Target): RewriteRequest {
  return {
    method: req.method,
    target,
    headers: req.headers,
    upgrade: req.upgrade,
    host: req.host,
    secure: req.secure === true,
    frontName: vhost.frontName,
  };
}

function redirectResult(found: RedirectAnswer | 500): RouteResult {
  if (found === 500) return local(500, 'redirect target is not a URL, or holds control characters or spaces');
  const where = `${found.rule.source.file}:${found.rule.source.line}`;
  return {
    kind: 'redirect',
    status: found.status,
    ...(found.location !== undefined ? { location: found.location } : {}),
    reason: `redirected by ${where}`,
  };
}

function routeTarget(vhost: VirtualHost, req: RequestFacts, target: Target): RouteResult {
  // mod_rewrite runs before ProxyPass (translate-name phase): a RewriteRule [P] that applies decides.
  if (vhost.rewrite !== undefined) {
    const rewritten = rewriteRequest(vhost.rewrite, vhost, rewriteFacts(vhost, req, target));
    if (rewritten !== undefined) return rewritten;
  }
  const path = target.path;
  const routes = vhost.routes;
  let skipped: Route | undefined;
  let skippedMatch: Match = 0;

  // Apache merges the <Location> sections that match in config order, and a <Location> holds one
  // ProxyPass, so only the last matching <Location> rule is tried, then the server rules in order.
  let n = 0;
  while (n < routes.length && routes[n].fromLocation) n++;
  for (let i = n - 1; i >= 0; i--) {
    const m = matchRoute(routes[i], path);
    if (m === undefined) continue;
    const result = take(routes[i], m, target, req.upgrade);
    if (result !== undefined) return result;
    skipped = routes[i];
    skippedMatch = m;
    break;
  }
  for (let i = n; i < routes.length; i++) {
    const m = matchRoute(routes[i], path);
    if (m === undefined) continue;
    const result = take(routes[i], m, target, req.upgrade);
    if (result !== undefined) return result;
    if (skipped === undefined) {
      skipped = routes[i];
      skippedMatch = m;
    }
  }

  // Every matching rule was a ws:// one that did not accept the request (or none matched).
  if (skipped === undefined) return local(404, NO_RULE);
  if (!vhost.settings.websocketFallbackToProxyHttp) {
    return local(404, 'no Upgrade the ws:// rule allows, and ProxyWebsocketFallbackToProxyHttp is Off');
  }
  return proxy(skipped, skippedMatch, target, 'http', undefined);
}

/**
 * The outcome of a rule that matches, or undefined when a ws:// or wss:// rule does not accept
 * the request's Upgrade and the next matching rule is to be tried.
 */
function take(route: Route, m: Match, target: Target, upgrade: string | undefined): RouteResult | undefined {
  const backend = route.backend;
  if (backend === undefined) {
    if (route.balancer !== undefined) return takeBalancer(route, route.balancer.balancer, m, target, upgrade);
    return local(404, EXCLUDED);
  }
  const upgradeValue = acceptedUpgrade(backend.upgrade, upgrade);
  if (upgradeValue !== undefined) return proxy(route, m, target, 'upgrade', upgradeValue);
  if (backend.scheme === 'http' || backend.scheme === 'https') return proxy(route, m, target, 'http', undefined);
  return undefined;
}

/**
 * A balancer rule accepts an upgrade when one of its members does (the exchange then elects
 * among the members that accept it); without one, it serves plain HTTP when it has an http(s)
 * member, else the next rule is tried, as for a ws:// rule.
 */
function takeBalancer(route: Route, balancer: Balancer, m: Match, target: Target, upgrade: string | undefined): RouteResult | undefined {
  let http = false;
  for (const member of balancer.members) {
    const value = acceptedUpgrade(member.backend.upgrade, upgrade);
    if (value !== undefined) return proxy(route, m, target, 'upgrade', value);
    if (member.backend.scheme === 'http' || member.backend.scheme === 'https') http = true;
  }
  return http ? proxy(route, m, target, 'http', undefined) : undefined;
}

/** The prefix length (> 0) or the regex match when the rule matches the decoded path. */
function matchRoute(route: Route, path: string): Match | undefined {
  const match = route.match;
  if (match.kind === 'prefix') return aliasMatch(path, match.prefix) || undefined;
  return match.regex.exec(path) ?? undefined;
}

/**
 * The `Upgrade` value to forward when the backend's `upgrade=` policy allows the client's one,
 * else undefined. The client's whole value is compared (`foo, websocket` is one unknown value).
 */
export function acceptedUpgrade(policy: UpgradePolicy, upgrade: string | undefined): string | undefined {
  switch (policy.kind) {
    case 'tokens':
      if (upgrade !== undefined) {
        for (const token of policy.tokens) if (equalsLowerCase(upgrade, token)) return upgrade;
      }
      return undefined;
    case 'any':
      return upgrade;
    case 'none':
      // Documented behaviour (REFERENCE §1): always a WebSocket upgrade, whatever the client sent.
      return upgrade !== undefined && equalsLowerCase(upgrade, 'websocket') ? upgrade : 'websocket';
  }
}

/** ASCII case-insensitive `value === lower`, where `lower` is already lower-case. */
function equalsLowerCase(value: string, lower: string): boolean {
  if (value.length !== lower.length) return false;
  for (let i = 0; i < value.length; i++) {
    let c = value.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Builds the backend request-target for a matched rule (Apache's ap_proxy_trans_match then canon). */
function proxy(route: Route, m: Match, target: Target, mode: 'upgrade' | 'http', upgradeValue: string | undefined): RouteResult {
  let backend = route.backend;
  const to = backend ?? route.balancer!;
  let url = to.url;
  // `ws://h:1` has no path: Apache glues the rest straight onto the authority.
  let base = to.pathWasEmpty ? '' : to.path;
  // nocanon forwards the raw path and query, unless the raw URI matches the rule differently than
  // the decoded one (Apache's AH01136: then nocanon is ignored as unsafe).
  let raw = to.nocanon;
  let rest: string;
  const match = route.match;
  if (match.kind === 'prefix') {
    const len = m as number;
    if (raw && aliasMatch(target.raw, match.prefix) !== len) raw = false;
    rest = (raw ? target.raw : target.path).slice(len);
  } else {
    let groups = m as RegExpExecArray;
    let subject = target.path;
    if (raw) {
      const rawGroups = match.regex.exec(target.raw);
      if (rawGroups === null) raw = false;
      else {
        subject = target.raw;
        groups = rawGroups;
      }
    }
    const replaced = route.regexTarget === undefined ? base : substitute(base, groups);
    if (replaced === base) {
      // No backreference: the whole URI is appended to the URL.
      rest = subject;
    } else {
      url = substitute(route.regexTarget!, groups);
      if (backend !== undefined) backend = { ...backend, url, path: replaced };
      base = replaced;
      rest = '';
    }
  }

  let path = base + rest;
  if (path === '') path = '/';
  else if (path.charCodeAt(0) !== 0x2f) return local(500, `rule maps to ${url}${rest}, which has no '/' after the host`);
  if (raw) {
    if (hasControlOrSpace(path)) return local(403, 'nocanon path or query holds control characters or spaces');
  } else {
    path = canonPath(path);
    const query = target.query;
    if (query !== undefined) {
      if (hasControlOrSpace(query)) return local(403, 'query holds control characters or spaces');
      path += '?' + query;
    }
  }
  if (backend === undefined) return { kind: 'balance', route, balancer: route.balancer!.balancer, path, mode, upgradeValue };
  return { kind: 'proxy', route, backend, path, mode, upgradeValue };
}

function local(status: LocalStatus, reason: string): RouteResult {
  return { kind: 'local', status, reason };
}

/**
 * Routing, then access control: a request that its server's Require/Allow/Auth* lines refuse
 * becomes a local 401/403 (or 500 for a configuration Apache would fail at run time), so that no
 * front contacts a backend for it. Requests the core refuses first (a bad or refused
 * request-target) are answered without the access check, as Apache's core does. An upgrade
 * that passes is then held to the WebSocket abuse limits (routing/ws-limits.ts: 403, 429, 503).
 */
export function decideRequest(vhost: VirtualHost, req: RequestFacts, client: ClientFacts): RouteResult {
  const decision = allowedRequest(vhost, req, client);
  // The WebSocket limits come after access control: a client refused there is not counted.
  if ((decision.kind !== 'proxy' && decision.kind !== 'balance') || decision.mode !== 'upgrade') return decision;
  const refusal = checkWebSocketLimits(vhost, decision.route, req.method, req.target, req.headers, client.clientIp, client.limits);
  if (refusal === undefined) return decision;
  return { kind: 'local', status: refusal.status, reason: refusal.reason, ...optionalRetry(refusal.retryAfter) };
}

function optionalRetry(retryAfter: number | undefined): { retryAfter?: number } {
  return retryAfter === undefined ? {} : { retryAfter };
}

/** Routing, then access control (see decideRequest). */
function allowedRequest(vhost: VirtualHost, req: RequestFacts, client: ClientFacts): RouteResult {
  const decision = routeRequest(vhost, req);
  const access = vhost.access;
  if (access === undefined) return decision;
  const target = parseTarget(req.method, req.target);
  if (typeof target === 'number') return decision;
  let backendUrl: string | undefined;
  const filePath = decision.kind === 'handler' ? decision.file?.file : undefined;
  if (decision.kind === 'proxy') {
    const url = decision.backend.url;
    const start = url.indexOf('://') + 3;
    const slash = url.indexOf('/', start);
    backendUrl = (slash === -1 ? url : url.slice(0, slash)) + decision.path;
  } else if (decision.kind === 'balance') {
    backendUrl = decision.balancer.url + decision.path;
  }
  const verdict = checkAccess(access, {
    method: req.method,
    path: target.path,
    backendUrl,
    ...(filePath !== undefined ? { filePath: stripSlash(filePath) } : {}),
    clientIp: client.clientIp,
    localAddress: client.localAddress,
    protocol: client.protocol,
    headers: req.headers,
  });
  if (verdict.allowed) {
    if (decision.kind !== 'proxy' && decision.kind !== 'balance') return decision;
    if (verdict.env.size === 0 && verdict.user === undefined) return decision;
    return {
      ...decision,
      ...(verdict.env.size > 0 ? { env: verdict.env } : {}),
      ...(verdict.user !== undefined ? { user: verdict.user } : {}),
    };
  }
  return {
    kind: 'local',
    status: verdict.status,
    reason: verdict.reason,
    ...(verdict.realm !== undefined ? { realm: verdict.realm } : {}),
  };
}

function stripSlash(file: string): string {
  return file.length > 1 && file.endsWith('/') ? file.slice(0, -1) : file;
}

/** The `WWW-Authenticate` value for a 401's realm (quotes and backslashes escaped). */
export function basicChallenge(realm: string): string {
  return `Basic realm="${realm.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The virtual host and the routing decision for a request head; the one place the HTTP/1
 * connection and the native front decide where a request goes.
 */
export function routeHead(
  config: Config,
  listen: ListenAddress,
  localAddress: () => string,
  req: RequestHead,
  clientIp: string,
  limits?: LimitState,
): { vhost: VirtualHost; decision: RouteResult } {
  const secure = listen.protocol === 'https';
  // The local address costs a getsockname(2): ask only when there are virtual hosts to choose from.
  const vhost = config.virtualHosts.length === 0 ? config.mainServer : selectVirtualHost(config, listen, localAddress(), req.host);
  const facts = { method: req.method, target: req.target, upgrade: req.upgrade, headers: req.headers, host: req.host, secure };
  return { vhost, decision: decideRequest(vhost, facts, { clientIp, localAddress, protocol: `HTTP/1.${req.versionMinor}`, limits }) };
}

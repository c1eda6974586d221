// ProxyPassReverse, ProxyPassReverseCookiePath and ProxyPassReverseCookieDomain (mod_proxy), and
// UseCanonicalName, which decides how the front's own URL is written into a mapped Location.
// The lines are kept as drafts while the file is read (a balancer named in ProxyPassReverse may be
// defined further down) and resolved per server by `assembleReverse`.

import type { BalancerDraft, Ctx } from './drafts';
import { ConfigError } from './errors';
import type { FrontName, ReverseAlias, ReverseMap, SectionMatch, SourceRef } from './model';
import type { DirectiveNode } from './parser';
import { parseBalancerUrl } from './balancer';
import { isBalancerUrl } from './worker';

export type ReverseKind = 'location' | 'cookiePath' | 'cookieDomain';

export interface ReverseDraft {
  readonly kind: ReverseKind;
  readonly section?: SectionMatch;
  readonly front: string;
  readonly backend: string;
  readonly source: SourceRef;
}

function refuseInterpolate(node: DirectiveNode, word: string | undefined): void {
  if (word === undefined) return;
  if (word.toLowerCase() !== 'interpolate') {
    throw ConfigError.at(node.source, `${node.name}: unexpected argument "${word}"`);
  }
  throw ConfigError.at(
    node.source,
    `${node.name} … interpolate: environment interpolation is not supported (wsgate has no ProxyPassInterpolateEnv); write the value out`,
  );
}

/**
 * `ProxyPassReverse front-path backend-url` at server level, `ProxyPassReverse backend-url` inside
 * `<Location front-path>` (the section's path is the front path, as Apache's cmd->path).
 */
export function proxyPassReverse(node: DirectiveNode, ctx: Ctx): void {
  const a = node.args;
  let front: string;
  let backend: string;
  if (ctx.kind === 'locationmatch') {
    throw ConfigError.at(
      node.source,
      'ProxyPassReverse inside <LocationMatch> would write the regex into Location headers (as Apache does); put "ProxyPassReverse /path url" in the server or <VirtualHost>',
    );
  }
  if (ctx.location !== undefined && ctx.location.match.kind === 'prefix') {
    if (a.length > 1 && a[1]!.toLowerCase() !== 'interpolate') {
      throw ConfigError.at(
        node.source,
        "ProxyPassReverse cannot have a path when written in a <Location> (the section's path is used): ProxyPassReverse url",
      );
    }
    if (a.length > 2) throw ConfigError.at(node.source, 'ProxyPassReverse inside <Location> takes 1 argument: ProxyPassReverse url');
    refuseInterpolate(node, a[1]);
    front = ctx.location.match.prefix;
    backend = a[0]!;
  } else {
    if (a.length < 2 || a[1]!.toLowerCase() === 'interpolate') {
      throw ConfigError.at(node.source, 'ProxyPassReverse needs a path when not written in a <Location>: ProxyPassReverse /path url');
    }
    refuseInterpolate(node, a[2]);
    front = a[0]!;
    backend = a[1]!;
  }
  if (backend === '') throw ConfigError.at(node.source, 'ProxyPassReverse: the URL is empty');
  push(ctx, 'location', front, backend, node.source);
}

/** `ProxyPassReverseCookiePath backend-path front-path` and `…CookieDomain backend-domain front-domain`. */
export function reverseCookie(kind: 'cookiePath' | 'cookieDomain') {
  return (node: DirectiveNode, ctx: Ctx): void => {
    if (node.args.length < 2) {
      const what = kind === 'cookiePath' ? 'internal-path public-path' : 'internal-domain public-domain';
      throw ConfigError.at(node.source, `${node.name} takes 2 arguments: ${node.name} ${what}`);
    }
    refuseInterpolate(node, node.args[2]);
    push(ctx, kind, node.args[1]!, node.args[0]!, node.source);
  };
}

function push(ctx: Ctx, kind: ReverseKind, front: string, backend: string, source: SourceRef): void {
  const section = ctx.location?.match;
  ctx.server.reverse.push({ kind, front, backend, source, ...(section !== undefined ? { section } : {}) });
}

/** `UseCanonicalName On|Off` (DNS is refused: it would name the front by a reverse lookup of the local address). */
export function useCanonicalName(node: DirectiveNode, ctx: Ctx): void {
  const v = (node.args[0] ?? '').toLowerCase();
  if (v === 'on') ctx.server.canonicalName = true;
  else if (v === 'off') ctx.server.canonicalName = false;
  else if (v === 'dns')
    throw ConfigError.at(node.source, "UseCanonicalName DNS is not supported: use On (the ServerName) or Off (the request's Host)");
  else throw ConfigError.at(node.source, `UseCanonicalName must be On, Off or DNS, got "${node.args[0] ?? ''}"`);
}

/** The port of a `ServerName [scheme://]host[:port]` that parseServerName accepted, if it has one. */
export function serverNamePort(value: string): number | undefined {
  const noScheme = value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const m = /(?:^\[[^\]]*\]|^[^:[]*):(\d+)$/.exec(noScheme);
  return m ? Number(m[1]) : undefined;
}

export interface ReverseServer {
  readonly reverse: readonly ReverseDraft[];
  readonly serverName?: string;
  readonly serverPort?: number;
  readonly canonicalName?: boolean;
}

/**
 * A server's reverse map: rules at server level first (the main server's, then its own), then the
 * ones in sections (main server's first), as Apache merges per-directory configs; the first
 * matching rule of a kind wins.
 */
export function assembleReverse(
  own: ReverseServer,
  main: ReverseServer | undefined,
  balancers: (name: string) => BalancerDraft | undefined,
): ReverseMap | undefined {
  const all = [...(main?.reverse ?? []), ...own.reverse];
  if (all.length === 0) return undefined;
  const ordered = [...all.filter((d) => d.section === undefined), ...all.filter((d) => d.section !== undefined)];
  const pick = (kind: ReverseKind): ReverseAlias[] => ordered.filter((d) => d.kind === kind).map((d) => alias(d, balancers));
  return {
    location: pick('location'),
    cookiePath: pick('cookiePath'),
    cookieDomain: pick('cookieDomain'),
  };
}

/** How a server names itself: its own ServerName/UseCanonicalName, else the main server's. */
export function frontName(own: ReverseServer, main: ReverseServer | undefined): FrontName {
  const serverName = own.serverName ?? main?.serverName;
  const serverPort = own.serverPort ?? main?.serverPort;
  return {
    canonicalName: own.canonicalName ?? main?.canonicalName ?? false,
    ...(serverName !== undefined ? { serverName } : {}),
    ...(serverPort !== undefined ? { serverPort } : {}),
  };
}

function alias(d: ReverseDraft, balancers: (name: string) => BalancerDraft | undefined): ReverseAlias {
  const base = { front: d.front, backend: d.backend, ...(d.section !== undefined ? { section: d.section } : {}) };
  if (d.kind !== 'location' || !isBalancerUrl(d.backend)) return base;
  const url = parseBalancerUrl(d.backend, d.source);
  const b = balancers(url.name);
  // An undefined balancer is compared as written, as Apache does when it finds no such balancer.
  if (b === undefined) return base;
  const slash = d.backend.indexOf('/', 'balancer://'.length);
  const path = slash < 0 ? '' : d.backend.slice(slash);
  // Apache names a worker by its URL with the scheme and host lower-cased and a default port left out.
  const members = b.members.map(
    (m) => `${m.target.url.scheme}://${m.target.url.hostHeader.toLowerCase()}${m.target.url.pathWasEmpty ? '' : m.target.url.path}`,
  );
  return { ...base, members, ...(path.length > 1 ? { balancerPath: path } : {}) };
}

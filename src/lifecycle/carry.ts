// Which live tunnels a reloaded config keeps. A tunnel stays when the new config still has its
// route and its backend; "its route" is decided by what the route means, not by where it is
// written, so that editing another part of the file (which moves every line below it) changes
// nothing for it:
//   - the server: the main server, or a <VirtualHost> with the same addresses, ServerName and
//     ServerAlias list;
//   - the route: the same kind of match (ProxyPass path or ProxyPassMatch pattern), in the same
//     place (<Location> or server level; a RewriteRule [P] with the same pattern), to the same
//     target URL as written (a balancer:// URL or the backend's), with the same exclusion;
//   - the backend: for a plain route, its target (part of the route above); for a balancer, a
//     member with the same URL.
// Settings that only shape new requests (timeouts, headers, access rules, limits) may change: a
// tunnel keeps those it was started with.

import type { Backend, Config, Route, VirtualHost } from '../config/model';

/** Where a tunnel belongs in a config. */
export interface Placement {
  readonly vhost: VirtualHost;
  readonly route: Route;
  readonly backend: Backend;
}

function vhostKey(vh: VirtualHost, config: Config): string {
  if (vh === config.mainServer) return 'main';
  const addresses = vh.addresses.map((a) => `${a.host}:${a.port}`).join(' ');
  return JSON.stringify([addresses, vh.serverName ?? '', vh.serverAliases]);
}

function routeKey(route: Route, rule: string): string {
  const m = route.match;
  const match = m.kind === 'prefix' ? `prefix:${m.prefix}` : `regex:${m.pattern}`;
  const target = route.balancer?.url ?? route.backend?.url ?? '';
  return JSON.stringify([rule, match, route.fromLocation, route.exclude, target, route.regexTarget ?? '']);
}

/** Every route of `vh` with its key: ProxyPass lines, then RewriteRule [P] targets (server level and in sections). */
function* routesOf(vh: VirtualHost, config: Config): Generator<[string, Route]> {
  const server = vhostKey(vh, config);
  for (const r of vh.routes) yield [`${server}|${routeKey(r, '')}`, r];
  for (const rule of vh.rewrite?.rules ?? []) {
    if (rule.route !== undefined) yield [`${server}|${routeKey(rule.route, `rewrite:${rule.pattern.source}`)}`, rule.route];
  }
  for (const section of vh.sectionRewrites ?? []) {
    const where = section.section.kind === 'prefix' ? section.section.prefix : section.section.pattern;
    for (const rule of section.rules) {
      if (rule.route !== undefined) yield [`${server}|${routeKey(rule.route, `rewrite:${where}:${rule.pattern.source}`)}`, rule.route];
    }
  }
}

/**
 * Sorts the tunnels placed under `old` into those `next` keeps, each with its place in `next`,
 * and those it does not (their route or backend is gone).
 */
export function carryTunnels<R extends Placement>(
  tunnels: Iterable<R>,
  old: Config,
  next: Config,
): { readonly kept: Array<[R, Placement]>; readonly gone: R[] } {
  const before = new Map<VirtualHost, Map<Route, string>>();
  for (const vh of [old.mainServer, ...old.virtualHosts]) before.set(vh, new Map([...routesOf(vh, old)].map(([k, r]) => [r, k])));
  const after = new Map<string, { vhost: VirtualHost; route: Route }>();
  for (const vh of [next.mainServer, ...next.virtualHosts]) {
    for (const [k, route] of routesOf(vh, next)) if (!after.has(k)) after.set(k, { vhost: vh, route });
  }
  const kept: Array<[R, Placement]> = [];
  const gone: R[] = [];
  for (const t of tunnels) {
    const key = before.get(t.vhost)?.get(t.route);
    const found = key === undefined ? undefined : after.get(key);
    const backend = found === undefined ? undefined : backendIn(found.route, t);
    if (found === undefined || backend === undefined) gone.push(t);
    else kept.push([t, { vhost: found.vhost, route: found.route, backend }]);
  }
  return { kept, gone };
}

/** The tunnel's backend in the new route: the route's own (same target), or the member with the same URL. */
function backendIn(route: Route, t: Placement): Backend | undefined {
  if (route.balancer !== undefined) return route.balancer.balancer.members.find((m) => m.backend.url === t.backend.url)?.backend;
  if (route.backend === undefined) return undefined;
  // A ProxyPassMatch target with `$N` was filled in per request: the tunnel's own stays.
  return t.backend.url === t.route.backend?.url ? route.backend : t.backend;
}

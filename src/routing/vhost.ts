// Which <VirtualHost> serves a request, as Apache's server/vhost.c chooses: first by the local
// address and port of the connection, then by the Host name among the vhosts left.

import type { Config, ListenAddress, VirtualHost, VirtualHostAddress } from '../config/model';

/**
 * Apache keeps one list of vhosts per address and uses the best-fitting list only:
 * this IP and this port, else this IP and port `*`, else `*` (or `_default_`) and this port,
 * else `*` and port `*`. With none, the main server answers. In the list, the first vhost whose
 * ServerName or ServerAlias matches the Host name wins; else the first of the list (the default
 * vhost for that address). (Apache's last resort, a Host equal to the <VirtualHost> address
 * string, picks the same vhost in a list built from literal addresses, so it is left out.)
 *
 * Addresses are compared literally with `localAddress` (an IPv4-mapped `::ffff:a.b.c.d` is
 * taken as `a.b.c.d`): a <VirtualHost> written with a host name holds the addresses the name
 * resolved to at load (config/resolve.ts).
 */
export function selectVirtualHost(
  config: Config,
  listen: ListenAddress,
  localAddress: string,
  hostHeader: string | undefined,
): VirtualHost {
  const vhosts = config.virtualHosts;
  const local = localAddress.startsWith('::ffff:') && localAddress.includes('.') ? localAddress.slice(7) : localAddress;
  let best = FIT_NONE;
  for (const vh of vhosts) {
    for (const addr of vh.addresses) {
      const f = fit(addr, listen.port, local);
      if (f < best) best = f;
    }
  }
  if (best === FIT_NONE) return config.mainServer;

  const host = hostHeader === undefined ? undefined : hostName(hostHeader);
  let fallback: VirtualHost | undefined;
  for (const vh of vhosts) {
    if (!hasFit(vh, best, listen.port, local)) continue;
    if (fallback === undefined) fallback = vh;
    if (host === undefined) break;
    // A wildcard-address vhost without ServerName takes the main server's (Apache's ap_fini_vhost_config).
    const serverName = vh.serverName ?? (hasAnyHostAddress(vh) ? config.mainServer.serverName : undefined);
    if ((serverName !== undefined && serverNameMatches(serverName, host)) || aliasMatches(vh.serverAliases, host)) return vh;
  }
  return fallback!;
}

const FIT_HOST_PORT = 0;
const FIT_HOST = 1;
const FIT_ANY_HOST = 2; // and this port
const FIT_ANY = 3;
const FIT_NONE = 4;

function fit(addr: VirtualHostAddress, port: number, local: string): number {
  const portMatch = addr.port === port;
  if (!portMatch && addr.port !== '*') return FIT_NONE;
  const h = addr.host;
  if (isAnyHost(h)) return portMatch ? FIT_ANY_HOST : FIT_ANY;
  if (h === local || (h.charCodeAt(0) === 0x5b && h.length === local.length + 2 && h.slice(1, -1) === local)) {
    return portMatch ? FIT_HOST_PORT : FIT_HOST;
  }
  return FIT_NONE;
}

/** `*`, `_default_`, or an unspecified address, which Apache also treats as `*`. */
function isAnyHost(h: string): boolean {
  return h === '*' || h === '_default_' || h === '0.0.0.0' || h === '::' || h === '[::]';
}

function hasAnyHostAddress(vh: VirtualHost): boolean {
  for (const addr of vh.addresses) if (isAnyHost(addr.host)) return true;
  return false;
}

function hasFit(vh: VirtualHost, wanted: number, port: number, local: string): boolean {
  for (const addr of vh.addresses) if (fit(addr, port, local) === wanted) return true;
  return false;
}

/**
 * The Host header's name as Apache's fix_hostname leaves it: lower-case, without `:port`,
 * without the brackets of an IPv6 literal, without a trailing dot.
 */
export function hostName(header: string): string {
  let start = 0;
  let end = header.length;
  if (header.charCodeAt(0) === 0x5b) {
    const close = header.indexOf(']');
    if (close > 0) {
      start = 1;
      end = close;
    }
  } else {
    const colon = header.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > start && header.charCodeAt(end - 1) === 0x2e) end--;
  return header.slice(start, end).toLowerCase();
}

/** ServerName compared case-insensitively, ignoring a `scheme://` prefix, a `:port` and IPv6 brackets. */
function serverNameMatches(name: string, host: string): boolean {
  const scheme = name.indexOf('://');
  let start = scheme < 0 ? 0 : scheme + 3;
  let end = name.length;
  if (name.charCodeAt(start) === 0x5b) {
    const close = name.indexOf(']', start);
    if (close > 0) {
      start++;
      end = close;
    }
  } else {
    const colon = name.indexOf(':', start);
    if (colon >= 0) end = colon;
  }
  if (end - start !== host.length) return false;
  for (let i = 0; i < host.length; i++) {
    let c = name.charCodeAt(start + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== host.charCodeAt(i)) return false;
  }
  return true;
}

/** ServerAlias names (lower-case); those with `*` or `?` are wildcards (Apache's ap_strcasecmp_match). */
function aliasMatches(aliases: readonly string[], host: string): boolean {
  for (const alias of aliases) {
    if (alias === host) return true;
    if ((alias.includes('*') || alias.includes('?')) && wildcardMatch(alias, host)) return true;
  }
  return false;
}

/** `*` matches any run of chars (dots too), `?` any one char. */
export function wildcardMatch(pattern: string, s: string): boolean {
  let p = 0;
  let i = 0;
  let star = -1;
  let resume = 0;
  while (i < s.length) {
    const c = pattern.charCodeAt(p);
    if (p < pattern.length && (c === 0x3f || c === s.charCodeAt(i))) {
      p++;
      i++;
    } else if (c === 0x2a) {
      star = p++;
      resume = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++resume;
    } else {
      return false;
    }
  }
  while (pattern.charCodeAt(p) === 0x2a) p++;
  return p === pattern.length;
}

// Argument values: durations, On/Off, numbers, backend URLs, upgrade= lists, Listen and
// <VirtualHost> addresses, ServerName. Each parser throws a ConfigError at `where`.

import { ConfigError } from './errors';
import type { BackendScheme, Millis, SourceRef, UpgradePolicy } from './model';

/**
 * A duration: a plain number is seconds, `ms` makes it milliseconds (`s` is accepted too).
 * Decimals are allowed (`1.5` = 1500 ms). Negative or non-numeric values are errors; so is 0
 * unless `allowZero` (where 0 means "no limit" or "no delay").
 */
export function parseDuration(value: string, what: string, where: SourceRef, allowZero: boolean): Millis {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s)?$/i.exec(value.trim());
  if (!m) {
    throw ConfigError.at(where, `${what}: "${value}" is not a duration (a number of seconds, or milliseconds with "ms", e.g. 30 or 500ms)`);
  }
  const n = Number(m[1]);
  const ms = Math.round(m[2]?.toLowerCase() === 'ms' ? n : n * 1000);
  if (ms === 0 && !allowZero) throw ConfigError.at(where, `${what}: must be greater than 0, got "${value}"`);
  return ms;
}

export function parseOnOff(value: string, what: string, where: SourceRef): boolean {
  const v = value.toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw ConfigError.at(where, `${what} must be On or Off, got "${value}"`);
}

export function parseCount(value: string, what: string, where: SourceRef): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw ConfigError.at(where, `${what}: "${value}" is not a whole number >= 0`);
  }
  return Number(value);
}

function parsePort(value: string, what: string, where: SourceRef, min: number): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535 || Number(value) < min) {
    throw ConfigError.at(where, `${what}: bad port "${value}" (${min}-65535)`);
  }
  return Number(value);
}

const DEFAULT_PORT: Record<BackendScheme, number> = { ws: 80, http: 80, wss: 443, https: 443 };

export interface BackendUrl {
  readonly scheme: BackendScheme;
  readonly tls: boolean;
  /** Lower-cased; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly originKey: string;
  /** `/` when the URL had no path. */
  readonly path: string;
  readonly pathWasEmpty: boolean;
  /** The `?…` part, only accepted in ProxyPassMatch targets. */
  readonly query: string;
}

const SCHEME_ERRORS: Record<string, string> = {
  balancer: 'a balancer:// URL is only valid as a ProxyPass target, in <Proxy> or in ProxySet, not as a backend',
  unix: 'Unix-domain socket backends (unix:) are not supported',
  fcgi: 'FastCGI backends (fcgi://) are not supported: wsgate proxies ws://, wss://, http:// and https://',
  ajp: 'AJP backends (ajp://) are not supported: wsgate proxies ws://, wss://, http:// and https://',
};

/**
 * A ProxyPass / ProxySet target URL: `scheme://host[:port][/path]`. With `regex` (ProxyPassMatch)
 * the path may hold `$1`…`$9` and a query; the host and port may not.
 */
export function parseBackendUrl(raw: string, where: SourceRef, regex: boolean): BackendUrl {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(raw);
  if (!m) throw ConfigError.at(where, `bad backend URL "${raw}": expected scheme://host[:port]/path`);
  const scheme = (m[1] as string).toLowerCase();
  const rest = m[2] as string;
  const special = SCHEME_ERRORS[scheme];
  if (special) throw ConfigError.at(where, `${special} ("${raw}")`);
  if (scheme !== 'ws' && scheme !== 'wss' && scheme !== 'http' && scheme !== 'https') {
    throw ConfigError.at(where, `unsupported backend scheme "${scheme}" in "${raw}": wsgate proxies ws://, wss://, http:// and https://`);
  }
  if (!rest.startsWith('//')) throw ConfigError.at(where, `bad backend URL "${raw}": expected ${scheme}://host`);
  const afterSlashes = rest.slice(2);
  const authEnd = afterSlashes.search(/[/?#]/);
  const authority = authEnd < 0 ? afterSlashes : afterSlashes.slice(0, authEnd);
  const tail = authEnd < 0 ? '' : afterSlashes.slice(authEnd);
  if (authority.includes('@')) throw ConfigError.at(where, `bad backend URL "${raw}": user info (user@host) is not supported`);

  let host: string;
  let portText: string | undefined;
  let ipv6 = false;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(authority);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2];
    ipv6 = true;
  } else {
    const colon = authority.indexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
  }
  if (authority.includes('${')) {
    throw ConfigError.at(where, `bad backend URL "${raw}": a \${VAR} in it is not defined (Define it, or set the environment variable)`);
  }
  if (host.includes('$') || portText?.includes('$')) {
    throw ConfigError.at(where, `"${raw}": backreferences ($1…) are only supported in the path, not the host or port`);
  }
  if (host === '' || (!ipv6 && !/^[A-Za-z0-9._~%-]+$/.test(host))) {
    throw ConfigError.at(where, `bad backend URL "${raw}": bad host "${host}"`);
  }
  host = host.toLowerCase();
  const s = scheme as BackendScheme;
  const port = portText === undefined ? DEFAULT_PORT[s] : parsePort(portText, `backend URL "${raw}"`, where, 1);

  if (tail.includes('#')) throw ConfigError.at(where, `bad backend URL "${raw}": a fragment (#…) makes no sense here`);
  const q = tail.indexOf('?');
  const pathPart = q < 0 ? tail : tail.slice(0, q);
  const query = q < 0 ? '' : tail.slice(q);
  if (query !== '' && !regex) {
    throw ConfigError.at(where, `bad backend URL "${raw}": a query string is only supported in ProxyPassMatch targets`);
  }
  const tls = s === 'wss' || s === 'https';
  const bracketed = ipv6 ? `[${host}]` : host;
  return {
    scheme: s,
    tls,
    host,
    port,
    hostHeader: port === DEFAULT_PORT[s] ? bracketed : `${bracketed}:${port}`,
    originKey: `${tls ? 'https' : 'http'}://${bracketed}:${port}`,
    path: pathPart === '' ? '/' : pathPart,
    pathWasEmpty: pathPart === '',
    query,
  };
}

const UPGRADE_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)?$/;

/** `upgrade=NAME|a,b|ANY|*|NONE` (keywords case-insensitive; tokens lower-cased). */
export function parseUpgrade(value: string, where: SourceRef): UpgradePolicy {
  const v = value.trim();
  const upper = v.toUpperCase();
  if (upper === 'ANY' || v === '*') return { kind: 'any' };
  if (upper === 'NONE') return { kind: 'none' };
  const tokens = v.split(/[\s,]+/).filter((t) => t !== '');
  if (tokens.length === 0) throw ConfigError.at(where, `upgrade= needs a protocol name, a list, ANY or NONE`);
  for (const t of tokens) {
    if (!UPGRADE_TOKEN.test(t)) throw ConfigError.at(where, `upgrade=: "${t}" is not a valid protocol name`);
  }
  return { kind: 'tokens', tokens: [...new Set(tokens.map((t) => t.toLowerCase()))] };
}

/** `[addr:]port` for Listen; `*:port` and a bare port mean every address. */
export function parseListenAddress(value: string, where: SourceRef): { host?: string; port: number } {
  let m = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(value);
  if (m) return { host: (m[1] as string).toLowerCase(), port: parsePort(m[2] as string, 'Listen', where, 0) };
  m = /^(\d+)$/.exec(value);
  if (m) return { port: parsePort(m[1] as string, 'Listen', where, 0) };
  m = /^([^:[\]]+):(\d+)$/.exec(value);
  if (m) {
    const host = (m[1] as string).toLowerCase();
    const port = parsePort(m[2] as string, 'Listen', where, 0);
    return host === '*' ? { port } : { host, port };
  }
  throw ConfigError.at(where, `bad Listen address "${value}": expected [address:]port, e.g. 8080, 127.0.0.1:8080 or [::1]:8080`);
}

/** One `<VirtualHost>` address: `*`, `_default_`, an IP, `[v6]` or a name, with `:port` or `:*`. */
export function parseVhostAddress(value: string, where: SourceRef): { host: string; port: number | '*' } {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(value);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2];
  } else {
    const colon = value.lastIndexOf(':');
    if (colon >= 0 && value.indexOf(':') !== colon) {
      throw ConfigError.at(where, `bad <VirtualHost> address "${value}": write IPv6 addresses in brackets, e.g. [::1]:80`);
    }
    host = colon < 0 ? value : value.slice(0, colon);
    portText = colon < 0 ? undefined : value.slice(colon + 1);
  }
  if (host === '' || !/^[A-Za-z0-9._*:-]+$/.test(host)) {
    throw ConfigError.at(where, `bad <VirtualHost> address "${value}"`);
  }
  host = host.toLowerCase();
  if (host === '_default_') host = '*';
  const port = portText === undefined || portText === '*' ? '*' : parsePort(portText, `<VirtualHost> address "${value}"`, where, 0);
  return { host, port };
}

/** `ServerName [scheme://]name[:port]` → the lower-cased name. */
export function parseServerName(value: string, where: SourceRef): string {
  const noScheme = value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(noScheme);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2];
  } else {
    const colon = noScheme.indexOf(':');
    host = colon < 0 ? noScheme : noScheme.slice(0, colon);
    portText = colon < 0 ? undefined : noScheme.slice(colon + 1);
  }
  if (host === '' || (!v6 && !/^[A-Za-z0-9._-]+$/.test(host))) {
    throw ConfigError.at(where, `bad ServerName "${value}": expected [scheme://]name[:port]`);
  }
  if (portText !== undefined) parsePort(portText, `ServerName "${value}"`, where, 1);
  return host.toLowerCase();
}

/** A regex argument (ProxyPassMatch, <LocationMatch>); a leading PCRE `(?i)` becomes the `i` flag. */
export function parseRegex(pattern: string, what: string, where: SourceRef): RegExp {
  let source = pattern;
  let flags = '';
  if (source.startsWith('(?i)')) {
    source = source.slice(4);
    flags = 'i';
  }
  try {
    return new RegExp(source, flags);
  } catch (err) {
    throw ConfigError.at(where, `${what}: bad regular expression "${pattern}": ${(err as Error).message}`);
  }
}

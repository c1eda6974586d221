// The front's own URL (`http(s)://host[:port]`), as Apache builds it for a URL it writes itself
// (ap_construct_url): the scheme of the client's connection; the host of the request's `Host`
// (UseCanonicalName Off) or the ServerName (On, or no usable Host); the port of `Host`, else the
// ServerName's, else the scheme's default, which is then left out.

import { hostname } from 'node:os';
import type { FrontName } from '../config/model';

export function frontUrl(name: FrontName | undefined, host: string | undefined, secure: boolean): string {
  const { host: h, port } = frontHostPort(name, host, secure);
  const named = h.includes(':') ? `[${h}]` : h;
  return `${secure ? 'https' : 'http'}://${named}${port === (secure ? 443 : 80) ? '' : `:${port}`}`;
}

/** The front's host name (IPv6 without brackets) and port, as Apache's ap_get_server_name and ap_get_server_port. */
export function frontHostPort(name: FrontName | undefined, host: string | undefined, secure: boolean): { host: string; port: number } {
  const defaultPort = secure ? 443 : 80;
  let h: string | undefined;
  let port: number | undefined;
  if (name?.canonicalName !== true && host !== undefined) {
    const parsed = splitHost(host);
    if (parsed !== undefined) ({ host: h, port } = parsed);
  }
  h ??= name?.serverName ?? hostname().toLowerCase();
  port ??= name?.serverPort ?? defaultPort;
  return { host: h, port };
}

/**
 * A Host value's name (lower-cased, IPv6 without brackets, a trailing dot dropped) and port;
 * undefined for a value that is not a host name (then the ServerName is used), so a client
 * cannot put arbitrary text into a Location wsgate writes.
 */
function splitHost(value: string): { host: string; port: number | undefined } | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d*))?$/.exec(value.trim());
  if (m === null) return undefined;
  let host = m[1]!.toLowerCase();
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host.endsWith('.')) host = host.slice(0, -1);
  const port = m[2] !== undefined && m[2] !== '' ? Number(m[2]) : undefined;
  return { host, port: port !== undefined && port > 0 && port < 65536 ? port : undefined };
}

/** Apache's ap_is_url: a scheme (letters, digits, `+-.`) and a colon. */
export function isUrl(u: string): boolean {
  return /^[A-Za-z0-9+.-]+:/.test(u);
}

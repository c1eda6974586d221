// Applies mod_headers rules (src/config/headers.ts) to a head's fields: `Header` to the responses
// wsgate relays (mod_headers' output fixup), `RequestHeader` to the request for the backend (its
// fixups hook, which runs before mod_proxy adds X-Forwarded-*). Rules act in order, each whose
// env= condition holds on the fields the previous ones left: the server's, then those of each
// <Location>/<LocationMatch> that matches, as Apache merges sections. Field names compare without
// case; values are formatted per request.

import type * as tls from 'node:tls';
import type { FormatPart, HeaderRule } from '../config/headers';
import type { HeaderSection, VirtualHost } from '../config/model';
import { aliasMatch } from '../routing/mapping';
import { parseTarget } from '../routing/target';

/**
 * The per-request environment (Apache's subprocess_env) the `env=` conditions and `%{VAR}e`
 * read: HTTPS=on on a TLS connection (mod_ssl's fixup), the BALANCER_* variables after a
 * balancer election (upstream/balancer/session.ts).
 */
export type RequestEnv = ReadonlyMap<string, string>;

export const EMPTY_ENV: RequestEnv = new Map();

/** What a value may read besides the environment: TLS variables and the request's arrival time. */
export interface FormatExtras {
  /** The client's TLS connection, undefined on a plain one. */
  readonly tls?: tls.TLSSocket;
  /** When the request was read, in microseconds since the epoch (`%t`, `%D`). */
  readonly receivedUs?: number;
}

/** The Header and RequestHeader rules in effect for one request. */
export interface HeaderRules {
  readonly request: readonly HeaderRule[];
  readonly response: readonly HeaderRule[];
}

const NO_RULES: readonly HeaderRule[] = [];

/** The rules for a request to `target` on `vhost`: the server's, then those of each matching section in order. */
export function headerRulesFor(vhost: VirtualHost, method: string, target: string): HeaderRules {
  const request = vhost.requestHeaderRules ?? NO_RULES;
  const response = vhost.headerRules ?? NO_RULES;
  const sections = vhost.headerSections;
  if (sections === undefined) return { request, response };
  const t = parseTarget(method, target);
  if (typeof t === 'number') return { request, response };
  let req: HeaderRule[] | undefined;
  let res: HeaderRule[] | undefined;
  for (const s of sections) {
    if (!sectionMatches(s, t.path)) continue;
    if (s.request.length > 0) (req ??= [...request]).push(...s.request);
    if (s.response.length > 0) (res ??= [...response]).push(...s.response);
  }
  return { request: req ?? request, response: res ?? response };
}

/** <Location> matches as a ProxyPass prefix does (whole segments, runs of `/`); <LocationMatch> by regex on the decoded path. */
function sectionMatches(s: HeaderSection, path: string): boolean {
  return s.match.kind === 'prefix' ? aliasMatch(path, s.match.prefix) > 0 : s.match.regex.test(path);
}

/**
 * The fields after `rules` ([name0, value0, …], a new array; `fields` is not changed).
 * `relayed`: a backend's response or the request for the backend (every rule applies); otherwise
 * wsgate's own error response, which only `always` rules touch (mod_headers' err_headers_out).
 * `requestFields`: what `%{Name}i` reads; undefined for request rules, which read the fields as
 * the previous rules left them.
 */
export function applyHeaderRules(
  rules: readonly HeaderRule[],
  fields: readonly string[],
  env: RequestEnv,
  requestFields: readonly string[] | undefined,
  relayed: boolean,
  extras: FormatExtras = {},
): string[] {
  const out = fields.slice();
  for (const rule of rules) {
    if (!relayed && !rule.always) continue;
    if (rule.condition !== undefined && env.has(rule.condition.env) === rule.condition.negate) continue;
    const lower = rule.name.toLowerCase();
    const value = rule.value.length === 0 ? '' : format(rule.value, env, requestFields ?? out, extras);
    const first = indexOf(out, lower);
    switch (rule.action) {
      case 'set':
        removeAll(out, lower);
        out.push(rule.name, value);
        break;
      case 'add':
        out.push(rule.name, value);
        break;
      case 'append':
        if (first < 0) out.push(rule.name, value);
        else out[first + 1] = `${out[first + 1]!}, ${value}`;
        break;
      case 'merge':
        if (first < 0) out.push(rule.name, value);
        else if (!listHas(out[first + 1]!, value)) out[first + 1] = `${out[first + 1]!}, ${value}`;
        break;
      case 'setifempty':
        if (first < 0) out.push(rule.name, value);
        break;
      case 'unset':
        removeAll(out, lower);
        break;
      case 'edit':
      case 'edit*':
        // Every field of that name is edited; `edit` replaces the first match in each, `edit*` all.
        for (let i = 0; i + 1 < out.length; i += 2) {
          if (out[i]!.toLowerCase() !== lower) continue;
          out[i + 1] = out[i + 1]!.replace(rule.regex!, (...m: unknown[]) => substitute(value, m));
        }
        break;
    }
  }
  return out;
}

/** A replacement as ap_pregsub reads it: `$0`–`$9` and `&` are the match's groups, `\` takes the next character literally. */
function substitute(replacement: string, m: unknown[]): string {
  let out = '';
  for (let i = 0; i < replacement.length; i++) {
    const c = replacement[i]!;
    const next = replacement[i + 1];
    if (c === '\\' && (next === '$' || next === '&' || next === '\\')) {
      out += next;
      i++;
    } else if (c === '&') {
      out += m[0] as string;
    } else if (c === '$' && next !== undefined && next >= '0' && next <= '9') {
      const g = m[Number(next)];
      if (typeof g === 'string') out += g;
      i++;
    } else {
      out += c;
    }
  }
  return out;
}

/** A relayed response head's fields (final or 101) with `rules` applied; the fields themselves when there are none. */
export function relayedFields(
  rules: readonly HeaderRule[],
  fields: string[],
  env: RequestEnv,
  requestFields: readonly string[],
  extras: FormatExtras,
): string[] {
  return rules.length === 0 ? fields : applyHeaderRules(rules, fields, env, requestFields, true, extras);
}

/**
 * The extra fields of an error answer wsgate makes itself ([name0, value0, …]): Retry-After when
 * given, then the `Header always` rules (mod_headers' err_headers_out) acting on it.
 */
export function errorAnswerFields(
  rules: readonly HeaderRule[],
  retryAfterS: number | undefined,
  env: RequestEnv,
  requestFields: readonly string[],
  extras: FormatExtras,
): string[] {
  const fields: string[] = retryAfterS === undefined ? [] : ['Retry-After', String(retryAfterS)];
  return rules.length === 0 ? fields : applyHeaderRules(rules, fields, env, requestFields, false, extras);
}

/** Header fields as HTTP/1.1 header lines. */
export function headerLines(fields: readonly string[]): string {
  let extra = '';
  for (let i = 0; i + 1 < fields.length; i += 2) extra += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return extra;
}

/** Now, in microseconds since the epoch. */
export function nowUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * A mod_ssl variable of the client's connection, as `%{VAR}s` reads it; undefined when it has no
 * value (printed "(null)", as mod_headers does).
 */
export function sslVariable(socket: tls.TLSSocket | undefined, name: string): string | undefined {
  if (name === 'HTTPS') return socket === undefined ? 'off' : 'on';
  if (socket === undefined) return undefined;
  switch (name) {
    case 'SSL_PROTOCOL':
      return socket.getProtocol() ?? undefined;
    case 'SSL_CIPHER':
      return socket.getCipher()?.name;
    case 'SSL_TLS_SNI': {
      const sni = (socket as unknown as { servername?: string | false }).servername;
      return typeof sni === 'string' && sni !== '' ? sni : undefined;
    }
    case 'SSL_SESSION_RESUMED':
      return socket.isSessionReused() ? 'Resumed' : 'Initial';
    case 'SSL_VERSION_LIBRARY':
      return `OpenSSL/${process.versions.openssl}`;
    case 'SSL_CLIENT_VERIFY':
      return 'NONE';
    default:
      // The other SSL_CLIENT_*: no client certificate is ever asked for.
      return undefined;
  }
}

/** A variable of an `expr=` string (config/headers.ts parseExprString); one without a value is empty. */
function exprVariable(name: string, requestFields: readonly string[], extras: FormatExtras): string {
  if (name === 'REQUEST_SCHEME') return extras.tls === undefined ? 'http' : 'https';
  if (name.startsWith('HTTP_')) {
    const i = indexOf(requestFields, name.slice(5).replaceAll('_', '-').toLowerCase());
    return i < 0 ? '' : requestFields[i + 1]!;
  }
  return sslVariable(extras.tls, name) ?? '';
}

/** `%{VAR}e`, `%{Name}i` and `%{VAR}s` with no value give "(null)", as mod_headers. */
function format(parts: readonly FormatPart[], env: RequestEnv, requestFields: readonly string[], extras: FormatExtras): string {
  let s = '';
  for (const p of parts) {
    switch (p.kind) {
      case 'text':
        s += p.text;
        break;
      case 'env':
        s += env.get(p.name) ?? '(null)';
        break;
      case 'request-header': {
        const i = indexOf(requestFields, p.name.toLowerCase());
        s += i < 0 ? '(null)' : requestFields[i + 1]!;
        break;
      }
      case 'ssl':
        s += sslVariable(extras.tls, p.name) ?? '(null)';
        break;
      case 'expr':
        s += exprVariable(p.name, requestFields, extras);
        break;
      case 'time':
        s += `t=${extras.receivedUs ?? nowUs()}`;
        break;
      case 'duration':
        s += `D=${extras.receivedUs === undefined ? 0 : Math.max(0, nowUs() - extras.receivedUs)}`;
        break;
    }
  }
  return s;
}

function indexOf(fields: readonly string[], lower: string): number {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toLowerCase() === lower) return i;
  return -1;
}

function removeAll(fields: string[], lower: string): void {
  for (let i = fields.length - 2; i >= 0; i -= 2) if (fields[i]!.toLowerCase() === lower) fields.splice(i, 2);
}

/** Whether the comma-separated `list` has `item` as an element (quoted strings kept whole). */
function listHas(list: string, item: string): boolean {
  const elements = list.match(/(?:"(?:[^"\\]|\\.)*"|[^,])+/g) ?? [];
  return elements.some((e) => e.trim() === item.trim());
}

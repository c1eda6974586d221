// Applies `Header` rules (src/config/headers.ts) to a response head's fields, as mod_headers'
// output fixup does: in config order, each rule whose env= condition holds acts on the fields the
// previous ones left. Field names compare without case; values are formatted per request.

import type { FormatPart, HeaderRule } from '../config/headers';
import type { VirtualHost } from '../config/model';
import type { RequestHead, ResponseHead } from './head';
import { reverseMapHead } from './reverse-map';
import { viaElement } from './via';

/**
 * The per-request environment (Apache's subprocess_env) the `env=` conditions and `%{VAR}e`
 * read: the BALANCER_* variables after a balancer election (upstream/balancer/session.ts).
 */
export type RequestEnv = ReadonlyMap<string, string>;

export const EMPTY_ENV: RequestEnv = new Map();

/**
 * The response fields after `rules` ([name0, value0, …], a new array; `fields` is not changed).
 * `relayed`: a backend's response (every rule applies); otherwise wsgate's own error response,
 * which only `always` rules touch (mod_headers' err_headers_out).
 */
export function applyHeaderRules(
  rules: readonly HeaderRule[],
  fields: readonly string[],
  env: RequestEnv,
  requestFields: readonly string[],
  relayed: boolean,
): string[] {
  const out = fields.slice();
  for (const rule of rules) {
    if (!relayed && !rule.always) continue;
    if (rule.condition !== undefined && env.has(rule.condition.env) === rule.condition.negate) continue;
    const lower = rule.name.toLowerCase();
    const value = rule.value.length === 0 ? '' : format(rule.value, env, requestFields);
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
    }
  }
  return out;
}

/**
 * A relayed response head (final, 101 or a refused upgrade's) as the client gets it, on every
 * front: the server's ProxyPassReverse* mapping first (mod_proxy does it while reading the
 * backend's head) and ProxyVia's element, then its `Header` rules (mod_headers' output fixup);
 * the head itself when it has none of them. `secure`: the client's connection is TLS (the scheme of a mapped Location).
 */
export function relayedHead(vhost: VirtualHost, res: ResponseHead, env: RequestEnv, req: RequestHead, secure: boolean, h2 = false): ResponseHead {
  let mapped = vhost.reverse === undefined ? res : reverseMapHead(vhost.reverse, res, { req, secure, name: vhost.frontName });
  const via = viaElement(vhost, req, secure, h2);
  // ProxyVia On/Full: our element follows the backend's Via fields, in a field of its own.
  if (via !== undefined) mapped = { ...mapped, headers: [...mapped.headers, 'Via', via] };
  const rules = vhost.headerRules;
  if (rules === undefined) return mapped;
  return { ...mapped, headers: applyHeaderRules(rules, mapped.headers, env, req.headers, true) };
}

/**
 * The extra fields of an error answer wsgate makes itself ([name0, value0, …]): Retry-After when
 * given, then the server's `Header always` rules (mod_headers' err_headers_out) acting on it.
 */
export function errorAnswerFields(vhost: VirtualHost, retryAfterS: number | undefined, env: RequestEnv, requestFields: readonly string[]): string[] {
  const fields: string[] = retryAfterS === undefined ? [] : ['Retry-After', String(retryAfterS)];
  const rules = vhost.headerRules;
  return rules === undefined ? fields : applyHeaderRules(rules, fields, env, requestFields, false);
}

/** errorAnswerFields as HTTP/1.1 header lines. */
export function errorAnswerHeaders(vhost: VirtualHost, retryAfterS: number | undefined, env: RequestEnv, requestFields: readonly string[]): string {
  const fields = errorAnswerFields(vhost, retryAfterS, env, requestFields);
  let extra = '';
  for (let i = 0; i + 1 < fields.length; i += 2) extra += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return extra;
}

/** `%{VAR}e` and `%{Name}i` of an unset variable or absent header give "(null)", as mod_headers. */
function format(parts: readonly FormatPart[], env: RequestEnv, requestFields: readonly string[]): string {
  let s = '';
  for (const p of parts) {
    if (p.kind === 'text') s += p.text;
    else if (p.kind === 'env') s += env.get(p.name) ?? '(null)';
    else {
      const i = indexOf(requestFields, p.name.toLowerCase());
      s += i < 0 ? '(null)' : requestFields[i + 1]!;
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

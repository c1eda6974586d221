// mod_headers' `Header` directive, the part of it that proxy configs use: add, set, append, merge,
// setifempty and unset on the responses wsgate relays, with `%{VAR}e` (the request's environment:
// BALANCER_* after a balancer election), `%{Name}i` (a request header) and `%%` in the value, an
// `env=[!]VAR` condition and the `always`/`onsuccess` keyword. Socket.IO's documented
// `Header add Set-Cookie "SERVERID=sticky.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED`
// is the reason it exists. Rules are applied by src/http/headers-directive.ts.

import type { Ctx } from './drafts';
import { ConfigError } from './errors';
import type { SourceRef } from './model';
import type { DirectiveNode } from './parser';

export type HeaderAction = 'add' | 'set' | 'append' | 'merge' | 'setifempty' | 'unset';

/** A piece of a Header value: literal text, an environment variable or a request header. */
export type FormatPart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'request-header'; readonly name: string };

export interface HeaderRule {
  /** `always`: also wsgate's own error responses; `onsuccess` (default): relayed responses only. */
  readonly always: boolean;
  readonly action: HeaderAction;
  /** The header field name as written. */
  readonly name: string;
  /** Empty for `unset`. */
  readonly value: readonly FormatPart[];
  /** `env=VAR` (applies when VAR is set) or `env=!VAR` (when it is not). */
  readonly condition?: { readonly env: string; readonly negate: boolean };
  readonly source: SourceRef;
}

const ACTIONS = new Set<string>(['add', 'set', 'append', 'merge', 'setifempty', 'unset']);
const UNSUPPORTED_ACTIONS = new Set(['echo', 'edit', 'edit*', 'note']);
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Reads `Header [always|onsuccess] action name [value] [env=[!]VAR]`. */
export function parseHeaderRule(node: DirectiveNode): HeaderRule {
  const where = node.source;
  const args = [...node.args];
  let always = false;
  const first = args[0]!.toLowerCase();
  if (first === 'always' || first === 'onsuccess') {
    always = first === 'always';
    args.shift();
  }
  const actionWord = args.shift();
  if (actionWord === undefined) throw ConfigError.at(where, 'Header needs an action and a header name: Header add|set|append|merge|setifempty|unset Name [value] [env=VAR]');
  const action = actionWord.toLowerCase();
  if (UNSUPPORTED_ACTIONS.has(action)) {
    throw ConfigError.at(where, `Header ${actionWord} is not supported (add, set, append, merge, setifempty and unset are)`);
  }
  if (!ACTIONS.has(action)) {
    throw ConfigError.at(where, `Header: unknown action "${actionWord}" (add, set, append, merge, setifempty or unset)`);
  }
  const name = args.shift();
  if (name === undefined) throw ConfigError.at(where, `Header ${actionWord} needs a header name`);
  if (!FIELD_NAME.test(name)) throw ConfigError.at(where, `Header ${actionWord}: bad header name "${name}"`);
  let valueText: string | undefined;
  if (action !== 'unset') {
    valueText = args.shift();
    if (valueText === undefined) throw ConfigError.at(where, `Header ${actionWord} ${name} needs a value`);
    if (/^expr=/i.test(valueText)) throw ConfigError.at(where, 'Header: expr= values are not supported (use %{VAR}e and %{Name}i)');
  }
  let condition: HeaderRule['condition'];
  const clause = args.shift();
  if (clause !== undefined) {
    const m = /^env=(!?)(.+)$/i.exec(clause);
    if (m === null) {
      const why = /^expr=/i.test(clause) ? 'expr= conditions are not supported' : clause.toLowerCase() === 'early' ? '"early" is not supported' : `unknown condition "${clause}"`;
      throw ConfigError.at(where, `Header: ${why} (use env=VAR or env=!VAR)`);
    }
    condition = { env: m[2] as string, negate: m[1] === '!' };
  }
  if (args.length > 0) throw ConfigError.at(where, `Header: too many arguments ("${args.join(' ')}" is left over)`);
  return {
    always,
    action: action as HeaderAction,
    name,
    value: valueText === undefined ? [] : parseFormat(valueText, where),
    ...(condition !== undefined ? { condition } : {}),
    source: where,
  };
}

/** mod_headers' value format: `%%`, `%{VAR}e`, `%{Name}i`; other specifiers are refused. */
export function parseFormat(text: string, where: SourceRef): FormatPart[] {
  const parts: FormatPart[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '%') {
      literal += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '%') {
      literal += '%';
      i++;
      continue;
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) throw ConfigError.at(where, `Header: unterminated %{ in "${text}"`);
      const name = text.slice(i + 2, close);
      const kind = text[close + 1];
      if (name === '') throw ConfigError.at(where, `Header: empty %{} in "${text}"`);
      if (kind === 'e') parts.push(...flush(), { kind: 'env', name });
      else if (kind === 'i') parts.push(...flush(), { kind: 'request-header', name });
      else throw ConfigError.at(where, `Header: %{${name}}${kind ?? ''} is not supported (%{VAR}e and %{Name}i are)`);
      i = close + 1;
      continue;
    }
    throw ConfigError.at(where, `Header: format %${next ?? ''} is not supported (%%, %{VAR}e and %{Name}i are)`);
  }
  parts.push(...flush());
  return parts;

  function flush(): FormatPart[] {
    if (literal === '') return [];
    const part: FormatPart = { kind: 'text', text: literal };
    literal = '';
    return [part];
  }
}

/** The `Header` directive: server or <VirtualHost> level (per-directory Header is not supported). */
export function headerDirective(node: DirectiveNode, ctx: Ctx): void {
  if (ctx.kind !== 'server' && ctx.kind !== 'vhost') {
    throw ConfigError.at(node.source, 'Header is only supported at the top level or in a <VirtualHost> (not inside <Location> or <Proxy>)');
  }
  ctx.server.headerRules.push(parseHeaderRule(node));
}

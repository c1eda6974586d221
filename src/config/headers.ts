// mod_headers: `Header` (the responses wsgate relays) and `RequestHeader` (the request sent to the
// backend): add, set, append, merge, setifempty, unset, edit and edit* with `%%`, `%{VAR}e` (the
// request's environment: HTTPS on a TLS connection, BALANCER_* after a balancer election),
// `%{Name}i` (a request header), `%{VAR}s` (a TLS variable), `%t` and `%D` in the value, an
// `env=[!]VAR` condition and, for Header, the `always`/`onsuccess` keyword. Server, <VirtualHost>,
// <Location> and <LocationMatch>; rules are applied by src/http/headers-directive.ts.
import type { Ctx } from './drafts';
import { ConfigError } from './errors';
import type { SourceRef } from './model';
import type { DirectiveNode } from './parser';
import { parseRegex } from './values';

export type HeaderAction = 'add' | 'set' | 'append' | 'merge' | 'setifempty' | 'unset' | 'edit' | 'edit*';

/** A piece of a value: literal text, an environment variable, a request header, a TLS variable, `%t` or `%D`. */
export type FormatPart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'request-header'; readonly name: string }
  | { readonly kind: 'ssl'; readonly name: string }
  /** A variable of an `expr=` string value (`expr=%{REQUEST_SCHEME}`): missing values are empty, as ap_expr gives them. */
  | { readonly kind: 'expr'; readonly name: string }
  | { readonly kind: 'time' }
  | { readonly kind: 'duration' };

/**
 * The mod_ssl variables `%{VAR}s` may name: what a TLS connection to wsgate can tell. wsgate asks
 * no client certificate (SSLVerifyClient is not supported), so SSL_CLIENT_VERIFY is NONE and every
 * other SSL_CLIENT_* is unset, as in Apache without client certificates.
 */
export const SSL_VARIABLES: ReadonlySet<string> = new Set([
  'HTTPS',
  'SSL_PROTOCOL',
  'SSL_CIPHER',
  'SSL_TLS_SNI',
  'SSL_SESSION_RESUMED',
  'SSL_VERSION_LIBRARY',
  'SSL_CLIENT_VERIFY',
]);

/**
 * Request fields RequestHeader may not touch: the backend's Host comes from ProxyPreserveHost, the
 * framing and connection fields are wsgate's to write, and the WebSocket key and version are those
 * whose answer (Sec-WebSocket-Accept) wsgate checks on HTTP/2, where it makes the handshake itself.
 */
const PROTECTED_REQUEST_FIELDS = new Set([
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'content-length',
  'sec-websocket-key',
  'sec-websocket-version',
]);

export interface HeaderRule {
  /** `always`: also wsgate's own error responses; `onsuccess` (default): relayed responses only. */
  readonly always: boolean;
  readonly action: HeaderAction;
  /** The header field name as written. */
  readonly name: string;
  /** Empty for `unset`; the replacement for `edit`/`edit*`. */
  readonly value: readonly FormatPart[];
  /** `edit` and `edit*`: what is replaced in each value (`edit*` has the `g` flag). */
  readonly regex?: RegExp;
  /** `env=VAR` (applies when VAR is set) or `env=!VAR` (when it is not). */
  readonly condition?: { readonly env: string; readonly negate: boolean };
  readonly source: SourceRef;
}

const ACTIONS = new Set<string>(['add', 'set', 'append', 'merge', 'setifempty', 'unset', 'edit', 'edit*']);
const UNSUPPORTED_ACTIONS = new Set(['echo', 'note']);
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export type HeaderDirective = 'Header' | 'RequestHeader';

/**
 * Reads `Header [always|onsuccess] action name [value [replacement]] [env=[!]VAR]` or
 * `RequestHeader action name [value [replacement]] [env=[!]VAR]`.
 */
export function parseHeaderRule(node: DirectiveNode, directive: HeaderDirective = 'Header'): HeaderRule {
  const where = node.source;
  const d = directive;
  const args = [...node.args];
  let always = false;
  const first = args[0]!.toLowerCase();
  if (d === 'Header' && (first === 'always' || first === 'onsuccess')) {
    always = first === 'always';
    args.shift();
  }
  const actionWord = args.shift();
  const actions = 'add|set|append|merge|setifempty|unset|edit|edit*';
  if (actionWord === undefined)
    throw ConfigError.at(where, `${d} needs an action and a header name: ${d} ${actions} Name [value] [env=VAR]`);
  const action = actionWord.toLowerCase();
  if (UNSUPPORTED_ACTIONS.has(action) || (d === 'RequestHeader' && action === 'echo')) {
    throw ConfigError.at(where, `${d} ${actionWord} is not supported (add, set, append, merge, setifempty, unset, edit and edit* are)`);
  }
  if (!ACTIONS.has(action)) {
    throw ConfigError.at(where, `${d}: unknown action "${actionWord}" (add, set, append, merge, setifempty, unset, edit or edit*)`);
  }
  const name = args.shift();
  if (name === undefined) throw ConfigError.at(where, `${d} ${actionWord} needs a header name`);
  if (!FIELD_NAME.test(name)) throw ConfigError.at(where, `${d} ${actionWord}: bad header name "${name}"`);
  if (d === 'RequestHeader' && PROTECTED_REQUEST_FIELDS.has(name.toLowerCase())) {
    throw ConfigError.at(
      where,
      `RequestHeader ${actionWord} ${name}: wsgate writes ${name} itself (Host: ProxyPreserveHost; framing, connection and the WebSocket handshake must stay valid)`,
    );
  }
  let valueText: string | undefined;
  let regex: RegExp | undefined;
  if (action === 'edit' || action === 'edit*') {
    const pattern = args.shift();
    valueText = args.shift();
    if (pattern === undefined || valueText === undefined)
      throw ConfigError.at(where, `${d} ${actionWord} ${name} needs a regular expression and a replacement`);
    const re = parseRegex(pattern, `${d} ${actionWord}`, where);
    regex = action === 'edit*' ? new RegExp(re.source, re.flags + 'g') : re;
  } else if (action !== 'unset') {
    valueText = args.shift();
    if (valueText === undefined) throw ConfigError.at(where, `${d} ${actionWord} ${name} needs a value`);
  }
  const exprValue = valueText !== undefined && /^expr=/i.test(valueText) ? parseExprString(valueText.slice(5), where, d) : undefined;
  let condition: HeaderRule['condition'];
  const clause = args.shift();
  if (clause !== undefined) {
    const m = /^env=(!?)(.+)$/i.exec(clause);
    if (m === null) {
      const why = /^expr=/i.test(clause)
        ? 'expr= conditions are not supported'
        : clause.toLowerCase() === 'early'
          ? '"early" is not supported (rules apply once the request is mapped, as Apache\'s default)'
          : `unknown condition "${clause}"`;
      throw ConfigError.at(where, `${d}: ${why} (use env=VAR or env=!VAR)`);
    }
    condition = { env: m[2] as string, negate: m[1] === '!' };
  }
  if (args.length > 0) throw ConfigError.at(where, `${d}: too many arguments ("${args.join(' ')}" is left over)`);
  return {
    always,
    action: action as HeaderAction,
    name,
    value: exprValue ?? (valueText === undefined ? [] : parseFormat(valueText, where, d)),
    ...(regex !== undefined ? { regex } : {}),
    ...(condition !== undefined ? { condition } : {}),
    source: where,
  };
}

/**
 * An `expr=` value that is an ap_expr string: literal text and `%{VAR}` for the variables a request
 * to wsgate has (REQUEST_SCHEME, HTTPS, HTTP_<header>, the SSL_* of %{VAR}s). JupyterHub publishes
 * `RequestHeader set "X-Forwarded-Proto" expr=%{REQUEST_SCHEME}`. Functions, operators and other
 * variables are refused.
 */
function parseExprString(text: string, where: SourceRef, d: HeaderDirective): FormatPart[] {
  const parts: FormatPart[] = [];
  let literal = '';
  const known = 'REQUEST_SCHEME, HTTPS, HTTP_<header> and the SSL_* variables are';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      literal += text[++i];
      continue;
    }
    if (c !== '%' || text[i + 1] !== '{') {
      literal += c;
      continue;
    }
    const close = text.indexOf('}', i + 2);
    const name = close < 0 ? '' : text.slice(i + 2, close).toUpperCase();
    const ok = name === 'REQUEST_SCHEME' || /^HTTP_[A-Z0-9_]+$/.test(name) || SSL_VARIABLES.has(name) || name === 'HTTPS';
    if (!ok) {
      throw ConfigError.at(
        where,
        `${d}: expr= value "${text}": only a string with %{VAR} is supported (${known}); use %{VAR}e, %{Name}i or %{VAR}s otherwise`,
      );
    }
    if (literal !== '') parts.push({ kind: 'text', text: literal });
    literal = '';
    parts.push({ kind: 'expr', name });
    i = close;
  }
  if (literal !== '') parts.push({ kind: 'text', text: literal });
  return parts;
}

/** mod_headers' value format: `%%`, `%{VAR}e`, `%{Name}i`, `%{VAR}s`, `%t`, `%D`; other specifiers are refused. */
export function parseFormat(text: string, where: SourceRef, d: HeaderDirective = 'Header'): FormatPart[] {
  const parts: FormatPart[] = [];
  let literal = '';
  const supported = '%%, %{VAR}e, %{Name}i, %{VAR}s, %t and %D are';
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
    if (next === 't' || next === 'D') {
      parts.push(...flush(), next === 't' ? { kind: 'time' } : { kind: 'duration' });
      i++;
      continue;
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) throw ConfigError.at(where, `${d}: unterminated %{ in "${text}"`);
      const name = text.slice(i + 2, close);
      const kind = text[close + 1];
      if (name === '') throw ConfigError.at(where, `${d}: empty %{} in "${text}"`);
      if (kind === 'e') parts.push(...flush(), { kind: 'env', name });
      else if (kind === 'i') parts.push(...flush(), { kind: 'request-header', name });
      else if (kind === 's') {
        const upper = name.toUpperCase();
        if (!SSL_VARIABLES.has(upper) && !upper.startsWith('SSL_CLIENT_')) {
          throw ConfigError.at(
            where,
            `${d}: %{${name}}s is not a TLS variable wsgate knows (${[...SSL_VARIABLES].join(', ')}, SSL_CLIENT_*)`,
          );
        }
        parts.push(...flush(), { kind: 'ssl', name: upper });
      } else throw ConfigError.at(where, `${d}: %{${name}}${kind ?? ''} is not supported (${supported})`);
      i = close + 1;
      continue;
    }
    throw ConfigError.at(where, `${d}: format %${next ?? ''} is not supported (${supported})`);
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

/** `Header` and `RequestHeader`: server, <VirtualHost>, <Location>, <LocationMatch> (Apache also reads them in <Directory> and .htaccess). */
function fileRule(node: DirectiveNode, ctx: Ctx, d: HeaderDirective): void {
  if (ctx.kind === 'proxy') {
    throw ConfigError.at(node.source, `${d} inside <Proxy> is not supported: put it in a <Location> for the same path, or at server level`);
  }
  const rule = parseHeaderRule(node, d);
  const request = d === 'RequestHeader';
  if (ctx.location !== undefined) (request ? ctx.location.requestHeaderRules : ctx.location.headerRules).push(rule);
  else (request ? ctx.server.requestHeaderRules : ctx.server.headerRules).push(rule);
}

export function headerDirective(node: DirectiveNode, ctx: Ctx): void {
  fileRule(node, ctx, 'Header');
}

export function requestHeaderDirective(node: DirectiveNode, ctx: Ctx): void {
  fileRule(node, ctx, 'RequestHeader');
}

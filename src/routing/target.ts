// The request-target, read the way Apache httpd's core reads it before any module sees it
// (server/protocol.c ap_parse_uri, server/request.c ap_process_request_internal,
// server/util.c ap_normalize_path and unescape_url), with the defaults AllowEncodedSlashes Off
// and MergeSlashes On.
//
// Strings here are byte strings: one char per byte, as the head parser reads them (latin1).
// A decoded `%C3%A9` is two chars, so re-encoding gives the same bytes back.

export interface Target {
  /** Decoded and normalised path (Apache's `r->uri`): the path that rules are matched against. */
  readonly path: string;
  /** The query as sent, without the `?` (Apache's `r->args`); undefined when there was no `?`. */
  readonly query: string | undefined;
  /** Path and query exactly as sent (Apache's `r->unparsed_uri` without scheme and authority): for `nocanon`. */
  readonly raw: string;
}

/** Why a target cannot be routed: 400 malformed, 404 refused by the core (encoded slash or NUL, `OPTIONS *`). */
export type TargetError = 400 | 404;

const SLASH = 0x2f;
const COLON = 0x3a;
const QUESTION = 0x3f;
const HASH = 0x23;

/**
 * Reads an origin-form (`/p?q`), absolute-form (`http://h/p?q`) or asterisk-form (`*`) target.
 * A fragment (`#…`) is dropped as Apache's URI parser does.
 */
export function parseTarget(method: string, target: string): Target | TargetError {
  // A CONNECT's target is an authority (host:port), which Apache refuses to proxy without
  // mod_proxy_connect, and its origin-form is malformed (Apache: 400 either way). Passed on, a
  // backend that takes CONNECT would answer 200 and turn the connection into a tunnel that the
  // proxy would read as an answer without a length.
  if (method === 'CONNECT') return 400;
  let start = 0;
  if (target.charCodeAt(0) !== SLASH) {
    // `*` is valid only for OPTIONS, and never proxied.
    if (target === '*') return method === 'OPTIONS' ? 404 : 400;
    start = pathStart(target);
    if (start < 0) return 400;
  }
  let end = target.indexOf('#', start);
  if (end < 0) end = target.length;
  let pathEnd = target.indexOf('?', start);
  if (pathEnd < 0 || pathEnd > end) pathEnd = end;

  // An absolute-form target without a path means `/`.
  const rawPath = pathEnd === start ? '/' : target.slice(start, pathEnd);
  if (rawPath.charCodeAt(0) !== SLASH) return 400;
  const path = normalizePath(rawPath);
  if (typeof path === 'number') return path;
  return {
    path,
    query: pathEnd < end ? target.slice(pathEnd + 1, end) : undefined,
    raw: start === 0 && end === target.length ? target : target.slice(start, end),
  };
}

/**
 * Where the path starts in an absolute-form target (`scheme:` then `//authority` if present), or -1
 * when the target has no scheme (then it is neither origin-form nor absolute-form).
 */
function pathStart(target: string): number {
  let i = 0;
  while (i < target.length && isSchemeChar(target.charCodeAt(i), i === 0)) i++;
  if (i === 0 || target.charCodeAt(i) !== COLON) return -1;
  i++;
  if (target.charCodeAt(i) !== SLASH || target.charCodeAt(i + 1) !== SLASH) return i;
  for (i += 2; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === SLASH || c === QUESTION || c === HASH) break;
  }
  return i;
}

/** RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`. */
function isSchemeChar(c: number, first: boolean): boolean {
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x7a) return true;
  return !first && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e);
}

/**
 * Decodes `%XX` and resolves the path as Apache's core does: a bad escape or a `..` above the
 * root is 400; `%2F` or `%00` is 404 (AllowEncodedSlashes Off); runs of `/` are merged
 * (MergeSlashes On, which the §2.8 row `/a2//x` → `//x` shows); `.` and `..` segments resolved.
 * Returns `path` itself when there is nothing to do.
 */
export function normalizePath(path: string): string | TargetError {
  let s = path;
  let forbidden = false;
  if (path.indexOf('%') >= 0) {
    let out = '';
    let last = 0;
    for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', last)) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return 400;
      const byte = (hi << 4) | lo;
      // Apache resolves dot-segments before it decodes the rest, so an encoded `/` never splits a
      // segment there: keep it encoded and refuse the request once the 400 checks are done.
      if (byte === SLASH || byte === 0) {
        forbidden = true;
        out += path.slice(last, i + 3);
      } else {
        out += path.slice(last, i) + String.fromCharCode(byte);
      }
      last = i + 3;
    }
    s = out + path.slice(last);
  }
  if (s.indexOf('//') >= 0 || s.indexOf('/.') >= 0) {
    const resolved = resolveSegments(s);
    if (resolved === undefined) return 400;
    s = resolved;
  }
  return forbidden ? 404 : s;
}

/** Merges `/` runs and removes `.` and `..` segments; undefined when `..` climbs above the root. */
function resolveSegments(s: string): string | undefined {
  const parts = s.split('/');
  const kept: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i];
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (kept.length === 0) return undefined;
      kept.pop();
      continue;
    }
    kept.push(seg);
  }
  const last = parts[parts.length - 1];
  // `/a/`, `/a/.` and `/a/b/..` all keep a trailing slash.
  const trailing = kept.length > 0 && (last === '' || last === '.' || last === '..');
  return '/' + kept.join('/') + (trailing ? '/' : '');
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

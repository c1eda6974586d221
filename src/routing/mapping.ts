// From a matched rule to the request-target sent to the backend, as Apache's mod_proxy builds it
// (modules/proxy/mod_proxy.c alias_match and ap_proxy_trans_match, mod_proxy_http.c
// proxy_http_canon, proxy_util.c ap_proxy_canonenc_ex, server/util.c ap_pregsub).

const SLASH = 0x2f;
const DOLLAR = 0x24;
const BACKSLASH = 0x5c;

/**
 * Apache's alias_match: how many chars of `uri` the ProxyPass prefix `alias` covers, or 0 when it
 * does not match. Any run of `/` in the alias matches any run of `/` in the URI, and the last
 * alias segment must end at a segment boundary (`/a2` matches `/a2` and `/a2/x`, not `/a2x`).
 */
export function aliasMatch(uri: string, alias: string): number {
  const aEnd = alias.length;
  const uEnd = uri.length;
  let a = 0;
  let u = 0;
  while (a < aEnd && u < uEnd) {
    if (alias.charCodeAt(a) === SLASH) {
      if (uri.charCodeAt(u) !== SLASH) return 0;
      while (a < aEnd && alias.charCodeAt(a) === SLASH) a++;
      while (u < uEnd && uri.charCodeAt(u) === SLASH) u++;
    } else if (uri.charCodeAt(u++) !== alias.charCodeAt(a++)) {
      return 0;
    }
  }
  // The URI ended first: `/a1` against `/a1/`.
  if (a !== aEnd) return 0;
  if (alias.charCodeAt(aEnd - 1) !== SLASH && u < uEnd && uri.charCodeAt(u) !== SLASH) return 0;
  return u;
}

/**
 * Apache's ap_pregsub: `$0`…`$9` become the groups of `m` (empty when unmatched), `\c` becomes `c`.
 */
export function substitute(template: string, m: RegExpExecArray): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < template.length - 1; i++) {
    const c = template.charCodeAt(i);
    if (c === DOLLAR) {
      const n = template.charCodeAt(i + 1) - 0x30;
      if (n < 0 || n > 9) continue;
      out += template.slice(last, i) + (m[n] ?? '');
    } else if (c === BACKSLASH) {
      out += template.slice(last, i) + template[i + 1];
    } else {
      continue;
    }
    i++;
    last = i + 1;
  }
  return last === 0 ? template : out + template.slice(last);
}

/** Characters Apache leaves as they are in a path (`enc_path`): alphanumerics, `/` and ``~$-_.+!*'(),;:@&=``. */
const PATH_SAFE = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/~$-_.+!*'(),;:@&=") {
  PATH_SAFE[c.charCodeAt(0)] = 1;
}
const HEX = Array.from({ length: 256 }, (_, b) => '%' + b.toString(16).toUpperCase().padStart(2, '0'));

/**
 * Percent-encodes a decoded path as Apache's canon does: `/a b` → `/a%20b`, `%` → `%25`,
 * `~` and `;` kept. Chars are bytes; a char above 0xFF (only config text can hold one) is
 * encoded as its UTF-8 bytes. Returns `path` itself when nothing needs encoding.
 */
export function canonPath(path: string): string {
  let i = 0;
  while (i < path.length && isPathSafe(path.charCodeAt(i))) i++;
  if (i === path.length) return path;
  let out = path.slice(0, i);
  for (; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (isPathSafe(c)) {
      out += path[i];
    } else if (c <= 0xff) {
      out += HEX[c];
    } else {
      const cp = path.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) out += HEX[b];
    }
  }
  return out;
}

function isPathSafe(c: number): boolean {
  return c < 128 && PATH_SAFE[c] === 1;
}

/** True when the string holds a control char, a space or DEL (Apache's ap_scan_vchar_obstext). */
export function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

// Sticky sessions (research/apache-httpd.md §5.2, mod_proxy_balancer.c find_session_route,
// get_path_param, get_cookie_param): the route a request names, from a URL parameter first, then
// a cookie; the route is the part of the value after the separator (`.` by default).

import type { Balancer } from '../../config/model';

/** The route the request names, or undefined. `path` is the request-target below the balancer URL; `headers` as parsed. */
export function sessionRoute(balancer: Balancer, path: string, headers: readonly string[]): string | undefined {
  return stickySession(balancer, path, headers)?.route;
}

/** The route the request names and the name (URL parameter or cookie) it was found under (Apache's sticky_used). */
export function stickySession(
  balancer: Balancer,
  path: string,
  headers: readonly string[],
): { readonly route: string; readonly sticky: string } | undefined {
  const sticky = balancer.stickySession;
  if (sticky === undefined) return undefined;
  // The URL parameter is the `|PARAM` part, or the cookie name when there is none (as Apache).
  const param = sticky.urlParam ?? sticky.cookie;
  const fromUrl = urlParam(path, param);
  const value = fromUrl ?? cookie(headers, sticky.cookie);
  if (value === undefined) return undefined;
  const used = fromUrl !== undefined ? param : sticky.cookie;
  const sep = balancer.stickySessionSep;
  if (sep === undefined) return value === '' ? undefined : { route: value, sticky: used };
  const i = value.indexOf(sep);
  // No separator, no route (Apache: `ROUTEID=B` is round robin, `ROUTEID=.B` is B).
  if (i < 0 || i === value.length - 1) return undefined;
  return { route: value.slice(i + 1), sticky: used };
}

/**
 * `name=value` anywhere in the URL, as Apache's substring search finds it (so `id` also matches
 * `sid=…`); the value ends at `&`, `?` or `#`.
 */
function urlParam(path: string, name: string): string | undefined {
  let from = 0;
  for (;;) {
    const i = path.indexOf(name, from);
    if (i < 0) return undefined;
    const eq = i + name.length;
    if (path.charCodeAt(eq) === 0x3d) {
      let end = eq + 1;
      while (end < path.length && !'&?#'.includes(path[end]!)) end++;
      return path.slice(eq + 1, end);
    }
    from = i + 1;
  }
}

/** The cookie `name` (case-sensitive) of any `Cookie` header: at the start, or after `;`, `,` or blank. */
function cookie(headers: readonly string[], name: string): string | undefined {
  for (let h = 0; h + 1 < headers.length; h += 2) {
    if (headers[h]!.toLowerCase() !== 'cookie') continue;
    const v = headers[h + 1]!;
    let from = 0;
    for (;;) {
      const i = v.indexOf(name + '=', from);
      if (i < 0) break;
      const before = i === 0 ? ';' : v[i - 1]!;
      if (before === ';' || before === ',' || before === ' ' || before === '\t') {
        const start = i + name.length + 1;
        let end = start;
        while (end < v.length && v[end] !== ';' && v[end] !== ',') end++;
        let value = v.slice(start, end).trim();
        if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
        return value;
      }
      from = i + 1;
    }
  }
  return undefined;
}

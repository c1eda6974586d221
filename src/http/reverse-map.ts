// ProxyPassReverse* on an answer head: a backend names itself in `Location`, `Content-Location`,
// `URI` and `Destination` (redirects, created resources) and in the `path=`/`domain=` of its
// cookies; the client must see the front's names instead, or it would leave the proxy. The rules
// are mod_proxy's (proxy_util.c, location and cookie reverse maps):
// - a URL rule matches when its backend URL is a prefix of the value, without case; a rule whose
//   backend form is a path (`/x`) is compared with the path of an absolute value. The value
//   becomes the rule's front path + the rest; if that is not a URL, the front's own URL is put in
//   front: `http(s)://` + the request's Host (UseCanonicalName Off) or the ServerName (On) +
//   `:port` unless it is the scheme's default (Host's port, else ServerName's, else the default).
// - a balancer rule (`balancer://name/path`) matches each member's URL (+ the path) instead.
// - a cookie path rule matches a prefix of `path=` (with case), a domain rule a prefix of
//   `domain=` (without case); the whole attribute value is replaced.
// The first matching rule applies; a rule written in a <Location> only for requests in it.

import type { FrontName, ReverseAlias, ReverseMap, VirtualHost } from '../config/model';
import { sectionApplies } from '../routing/section';
import { frontUrl, isUrl } from './front-url';
import { parseTarget } from '../routing/target';
import type { RequestHead, ResponseHead } from './head';
import { viaElement } from './via';

/** What of the request and its connection the front's URL is built from. */
export interface FrontFacts {
  readonly req: RequestHead;
  readonly name: FrontName | undefined;
  /** The client's connection is TLS: the front URL is https. */
  readonly secure: boolean;
}

const LOCATION_FIELDS = new Set(['location', 'content-location', 'uri', 'destination']);

/** The head with its fields mapped; the head itself when nothing changed. */
export function reverseMapHead(map: ReverseMap, res: ResponseHead, front: FrontFacts): ResponseHead {
  const h = res.headers;
  let out: string[] | undefined;
  let path: string | undefined | null = null;
  for (let i = 0; i < h.length; i += 2) {
    const lower = h[i]!.toLowerCase();
    const isLocation = LOCATION_FIELDS.has(lower);
    if (!isLocation && lower !== 'set-cookie') continue;
    if (path === null) path = requestPath(front.req);
    const value = h[i + 1]!;
    const mapped = isLocation ? mapLocation(map, value, path, front) : mapCookie(map, value, path);
    if (mapped === value) continue;
    out ??= h.slice();
    out[i + 1] = mapped;
  }
  return out === undefined ? res : { ...res, headers: out };
}

/** The decoded request path (<Location> matching); undefined when it cannot be read (then only server-level rules apply). */
function requestPath(req: RequestHead): string | undefined {
  const t = parseTarget(req.method, req.target);
  return typeof t === 'number' ? undefined : t.path;
}

function startsWithNoCase(s: string, prefix: string, at = 0): boolean {
  return s.length - at >= prefix.length && s.slice(at, at + prefix.length).toLowerCase() === prefix.toLowerCase();
}

export function mapLocation(map: ReverseMap, value: string, path: string | undefined, front: FrontFacts): string {
  for (const a of map.location) {
    if (!sectionApplies(a.section, path)) continue;
    const u = a.members !== undefined ? mapBalancer(a, value) : mapUrl(a, value);
    if (u !== undefined) return isUrl(u) ? u : frontUrl(front.name, front.req.host, front.secure) + u;
  }
  return value;
}

function mapUrl(a: ReverseAlias, value: string): string | undefined {
  let part = value;
  if (a.backend.charCodeAt(0) === 0x2f) {
    // A path rule is compared with the path of an absolute URL.
    const scheme = value.indexOf('://');
    if (scheme >= 0) {
      const slash = value.indexOf('/', scheme + 3);
      if (slash >= 0) part = value.slice(slash);
    }
  }
  return startsWithNoCase(part, a.backend) ? a.front + part.slice(a.backend.length) : undefined;
}

function mapBalancer(a: ReverseAlias, value: string): string | undefined {
  const sub = a.balancerPath;
  for (const name of a.members!) {
    if (sub !== undefined) {
      const l = name.endsWith('/') ? name.length - 1 : name.length;
      if (startsWithNoCase(value, name.slice(0, l)) && value.startsWith(sub, l)) return a.front + value.slice(l + sub.length);
    } else if (startsWithNoCase(value, name)) {
      const rest = value.slice(name.length);
      // A front of `/` and a rest starting with `/` would make `//`.
      return a.front === '/' && rest.charCodeAt(0) === 0x2f ? rest : a.front + rest;
    }
  }
  return undefined;
}

/** One Set-Cookie value with its `path=` and `domain=` mapped (the first matching rule of each). */
export function mapCookie(map: ReverseMap, value: string, path: string | undefined): string {
  if (map.cookiePath.length === 0 && map.cookieDomain.length === 0) return value;
  let pathAt = -1;
  let pathEnd = -1;
  let newPath: string | undefined;
  let domainAt = -1;
  let domainEnd = -1;
  let newDomain: string | undefined;
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(';', start);
    if (end < 0) end = value.length;
    let t = start;
    while (t < end && /\s/.test(value[t]!)) t++;
    if (startsWithNoCase(value, 'path=', t) && t + 5 <= end) {
      pathAt = t + 5;
      pathEnd = end;
      const v = value.slice(pathAt, end);
      for (const a of map.cookiePath) {
        if (sectionApplies(a.section, path) && v.startsWith(a.backend)) {
          newPath = a.front;
          break;
        }
      }
    } else if (startsWithNoCase(value, 'domain=', t) && t + 7 <= end) {
      domainAt = t + 7;
      domainEnd = end;
      const v = value.slice(domainAt, end);
      for (const a of map.cookieDomain) {
        if (sectionApplies(a.section, path) && startsWithNoCase(v, a.backend)) {
          newDomain = a.front;
          break;
        }
      }
    }
    start = end + 1;
  }
  // Replace the later attribute first so the earlier one's offsets hold.
  const edits: [number, number, string][] = [];
  if (newPath !== undefined) edits.push([pathAt, pathEnd, newPath]);
  if (newDomain !== undefined) edits.push([domainAt, domainEnd, newDomain]);
  edits.sort((x, y) => y[0] - x[0]);
  let out = value;
  for (const [from, to, text] of edits) out = out.slice(0, from) + text + out.slice(to);
  return out;
}

/**
 * A backend's answer head with what mod_proxy changes while reading it: ProxyPassReverse* mapping
 * and ProxyVia's element (after the backend's own Via fields, in a field of its own); the head
 * itself when the server has neither. `secure`: the client's connection is TLS (the scheme of a
 * mapped Location).
 */
export function proxiedAnswerHead(vhost: VirtualHost, res: ResponseHead, req: RequestHead, secure: boolean, h2: boolean): ResponseHead {
  const mapped = vhost.reverse === undefined ? res : reverseMapHead(vhost.reverse, res, { req, secure, name: vhost.frontName });
  const via = viaElement(vhost, req, secure, h2);
  return via === undefined ? mapped : { ...mapped, headers: [...mapped.headers, 'Via', via] };
}

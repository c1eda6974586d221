// Which request limits (LimitRequestLine, LimitRequestFieldSize, LimitRequestFields) a head is
// read with. As in Apache, they are those of the server the connection's local address selects
// (the first <VirtualHost> for it, else the main server): the Host is not known until the head
// has been read.

import type { Config, ListenAddress, ServerSettings } from '../config/model';
import type { BodyLimits } from '../http/body';
import type { RequestLimits } from '../http/head';
import { selectVirtualHost } from '../routing/vhost';

const bySettings = new WeakMap<ServerSettings, RequestLimits>();
/** Per config: the limits when every server has the same ones (the usual case), else null. */
const uniform = new WeakMap<Config, RequestLimits | null>();

export function limitsOf(s: ServerSettings): RequestLimits {
  let l = bySettings.get(s);
  if (l === undefined) {
    l = { line: s.limitRequestLine, fieldSize: s.limitRequestFieldSize, fields: s.limitRequestFields };
    bySettings.set(s, l);
  }
  return l;
}

/**
 * The limits for a head on `listen`; `localAddress` is only asked for when servers differ in
 * their limits (on the native front it costs a system call).
 */
export function headLimits(config: Config, listen: ListenAddress, localAddress: () => string): RequestLimits {
  let u = uniform.get(config);
  if (u === undefined) {
    const main = limitsOf(config.mainServer.settings);
    const same = config.virtualHosts.every((vh) => {
      const l = limitsOf(vh.settings);
      return l.line === main.line && l.fieldSize === main.fieldSize && l.fields === main.fields;
    });
    u = same ? main : null;
    uniform.set(config, u);
  }
  if (u !== null) return u;
  return limitsOf(selectVirtualHost(config, listen, localAddress(), undefined).settings);
}

const bodyBySettings = new WeakMap<ServerSettings, BodyLimits>();

/**
 * The limits a request's chunked body is held to, from the request's own server (as Apache reads
 * a body after choosing the virtual host): chunk-size and trailer lines within
 * LimitRequestFieldSize, trailers within LimitRequestFields, the payload within LimitRequestBody.
 */
export function bodyLimitsOf(s: ServerSettings): BodyLimits {
  let l = bodyBySettings.get(s);
  if (l === undefined) {
    l = { lineSize: s.limitRequestFieldSize, trailerFields: s.limitRequestFields, maxBody: s.limitRequestBody };
    bodyBySettings.set(s, l);
  }
  return l;
}

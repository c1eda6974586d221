// The abuse limits of WebSocket upgrades, decided with the routing decision and before any
// backend is contacted: the Origin list of the request's server or <Location> (403), the
// handshake rate of the client address (429 with Retry-After), and the caps on open tunnels for
// the gateway, the client address and the route (503). Plain HTTP requests are not limited here.
//
// The tunnel counts are those of tunnels already open: a handshake in progress is not counted, so
// a burst of simultaneous handshakes may pass a cap by the number in flight; the rate bounds that.

import type { VirtualHost } from '../config/model';
import { ANY_ORIGIN } from '../config/websocket-limits';
import type { HandshakeRate } from '../access/handshake-rate';
import { parseTarget } from './target';
import { sectionApplies } from './section';
import type { Route } from '../config/model';

/** What the limits read of the gateway: its open tunnels and the handshake counts. */
export interface LimitState {
  readonly tunnels: {
    readonly size: number;
    countRoute(route: Route): number;
    countClient(ip: string): number;
  };
  readonly handshakeRate: HandshakeRate;
}

/** A refusal: the status, why (for the one log line), and Retry-After seconds for a 429. */
export interface LimitRefusal {
  readonly status: 403 | 429 | 503;
  readonly reason: string;
  readonly retryAfter?: number;
}

/** What a refused rate says in Retry-After: the count starts again within a second. */
const RETRY_AFTER_S = 1;

/**
 * The refusal of an upgrade to `route` by `clientIp`, or undefined when it may go on.
 * `method`/`target` place the request in the server's <Location> sections; `headers` is the
 * request's field list [name, value, …] (any case).
 */
export function checkWebSocketLimits(
  vhost: VirtualHost,
  route: Route,
  method: string,
  target: string,
  headers: readonly string[],
  clientIp: string,
  state: LimitState | undefined,
): LimitRefusal | undefined {
  const allowed = allowedOrigins(vhost, method, target);
  if (allowed !== undefined) {
    const refused = refusedOrigin(allowed, headers);
    if (refused !== undefined) return { status: 403, reason: `Origin ${JSON.stringify(refused)} is not in ProxyWebsocketAllowedOrigins` };
  }
  if (state === undefined) return undefined;
  const s = vhost.settings;
  if (!state.handshakeRate.take(clientIp, s.websocketRate)) {
    return { status: 429, reason: `more than ${s.websocketRate} handshakes in one second (ProxyWebsocketRate)`, retryAfter: RETRY_AFTER_S };
  }
  const tunnels = state.tunnels;
  if (s.websocketMaxTunnels > 0 && tunnels.size >= s.websocketMaxTunnels) {
    return { status: 503, reason: `${tunnels.size} tunnels open (ProxyWebsocketMaxTunnels ${s.websocketMaxTunnels})` };
  }
  if (s.websocketMaxTunnelsPerClient > 0) {
    const n = tunnels.countClient(clientIp);
    if (n >= s.websocketMaxTunnelsPerClient) {
      return {
        status: 503,
        reason: `${n} tunnels open from this address (ProxyWebsocketMaxTunnelsPerClient ${s.websocketMaxTunnelsPerClient})`,
      };
    }
  }
  const max = route.maxTunnels;
  if (max !== undefined) {
    const n = tunnels.countRoute(route);
    if (n >= max) return { status: 503, reason: `${n} tunnels open on this route (maxtunnels=${max})` };
  }
  return undefined;
}

/** The Origin list for this request: the last matching section's, else the server's; undefined = any. */
function allowedOrigins(vhost: VirtualHost, method: string, target: string): readonly string[] | undefined {
  let list = vhost.settings.websocketAllowedOrigins;
  const sections = vhost.sectionOrigins;
  if (sections !== undefined) {
    const t = parseTarget(method, target);
    const path = typeof t === 'number' ? undefined : t.path;
    for (let i = sections.length - 1; i >= 0; i--) {
      if (sectionApplies(sections[i]!.section, path)) {
        list = sections[i]!.origins;
        break;
      }
    }
  }
  return list === undefined || list[0] === ANY_ORIGIN ? undefined : list;
}

/**
 * The first Origin value not in `allowed`, or undefined when every one is (or none was sent: a
 * browser always sends Origin with a WebSocket handshake, so a request without one is not the
 * cross-site page this check is for, but a program that could send any Origin it liked).
 */
function refusedOrigin(allowed: readonly string[], headers: readonly string[]): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length !== 6 || name.toLowerCase() !== 'origin') continue;
    const value = headers[i + 1]!.trim().toLowerCase();
    if (!allowed.includes(value)) return headers[i + 1]!;
  }
  return undefined;
}

// wsgate's abuse limits for WebSockets, named in the style of mod_proxy_wstunnel's directives
// (Apache has none of them): caps on open tunnels (the whole gateway, per client address), a
// rate of handshakes per client address, and the Origins a route accepts an upgrade from. The
// per-route cap is the `maxtunnels=` key of a ProxyPass line (config/worker.ts).
//
// The caps and the rate are the gateway's, so they are set at the top level only; the Origin list
// is per server and per <Location>, like Apache's per-directory settings.

import type { ContextKind, Ctx } from './drafts';
import { ConfigError } from './errors';
import type { DirectiveNode } from './parser';
import { parseCount } from './values';

/** The directive table's view of one directive (the shape of directives.ts's DirectiveSpec). */
export interface LimitDirectiveSpec {
  readonly name: string;
  readonly contexts: readonly ContextKind[];
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

const SERVER: readonly ContextKind[] = ['server'];
const WITH_LOCATION: readonly ContextKind[] = ['server', 'vhost', 'location', 'locationmatch'];

/** The value that allows every Origin (to lift a server's list inside a <Location>). */
export const ANY_ORIGIN = '*';

/**
 * `ProxyWebsocketAllowedOrigins`'s arguments, as the lower-case serialised origins a browser sends
 * (`https://app.example.com`, `http://h:8080`), or [ANY_ORIGIN]. A path, a query or a bare host
 * would never equal an Origin header, so it is refused rather than left to refuse everyone.
 */
export function parseAllowedOrigins(node: DirectiveNode): string[] {
  const out: string[] = [];
  for (const raw of node.args as string[]) {
    if (raw === ANY_ORIGIN) {
      if (node.args.length > 1) throw ConfigError.at(node.source, `ProxyWebsocketAllowedOrigins: "*" allows every Origin and stands alone`);
      return [ANY_ORIGIN];
    }
    if (raw.toLowerCase() === 'null') {
      out.push('null');
      continue;
    }
    const m = /^(https?):\/\/([^/?#\s@]+)$/i.exec(raw);
    if (m === null) {
      throw ConfigError.at(
        node.source,
        `ProxyWebsocketAllowedOrigins: "${raw}" is not an origin; write scheme://host[:port] with no path (e.g. https://app.example.com), null, or *`,
      );
    }
    out.push(raw.toLowerCase());
  }
  return out;
}

function countSetting(
  name: string,
  field: 'websocketMaxTunnels' | 'websocketMaxTunnelsPerClient' | 'websocketRate' | 'websocketDrainRate',
): LimitDirectiveSpec {
  return {
    name,
    contexts: SERVER,
    minArgs: 1,
    maxArgs: 1,
    handle: (node, ctx) => {
      ctx.server.settings[field] = parseCount(node.args[0] as string, name, node.source);
    },
  };
}

export function websocketLimitSpecs(): LimitDirectiveSpec[] {
  return [
    countSetting('ProxyWebsocketMaxTunnels', 'websocketMaxTunnels'),
    countSetting('ProxyWebsocketMaxTunnelsPerClient', 'websocketMaxTunnelsPerClient'),
    countSetting('ProxyWebsocketRate', 'websocketRate'),
    // Paces a stop's or reload's close frames (tunnel/drain.ts); 0: all at once.
    countSetting('ProxyWebsocketDrainRate', 'websocketDrainRate'),
    {
      name: 'ProxyWebsocketAllowedOrigins',
      contexts: WITH_LOCATION,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => {
        const origins = parseAllowedOrigins(node);
        if (ctx.location !== undefined) ctx.server.sectionOrigins.push({ section: ctx.location.match, origins });
        else ctx.server.settings.websocketAllowedOrigins = origins;
      },
    },
  ];
}

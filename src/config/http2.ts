// mod_http2's directives: `Protocols` (which protocols a server speaks: ALPN on https ports,
// prior knowledge on plain ones), `ProtocolsHonorOrder` and `H2WebSockets` (RFC 8441).
// They are server settings, inherited by virtual hosts like the other settings.

import type { ContextKind, Ctx } from './drafts';
import { ConfigError } from './errors';
import type { FrontProtocol } from './model';
import type { DirectiveNode } from './parser';
import { parseCount, parseOnOff } from './values';

/** `H2MaxSessionStreams`'s default, as in mod_http2. */
export const DEFAULT_H2_MAX_SESSION_STREAMS = 100;

/** The directive table's view of one directive (the shape of directives.ts's DirectiveSpec). */
export interface Http2DirectiveSpec {
  readonly name: string;
  readonly contexts: readonly ContextKind[];
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

const SERVER_VHOST: readonly ContextKind[] = ['server', 'vhost'];
const KNOWN: readonly FrontProtocol[] = ['h2', 'h2c', 'http/1.1'];

/** `Protocols h2 http/1.1`: names in preference order; unknown names are an error (Apache ignores them silently, which hides typos). */
export function parseProtocols(node: DirectiveNode): FrontProtocol[] {
  const out: FrontProtocol[] = [];
  for (const raw of node.args) {
    const p = KNOWN.find((k) => k === raw.toLowerCase());
    if (p === undefined) {
      throw ConfigError.at(node.source, `Protocols: unknown protocol "${raw}" (expected h2, h2c or http/1.1)`);
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

export function http2Specs(): Http2DirectiveSpec[] {
  return [
    {
      name: 'Protocols',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => {
        ctx.server.settings.protocols = parseProtocols(node);
      },
    },
    {
      name: 'ProtocolsHonorOrder',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.settings.protocolsHonorOrder = parseOnOff(node.args[0] as string, 'ProtocolsHonorOrder', node.source);
      },
    },
    {
      name: 'H2WebSockets',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.settings.h2WebSockets = parseOnOff(node.args[0] as string, 'H2WebSockets', node.source);
      },
    },
    {
      name: 'H2MaxSessionStreams',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        const n = parseCount(node.args[0] as string, 'H2MaxSessionStreams', node.source);
        // mod_http2 refuses 0 too; above 2^31-1 the SETTINGS value would not fit.
        if (n < 1 || n > 0x7fffffff) throw ConfigError.at(node.source, `H2MaxSessionStreams: ${n} is out of range (1-2147483647)`);
        ctx.server.settings.h2MaxSessionStreams = n;
      },
    },
  ];
}

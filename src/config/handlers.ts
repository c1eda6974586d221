// SetHandler for the handlers wsgate runs itself (src/handlers/): a <Location> whose paths no
// ProxyPass takes answers with wsgate's own page. As in Apache, a ProxyPass that matches wins over
// SetHandler (mod_proxy takes the request before any handler is chosen), so `/metrics` is served
// only where it is not proxied (or is excluded with `ProxyPass /metrics !`). Other handler names
// keep the rule for content wsgate cannot serve (directives.ts onlyWhereProxied).

import type { DirectiveSpec } from './directives';
import type { HandlerName } from './model';

/** The handlers wsgate runs, by their SetHandler name (lower case, as Apache compares them). */
export const HANDLER_NAMES: readonly HandlerName[] = ['health', 'metrics', 'status', 'server-status', 'balancer-manager'];

function isHandlerName(name: string): name is HandlerName {
  return (HANDLER_NAMES as readonly string[]).includes(name);
}

/** `SetHandler NAME` for wsgate's handlers and `none`; any other name goes to `otherwise`. */
export function setHandlerSpec(otherwise: DirectiveSpec): DirectiveSpec {
  return {
    ...otherwise,
    handle: (node, ctx) => {
      const name = (node.args[0] as string).toLowerCase();
      if (node.args.length === 1 && (name === 'none' || isHandlerName(name))) {
        ctx.server.handlers.push({
          ...(ctx.location !== undefined ? { section: ctx.location.match } : {}),
          handler: name === 'none' ? undefined : name,
          source: node.source,
        });
        return;
      }
      otherwise.handle(node, ctx);
    },
  };
}

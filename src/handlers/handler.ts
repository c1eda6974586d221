// The handlers wsgate runs itself for `SetHandler NAME` (config/handlers.ts): each is a
// module-level function that reads the request and answers through a LocalResponse, which each
// front implements once (proxy/local-http1.ts, proxy/local-h2.ts). Routing and access control
// have decided before a handler runs, exactly as for a proxied request, so a handler never checks
// who asks.

import type { Balancer, BalancerMember, Config, HandlerName, VirtualHost } from '../config/model';
import type { GatewayContext, GatewayState } from '../proxy/context';
import type { RequestRecord } from '../proxy/record';
import { parseTarget } from '../routing/target';
import type { TunnelRecord, TunnelRegistry } from '../tunnel/registry';
import type { BoundListener } from '../listeners/bind';
import type { GatewayMetrics } from '../observe/metrics';
import type { StatusBoard, StatusSnapshot } from '../observe/status';
import type { SharedMemberChange } from '../lifecycle/worker-messages';
import type { FileTarget } from '../routing/static';
import { serveHealth } from './health';
import { serveMetrics } from './metrics';
import { serveStatic } from './static';
import { serveStatus } from './status';

/** What a handler may read of the running gateway. */
export interface HandlerHost extends GatewayContext {
  readonly config: Config;
  readonly state: GatewayState;
  readonly tunnels: TunnelRegistry<TunnelRecord>;
  /** The Prometheus registry and its observer (`SetHandler metrics`). */
  readonly metrics: GatewayMetrics;
  /** Handshake rate, recent errors and the member-change nonce (`SetHandler status`). */
  readonly status: StatusBoard;
  /** Client connections not yet tunnels. */
  openConnections(): number;
  /** The bound Listen addresses. */
  addresses(): BoundListener[];
  /** Closes the open tunnels of a member set to drain, paced (Gateway.drainMember); how many. */
  drainMember(balancer: Balancer, member: BalancerMember): number;
  /** Under `wsgate -w N`: every worker's metrics and status, and member changes passed to all (undefined in a single process). */
  readonly workers?: WorkerView | undefined;
}

/** The view over all the workers of `wsgate -w N` (lifecycle/worker-link.ts). */
export interface WorkerView {
  /** Every worker's metrics in one exposition text. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Every worker's status snapshot merged into one. */
  status(): Promise<StatusSnapshot>;
  /** A member change made here, for the other workers to make too. */
  shareMemberChange(change: SharedMemberChange): void;
}

export interface LocalRequest {
  readonly method: string;
  /** The request-target as sent (path and query). */
  readonly target: string;
  /** The decoded path, and the query without its `?` (undefined when there is none). */
  readonly path: string;
  readonly query: string | undefined;
  /** [name0, value0, …] as received (HTTP/2 pseudo-fields left out). */
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly secure: boolean;
  readonly vhost: VirtualHost;
  readonly record: RequestRecord;
  /** For `static`: the file routing mapped the path to (routing/static.ts). */
  readonly file?: FileTarget;
}

/** The request as a handler sees it (`fields`: the head's fields, HTTP/2 pseudo-fields left out). */
export function localRequest(
  head: { readonly method: string; readonly target: string; readonly host: string | undefined },
  fields: readonly string[],
  secure: boolean,
  vhost: VirtualHost,
  record: RequestRecord,
  file?: FileTarget,
): LocalRequest {
  // Routing read the target already: a handler is chosen only for one it could parse.
  const t = parseTarget(head.method, head.target);
  const path = typeof t === 'number' ? head.target : t.path;
  const query = typeof t === 'number' ? undefined : t.query;
  return {
    method: head.method,
    target: head.target,
    path,
    query,
    headers: fields,
    host: head.host,
    secure,
    vhost,
    record,
    ...(file !== undefined ? { file } : {}),
  };
}

/** How a handler answers, the same on every front. Fields are [name0, value0, …]; the front adds framing ones. */
export interface LocalResponse {
  /** A whole answer (no body sent for HEAD). */
  send(status: number, fields: readonly string[], body: string | Buffer): void;
  /**
   * An answer whose body is written as it comes until `end()` or the client leaves: of unknown
   * length (server-sent events), or of `length` bytes (a file; HTTP/1.1 then keeps the connection).
   * For HEAD the head alone is sent and the stream ends at once.
   */
  open(status: number, fields: readonly string[], length?: number): LocalStream;
  /**
   * The request body, whole, when it is at most `max` bytes; undefined when it is larger (answer
   * 413) or not length-delimited over HTTP/1.1 (answer 411).
   */
  body(max: number): Promise<Buffer | undefined>;
}

export interface LocalStream {
  /**
   * False once the client is gone or the stream ended; the write is dropped then. `next` is called
   * once the front can take more (back-pressure); never when the write was dropped.
   */
  write(chunk: string | Buffer, next?: () => void): boolean;
  end(): void;
  /** Called once when the client leaves or the stream ends. */
  onClose(fn: () => void): void;
}

export type Handler = (host: HandlerHost, req: LocalRequest, res: LocalResponse) => void | Promise<void>;

const HANDLERS: Record<HandlerName | 'static', Handler> = {
  health: serveHealth,
  metrics: serveMetrics,
  status: serveStatus,
  // Apache's names for the same pages: mod_status's and mod_proxy_balancer's.
  'server-status': serveStatus,
  'balancer-manager': serveStatus,
  static: serveStatic,
};

const TEXT = ['Content-Type', 'text/plain; charset=utf-8'];

/** Runs `name`; a handler that throws is a wsgate bug: logged, and the client gets a 500 if nothing was sent. */
export function runHandler(host: HandlerHost, name: HandlerName | 'static', req: LocalRequest, res: LocalResponse): void {
  let sent = false;
  const guarded: LocalResponse = {
    send: (status, fields, body) => {
      if (sent) return;
      sent = true;
      res.send(status, fields, body);
    },
    open: (status, fields, length) => {
      sent = true;
      return res.open(status, fields, length);
    },
    body: (max) => res.body(max),
  };
  const failed = (e: unknown): void => {
    host.log.error('handler failed (a wsgate bug)', { handler: name, reason: e instanceof Error ? e.message : String(e) });
    guarded.send(500, TEXT, 'Internal Server Error\n');
  };
  try {
    const done = HANDLERS[name](host, req, guarded);
    if (done !== undefined) done.catch(failed);
  } catch (e) {
    failed(e);
  }
}

// Who watches requests and tunnels end: the access log, the tunnel records, the metrics and the
// status page each register an observer here instead of being called from every front. A request
// reports once when it ends without becoming a tunnel (answered, refused, failed, aborted, client
// gone); a tunnel reports when it opens and when it closes. The one record a request carries from
// accept to close (proxy/record.ts) is what they read.

import type { Logger } from './log';
import type { RequestRecord } from '../proxy/record';
import type { TunnelRecord } from '../tunnel/registry';

export interface Observer {
  /** A request ended without becoming a tunnel: `rec.outcome` says how, `rec.finishedAt` when. */
  requestEnded?(rec: RequestRecord): void;
  tunnelOpened?(t: TunnelRecord): void;
  /** `t.tunnel.closeReason` says why; its byte counts and times are final. */
  tunnelClosed?(t: TunnelRecord): void;
}

/** The gateway's observers. An observer that throws is logged and does not stop the others. */
export class Observers {
  private list: Observer[] = [];

  constructor(private readonly log: Logger) {}

  add(o: Observer): void {
    this.list = [...this.list, o];
  }

  remove(o: Observer): void {
    this.list = this.list.filter((x) => x !== o);
  }

  requestEnded(rec: RequestRecord): void {
    for (const o of this.list) {
      if (o.requestEnded === undefined) continue;
      try {
        o.requestEnded(rec);
      } catch (e) {
        this.failed(e);
      }
    }
  }

  tunnelOpened(t: TunnelRecord): void {
    for (const o of this.list) {
      if (o.tunnelOpened === undefined) continue;
      try {
        o.tunnelOpened(t);
      } catch (e) {
        this.failed(e);
      }
    }
  }

  tunnelClosed(t: TunnelRecord): void {
    for (const o of this.list) {
      if (o.tunnelClosed === undefined) continue;
      try {
        o.tunnelClosed(t);
      } catch (e) {
        this.failed(e);
      }
    }
  }

  private failed(e: unknown): void {
    this.log.error('observer failed (a wsgate bug)', { reason: e instanceof Error ? e.message : String(e) });
  }
}

// The access log: an observer that writes Apache's lines (CustomLog, TransferLog) and the JSON
// tunnel records (`CustomLog FILE tunnel`, tunnel-log.ts) when a request or a tunnel ends. The
// server that took the request decides where (its own CustomLog lines, or the main server's);
// a request refused before any server was chosen goes to the main server's logs. A plain
// request is written when it ends; a tunnel once, when it closes, as the 101 it began with.

import type { AccessLogSpec, Config, VirtualHost } from '../config/model';
import type { RequestRecord } from '../proxy/record';
import type { TunnelRecord } from '../tunnel/registry';
import { acquireLogFile, type LogFile, openLogFile, releaseLogFile } from './log-files';
import type { Observer } from './observers';
import { writeHandshakeRecord, writeTunnelRecord } from './tunnel-log';

export { reopenAll } from './log-files';

/** What the access log asks of the gateway. */
export interface AccessLogHost {
  readonly config: Config;
  /** The canonical name of a server (%v). */
  serverName(vhost: VirtualHost): string;
}

/** Every file a config logs to. */
export function logFilesOf(config: Config): Set<string> {
  const paths = new Set<string>();
  for (const vh of [config.mainServer, ...config.virtualHosts]) for (const l of vh.logs ?? []) paths.add(l.file);
  return paths;
}

export class AccessLog implements Observer {
  private held: LogFile[] = [];

  constructor(private readonly host: AccessLogHost) {}

  /** Opens the files `config` names (throws, having opened none, when one cannot be opened) and lets go of the others. */
  use(config: Config): Promise<void> {
    const next: LogFile[] = [];
    try {
      for (const p of logFilesOf(config)) next.push(acquireLogFile(p));
    } catch (e) {
      for (const f of next) void releaseLogFile(f);
      throw e;
    }
    const old = this.held;
    this.held = next;
    return Promise.all(old.map(releaseLogFile)).then(() => undefined);
  }

  /** Lets go of every file (the last user closes each after its pending lines). */
  close(): Promise<void> {
    const old = this.held;
    this.held = [];
    return Promise.all(old.map(releaseLogFile)).then(() => undefined);
  }

  requestEnded(rec: RequestRecord): void {
    const vhost = rec.server ?? this.host.config.mainServer;
    const logs = vhost.logs;
    if (logs === undefined) return;
    for (const l of logs) {
      if (!this.wanted(l, rec)) continue;
      const file = openLogFile(l.file);
      if (file === undefined) continue;
      if (l.kind === 'access') file.write(`${l.format({ rec, serverName: this.host.serverName(vhost) })}\n`);
      else if (rec.upgrade !== undefined) writeHandshakeRecord(file, rec);
    }
  }

  tunnelClosed(t: TunnelRecord): void {
    const logs = t.vhost.logs;
    if (logs === undefined) return;
    for (const l of logs) {
      if (!this.wanted(l, t.request)) continue;
      const file = openLogFile(l.file);
      if (file === undefined) continue;
      if (l.kind === 'access') file.write(`${l.format({ rec: t.request, tunnel: t.tunnel, serverName: this.host.serverName(t.vhost) })}\n`);
      else writeTunnelRecord(file, t);
    }
  }

  /** `env=VAR` / `env=!VAR`: whether the variable is set (to anything, even empty), as Apache tests it. */
  private wanted(l: AccessLogSpec, rec: RequestRecord): boolean {
    const c = l.condition;
    if (c === undefined) return true;
    return (rec.vars?.env.get(c.name) !== undefined) !== c.negate;
  }
}

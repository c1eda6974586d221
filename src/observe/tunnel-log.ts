// The tunnel records: one JSON line per tunnel when it ends, and one per upgrade handshake that
// did not become a tunnel, written with pino to the files named by `CustomLog FILE tunnel`. They
// answer "why did my socket die": who ended it, after how long, with how many bytes each way.
// No header is written, so no secret can be; nothing is written unless a CustomLog asks.

import pino from 'pino';
import type { RequestRecord } from '../proxy/record';
import type { TunnelRecord } from '../tunnel/registry';
import type { CloseReason } from '../tunnel/tunnel';
import type { LogFile } from './log-files';

/** Who ended a tunnel, in the operator's words. */
export type EndedBy = 'clean' | 'client' | 'backend' | 'idle' | 'shutdown' | 'reload' | 'drain' | 'error';

/**
 * `clean`: both sides closed their half (a WebSocket close handshake, or both FINs); which side
 * began is not recorded. A reset or an error of one side names that side (and `error` says what);
 * `error` alone: both FINs came but a side never finished writing (FIN timeout).
 */
export const ENDED_BY: Record<CloseReason, EndedBy> = {
  closed: 'clean',
  'client-error': 'client',
  'client-reset': 'client',
  'backend-error': 'backend',
  'backend-reset': 'backend',
  'idle-timeout': 'idle',
  shutdown: 'shutdown',
  reload: 'reload',
  drain: 'drain',
  'fin-timeout': 'error',
  // A side that did not answer wsgate's ping is dead: the error names it (closeDetail).
  'ping-timeout': 'error',
};

const kJson = Symbol('wsgate.tunnelLog');
type FileWithJson = LogFile & { [kJson]?: pino.Logger };

/** The pino logger writing to `file` (one per file, made at its first record). */
function jsonOf(file: LogFile): pino.Logger {
  const f = file as FileWithJson;
  let j = f[kJson];
  if (j === undefined) {
    // pino writes whole lines to any object with write(); the LogFile swaps its stream on reopen.
    j = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, file);
    f[kJson] = j;
  }
  return j;
}

function http(rec: RequestRecord): string {
  return rec.protocol === 'h2' ? '2' : `1.${rec.versionMinor}`;
}

/** One tunnel's record, at its close. */
export function writeTunnelRecord(file: LogFile, t: TunnelRecord): void {
  const rec = t.request;
  const tunnel = t.tunnel;
  const reason = tunnel.closeReason ?? 'closed';
  const codes = tunnel.wsCloseCodes();
  const ws = tunnel.wsCounts();
  jsonOf(file).info(
    {
      request: rec.id,
      tunnel: tunnel.id,
      client: rec.clientIp,
      clientPort: rec.clientPort === 0 ? undefined : rec.clientPort,
      vhost: rec.vhost,
      route: rec.route,
      backend: rec.backend,
      upgrade: rec.upgrade,
      http: http(rec),
      tls: rec.tls,
      handshakeMs: rec.tunnelAt > 0 ? rec.tunnelAt - rec.headAt : undefined,
      durationMs: tunnel.endedAt - tunnel.startedAt,
      bytesUp: tunnel.bytesUp,
      bytesDown: tunnel.bytesDown,
      endedBy: ENDED_BY[reason],
      reason,
      error: tunnel.closeDetail,
      engine: tunnel.usedNative ? 'native' : 'js',
      // A WebSocket's close frames: each peer's first code (absent: it sent none; 1005: one
      // without a code), wsgate's own, and who sent the first close frame.
      closeClient: nonZero(codes?.client),
      closeBackend: nonZero(codes?.backend),
      closeWsgate: nonZero(codes?.wsgate),
      closeFirst: codes === undefined ? undefined : (codes.first ?? 'none'),
      framesUp: ws?.framesUp,
      framesDown: ws?.framesDown,
      messagesUp: ws?.messagesUp,
      messagesDown: ws?.messagesDown,
      violationsUp: ws === undefined || ws.violationsUp === 0 ? undefined : ws.violationsUp,
      violationsDown: ws === undefined || ws.violationsDown === 0 ? undefined : ws.violationsDown,
    },
    'tunnel closed',
  );
}

function nonZero(n: number | undefined): number | undefined {
  return n === 0 ? undefined : n;
}

/** An upgrade request that did not become a tunnel: refused, answered without a 101, failed, or left by its client. */
export function writeHandshakeRecord(file: LogFile, rec: RequestRecord): void {
  const o = rec.outcome;
  jsonOf(file).info(
    {
      request: rec.id,
      client: rec.clientIp,
      clientPort: rec.clientPort === 0 ? undefined : rec.clientPort,
      vhost: rec.vhost,
      route: rec.route,
      backend: rec.backend,
      upgrade: rec.upgrade,
      http: http(rec),
      tls: rec.tls,
      status: rec.status === 0 ? undefined : rec.status,
      outcome: o?.kind,
      error: o !== undefined && 'reason' in o ? o.reason : undefined,
      handshakeMs: rec.finishedAt - rec.headAt,
      tries: rec.tries,
    },
    'handshake failed',
  );
}

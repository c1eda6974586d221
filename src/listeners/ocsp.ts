// OCSP stapling at handshake time: Node's tls.Server emits 'OCSPRequest' when a client asks for
// the certificate's status; the answer comes from an in-memory cache (one per worker, keyed by the
// certificate), else from the responder, asked over HTTP with SSLStaplingResponderTimeout. Which
// answers are stapled and how long they are kept follows mod_ssl: a good answer until
// SSLStaplingStandardCacheTimeout (never past its nextUpdate), anything else for
// SSLStaplingErrorCacheTimeout, stapled only with SSLStaplingReturnResponderErrors; a query that
// fails staples a fake "tryLater" with SSLStaplingFakeTryLater. The answer's signature is the
// client's to check (mod_ssl does not check it either).

import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type * as tls from 'node:tls';
import type { Config, ListenAddress, OcspStapling } from '../config/model';
import { children, readTlv } from '../config/ocsp';
import { tlsServersFor } from '../config/tls';
import type { Logger } from '../observe/log';

/** OCSPResponse { responseStatus tryLater(3) }: what mod_ssl staples for a query that failed. */
const TRY_LATER = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]);
/** Longest OCSP answer read from a responder. */
const MAX_RESPONSE_BYTES = 64 * 1024;

interface Entry {
  readonly der: Buffer;
  /** A good, current answer (else it is stapled only with SSLStaplingReturnResponderErrors). */
  readonly good: boolean;
  readonly expiresAt: number;
}

/** Cached answers and queries under way, by certificate fingerprint and responder URL. */
const cache = new Map<string, Entry>();
const pending = new Map<string, Promise<Entry | undefined>>();

/** The stapling settings of the certificate Node is about to send, among the servers of this port. */
function staplingOf(config: Config, listen: ListenAddress, certificate: Buffer): OcspStapling | undefined {
  const servers = tlsServersFor(listen, config.mainServer, config.virtualHosts);
  if (!servers.some((s) => s.tls?.stapling !== undefined)) return undefined;
  const fingerprint = createHash('sha256').update(certificate).digest('hex');
  for (const s of servers) if (s.tls?.stapling?.fingerprint === fingerprint) return s.tls.stapling;
  return undefined;
}

/** Registers the 'OCSPRequest' handler on an https port's tls.Server. */
export function enableStapling(server: tls.Server, listenOf: () => ListenAddress, config: () => Config, log: Logger): void {
  server.on('OCSPRequest', (certificate: Buffer, _issuer: Buffer | null, done: (err: Error | null, resp?: Buffer) => void) => {
    const st = staplingOf(config(), listenOf(), certificate);
    if (st === undefined) {
      done(null);
      return;
    }
    staple(st, log).then(
      (der) => done(null, der),
      () => done(null),
    );
  });
}

/** The answer to staple for `st` now, or undefined for none. */
export async function staple(st: OcspStapling, log: Logger): Promise<Buffer | undefined> {
  const key = `${st.fingerprint} ${st.url}`;
  let entry = cache.get(key);
  const now = Date.now();
  if (entry === undefined || entry.expiresAt <= now) {
    let p = pending.get(key);
    if (p === undefined) {
      p = renew(st, log).finally(() => pending.delete(key));
      pending.set(key, p);
    }
    entry = await p;
    if (entry === undefined) return undefined;
  }
  if (entry.good || st.returnErrors) return entry.der;
  return undefined;
}

/** Asks the responder and caches what mod_ssl would: undefined when nothing is to be stapled or kept. */
async function renew(st: OcspStapling, log: Logger): Promise<Entry | undefined> {
  const key = `${st.fingerprint} ${st.url}`;
  // Answers for certificates a reload took away would otherwise stay: drop every expired one.
  const now = Date.now();
  for (const [k, e] of cache) if (e.expiresAt <= now) cache.delete(k);
  let der: Buffer;
  try {
    der = await query(st);
  } catch (err) {
    log.warn('OCSP responder query failed', { responder: st.url, reason: (err as Error).message });
    if (!(st.returnErrors && st.fakeTryLater)) return undefined;
    const fake: Entry = { der: TRY_LATER, good: false, expiresAt: Date.now() + st.errorCacheMs };
    cache.set(key, fake);
    return fake;
  }
  const checked = check(der, st, Date.now());
  if (typeof checked === 'string') {
    log.warn('OCSP answer not good', { responder: st.url, reason: checked });
    const bad: Entry = { der, good: false, expiresAt: Date.now() + st.errorCacheMs };
    cache.set(key, bad);
    return bad;
  }
  // Kept for SSLStaplingStandardCacheTimeout, but asked again before nextUpdate so a staple is never stale.
  const expiresAt = Math.min(Date.now() + st.cacheMs, checked.nextUpdate ?? Number.POSITIVE_INFINITY);
  const good: Entry = { der, good: true, expiresAt };
  cache.set(key, good);
  return good;
}

/** POSTs the request to the responder; the DER body of a 200 answer. */
function query(st: OcspStapling): Promise<Buffer> {
  const body = Buffer.from(st.request, 'hex');
  return new Promise((resolve, reject) => {
    const req = http.request(
      st.url,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/ocsp-request', 'Content-Length': body.length, Accept: 'application/ocsp-response' },
        timeout: st.timeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer longer than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP status ${res.statusCode}`));
          else resolve(Buffer.concat(chunks));
        });
        res.on('error', reject);
      },
    );
    // SSLStaplingResponderTimeout bounds the whole query, as mod_ssl's.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${st.timeoutMs / 1000} s`)), st.timeoutMs);
    timer.unref();
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${st.timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** GeneralizedTime (YYYYMMDDHHMMSS[.fff]Z) to epoch ms. */
function time(buf: Buffer, t: { tag: number; content: number; end: number } | undefined): number | undefined {
  if (t?.tag !== 0x18) return undefined;
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(buf.toString('latin1', t.content, t.end));
  if (m === null) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

/**
 * mod_ssl's checks of an answer before it counts as good: status successful, a single response for
 * this certificate, status good, and thisUpdate/nextUpdate current within the time skew and max age.
 * A string says what failed.
 */
export function check(der: Buffer, st: OcspStapling, now: number): { nextUpdate?: number } | string {
  const top = readTlv(der, 0);
  const parts = top?.tag === 0x30 ? children(der, top) : undefined;
  if (parts === undefined || top!.end !== der.length || parts[0]?.tag !== 0x0a) return 'not an OCSP response';
  const status = der[parts[0].content];
  if (status !== 0) return `responder status ${status}`;
  // responseBytes [0] { responseType, response OCTET STRING { BasicOCSPResponse } }
  const rb = parts[1]?.tag === 0xa0 ? children(der, parts[1])?.[0] : undefined;
  const octets = rb && children(der, rb)?.[1];
  const basic = octets?.tag === 0x04 ? readTlv(der, octets.content, octets.end) : undefined;
  const tbs = basic && children(der, basic)?.[0];
  const fields = tbs && children(der, tbs);
  if (fields === undefined) return 'malformed basic response';
  const i = fields[0]?.tag === 0xa0 ? 1 : 0;
  const responses = fields[i + 2];
  const list = responses?.tag === 0x30 ? children(der, responses) : undefined;
  for (const single of list ?? []) {
    const sf = children(der, single);
    const id = sf?.[0];
    const idFields = id && children(der, id);
    const serial = idFields?.[3];
    if (serial === undefined || der.toString('hex', serial.start, serial.end) !== st.serial) continue;
    const certStatus = sf![1];
    if (certStatus?.tag !== 0x80) return certStatus?.tag === 0xa1 ? 'certificate revoked' : 'certificate status unknown';
    const thisUpdate = time(der, sf![2]);
    const next = sf![3]?.tag === 0xa0 ? time(der, readTlv(der, sf![3].content, sf![3].end)) : undefined;
    if (thisUpdate === undefined) return 'no thisUpdate';
    if (thisUpdate > now + st.skewMs) return 'thisUpdate is in the future';
    if (next !== undefined && next < now - st.skewMs) return 'the answer has expired (nextUpdate passed)';
    if (st.maxAgeMs >= 0 && thisUpdate < now - st.skewMs - st.maxAgeMs) return 'the answer is older than SSLStaplingResponseMaxAge';
    return next !== undefined ? { nextUpdate: next } : {};
  }
  return 'no answer for this certificate in the response';
}

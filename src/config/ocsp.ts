// OCSP stapling, the part decided at load (SSLUseStapling on): which responder to ask and the
// request to send it, built once from the server's certificate and its issuer, which must be in
// the certificate file or SSLCertificateChainFile (mod_ssl looks there too). Also the small DER
// reader the stapler (listeners/ocsp.ts) uses to read the answers.

import { createHash, X509Certificate } from 'node:crypto';
import { ConfigError } from './errors';
import type { OcspStapling, SourceRef } from './model';

/** One DER element: its tag, where its content starts and where it ends (`end` is past the last byte). */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly content: number;
  readonly end: number;
}

/** Reads the element at `at`; undefined when the bytes are not DER (short, or a length that overruns). */
export function readTlv(buf: Buffer, at: number, limit = buf.length): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let content = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || content + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[content + i]!;
    content += n;
  }
  const end = content + len;
  if (end > limit) return undefined;
  return { tag, start: at, content, end };
}

/** The elements inside a constructed element. */
export function children(buf: Buffer, parent: Tlv): Tlv[] | undefined {
  const out: Tlv[] = [];
  for (let at = parent.content; at < parent.end; ) {
    const t = readTlv(buf, at, parent.end);
    if (t === undefined) return undefined;
    out.push(t);
    at = t.end;
  }
  return out;
}

function encode(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  return Buffer.concat([head, content]);
}

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;
/** AlgorithmIdentifier { id-sha1, NULL }: the hash RFC 6960 CertIDs use, and what responders expect. */
const SHA1_ALGORITHM = Buffer.from('300906052b0e03021a0500', 'hex');

/** The tbsCertificate fields of a DER certificate: serialNumber and issuer, as raw elements. */
function serialAndIssuer(der: Buffer): { serial: Buffer; issuer: Buffer } | undefined {
  const cert = readTlv(der, 0);
  const tbs = cert && children(der, cert)?.[0];
  const fields = tbs && children(der, tbs);
  if (fields === undefined) return undefined;
  const i = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version, present in v3 certificates
  const serial = fields[i];
  const issuer = fields[i + 2];
  if (serial?.tag !== 0x02 || issuer?.tag !== SEQUENCE) return undefined;
  return { serial: der.subarray(serial.start, serial.end), issuer: der.subarray(issuer.start, issuer.end) };
}

/** The subjectPublicKey bits of a certificate's key (what CertID's issuerKeyHash hashes). */
function publicKeyBits(cert: X509Certificate): Buffer | undefined {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const top = readTlv(spki, 0);
  const bits = top && children(spki, top)?.[1];
  if (bits?.tag !== 0x03) return undefined;
  return spki.subarray(bits.content + 1, bits.end); // after the unused-bits byte
}

const sha1 = (b: Buffer): Buffer => createHash('sha1').update(b).digest();

/** The responder URL of a certificate's Authority Information Access, if it names one. */
export function responderUrl(cert: X509Certificate): string | undefined {
  const m = /^OCSP - URI:(.+)$/m.exec(cert.infoAccess ?? '');
  return m?.[1]?.trim();
}

/** What the stapling directives set for one server, resolved against the main server's. */
export interface StaplingOptions {
  readonly on: SourceRef;
  readonly forceUrl?: { readonly url: string; readonly source: SourceRef };
  readonly timeoutS: number;
  readonly returnErrors: boolean;
  readonly fakeTryLater: boolean;
  readonly cacheS: number;
  readonly errorCacheS: number;
  readonly skewS: number;
  readonly maxAgeS: number;
}

/**
 * The stapling settings of one certificate, or a reason why it cannot be stapled. As in mod_ssl, a
 * certificate whose issuer is not in the files, or that names no responder (and no
 * SSLStaplingForceURL is set), is served without a staple: the caller notes it. A responder URL
 * that is not http:// is an error at its line, as no OCSP client speaks anything else.
 */
export function staplingFor(pems: readonly string[], opts: StaplingOptions): OcspStapling | string {
  const leaf = new X509Certificate(pems[0]!);
  const issuer = pems
    .slice(1)
    .map((p) => new X509Certificate(p))
    .find((c) => leaf.checkIssued(c));
  if (issuer === undefined) {
    return `the issuer of "${leaf.subject.replaceAll('\n', ', ')}" is not in SSLCertificateFile or SSLCertificateChainFile, so no OCSP request can be made for it`;
  }
  const url = opts.forceUrl?.url ?? responderUrl(leaf);
  if (url === undefined) return 'the certificate names no OCSP responder (Authority Information Access) and SSLStaplingForceURL is not set';
  if (!/^http:\/\/[^/?#]+/i.test(url)) {
    throw ConfigError.at(
      opts.forceUrl?.source ?? opts.on,
      `SSLUseStapling: OCSP responder "${url}" is not an http:// URL (OCSP is asked over plain HTTP); set SSLStaplingForceURL http://…`,
    );
  }
  const fields = serialAndIssuer(leaf.raw);
  const keyBits = publicKeyBits(issuer);
  if (fields === undefined || keyBits === undefined) return 'its certificate could not be read for an OCSP request';
  const certId = encode(
    SEQUENCE,
    Buffer.concat([SHA1_ALGORITHM, encode(OCTET_STRING, sha1(fields.issuer)), encode(OCTET_STRING, sha1(keyBits)), fields.serial]),
  );
  // OCSPRequest { tbsRequest { requestList { Request { reqCert } } } }, no nonce (a staple is shared by all clients).
  const request = encode(SEQUENCE, encode(SEQUENCE, encode(SEQUENCE, encode(SEQUENCE, certId))));
  return {
    url,
    request: request.toString('hex'),
    serial: fields.serial.toString('hex'),
    fingerprint: createHash('sha256').update(leaf.raw).digest('hex'),
    timeoutMs: opts.timeoutS * 1000,
    returnErrors: opts.returnErrors,
    fakeTryLater: opts.fakeTryLater,
    cacheMs: opts.cacheS * 1000,
    errorCacheMs: opts.errorCacheS * 1000,
    skewMs: opts.skewS * 1000,
    maxAgeMs: opts.maxAgeS < 0 ? -1 : opts.maxAgeS * 1000,
    source: opts.on,
  };
}

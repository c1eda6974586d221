// HTTP/1.x message heads: finding their end in a byte stream and parsing them.
//
// wsgate parses heads itself instead of using node:http, for three reasons: an `Upgrade` header
// without `Connection: upgrade` must still be an upgrade (node:http treats it as a plain
// request and keeps parsing the tunnel's bytes as HTTP); headers must be relayed in their order
// and case; and the handshake is the hot path of connection churn. Heads are small and parsed
// once, as latin1 strings; bodies are never parsed here (see body.ts).

/** Largest request or response head accepted (all lines and CRLFs). Larger → 431 / 502. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most header fields in one head (Apache's LimitRequestFields). */
export const MAX_HEADER_FIELDS = 100;

/** What every parsed head says about framing and connection management. */
export interface HeadFacts {
  /** Header fields as sent: [name0, value0, name1, value1, …], names in their original case. */
  readonly headers: string[];
  /** Lower-cased tokens of every `Connection` header. */
  readonly connectionTokens: readonly string[];
  /** `Content-Length`, or -1 when absent. */
  readonly contentLength: number;
  /** `Transfer-Encoding` ends in `chunked`. */
  readonly chunked: boolean;
  /** Value of the first `Upgrade` header, if any. */
  readonly upgrade: string | undefined;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly versionMinor: number;
}

export interface RequestHead extends HeadFacts {
  readonly method: string;
  readonly target: string;
  /** First `Host` header value, if any. */
  readonly host: string | undefined;
}

export interface ResponseHead extends HeadFacts {
  readonly status: number;
  readonly reason: string;
}

/** A head that cannot be accepted, with the status to answer and the reason to log. */
export class HeadError extends Error {
  constructor(readonly status: number, readonly reason: string) {
    super(reason);
  }
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Where the head in `buf` ends (the index just past its blank line), or -1 if it is not complete.
 * `from` lets a caller resume the search after appending bytes without rescanning.
 */
export function findHeadEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf(CRLFCRLF, from > 3 ? from - 3 : 0);
  return i === -1 ? -1 : i + 4;
}

// RFC 9110 token characters, as a lookup table.
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** Field values may hold visible characters, spaces, tabs and obs-text, never CR, LF or NUL. */
function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

function parseVersion(v: string, status: number): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  if (/^HTTP\/\d\.\d$/.test(v)) throw new HeadError(505, `unsupported protocol version ${v}`);
  throw new HeadError(status, 'malformed protocol version');
}

function parseFields(lines: string[], status: number): HeadFacts & { host: string | undefined } {
  // lines = [start line, field…, '', ''] (the head ends with CRLFCRLF).
  if (lines.length - 3 > MAX_HEADER_FIELDS) throw new HeadError(status === 400 ? 431 : status, 'too many header fields');
  const headers: string[] = [];
  let connectionTokens: string[] = [];
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let upgrade: string | undefined;
  let host: string | undefined;
  let hostCount = 0;
  // The head ends with CRLFCRLF, so the split leaves two empty strings at the end.
  const last = lines.length - 2;
  for (let i = 1; i < last; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HeadError(status, 'malformed header line');
    const name = line.slice(0, colon);
    if (!isToken(name)) {
      // Also rejects obs-fold (a line starting with whitespace) and whitespace before the colon.
      throw new HeadError(status, `malformed header name "${name.slice(0, 40)}"`);
    }
    const value = line.slice(colon + 1).trim();
    if (!isFieldValue(value)) throw new HeadError(status, `invalid character in header ${name}`);
    headers.push(name, value);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          hostCount++;
          host = value;
        }
        break;
      case 7:
        if (upgrade === undefined && name.toLowerCase() === 'upgrade') upgrade = value;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          for (const t of value.split(',')) {
            const tok = t.trim().toLowerCase();
            if (tok) connectionTokens.push(tok);
          }
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!/^\d{1,15}$/.test(value)) throw new HeadError(status, 'invalid Content-Length');
          const n = Number(value);
          if (contentLength !== -1 && contentLength !== n) throw new HeadError(status, 'conflicting Content-Length headers');
          contentLength = n;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        }
        break;
    }
  }
  let chunked = false;
  if (transferEncoding !== undefined) {
    const codings = transferEncoding.toLowerCase().split(',');
    chunked = codings[codings.length - 1].trim() === 'chunked';
    // Both framings at once is the classic request-smuggling shape: refuse it outright.
    if (contentLength !== -1) throw new HeadError(status, 'both Transfer-Encoding and Content-Length');
  }
  if (hostCount > 1) throw new HeadError(status, 'more than one Host header');
  if (connectionTokens.length === 0) connectionTokens = EMPTY;
  return { headers, connectionTokens, contentLength, chunked, upgrade, host, versionMinor: 0 };
}

const EMPTY: string[] = [];

/**
 * Parses a request head (`buf[0..end)` including its blank line). Throws HeadError with 400
 * (malformed), 431 (too many fields), 501 (unknown transfer coding) or 505 (HTTP version).
 */
export function parseRequestHead(buf: Buffer, end: number): RequestHead {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = lines[0];
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 === sp1) throw new HeadError(400, 'malformed request line');
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  if (!isToken(method)) throw new HeadError(400, 'malformed method');
  if (target.length === 0 || !isTargetChars(target)) throw new HeadError(400, 'malformed request target');
  const versionMinor = parseVersion(requestLine.slice(sp2 + 1), 400);
  const facts = parseFields(lines, 400);
  if (facts.chunked === false && facts.contentLength === -1 && hasTransferEncoding(facts.headers)) {
    throw new HeadError(501, 'unsupported Transfer-Encoding');
  }
  if (versionMinor === 1 && facts.host === undefined) throw new HeadError(400, 'HTTP/1.1 request without Host');
  return {
    method,
    target,
    host: facts.host,
    headers: facts.headers,
    connectionTokens: facts.connectionTokens,
    contentLength: facts.contentLength,
    chunked: facts.chunked,
    upgrade: facts.upgrade,
    versionMinor,
  };
}

/** Parses a backend's response head. Any defect throws HeadError(502). */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const statusLine = lines[0];
  // "HTTP/1.1 101 Switching Protocols": the reason phrase may be empty or hold spaces.
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (m === null) throw new HeadError(502, 'malformed status line from backend');
  const versionMinor = parseVersion(m[1], 502);
  const facts = parseFields(lines, 502);
  return {
    status: Number(m[2]),
    reason: m[3] ?? '',
    headers: facts.headers,
    connectionTokens: facts.connectionTokens,
    contentLength: facts.contentLength,
    chunked: facts.chunked,
    upgrade: facts.upgrade,
    versionMinor,
  };
}

function hasTransferEncoding(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === 17 && headers[i].toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

/** A request-target has no spaces, controls or non-ASCII bytes (those must be percent-encoded). */
function isTargetChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

/** Value of the first header named `lowerName`, or undefined. */
export function headerValue(headers: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === lowerName.length && headers[i].toLowerCase() === lowerName) return headers[i + 1];
  }
  return undefined;
}

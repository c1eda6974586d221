// HTTP/1.x message heads: finding their end in a byte stream and parsing them.
//
// wsgate parses heads itself instead of using node:http, for three reasons: an `Upgrade` header
// without `Connection: upgrade` must still be an upgrade (node:http treats it as a plain
// request and keeps parsing the tunnel's bytes as HTTP); headers must be relayed in their order
// and case; and the handshake is the hot path of connection churn. Heads are small and parsed
// once, as latin1 strings; bodies are never parsed here (see body.ts).

import { isIPv6 } from 'node:net';

/**
 * Largest response head accepted from a backend (all lines and CRLFs), complete or not: larger →
 * 502 on every path. Also the least a request head may be (see requestHeadCap).
 */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most header fields in a backend's head. */
export const MAX_HEADER_FIELDS = 100;

/**
 * Apache's request limits (LimitRequestLine, LimitRequestFieldSize, LimitRequestFields), taken
 * from the server the connection's address selects, as Apache does before it knows the Host.
 */
export interface RequestLimits {
  /** Longest request line, without its CRLF → 414. */
  readonly line: number;
  /** Longest header field line (`Name: value`, without CRLF), also after merging a repeated name → 400. */
  readonly fieldSize: number;
  /** Most header fields; 0 = no limit → 400. */
  readonly fields: number;
}

/** Apache's compiled-in defaults (DEFAULT_LIMIT_REQUEST_LINE, _FIELDSIZE, _FIELDS). */
export const DEFAULT_LIMITS: RequestLimits = { line: 8190, fieldSize: 8190, fields: 100 };

/**
 * The most bytes a request head may take, request line and fields together (431 beyond): 16 KiB,
 * or room for one request line and one field at their limits when those are raised. Apache has
 * no such bound (only per line and per count); wsgate keeps one so that a half-read head never
 * holds much memory.
 */
export function requestHeadCap(limits: RequestLimits): number {
  return Math.max(MAX_HEAD_BYTES, limits.line + limits.fieldSize + 6);
}

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
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
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

/** Whether byte `c` may appear in a token (a header name, a method). */
export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** Field values may hold visible characters, spaces, tabs and obs-text, never CR, LF, NUL or another control. */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/**
 * `s` without the optional whitespace around a field value: SP and HTAB only (RFC 9110 §5.6.3).
 * String.trim() would also strip VT, FF and NBSP, which a backend keeps: the value wsgate acts on
 * (a Content-Length, a Transfer-Encoding) must be the one it forwards.
 */
export function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isOws(s.charCodeAt(start))) start++;
  while (end > start && isOws(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

function parseVersion(v: string, status: number): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  if (/^HTTP\/\d\.\d$/.test(v)) throw new HeadError(505, `unsupported protocol version ${v}`);
  throw new HeadError(status, 'malformed protocol version');
}

function parseFields(lines: string[], status: number, limits: RequestLimits | undefined): HeadFacts & { host: string | undefined } {
  // A request (limits given) is held to Apache's rules; a backend's answer to RFC 9112's.
  const request = limits !== undefined;
  // lines = [start line, field…, '', ''] (the head ends with CRLFCRLF).
  if (limits === undefined) {
    if (lines.length - 3 > MAX_HEADER_FIELDS) throw new HeadError(status, 'too many header fields');
  } else {
    // Apache answers 400 for these (ap_get_mime_headers_core), not 431.
    if (limits.fields > 0 && lines.length - 3 > limits.fields) throw new HeadError(400, 'too many header fields (LimitRequestFields)');
    checkFieldSizes(lines, limits.fieldSize);
  }
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
    const value = trimOws(line.slice(colon + 1));
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
            const tok = trimOws(t).toLowerCase();
            if (tok) connectionTokens.push(tok);
          }
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          // Digits only: no sign, no inner spaces, no list (Apache's ap_parse_strict_length).
          if (!/^\d{1,15}$/.test(value)) throw new HeadError(status, 'invalid Content-Length');
          const n = Number(value);
          // Apache merges a repeated Content-Length into `5, 5`, which is not a length: 400 even
          // when the values agree. An answer may repeat the same value (RFC 9112 §6.3).
          if (contentLength !== -1 && (request || contentLength !== n)) {
            throw new HeadError(status, request ? 'more than one Content-Length header' : 'conflicting Content-Length headers');
          }
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
    chunked = trimOws(codings[codings.length - 1]) === 'chunked';
    // chunked applied twice (`chunked, chunked`) is not a framing anyone agrees on.
    if (chunked && codings.length > 1 && codings.some((c, i) => i < codings.length - 1 && trimOws(c) === 'chunked')) {
      throw new HeadError(status, 'chunked applied more than once');
    }
    // Both framings at once is the classic request-smuggling shape: refuse it outright.
    if (contentLength !== -1) throw new HeadError(status, 'both Transfer-Encoding and Content-Length');
  }
  if (hostCount > 1) throw new HeadError(status, 'more than one Host header');
  if (connectionTokens.length === 0) connectionTokens = EMPTY;
  return { headers, connectionTokens, contentLength, chunked, upgrade, host, versionMinor: 0 };
}

const EMPTY: string[] = [];

/**
 * LimitRequestFieldSize on each field line as sent, then on each name whose repeated fields
 * Apache would merge into one (`Name: v1, v2`): both are 400 there.
 */
function checkFieldSizes(lines: string[], fieldSize: number): void {
  const last = lines.length - 2;
  let total = 0;
  for (let i = 1; i < last; i++) {
    const n = lines[i].length;
    if (n > fieldSize) throw new HeadError(400, `request header field exceeds LimitRequestFieldSize (${fieldSize})`);
    total += n;
  }
  // No name can be merged past the limit when all fields together are within it.
  if (total <= fieldSize) return;
  const merged = new Map<string, number>();
  for (let i = 1; i < last; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // parseFields says what is wrong with it
    const name = line.slice(0, colon).toLowerCase();
    const valueLen = trimOws(line.slice(colon + 1)).length;
    const prev = merged.get(name);
    const len = prev === undefined ? colon + 2 + valueLen : prev + 2 + valueLen;
    if (len > fieldSize)
      throw new HeadError(
        400,
        `request header field exceeds LimitRequestFieldSize (${fieldSize}) after merging ${line.slice(0, Math.min(colon, 40))}`,
      );
    merged.set(name, len);
  }
}

/**
 * Parses a request head (`buf[0..end)` including its blank line). Throws HeadError with 400
 * (malformed, a field or too many fields over the limits, a bad Host), 414 (request line over
 * LimitRequestLine; a Transfer-Encoding whose last coding is not chunked, as Apache 2.4 answers it) or
 * 505 (HTTP version).
 */
export function parseRequestHead(buf: Buffer, end: number, limits: RequestLimits = DEFAULT_LIMITS): RequestHead {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = lines[0];
  if (requestLine.length > limits.line) throw new HeadError(414, `request line exceeds LimitRequestLine (${limits.line})`);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 === sp1) throw new HeadError(400, 'malformed request line');
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  if (!isToken(method)) throw new HeadError(400, 'malformed method');
  if (target.length === 0 || !isTargetChars(target)) throw new HeadError(400, 'malformed request target');
  const versionMinor = parseVersion(requestLine.slice(sp2 + 1), 400);
  const facts = parseFields(lines, 400, limits);
  if (facts.chunked === false && facts.contentLength === -1 && hasTransferEncoding(facts.headers)) {
    // RFC 9112 §6.3: the body's length cannot be known, so 400 and close (Apache 2.4 does the same).
    throw new HeadError(400, 'unsupported Transfer-Encoding');
  }
  // An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 §6.1): a backend
  // that reads 1.0 without chunked would see a different body.
  if (versionMinor === 0 && hasTransferEncoding(facts.headers)) throw new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
  if (versionMinor === 1 && facts.host === undefined) throw new HeadError(400, 'HTTP/1.1 request without Host');
  if (facts.host !== undefined && !isValidHost(facts.host)) throw new HeadError(400, `malformed Host "${facts.host.slice(0, 80)}"`);
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

/** Most empty lines skipped before a request line (Apache's DEFAULT_LIMIT_BLANK_LINES). */
const MAX_BLANK_LINES = 10;

/**
 * How many bytes of empty lines (CRLF) lead `buf`, up to ten of them: Apache skips them before a
 * request line (clients once added a CRLF after a POST body), so wsgate does too; an eleventh is
 * read as an empty request line (400).
 */
export function leadingEmptyLines(buf: Buffer): number {
  let i = 0;
  while (i < 2 * MAX_BLANK_LINES && i + 1 < buf.length && buf[i] === 0x0d && buf[i + 1] === 0x0a) i += 2;
  return i;
}

/** Parses a backend's response head. Any defect throws HeadError(502). */
export function parseResponseHead(buf: Buffer, end: number): ResponseHead {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const statusLine = lines[0];
  // "HTTP/1.1 101 Switching Protocols": the reason phrase may be empty or hold spaces.
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (m === null) throw new HeadError(502, 'malformed status line from backend');
  // The reason phrase is relayed to the client: no controls in it (RFC 9112 §4).
  if (m[3] !== undefined && !isFieldValue(m[3])) throw new HeadError(502, 'invalid character in the status line from backend');
  const versionMinor = parseVersion(m[1], 502);
  const facts = parseFields(lines, 502, undefined);
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

/**
 * Whether a Host value (or an HTTP/2 `:authority`) is one Apache takes, with its default
 * `HttpProtocolOptions Strict` (server/vhost.c fix_hostname): empty; or a name of letters,
 * digits, `-`, `_` and single dots whose last label starts with a letter (one trailing dot
 * allowed); or a dotted IPv4 address of four parts without leading zeros; or a bracketed IPv6
 * literal — each optionally followed by `:port` (1–65535). Anything else (`a/b@c`, `a b`,
 * `x:`, a bare number, `a..b`) is 400.
 */
export function isValidHost(value: string): boolean {
  if (value.length === 0) return true;
  let host = value;
  // A trailing `:digits` is a port, as apr_parse_addr_port reads it.
  let i = value.length;
  while (i > 0 && isDigit(value.charCodeAt(i - 1))) i--;
  if (i < value.length && i > 0 && value.charCodeAt(i - 1) === 0x3a) {
    const port = Number(value.slice(i));
    if (port < 1 || port > 65535) return false;
    host = value.slice(0, i - 1);
    if (host.length === 0) return false;
  } else if (i === 0) {
    return false; // purely numeric
  }
  if (host.charCodeAt(0) === 0x5b) {
    if (host.charCodeAt(host.length - 1) !== 0x5d) return false;
    const literal = host.slice(1, -1);
    return isIpv6Literal(literal) && isIPv6(literal);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0) return false;
  let dotted = true;
  let dots = 0;
  for (let k = 0; k < host.length; k++) {
    const c = host.charCodeAt(k);
    if (c === 0x2e) {
      if (host.charCodeAt(k + 1) === 0x2e) return false;
      dots++;
    } else if (isDigit(c)) {
      // digits are fine in names and addresses
    } else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) {
      dotted = false;
    } else if (c === 0x2d || c === 0x5f) {
      dotted = false;
    } else {
      return false;
    }
  }
  if (dotted) {
    if (dots !== 3 || host.charCodeAt(0) === 0x2e) return false;
    for (const part of host.split('.')) if (part.length > 1 && part.charCodeAt(0) === 0x30) return false;
    return true;
  }
  // The top-level label must start with a letter (RFC 1123 §2.1).
  const lastDot = host.lastIndexOf('.');
  if (lastDot === -1) return true;
  const c = host.charCodeAt(lastDot + 1) | 0x20;
  return c >= 0x61 && c <= 0x7a;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Hex digits, colons (at most one `::`) and the dots of an embedded IPv4 address. */
function isIpv6Literal(s: string): boolean {
  if (s.length < 2) return false;
  let doubleColon = false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66)) continue;
    if (c === 0x3a) {
      if (s.charCodeAt(k + 1) === 0x3a) {
        if (doubleColon) return false;
        doubleColon = true;
      } else if (s.charCodeAt(k + 1) === 0x2e) {
        return false;
      }
      continue;
    }
    if (c === 0x2e) {
      const next = s.charCodeAt(k + 1);
      if (next === 0x2e || next === 0x3a) return false;
      continue;
    }
    return false;
  }
  return true;
}

/**
 * Checks the part of a request head read so far, while it is incomplete, so that a line over its
 * limit is answered as soon as it is (as Apache reads line by line), not when the head is whole.
 * Resumes where the previous call stopped.
 */
export class PartialHeadCheck {
  private lineStart = 0;
  private lineNo = 0;

  reset(): void {
    this.lineStart = 0;
    this.lineNo = 0;
  }

  /** Throws the HeadError a complete head would get for what `buf` holds so far. */
  check(buf: Buffer, limits: RequestLimits): void {
    for (;;) {
      const eol = buf.indexOf(CRLF, this.lineStart);
      // A CR at the very end is the start of the line's CRLF, not part of it.
      const stop = eol !== -1 ? eol : buf.length > 0 && buf[buf.length - 1] === 0x0d ? buf.length - 1 : buf.length;
      const len = stop - this.lineStart;
      if (this.lineNo === 0) {
        if (len > limits.line) throw new HeadError(414, `request line exceeds LimitRequestLine (${limits.line})`);
      } else if (len > limits.fieldSize) {
        throw new HeadError(400, `request header field exceeds LimitRequestFieldSize (${limits.fieldSize})`);
      } else if (limits.fields > 0 && this.lineNo > limits.fields && len > 0) {
        throw new HeadError(400, 'too many header fields (LimitRequestFields)');
      }
      if (eol === -1) return;
      this.lineStart = eol + 2;
      this.lineNo++;
    }
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');

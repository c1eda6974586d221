// Message body framing for pass-through proxying.
//
// wsgate forwards bodies byte for byte (chunked stays chunked, with its extensions and
// trailers), so it never decodes or re-encodes them. It only needs to know where a body ends,
// so that the next message on a keep-alive connection starts at the right byte. `BodyFramer`
// tracks that with a small state machine and no allocation per chunk.

import { isTokenChar } from './head';

export const enum Framing {
  /** No body (Content-Length: 0, a request without framing headers, HEAD, 1xx/204/304). */
  None,
  /** Exactly `remaining` bytes. */
  Length,
  /** Transfer-Encoding: chunked. */
  Chunked,
  /** Until the sender closes (a response with neither length nor chunked). */
  UntilClose,
}

const enum ChunkState {
  /** The first hex digit of a chunk size. */
  Size,
  SizeDigits,
  /** Blanks after the size (Apache takes up to 10 before `;` or CR). */
  SizeBws,
  Ext,
  ExtQuoted,
  ExtQuotedPair,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  EndLf,
}

/** A body that cannot be relayed: `status` is what the client gets if no answer was sent yet. */
export class BodyError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** Bounds on a chunked body (for a request: the server's LimitRequestFieldSize, LimitRequestFields, LimitRequestBody). */
export interface BodyLimits {
  /** Longest chunk-size line (size and extensions) or trailer field line, CRLF excluded. */
  readonly lineSize: number;
  /** Most trailer fields; 0 = no limit. */
  readonly trailerFields: number;
  /** Most payload bytes in all chunks together; 0 = no limit (the caller checks a Content-Length itself). */
  readonly maxBody: number;
}

/** Apache's defaults; what a backend's chunked answer is held to. */
export const DEFAULT_BODY_LIMITS: BodyLimits = { lineSize: 8190, trailerFields: 100, maxBody: 0 };

/** Most significant hex digits in a chunk size: 2^48 bytes is far beyond any body, and stays an exact JS number. */
const MAX_SIZE_DIGITS = 12;

/**
 * Tracks where a body ends, and refuses chunked framing that a peer could read differently:
 * every line must end in CRLF (a bare CR or LF, a NUL or another control anywhere in a chunk-size
 * line, an extension or a trailer is an error), sizes are hex digits only (no sign, `0x` or
 * leading blanks), an extension's quoted-string must close on its line, and trailer fields follow
 * the head's rules (token name, colon, no obs-fold). The bytes that pass are forwarded unchanged,
 * so the receiver parses exactly what was checked; an error is found at the first bad byte, before
 * that byte is forwarded.
 */
export class BodyFramer {
  done: boolean;
  private remaining: number;
  private state = ChunkState.Size;
  private sizeDigits = 0;
  private lineLen = 0;
  private blanks = 0;
  private trailers = 0;
  private total = 0;
  /**
   * Optional: receives the payload bytes of a chunked body (sizes, extensions and trailers left
   * out), for a receiver that does not speak HTTP/1.1 framing (an HTTP/2 client).
   */
  onChunkData: ((buf: Buffer, start: number, end: number) => void) | undefined;

  constructor(
    readonly framing: Framing,
    length = 0,
    private readonly limits: BodyLimits = DEFAULT_BODY_LIMITS,
  ) {
    this.remaining = length;
    this.done = framing === Framing.None || (framing === Framing.Length && length === 0);
  }

  /**
   * Consumes body bytes from `buf[start..end)` and returns how many belong to this body.
   * When it returns less than `end - start`, the body is complete (`done`) and the rest is the
   * next message. Throws BodyError on malformed chunked framing (before any byte of this call
   * is counted as consumed).
   */
  consume(buf: Buffer, start: number, end: number): number {
    switch (this.framing) {
      case Framing.None:
        return 0;
      case Framing.UntilClose:
        return end - start;
      case Framing.Length: {
        const n = Math.min(this.remaining, end - start);
        this.remaining -= n;
        if (this.remaining === 0) this.done = true;
        return n;
      }
      case Framing.Chunked:
        return this.consumeChunked(buf, start, end);
    }
  }

  private consumeChunked(buf: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end && !this.done) {
      if (this.state === ChunkState.Data) {
        const n = Math.min(this.remaining, end - i);
        if (this.onChunkData !== undefined && n > 0) this.onChunkData(buf, i, i + n);
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = ChunkState.DataCr;
        continue;
      }
      const c = buf[i++];
      // The line's CRLF is not part of its size.
      if (this.state !== ChunkState.DataCr && this.state !== ChunkState.DataLf && ++this.lineLen > this.limits.lineSize + 2) {
        throw new BodyError(this.state >= ChunkState.TrailerStart ? 'trailer field too long' : 'chunk-size line too long');
      }
      switch (this.state) {
        case ChunkState.Size: {
          const d = hexValue(c);
          if (d < 0) throw new BodyError('malformed chunk size');
          this.remaining = d;
          this.sizeDigits = d === 0 ? 0 : 1;
          this.state = ChunkState.SizeDigits;
          continue;
        }
        case ChunkState.SizeDigits: {
          const d = hexValue(c);
          if (d >= 0) {
            // Leading zeros are not significant (as Apache counts them).
            if (this.sizeDigits > 0 || d > 0) {
              if (++this.sizeDigits > MAX_SIZE_DIGITS) throw new BodyError('chunk size too large');
              this.remaining = this.remaining * 16 + d;
            }
          } else if (c === 0x0d) {
            this.state = ChunkState.SizeLf;
          } else if (c === 0x3b) {
            this.state = ChunkState.Ext;
          } else if (c === 0x20 || c === 0x09) {
            this.blanks = 1;
            this.state = ChunkState.SizeBws;
          } else {
            throw new BodyError('malformed chunk size');
          }
          continue;
        }
        case ChunkState.SizeBws:
          if (c === 0x0d) this.state = ChunkState.SizeLf;
          else if (c === 0x3b) this.state = ChunkState.Ext;
          else if ((c !== 0x20 && c !== 0x09) || ++this.blanks > 10) throw new BodyError('malformed chunk size');
          continue;
        case ChunkState.Ext:
          if (c === 0x0d) this.state = ChunkState.SizeLf;
          else if (c === 0x22) this.state = ChunkState.ExtQuoted;
          else if (!isText(c)) throw new BodyError('invalid character in chunk extension');
          continue;
        case ChunkState.ExtQuoted:
          // A quoted-string ends on its line: a CR inside one is an error, not the line's end.
          if (c === 0x22) this.state = ChunkState.Ext;
          else if (c === 0x5c) this.state = ChunkState.ExtQuotedPair;
          else if (!isText(c)) throw new BodyError('invalid character in chunk extension');
          continue;
        case ChunkState.ExtQuotedPair:
          if (!isText(c)) throw new BodyError('invalid character in chunk extension');
          this.state = ChunkState.ExtQuoted;
          continue;
        case ChunkState.SizeLf:
          if (c !== 0x0a) throw new BodyError('bare CR in chunk-size line');
          this.lineLen = 0;
          this.total += this.remaining;
          if (this.limits.maxBody > 0 && this.total > this.limits.maxBody) {
            throw new BodyError(`request body exceeds LimitRequestBody (${this.limits.maxBody})`, 413);
          }
          this.state = this.remaining === 0 ? ChunkState.TrailerStart : ChunkState.Data;
          continue;
        case ChunkState.DataCr:
          if (c !== 0x0d) throw new BodyError('missing CR after chunk data');
          this.state = ChunkState.DataLf;
          continue;
        case ChunkState.DataLf:
          if (c !== 0x0a) throw new BodyError('missing LF after chunk data');
          this.lineLen = 0;
          this.state = ChunkState.Size;
          continue;
        case ChunkState.TrailerStart:
          if (c === 0x0d) {
            this.state = ChunkState.EndLf;
          } else if (isTokenChar(c)) {
            if (this.limits.trailerFields > 0 && ++this.trailers > this.limits.trailerFields)
              throw new BodyError('too many trailer fields');
            this.state = ChunkState.TrailerName;
          } else {
            // A bare LF (a second message hidden after the body), obs-fold, a missing name.
            throw new BodyError('malformed trailer');
          }
          continue;
        case ChunkState.TrailerName:
          if (c === 0x3a) this.state = ChunkState.TrailerValue;
          else if (!isTokenChar(c)) throw new BodyError('malformed trailer field name');
          continue;
        case ChunkState.TrailerValue:
          if (c === 0x0d) this.state = ChunkState.TrailerLf;
          else if (!isText(c)) throw new BodyError('invalid character in trailer');
          continue;
        case ChunkState.TrailerLf:
          if (c !== 0x0a) throw new BodyError('bare CR in trailer');
          this.lineLen = 0;
          this.state = ChunkState.TrailerStart;
          continue;
        case ChunkState.EndLf:
          if (c !== 0x0a) throw new BodyError('malformed end of chunked body');
          this.done = true;
          continue;
      }
    }
    return i - start;
  }
}

/** HTAB, SP, visible ASCII and obs-text: what a field value or an extension may hold. */
function isText(c: number): boolean {
  return c === 0x09 || (c >= 0x20 && c !== 0x7f);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** The framing of a request body (RFC 9112 §6.3: no framing headers means no body). */
export function requestFraming(chunked: boolean, contentLength: number, limits: BodyLimits = DEFAULT_BODY_LIMITS): BodyFramer {
  if (chunked) return new BodyFramer(Framing.Chunked, 0, limits);
  if (contentLength > 0) return new BodyFramer(Framing.Length, contentLength);
  return new BodyFramer(Framing.None);
}

/** The framing of a response body, which depends on the request method and the status. */
export function responseFraming(method: string, status: number, chunked: boolean, contentLength: number): BodyFramer {
  if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return new BodyFramer(Framing.None);
  }
  if (chunked) return new BodyFramer(Framing.Chunked);
  if (contentLength >= 0) return new BodyFramer(Framing.Length, contentLength);
  return new BodyFramer(Framing.UntilClose);
}

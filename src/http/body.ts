// Message body framing for pass-through proxying.
//
// wsgate forwards bodies byte for byte (chunked stays chunked, with its extensions and
// trailers), so it never decodes or re-encodes them. It only needs to know where a body ends,
// so that the next message on a keep-alive connection starts at the right byte. `BodyFramer`
// tracks that with a small state machine and no allocation per chunk.

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
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  EndLf,
}

export class BodyError extends Error {}

export class BodyFramer {
  done: boolean;
  private remaining: number;
  private state = ChunkState.Size;
  private sizeDigits = 0;
  /**
   * Optional: receives the payload bytes of a chunked body (sizes, extensions and trailers left
   * out), for a receiver that does not speak HTTP/1.1 framing (an HTTP/2 client).
   */
  onChunkData: ((buf: Buffer, start: number, end: number) => void) | undefined;

  constructor(readonly framing: Framing, length = 0) {
    this.remaining = length;
    this.done = framing === Framing.None || (framing === Framing.Length && length === 0);
  }

  /**
   * Consumes body bytes from `buf[start..end)` and returns how many belong to this body.
   * When it returns less than `end - start`, the body is complete (`done`) and the rest is the
   * next message. Throws BodyError on malformed chunked framing.
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
      switch (this.state) {
        case ChunkState.Data: {
          const n = Math.min(this.remaining, end - i);
          if (this.onChunkData !== undefined && n > 0) this.onChunkData(buf, i, i + n);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = ChunkState.DataCr;
          continue;
        }
        case ChunkState.Size: {
          const c = buf[i++];
          const d = hexValue(c);
          if (d >= 0) {
            if (++this.sizeDigits > 12) throw new BodyError('chunk size too large');
            this.remaining = this.remaining * 16 + d;
          } else if (this.sizeDigits === 0) {
            throw new BodyError('malformed chunk size');
          } else if (c === 0x0d) {
            this.state = ChunkState.SizeLf;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.state = ChunkState.Ext;
          } else {
            throw new BodyError('malformed chunk size');
          }
          continue;
        }
        case ChunkState.Ext: {
          const c = buf[i++];
          if (c === 0x0d) this.state = ChunkState.SizeLf;
          else if (c === 0x0a) throw new BodyError('bare LF in chunk extension');
          continue;
        }
        case ChunkState.SizeLf:
          if (buf[i++] !== 0x0a) throw new BodyError('missing LF after chunk size');
          this.sizeDigits = 0;
          this.state = this.remaining === 0 ? ChunkState.TrailerStart : ChunkState.Data;
          continue;
        case ChunkState.DataCr:
          if (buf[i++] !== 0x0d) throw new BodyError('missing CR after chunk data');
          this.state = ChunkState.DataLf;
          continue;
        case ChunkState.DataLf:
          if (buf[i++] !== 0x0a) throw new BodyError('missing LF after chunk data');
          this.state = ChunkState.Size;
          continue;
        case ChunkState.TrailerStart: {
          const c = buf[i++];
          this.state = c === 0x0d ? ChunkState.EndLf : ChunkState.TrailerLine;
          continue;
        }
        case ChunkState.TrailerLine:
          if (buf[i++] === 0x0d) this.state = ChunkState.TrailerLf;
          continue;
        case ChunkState.TrailerLf:
          if (buf[i++] !== 0x0a) throw new BodyError('malformed trailer');
          this.state = ChunkState.TrailerStart;
          continue;
        case ChunkState.EndLf:
          if (buf[i++] !== 0x0a) throw new BodyError('malformed end of chunked body');
          this.done = true;
          continue;
      }
    }
    return i - start;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** The framing of a request body (RFC 9112 §6.3: no framing headers means no body). */
export function requestFraming(chunked: boolean, contentLength: number): BodyFramer {
  if (chunked) return new BodyFramer(Framing.Chunked);
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

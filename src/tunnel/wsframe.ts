// The WebSocket frame tracker of the JavaScript pump: one per direction of a tunnel that upgraded
// to `websocket`. It reads frame headers (RFC 6455 §5.2) as they pass and skips payloads without
// copying them, so it knows where each frame ends and when the stream is between two frames — the
// only place wsgate may put a frame of its own. It never changes a forwarded byte.
//
// native/wsframe.h is the same state machine in C++ for the native engine; both run the vectors
// of test/tunnel/ws-vectors.json. The violation numbers are part of the engine's contract.

import { randomFillSync } from 'node:crypto';
import type { ResponseHead } from '../http/head';

/** What the tracker found wrong, by number (0: nothing). Order and names shared with native/wsframe.h. */
export const WS_VIOLATIONS = [
  'none',
  'unmasked client frame',
  'masked backend frame',
  'unknown opcode',
  'reserved bits set',
  'control frame over 125 bytes',
  'fragmented control frame',
  'continuation without a start',
  'data frame inside a fragmented message',
  '64-bit length with its top bit set',
] as const;

/** Flags of a tracker, the same bits in C++: the frames must be masked (client → backend), strict mode, RSV bits allowed. */
export const WS_MASKED = 0x01;
export const WS_STRICT = 0x02;
/** RSV1..RSV3 as in a frame's first byte: the ones a negotiated extension lets data frames set. */
export const WS_RSV_MASK = 0x70;
const WS_RSV1 = 0x40;

/**
 * The RSV bits data frames may set, from the 101's Sec-WebSocket-Extensions: permessage-deflate
 * (RFC 7692) sets RSV1 on a message's first frame; an extension wsgate does not know may use any.
 */
export function rsvAllowed(extensions: string | undefined): number {
  if (extensions === undefined) return 0;
  let bits = 0;
  for (const ext of extensions.split(',')) {
    const name = ext.split(';')[0].trim().toLowerCase();
    if (name === '') continue;
    bits |= name === 'permessage-deflate' ? WS_RSV1 : WS_RSV_MASK;
  }
  return bits;
}

/** Marks a WebSocket tunnel (its other flag bits may all be 0). */
export const WS_ON = 0x80;

/**
 * `WSGATE_WS_TRACK=0`, read once when wsgate starts: no tunnel follows WebSocket frames, so none
 * gets close frames, pings, strict mode, frame counts or close codes; they are plain byte tunnels
 * as in Apache. A bench and diagnostic switch (what the tracker costs, whether it is to blame),
 * not a setting: nothing in the config turns it off.
 */
export const WS_TRACKING = process.env.WSGATE_WS_TRACK !== '0';

/**
 * The tracker flags of a tunnel from its 101: 0 when it did not upgrade to `websocket`
 * (or tracking is off, WS_TRACKING).
 * `extensions` is the 101's Sec-WebSocket-Extensions.
 */
export function websocketFlags(upgrade: string | undefined, extensions: string | undefined, strict: boolean): number {
  if (!WS_TRACKING || upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return 0;
  return WS_ON | rsvAllowed(extensions) | (strict ? WS_STRICT : 0);
}

/** websocketFlags of a relayed 101 (every Sec-WebSocket-Extensions line read). */
export function websocketFlagsOf(res: ResponseHead, strict: boolean): number {
  let exts: string | undefined;
  const h = res.headers;
  for (let i = 0; i < h.length; i += 2) {
    // 24 = "sec-websocket-extensions".length: most names are skipped without lower-casing them.
    if (h[i].length === 24 && h[i].toLowerCase() === 'sec-websocket-extensions')
      exts = exts === undefined ? h[i + 1] : `${exts},${h[i + 1]}`;
  }
  return websocketFlags(res.upgrade, exts, strict);
}

/** A close frame (RFC 6455 §5.5.1): `code`, a short UTF-8 reason; masked with a random key toward a backend. */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 100), 'utf8').subarray(0, 123);
  const len = 2 + text.length;
  const head = masked ? 6 : 2;
  const f = Buffer.allocUnsafe(head + len);
  f[0] = 0x88;
  f[1] = (masked ? 0x80 : 0) | len;
  const p = f.subarray(head);
  p.writeUInt16BE(code, 0);
  text.copy(p, 2);
  if (masked) {
    randomFillSync(f, 2, 4);
    for (let i = 0; i < len; i++) p[i] ^= f[2 + (i & 3)];
  }
  return f;
}

/** Where feed() found nothing to stop at. */
export const WS_NO_STOP = -1;

/** The payload length of wsgate's own pings: long enough to be told apart from a peer's. */
export const PING_PAYLOAD = 8;

/** A ping (RFC 6455 §5.5.2) carrying `payload` (PING_PAYLOAD bytes); masked with a random key toward a backend. */
export function pingFrame(payload: Uint8Array, masked: boolean): Buffer {
  const head = masked ? 6 : 2;
  const f = Buffer.allocUnsafe(head + PING_PAYLOAD);
  f[0] = 0x89;
  f[1] = (masked ? 0x80 : 0) | PING_PAYLOAD;
  if (masked) randomFillSync(f, 2, 4);
  for (let i = 0; i < PING_PAYLOAD; i++) f[head + i] = payload[i] ^ (masked ? f[2 + (i & 3)] : 0);
  return f;
}

/** Orders close frames and wsgate's own closes across a process, so a tunnel can tell which came first. */
let closeSeq = 0;
export function nextCloseSeq(): number {
  return ++closeSeq;
}

/** What PongCatcher.take decided about the frame it holds. */
export const PONG_PENDING = 0;
export const PONG_OURS = 1;
export const PONG_OTHER = 2;

/**
 * Holds back a pong frame, from a tracker's pause (WsTracker.pauseOnPong) until it can tell
 * whether it answers wsgate's own ping: the same length and payload. At most a frame header and
 * PING_PAYLOAD bytes are held; anything else is let go as soon as its second byte shows it.
 */
export class PongCatcher {
  /** The payload of the ping wsgate sent the other way, while its pong is awaited. */
  readonly expect = Buffer.alloc(PING_PAYLOAD);
  awaiting = false;
  /** The awaited pong came since the last ping check: the side's only sign of life may be that answer. */
  answered = false;
  readonly held = Buffer.alloc(6 + PING_PAYLOAD);
  heldLen = 0;
  /** Where the last take() stopped reading. */
  next = 0;

  /** `masked`: the frames it sees come from a client. */
  constructor(private readonly masked: boolean) {}

  /** Takes bytes of the held frame from `b[from, to)` until it can decide (PONG_PENDING: all taken, still undecided). */
  take(b: Uint8Array, from: number, to: number): number {
    let i = from;
    while (i < to) {
      this.held[this.heldLen++] = b[i++];
      const v = this.verdict();
      if (v !== PONG_PENDING) {
        this.next = i;
        return v;
      }
    }
    this.next = i;
    return PONG_PENDING;
  }

  private verdict(): number {
    const n = this.heldLen;
    if (n < 2) return PONG_PENDING;
    const b1 = this.held[1];
    if ((b1 & 0x7f) !== PING_PAYLOAD || ((b1 & 0x80) !== 0) !== this.masked) return PONG_OTHER;
    const p = this.masked ? 6 : 2;
    if (n < p + PING_PAYLOAD) return PONG_PENDING;
    for (let k = 0; k < PING_PAYLOAD; k++) {
      if ((this.held[p + k] ^ (this.masked ? this.held[2 + (k & 3)] : 0)) !== this.expect[k]) return PONG_OTHER;
    }
    return PONG_OURS;
  }
}

export class WsTracker {
  /** Complete frames, control frames included. */
  frames = 0;
  /** Complete data messages (a text or binary frame with FIN, or the final continuation). */
  messages = 0;
  violations = 0;
  /** The first violation seen (an index of WS_VIOLATIONS), 0 if none. */
  firstViolation = 0;
  /** Set by the owner: feed() stops at the next frame boundary (where a frame may be inserted). */
  stopAtBoundary = false;
  /** feed() stopped (a boundary when asked for one, or a violation in strict mode): the rest is not forwarded. */
  stopped = false;
  /**
   * Stopped at a boundary: feed() still follows what comes (dropped by the owner) to read the
   * peer's answering close frame; a violation in strict mode ends that too.
   */
  trailing = false;
  /** Set by the owner while a pong to its own ping is awaited: feed() pauses before a pong that starts at a boundary. */
  pauseOnPong = false;
  /** feed() paused there (not stopped): the bytes from the offset it returned are for a PongCatcher. */
  paused = false;
  /** The status code of the first close frame this way (1005: it gave none), 0 before one; and when it came (nextCloseSeq). */
  closeCode = 0;
  closeSeq = 0;
  /** Bytes of that close frame's status code still to read, and the code so far. */
  private codeNeed = 0;
  private codeAcc = 0;
  /** Where the masking key is in `hdr` for the current frame (0: unmasked). */
  private keyAt = 0;

  private readonly hdr = new Uint8Array(14);
  private hlen = 0;
  private need = 2;
  /** Payload bytes of the current frame still to pass. */
  private remaining = 0;
  /** The current frame's first byte, kept for its end. */
  private b0 = 0;
  /** A fragmented data message is open (its last frame not seen yet). */
  private inMessage = false;

  constructor(private readonly flags: number) {}

  /** Between two frames: nothing of a frame passed that has not ended. */
  get atBoundary(): boolean {
    return this.hlen === 0 && this.remaining === 0;
  }

  get open(): boolean {
    return this.inMessage;
  }

  /**
   * Follows `b[from, to)`. Returns WS_NO_STOP when all of it may be forwarded, else the offset
   * where forwarding must stop: the next boundary when `stopAtBoundary` is set, or the start of a
   * violating frame in strict mode (the offset reached, if its header began in an earlier chunk).
   * Once stopped, every later call returns `from`.
   */
  feed(b: Uint8Array, from: number, to: number): number {
    if (this.stopped) {
      if (this.trailing) this.trail(b, from, to);
      return from;
    }
    let i = from;
    // Where the current frame began in this chunk (-1: in an earlier one, already forwarded).
    let start = this.hlen === 0 ? from : -1;
    while (i < to) {
      if (this.remaining > 0) {
        const n = Math.min(to - i, this.remaining);
        if (this.codeNeed !== 0) this.readCode(b, i, n);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.frameEnded();
        continue;
      }
      if (this.hlen === 0) {
        if (this.stopAtBoundary) {
          this.trailing = true;
          return this.stop(i);
        }
        if (this.pauseOnPong && b[i] === 0x8a) {
          this.paused = true;
          return i;
        }
        start = i;
      }
      this.hdr[this.hlen++] = b[i++];
      if (this.hlen === 2) {
        const v = this.check(this.hdr[0], this.hdr[1]);
        if (v !== 0 && this.violated(v)) return this.stopAtFrame(start, from);
        const len7 = this.hdr[1] & 0x7f;
        this.need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.hdr[1] & 0x80 ? 4 : 0);
      } else if (this.hlen === 3 && (this.hdr[1] & 0x7f) === 127 && this.hdr[2] & 0x80) {
        if (this.violated(9)) return this.stopAtFrame(start, from);
      }
      if (this.hlen >= 2 && this.hlen === this.need) this.headerDone();
    }
    if (this.stopAtBoundary && this.atBoundary) {
      this.trailing = true;
      return this.stop(to);
    }
    return WS_NO_STOP;
  }

  /**
   * Strict mode stops before the violating frame: when its header began in this chunk the
   * forwarded stream ends at a boundary; else part of it is already gone and it does not.
   */
  private stopAtFrame(start: number, from: number): number {
    if (start < 0) return this.stop(from);
    this.hlen = 0;
    this.need = 2;
    return this.stop(start);
  }

  /** Follows bytes after a stop at a boundary, for their close code and counts only. */
  private trail(b: Uint8Array, from: number, to: number): void {
    this.stopped = false;
    this.stopAtBoundary = false;
    this.pauseOnPong = false;
    if (this.feed(b, from, to) !== WS_NO_STOP) this.trailing = false;
    this.stopped = true;
  }

  private stop(at: number): number {
    this.stopped = true;
    return at;
  }

  /** The violation in a header's first two bytes, or 0; updates the message state. */
  private check(b0: number, b1: number): number {
    const op = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    if (masked !== ((this.flags & WS_MASKED) !== 0)) return masked ? 2 : 1;
    if (op >= 8) {
      if (op > 10) return 3;
      if (b0 & WS_RSV_MASK) return 4;
      if ((b1 & 0x7f) > 125) return 5;
      if ((b0 & 0x80) === 0) return 6;
      return 0;
    }
    if (op > 2) return 3;
    // Extensions set RSV bits on a message's first frame only (RFC 7692 §6: RSV1 on continuations is an error).
    const rsv = b0 & WS_RSV_MASK;
    if (rsv !== 0 && (op === 0 || (rsv & ~this.flags & WS_RSV_MASK) !== 0)) return 4;
    if (op === 0 && !this.inMessage) return 7;
    if (op !== 0 && this.inMessage) return 8;
    return 0;
  }

  /** Counts a violation; true when the tunnel must stop here (strict mode). */
  private violated(v: number): boolean {
    this.violations++;
    if (this.firstViolation === 0) this.firstViolation = v;
    return (this.flags & WS_STRICT) !== 0;
  }

  private headerDone(): void {
    const h = this.hdr;
    const len7 = h[1] & 0x7f;
    let len = len7;
    if (len7 === 126) len = (h[2] << 8) | h[3];
    // Above 2^53 the count is approximate; such a frame is never seen whole anyway.
    else if (len7 === 127)
      len =
        (h[2] & 0x7f) * 2 ** 56 +
        h[3] * 2 ** 48 +
        h[4] * 2 ** 40 +
        h[5] * 2 ** 32 +
        ((h[6] << 24) >>> 0) +
        (h[7] << 16) +
        (h[8] << 8) +
        h[9];
    this.b0 = h[0];
    this.hlen = 0;
    this.need = 2;
    this.remaining = len;
    // A data frame opens or continues a message; control frames leave it as it was.
    const op = h[0] & 0x0f;
    if (op < 8) this.inMessage = (h[0] & 0x80) === 0;
    else if (op === 8 && this.closeSeq === 0) this.closeStarts(len);
    if (len === 0) this.frameEnded();
  }

  /** The first close frame this way: its status code is read from its first two payload bytes (RFC 6455 §5.5.1). */
  private closeStarts(len: number): void {
    this.closeSeq = nextCloseSeq();
    if (len < 2) {
      this.closeCode = 1005;
      return;
    }
    const len7 = this.hdr[1] & 0x7f;
    this.keyAt = this.hdr[1] & 0x80 ? (len7 === 126 ? 4 : len7 === 127 ? 10 : 2) : 0;
    this.codeNeed = 2;
    this.codeAcc = 0;
  }

  private readCode(b: Uint8Array, at: number, n: number): void {
    for (let k = 0; k < n && this.codeNeed !== 0; k++) {
      const pos = 2 - this.codeNeed;
      const key = this.keyAt === 0 ? 0 : this.hdr[this.keyAt + pos];
      this.codeAcc = (this.codeAcc << 8) | (b[at + k] ^ key);
      if (--this.codeNeed === 0) this.closeCode = this.codeAcc === 0 ? 1005 : this.codeAcc;
    }
  }

  private frameEnded(): void {
    this.frames++;
    const op = this.b0 & 0x0f;
    if (op < 8 && this.b0 & 0x80) this.messages++;
  }
}

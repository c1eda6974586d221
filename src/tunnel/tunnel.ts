// The tunnel: after a 101, one object owns the client and backend sockets and moves bytes
// between them until both sides are done, an error happens, or the idle limit passes.
//
// This is the hot path. Per chunk it does a write, three counter updates (the tunnel's, and the
// backend's in `TunnelOptions.counters`) and a flag store: no allocation, no closure, no logging.
// Event handlers are module-level functions that find their tunnel through a field on the
// socket, so 10,000 tunnels do not hold 10,000 sets of closures. A tunnel the native engine runs
// has its counts read from the engine at least once a second (`pollNative`) and added to the
// backend's counters then, so those are live on both engines.

import type { Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import {
  errnoName,
  FIN_TIMEOUT_MS,
  NATIVE_REASONS,
  nativeEngine,
  onNativeClose,
  WS_CLOSE_GRACE_MS,
  WS_CLOSE_EVENT,
  WS_COUNTS_EVENT,
  WS_EVENT,
} from './native';
import { randomFillSync } from 'node:crypto';
import { small, ticksNow, toEpochMs } from '../observe/clock';
import {
  closeFrame,
  nextCloseSeq,
  PONG_OURS,
  PONG_PENDING,
  PongCatcher,
  pingFrame,
  WS_MASKED,
  WS_NO_STOP,
  WS_STRICT,
  WS_VIOLATIONS,
  WsTracker,
} from './wsframe';

/** Why a tunnel ended; also what the access log and counters will report. */
export type CloseReason =
  | 'closed' // both sides finished cleanly (each FIN forwarded)
  | 'client-error'
  | 'backend-error'
  | 'client-reset' // the client went away without a clean close
  | 'backend-reset'
  | 'idle-timeout'
  | 'shutdown' // wsgate is stopping
  | 'reload' // a reloaded config no longer has the tunnel's route or backend (a WebSocket gets 1012)
  | 'drain' // its balancer member was set to drain from the status page (a WebSocket gets 1001)
  | 'fin-timeout' // both FINs seen but a side never finished writing
  | 'ping-timeout'; // a WebSocket side did not answer wsgate's ping within ProxyWebsocketPingInterval

/**
 * Sees the bytes of one direction as they pass, without copying them. Optional and cheap: the
 * WebSocket frame tracker of a later issue plugs in here. Must not keep `chunk` beyond the call.
 */
export interface TunnelObserver {
  onChunk(chunk: Buffer): void;
}

/** One side of a tunnel, as the direction toward it: `send('client', …)` writes to the client. */
export type TunnelSide = 'client' | 'backend';

/** Where a tunnel adds its bytes as they flow (the backend's counters, upstream/counters.ts). */
export interface ByteCounters {
  bytesUp: number;
  bytesDown: number;
}

export interface TunnelOptions {
  /** Idle limit in ms (ProxyWebsocketIdleTimeout); 0 = none. */
  readonly idleTimeoutMs: number;
  /** Called once, after both sockets are closed or destroyed. */
  readonly onClose: (tunnel: Tunnel) => void;
  readonly upObserver?: TunnelObserver;
  readonly downObserver?: TunnelObserver;
  /** Gets every byte the tunnel forwards, early bytes included, while it runs. */
  readonly counters?: ByteCounters;
  /** A WebSocket tunnel's tracker flags (wsframe.ts websocketFlags); 0 or absent: not WebSocket. */
  readonly wsFlags?: number;
  /** A WebSocket tunnel pings a side silent this long, and one that does not answer within it is dead (ProxyWebsocketPingInterval); 0 or absent: off. */
  readonly pingIntervalMs?: number;
  /** Hears a WebSocket tunnel's first protocol violation (once per tunnel), from the side that sent it. */
  readonly onViolation?: (tunnel: Tunnel, what: string, from: TunnelSide) => void;
}

/** A tunnel's client end: a socket, or the HTTP/2 stream of an RFC 8441 WebSocket (a Duplex with the same events). */
export type TunnelClient = Socket | Http2Stream;

/** A WebSocket tunnel's counts per direction (up: client → backend). */
export interface WsCounts {
  framesUp: number;
  messagesUp: number;
  violationsUp: number;
  framesDown: number;
  messagesDown: number;
  violationsDown: number;
}

/** Who sent a WebSocket tunnel's first close frame: a peer, or wsgate itself. */
export type CloseFirst = 'client' | 'backend' | 'wsgate';

/** The close frames of a WebSocket tunnel: each peer's status code (0: it sent none; 1005: one with no code) and wsgate's own. */
export interface WsCloseCodes {
  client: number;
  backend: number;
  wsgate: number;
  first: CloseFirst | undefined;
}

export { WS_CLOSE_GRACE_MS };

const kTunnel = Symbol('wsgate.tunnel');
type TunnelSocket = Socket & { [kTunnel]?: Tunnel };

/** A native tunnel's byte counts are read from the engine this often (and at each idle tick, and at its close). */
const NATIVE_POLL_MS = 1000;
/** The idle timer ticks this many times per idle period: a tunnel closes between 1× and 1.25× the limit. */
const IDLE_TICKS = 4;
/** TCP keepalive probes start after this much silence, to find peers that vanished. */
export const TCP_KEEPALIVE_DELAY_MS = 60_000;

// The bits of Tunnel.bits.
const USED_NATIVE = 1;
const ACTIVE = 2;
const CLIENT_ENDED = 4;
const BACKEND_ENDED = 8;
const CLIENT_CLOSED = 16;
const BACKEND_CLOSED = 32;
const FINISHED = 64;
const PUMPING = 128;
const DOWN_ENDED = 256;
const UP_ENDED = 512;
const WS_REPORTED = 1024;
const HEARD_CLIENT = 2048;
const HEARD_BACKEND = 4096;

let nextTunnelId = 1;

export class Tunnel {
  readonly id = nextTunnelId++;
  /** Kept as ticks (observe/clock.ts): a tunnel may live for days, and 10,000 boxed timestamps add up. */
  private readonly startTicks = ticksNow();
  private endTicks = 0;
  /** Bytes forwarded so far (see the `bytesUp`/`bytesDown` getters). */
  private up = 0;
  private down = 0;
  closeReason: CloseReason | undefined;
  /** An error message for the log when closeReason is an error, else undefined. */
  closeDetail: string | undefined;

  /** Native mode: bytes counted in JS before the hand-over, and the total seen at the last idle tick. */
  private earlyUp = 0;
  private earlyDown = 0;
  private lastTotal = 0;
  /** Native mode: the counts already added to `options.counters`. */
  private creditedUp = 0;
  private creditedDown = 0;
  /** Where the bytes go as they flow; a private sink when the caller keeps no counters. */
  private readonly sink: ByteCounters;
  private quietTicks = 0;
  private timer: NodeJS.Timeout | undefined;
  /**
   * The tunnel's yes/no state, one bit each (USED_NATIVE, ACTIVE, … above), behind accessors
   * of the same names: one field rather than thirteen, in every one of 10,000 idle tunnels.
   */
  private bits = 0;
  /** JS mode, a WebSocket tunnel: the trackers of each direction, and a close frame held for its next boundary. */
  private wsUp: WsTracker | undefined;
  private wsDown: WsTracker | undefined;
  private heldUp: Buffer | undefined;
  private heldDown: Buffer | undefined;
  /** The counts of a native WebSocket tunnel, as last read from the engine. */
  private wsNative: WsCounts | undefined;
  /** The close code wsgate sent, if it closed the WebSocket itself. */
  wsCloseCode = 0;
  private wsTimer: NodeJS.Timeout | undefined;
  /** Why wsgate closed the WebSocket itself (idle, shutdown): the reason reported once the close handshake is over. */
  private wsReason: CloseReason | undefined;
  /** JS mode: the side that vanished while the other is given a close frame (0 none, 1 client, 2 backend). */
  private wsDead = 0;
  /** When wsgate decided to close the WebSocket itself (nextCloseSeq), 0 if it did not. */
  private wsCloseSeq = 0;
  /** A native tunnel's close codes as last read from the engine: [client, backend, first (0 none, 1 client, 2 backend, 3 wsgate) + 4 × the engine's own code]. */
  private wsNativeClose: [number, number, number] | undefined;
  /** Keep-alive pings (JS mode): the timer, and the pong catchers per direction. */
  private pingTimer: NodeJS.Timeout | undefined;
  private pongUp: PongCatcher | undefined;
  private pongDown: PongCatcher | undefined;
  private finishWaiters: Array<() => void> | undefined;

  /**
   * `client` and `backend` are Node's sockets; both are undefined for a tunnel the native front
   * made itself (it never had Node sockets: see `startInEngine`).
   */
  constructor(
    readonly client: TunnelClient | undefined,
    readonly backend: Socket | undefined,
    private readonly options: TunnelOptions,
  ) {
    this.sink = options.counters ?? { bytesUp: 0, bytesDown: 0 };
    // The trackers themselves are made only if the JavaScript pump runs the tunnel (start): the
    // engine tracks the frames of the tunnels it runs, and most tunnels are its. The counts too
    // are made when first read (an idle tunnel may never be asked).
  }

  /** The tunnel was handed to the native engine (stays true after it ended). */
  get usedNative(): boolean {
    return (this.bits & USED_NATIVE) !== 0;
  }
  set usedNative(on: boolean) {
    this.bits = on ? this.bits | USED_NATIVE : this.bits & ~USED_NATIVE;
  }
  /** Set by every chunk, cleared by every idle tick: cheaper than re-arming a timer per chunk. */
  private get active(): boolean {
    return (this.bits & ACTIVE) !== 0;
  }
  private set active(on: boolean) {
    this.bits = on ? this.bits | ACTIVE : this.bits & ~ACTIVE;
  }
  private get clientEnded(): boolean {
    return (this.bits & CLIENT_ENDED) !== 0;
  }
  private set clientEnded(on: boolean) {
    this.bits = on ? this.bits | CLIENT_ENDED : this.bits & ~CLIENT_ENDED;
  }
  private get backendEnded(): boolean {
    return (this.bits & BACKEND_ENDED) !== 0;
  }
  private set backendEnded(on: boolean) {
    this.bits = on ? this.bits | BACKEND_ENDED : this.bits & ~BACKEND_ENDED;
  }
  private get clientClosed(): boolean {
    return (this.bits & CLIENT_CLOSED) !== 0;
  }
  private set clientClosed(on: boolean) {
    this.bits = on ? this.bits | CLIENT_CLOSED : this.bits & ~CLIENT_CLOSED;
  }
  private get backendClosed(): boolean {
    return (this.bits & BACKEND_CLOSED) !== 0;
  }
  private set backendClosed(on: boolean) {
    this.bits = on ? this.bits | BACKEND_CLOSED : this.bits & ~BACKEND_CLOSED;
  }
  private get finished(): boolean {
    return (this.bits & FINISHED) !== 0;
  }
  private set finished(on: boolean) {
    this.bits = on ? this.bits | FINISHED : this.bits & ~FINISHED;
  }
  /** JS mode: the pump's listeners are attached (start ran and kept the sockets). */
  private get pumping(): boolean {
    return (this.bits & PUMPING) !== 0;
  }
  private set pumping(on: boolean) {
    this.bits = on ? this.bits | PUMPING : this.bits & ~PUMPING;
  }
  /** JS mode: a FIN was sent toward the client / the backend (forwarded, or by endToward). */
  private get downEnded(): boolean {
    return (this.bits & DOWN_ENDED) !== 0;
  }
  private set downEnded(on: boolean) {
    this.bits = on ? this.bits | DOWN_ENDED : this.bits & ~DOWN_ENDED;
  }
  private get upEnded(): boolean {
    return (this.bits & UP_ENDED) !== 0;
  }
  private set upEnded(on: boolean) {
    this.bits = on ? this.bits | UP_ENDED : this.bits & ~UP_ENDED;
  }
  /** The first WebSocket violation was reported. */
  private get wsReported(): boolean {
    return (this.bits & WS_REPORTED) !== 0;
  }
  private set wsReported(on: boolean) {
    this.bits = on ? this.bits | WS_REPORTED : this.bits & ~WS_REPORTED;
  }
  /** Keep-alive pings (JS mode): each side sent something since the last tick. */
  private get heardClient(): boolean {
    return (this.bits & HEARD_CLIENT) !== 0;
  }
  private set heardClient(on: boolean) {
    this.bits = on ? this.bits | HEARD_CLIENT : this.bits & ~HEARD_CLIENT;
  }
  private get heardBackend(): boolean {
    return (this.bits & HEARD_BACKEND) !== 0;
  }
  private set heardBackend(on: boolean) {
    this.bits = on ? this.bits | HEARD_BACKEND : this.bits & ~HEARD_BACKEND;
  }

  /** When the tunnel was made, epoch ms. */
  get startedAt(): number {
    return toEpochMs(this.startTicks);
  }

  /** When it finished, epoch ms; 0 while it runs. */
  get endedAt(): number {
    return toEpochMs(this.endTicks);
  }

  /** A tunnel that upgraded to `websocket`: its frames are followed both ways. */
  get websocket(): boolean {
    return (this.options.wsFlags ?? 0) !== 0;
  }

  /** Frames, messages and violations each way of a WebSocket tunnel (undefined for other tunnels). */
  wsCounts(): WsCounts | undefined {
    if (!this.websocket) return undefined;
    const n = (this.wsNative ??= zeroCounts());
    if (this.native) {
      if (nativeEngine()!.wsStats(this.id, wsScratch)) {
        n.framesUp = wsScratch[0];
        n.messagesUp = wsScratch[1];
        n.violationsUp = wsScratch[2];
        n.framesDown = wsScratch[3];
        n.messagesDown = wsScratch[4];
        n.violationsDown = wsScratch[5];
        this.wsNativeClose = [wsScratch[8], wsScratch[9], wsScratch[10]];
      }
    } else if (this.wsUp !== undefined && this.wsDown !== undefined) {
      const u = this.wsUp;
      const d = this.wsDown;
      n.framesUp = u.frames;
      n.messagesUp = u.messages;
      n.violationsUp = u.violations;
      n.framesDown = d.frames;
      n.messagesDown = d.messages;
      n.violationsDown = d.violations;
    }
    return { ...n };
  }

  /** The close codes each way of a WebSocket tunnel, and who closed first (undefined for other tunnels). */
  wsCloseCodes(): WsCloseCodes | undefined {
    if (!this.websocket) return undefined;
    if (this.native) this.wsCounts();
    let client = 0;
    let backend = 0;
    let wsgate = this.wsCloseCode;
    let first: CloseFirst | undefined;
    const nc = this.wsNativeClose;
    if (nc !== undefined) {
      client = nc[0];
      backend = nc[1];
      const f = nc[2] & 3;
      first = f === 1 ? 'client' : f === 2 ? 'backend' : f === 3 ? 'wsgate' : undefined;
      if (wsgate === 0) wsgate = Math.floor(nc[2] / 4);
    } else if (this.wsUp !== undefined && this.wsDown !== undefined) {
      client = this.wsUp.closeCode;
      backend = this.wsDown.closeCode;
      let seq = Number.POSITIVE_INFINITY;
      for (const [who, at] of [
        ['client', this.wsUp.closeSeq],
        ['backend', this.wsDown.closeSeq],
        ['wsgate', this.wsCloseSeq],
      ] as const) {
        if (at !== 0 && at < seq) {
          seq = at;
          first = who;
        }
      }
    }
    return { client, backend, wsgate, first };
  }

  /**
   * A WebSocket tunnel: writes `frame` toward `toward` at the next frame boundary of that
   * direction (now if it is at one), then half-closes it; what follows the boundary is dropped.
   * Returns false when the tunnel is not WebSocket, has ended, or that direction already ended.
   */
  closeAtBoundary(toward: TunnelSide, frame: Buffer): boolean {
    if (this.finished || !this.websocket) return false;
    if (this.usedNative) return nativeEngine()!.closeAtBoundary(this.id, toward === 'client' ? 0 : 1, frame);
    if (!this.pumping || this.closeReason !== undefined) return false;
    return this.jsCloseToward(toward, frame, false);
  }

  /**
   * JS mode: closeAtBoundary's work. `sourceGone`: the side the direction comes from vanished,
   * so no later boundary will come: the frame goes now if the direction is at one, else none does.
   */
  private jsCloseToward(toward: TunnelSide, frame: Buffer, sourceGone: boolean): boolean {
    const w = toward === 'client' ? this.wsDown! : this.wsUp!;
    const sock = toward === 'client' ? this.client! : this.backend!;
    if (sock.destroyed || (toward === 'client' ? this.downEnded || this.heldDown !== undefined : this.upEnded || this.heldUp !== undefined))
      return false;
    if (!w.atBoundary && !w.stopped && !sourceGone) {
      if (toward === 'client') this.heldDown = frame;
      else this.heldUp = frame;
      w.stopAtBoundary = true;
      return true;
    }
    // Stopped inside a frame (or its source gone there): nowhere to put one; the direction only ends.
    if (w.atBoundary) {
      sock.write(frame);
      w.trailing = true; // the peer's answer is still read (and dropped) for its close code
    }
    w.stopped = true;
    if (toward === 'client') this.downEnded = true;
    else this.upEnded = true;
    sock.end();
    // The other side may have been paused behind this one; what it sends is dropped from now on.
    (toward === 'client' ? this.backend! : this.client!).resume();
    return true;
  }

  /**
   * JS mode: a side of a WebSocket tunnel vanished (reset, error): the other gets a close frame
   * (1011 from a backend failure, 1001 when the client went away) if its direction is at a frame
   * boundary, then its FIN, and WS_CLOSE_GRACE_MS to answer. True when the tunnel goes on that way
   * (also for the vanished side's own later events); false to destroy both sides as usual.
   */
  private wsSurvive(deadIsClient: boolean, text?: string): boolean {
    if (this.wsDead !== 0) return this.wsDead === (deadIsClient ? 1 : 2);
    if (this.wsUp === undefined || this.wsCloseCode !== 0 || !this.pumping) return false;
    const toward: TunnelSide = deadIsClient ? 'backend' : 'client';
    const survivor = deadIsClient ? this.backend! : this.client!;
    if (survivor.destroyed || (deadIsClient ? this.upEnded : this.downEnded)) return false;
    this.wsDead = deadIsClient ? 1 : 2;
    this.wsCloseCode = deadIsClient ? 1001 : 1011;
    this.wsCloseSeq = nextCloseSeq();
    (deadIsClient ? this.client! : this.backend!).destroy();
    this.clearIdle();
    const frame = deadIsClient ? closeFrame(1001, text ?? 'client went away', true) : closeFrame(1011, text ?? 'backend error', false);
    this.jsCloseToward(toward, frame, true);
    this.wsTimer = setTimeout(wsGraceOver, WS_CLOSE_GRACE_MS, this);
    this.wsTimer.unref();
    return true;
  }

  /** Resolves once the tunnel has finished (both sides closed). */
  whenFinished(): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((resolve) => {
      (this.finishWaiters ??= []).push(resolve);
    });
  }

  /**
   * Ends a WebSocket tunnel the way its peers understand: a close frame with `code` and `reason`
   * toward each side at its next frame boundary (masked toward the backend), then, once both
   * sides closed or WS_CLOSE_GRACE_MS passed, TCP. Returns false if it was not a running WebSocket tunnel.
   */
  closeWebSocket(code: number, reason: string, why?: CloseReason): boolean {
    if (this.finished || !this.websocket || this.wsCloseCode !== 0) return false;
    const a = this.closeAtBoundary('client', closeFrame(code, reason, false));
    const b = this.closeAtBoundary('backend', closeFrame(code, reason, true));
    if (!a && !b) return false;
    this.wsCloseCode = code;
    this.wsCloseSeq = nextCloseSeq();
    this.wsReason = why;
    this.clearIdle();
    this.wsTimer = setTimeout(wsGraceOver, WS_CLOSE_GRACE_MS, this);
    this.wsTimer.unref();
    return true;
  }

  /** Both sides have closed: the tunnel is over (its onClose has run or is running). */
  get ended(): boolean {
    return this.finished;
  }

  /** Close frames were sent (closeWebSocket) and the tunnel waits for its peers to answer. */
  get closingWebSocket(): boolean {
    return this.wsCloseCode !== 0 && !this.finished;
  }

  /** @internal A violation was found (the first of the tunnel); strict mode closes with 1002. */
  wsViolation(violation: number, from: TunnelSide): void {
    if (this.wsReported) return;
    this.wsReported = true;
    const what = WS_VIOLATIONS[violation] ?? `violation ${violation}`;
    this.options.onViolation?.(this, what, from);
    if (((this.options.wsFlags ?? 0) & WS_STRICT) !== 0) {
      this.closeDetail = `WebSocket protocol violation from the ${from}: ${what}`;
      this.closeWebSocket(1002, 'protocol error');
    }
  }

  /** @internal The engine's WebSocket events for this tunnel (a violation, final counts). */
  nativeWs(kind: number, a: number, b: number, c: number): void {
    if (kind === WS_EVENT) {
      this.wsViolation(a, b === 0 ? 'client' : 'backend');
      return;
    }
    if (!this.websocket) return;
    const n = (this.wsNative ??= zeroCounts());
    if (kind === WS_CLOSE_EVENT) {
      this.wsNativeClose = [b, c, a];
      return;
    }
    if (kind === WS_COUNTS_EVENT) {
      n.violationsUp = a;
      n.framesUp = b;
      n.messagesUp = c;
    } else if (kind === WS_COUNTS_EVENT + 1) {
      n.violationsDown = a;
      n.framesDown = b;
      n.messagesDown = c;
    }
  }

  /**
   * Starts a tunnel made without Node sockets (constructed with none): `establish(id)` asks the
   * native front to turn its handshake's two sockets into engine tunnel `id`; it returns false
   * when the client had gone meanwhile, and the tunnel ends at once as a client reset.
   * `earlyUp`/`earlyDown` count the bytes that came with the request head and with the 101.
   */
  startInEngine(establish: (id: number) => boolean, earlyUp: number, earlyDown: number): void {
    this.usedNative = true;
    // Bytes that came with the request head or the 101: tunnel bytes the engine did not read.
    this.earlyUp = this.up = earlyUp;
    this.earlyDown = this.down = earlyDown;
    this.credit();
    trackNative(this);
    if (!establish(this.id)) {
      this.nativeClosed(NATIVE_CLIENT_RESET, 0, 0, 0);
      return;
    }
    this.nativePings();
    if (this.options.idleTimeoutMs > 0) this.armIdle();
  }

  /** True while the native engine moves this tunnel's bytes (its sockets were handed over). */
  get native(): boolean {
    return this.usedNative && !this.finished;
  }

  /**
   * Starts moving bytes. `clientEarly` are bytes the client sent after its request head (they go
   * to the backend first); `backendEarly` are bytes that came with the 101 (they go to the client).
   */
  start(clientEarly: Buffer | undefined, backendEarly: Buffer | undefined): void {
    const client = this.client as TunnelSocket;
    const backend = this.backend as TunnelSocket;
    if (client === undefined || backend === undefined) throw new Error('Tunnel.start needs both sockets');
    client[kTunnel] = this;
    backend[kTunnel] = this;
    client.setTimeout(0);
    backend.setTimeout(0);
    // The native engine sets no-delay and keepalive on its own duplicates of the fds.
    if (this.handOver(clientEarly, backendEarly)) {
      if (this.options.idleTimeoutMs > 0 && !this.finished) this.armIdle();
      return;
    }
    for (const s of [client, backend]) {
      // An HTTP/2 stream (an RFC 8441 WebSocket) stands in for a socket here: it has no TCP options of its own.
      if (typeof s.setNoDelay !== 'function') continue;
      s.setNoDelay(true);
      s.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    }
    const ws = this.options.wsFlags ?? 0;
    if (ws !== 0) {
      this.wsUp = new WsTracker(ws | WS_MASKED);
      this.wsDown = new WsTracker(ws & ~WS_MASKED);
      const ping = this.options.pingIntervalMs ?? 0;
      if (ping > 0) {
        this.pongUp = new PongCatcher(true);
        this.pongDown = new PongCatcher(false);
        this.pingTimer = setTimeout(pingTick, ping, this);
        this.pingTimer.unref();
      }
    }
    this.pumping = true;
    client.on('data', clientOnData);
    client.on('end', clientOnEnd);
    client.on('error', clientOnError);
    client.on('close', clientOnClose);
    client.on('drain', clientOnDrain);
    backend.on('data', backendOnData);
    backend.on('end', backendOnEnd);
    backend.on('error', backendOnError);
    backend.on('close', backendOnClose);
    backend.on('drain', backendOnDrain);

    if (clientEarly !== undefined && clientEarly.length > 0) this.forwardUp(clientEarly);
    if (backendEarly !== undefined && backendEarly.length > 0) this.forwardDown(backendEarly);
    // A FIN read during the handshake (a paused net.Socket still reads, and emits 'end' once
    // its buffer is empty) is not signalled again: forward it now, after the early bytes.
    if (client.readableEnded) this.sideEnded(true);
    if (backend.readableEnded) this.sideEnded(false);
    if (this.options.idleTimeoutMs > 0 && this.closeReason === undefined) this.armIdle();
    // Sockets may have been paused during the handshake; flowing resumes here, and bytes that
    // arrived meanwhile are still in their read buffers.
    if (!backend.writableNeedDrain) client.resume();
    if (!client.writableNeedDrain) backend.resume();
  }

  /** Ends the tunnel now, destroying both sockets. Idempotent. */
  close(reason: CloseReason, detail?: string): void {
    if (this.closeReason === undefined || this.closeReason === 'closed') {
      this.closeReason = reason;
      this.closeDetail = detail;
    }
    if (this.native) {
      this.wsCounts(); // read while the engine still has the tunnel
      if (nativeEngine()!.close(this.id, scratch)) this.nativeClosed(NATIVE_SHUTDOWN, 0, scratch[0], scratch[1]);
      return;
    }
    this.client?.destroy();
    this.backend?.destroy();
  }

  /**
   * Writes `bytes` toward one side after every byte the tunnel has already accepted for that
   * direction, on either engine: they never land inside a chunk being forwarded. Not counted as
   * forwarded bytes, and not activity for the idle limit. The side they come from waits while
   * they are unwritten, like it does for forwarded bytes. Returns false (nothing sent) when the
   * tunnel has ended, is not running yet, or that direction was ended (a FIN went that way).
   */
  send(toward: TunnelSide, bytes: Buffer): boolean {
    if (this.finished) return false;
    if (this.usedNative) return nativeEngine()!.send(this.id, toward === 'client' ? 0 : 1, bytes);
    if (!this.pumping || this.closeReason !== undefined) return false;
    if (toward === 'client') {
      if (this.downEnded || this.client!.destroyed) return false;
      if (!this.client!.write(bytes)) this.backend!.pause();
    } else {
      if (this.upEnded || this.backend!.destroyed) return false;
      if (!this.backend!.write(bytes)) this.client!.pause();
    }
    return true;
  }

  /**
   * Half-closes one direction: a FIN goes toward `toward` once the bytes queued for it are
   * written, while the other direction goes on flowing. What the other side still sends this way
   * is read and dropped. The tunnel ends as usual, when both sides have sent their FIN. Returns
   * false when the tunnel has ended, is not running yet, or that direction was already ended.
   */
  endToward(toward: TunnelSide): boolean {
    if (this.finished) return false;
    if (this.usedNative) return nativeEngine()!.endToward(this.id, toward === 'client' ? 0 : 1);
    if (!this.pumping || this.closeReason !== undefined) return false;
    if (toward === 'client') {
      if (this.downEnded || this.client!.destroyed) return false;
      this.downEnded = true;
      this.client!.end();
      // The backend may have been paused behind a full client; its bytes are dropped from now on.
      this.backend!.resume();
    } else {
      if (this.upEnded || this.backend!.destroyed) return false;
      this.upEnded = true;
      this.backend!.end();
      this.client!.resume();
    }
    return true;
  }

  /** Bytes forwarded client → backend, including early bytes. */
  get bytesUp(): number {
    this.refreshBytes();
    return this.up;
  }

  /** Bytes forwarded backend → client, including early bytes. */
  get bytesDown(): number {
    this.refreshBytes();
    return this.down;
  }

  /** Native mode: fetches the engine's counts (JS mode counts as it goes). */
  private refreshBytes(): void {
    if (!this.native) return;
    if (nativeEngine()!.bytes(this.id, scratch)) {
      // Read from a Float64Array they are doubles: `small` keeps the fields unboxed (clock.ts).
      this.up = small(this.earlyUp + scratch[0]);
      this.down = small(this.earlyDown + scratch[1]);
      this.credit();
    }
  }

  /** Native mode: adds what the engine moved since the last look to the backend's counters. */
  private credit(): void {
    this.sink.bytesUp += this.up - this.creditedUp;
    this.sink.bytesDown += this.down - this.creditedDown;
    this.creditedUp = this.up;
    this.creditedDown = this.down;
  }

  /** @internal The once-a-second look at a native tunnel's counts. */
  poll(): void {
    this.refreshBytes();
  }

  /**
   * Gives both sockets to the native engine when it is loaded and the tunnel needs nothing only
   * JavaScript can do (TLS, an observer). Node's handles are closed afterwards; the engine holds
   * duplicates of the fds. Returns false to keep the JavaScript pump.
   */
  private handOver(clientEarly: Buffer | undefined, backendEarly: Buffer | undefined): boolean {
    if (this.options.upObserver !== undefined || this.options.downObserver !== undefined) return false;
    const client = this.client!;
    const backend = this.backend!;
    if (nativeEngine() === undefined) return false;
    const ch = handleOf(client);
    const bh = handleOf(backend);
    if (ch === undefined || bh === undefined) return false;
    if (client.writableLength > 0 || backend.writableLength > 0) return false;
    // Bytes Node already read are passed along; the engine reads the rest from the kernel.
    const up = drainReadable(client, clientEarly);
    const down = drainReadable(backend, backendEarly);
    // read() may have restarted reading: stop it last, before anything can run on the loop.
    ch.readStop();
    bh.readStop();
    this.earlyUp = up === undefined ? 0 : up.length;
    this.earlyDown = down === undefined ? 0 : down.length;
    this.up = this.earlyUp;
    this.down = this.earlyDown;
    let failure: string | undefined;
    try {
      nativeEngine()!.adopt(this.id, ch.fd, bh.fd, TCP_KEEPALIVE_DELAY_MS / 1000, up, down, this.options.wsFlags ?? 0);
    } catch (e) {
      failure = (e as Error).message; // dup(2) failed: out of file descriptors
    }
    for (const s of [client, backend]) {
      s.on('error', ignoreError);
      s.destroy();
    }
    if (failure !== undefined) {
      this.closeReason = 'backend-error';
      this.closeDetail = failure;
      this.finish();
      return true;
    }
    this.usedNative = true;
    this.credit();
    trackNative(this);
    this.nativePings();
    return true;
  }

  /** Native mode: a WebSocket tunnel with ProxyWebsocketPingInterval has the engine ping its silent sides. */
  private nativePings(): void {
    const ping = this.options.pingIntervalMs ?? 0;
    if (ping > 0 && this.websocket && this.native) nativeEngine()!.wsPing(this.id, ping);
  }

  /**
   * @internal JS mode, every ping interval: a side that sent nothing since the last tick is
   * pinged (if the bytes toward it are between frames; else at a later tick); a side pinged at
   * the last tick that has sent nothing since is dead.
   */
  pingTick(): void {
    if (this.finished || this.closeReason !== undefined || this.wsCloseCode !== 0) return;
    // A side not read because the other is full (backpressure) may be sending: it counts as heard.
    const heardClient = this.heardClient || this.client!.isPaused();
    const heardBackend = this.heardBackend || this.backend!.isPaused();
    this.heardClient = false;
    this.heardBackend = false;
    // (A side that sends but has not answered yet is alive: its pong may be behind a long frame.)
    const dead = this.pongUp!.awaiting && !heardClient ? 1 : this.pongDown!.awaiting && !heardBackend ? 2 : 0;
    if (dead !== 0) {
      this.pingDead(dead === 1);
      return;
    }
    // A side whose answer to the last ping may be all it sent is pinged again: an idle side is
    // pinged once per interval, so an intermediary never sees the wire silent much longer.
    const answeredClient = this.pongUp!.answered;
    const answeredBackend = this.pongDown!.answered;
    this.pongUp!.answered = false;
    this.pongDown!.answered = false;
    if ((!heardClient || answeredClient) && !this.pongUp!.awaiting) this.ping('client');
    if ((!heardBackend || answeredBackend) && !this.pongDown!.awaiting) this.ping('backend');
    this.pingTimer!.refresh();
  }

  private ping(toward: TunnelSide): void {
    const w = toward === 'client' ? this.wsDown! : this.wsUp!;
    if (!w.atBoundary || w.stopped || w.stopAtBoundary) return;
    // Its pong comes the other way: from the pinged side.
    const catcher = toward === 'client' ? this.pongUp! : this.pongDown!;
    randomFillSync(catcher.expect);
    if (!this.send(toward, pingFrame(catcher.expect, toward === 'backend'))) return;
    catcher.awaiting = true;
    (toward === 'client' ? this.wsUp! : this.wsDown!).pauseOnPong = true;
  }

  private pingDetail(side: TunnelSide): string {
    return `the ${side} did not answer a ping within ${this.options.pingIntervalMs} ms`;
  }

  /** A side did not answer a ping in time: it is cut, and the other side gets a close frame as when a side vanishes. */
  private pingDead(deadIsClient: boolean): void {
    const side = deadIsClient ? 'client' : 'backend';
    this.closeReason = 'ping-timeout';
    this.closeDetail = this.pingDetail(side);
    if (this.wsSurvive(deadIsClient, `${side} not answering`)) return;
    this.client!.destroy();
    this.backend!.destroy();
  }

  /** @internal The native engine ended this tunnel. */
  nativeClosed(reason: number, errno: number, up: number, down: number): void {
    untrackNative(this);
    this.up = small(this.earlyUp + up);
    this.down = small(this.earlyDown + down);
    this.credit();
    const r = NATIVE_REASONS[reason] ?? 'backend-error';
    // Once wsgate closes the WebSocket itself (stop, reload, idle, drain), a peer that resets or
    // errs during the close handshake does not change why the tunnel ended (finish: wsReason).
    if (this.wsReason !== undefined && r !== 'fin-timeout') {
      if (errno !== 0 && this.closeDetail === undefined) this.closeDetail = errnoName(errno);
    } else if (this.closeReason === undefined || (this.closeReason === 'closed' && r !== 'closed')) {
      this.closeReason = r;
      // A ping timeout's errno names the dead side (1 the client, 2 the backend).
      if (r === 'ping-timeout') this.closeDetail = this.pingDetail(errno === 1 ? 'client' : 'backend');
      else if (errno !== 0) this.closeDetail = errnoName(errno);
    }
    this.finish();
  }

  forwardUp(chunk: Buffer): void {
    this.heardClient = true;
    const w = this.wsUp;
    if (this.upEnded) {
      // endToward('backend') or a close frame: nowhere to go. A tracker stopped at a boundary reads the close code.
      if (w?.trailing) w.feed(chunk, 0, chunk.length);
      return;
    }
    if (w !== undefined) {
      if (w.pauseOnPong) {
        this.forwardCatching(chunk, true);
        return;
      }
      const stop = w.feed(chunk, 0, chunk.length);
      if (w.violations !== 0 && !this.wsReported && stop === WS_NO_STOP) this.wsViolation(w.firstViolation, 'client');
      if (stop !== WS_NO_STOP) {
        this.wsStopped(chunk, stop, true);
        return;
      }
    }
    this.up += chunk.length;
    this.sink.bytesUp += chunk.length;
    this.active = true;
    if (this.options.upObserver !== undefined) this.options.upObserver.onChunk(chunk);
    if (!this.backend!.write(chunk)) this.client!.pause();
  }

  forwardDown(chunk: Buffer): void {
    this.heardBackend = true;
    const w = this.wsDown;
    if (this.downEnded) {
      if (w?.trailing) w.feed(chunk, 0, chunk.length);
      return;
    }
    if (w !== undefined) {
      if (w.pauseOnPong) {
        this.forwardCatching(chunk, false);
        return;
      }
      const stop = w.feed(chunk, 0, chunk.length);
      if (w.violations !== 0 && !this.wsReported && stop === WS_NO_STOP) this.wsViolation(w.firstViolation, 'backend');
      if (stop !== WS_NO_STOP) {
        this.wsStopped(chunk, stop, false);
        return;
      }
    }
    this.down += chunk.length;
    this.sink.bytesDown += chunk.length;
    this.active = true;
    if (this.options.downObserver !== undefined) this.options.downObserver.onChunk(chunk);
    if (!this.client!.write(chunk)) this.backend!.pause();
  }

  /**
   * JS mode, while a pong to wsgate's ping is awaited from the side `chunk` comes from: the
   * tracker pauses before each pong that starts at a boundary, and the PongCatcher holds it until
   * it can tell: the answer to the ping is dropped (the tracker still follows it, so it stays in
   * step), any other frame is forwarded as it was. The slow path of forwardUp/forwardDown.
   */
  private forwardCatching(chunk: Buffer, up: boolean): void {
    const w = up ? this.wsUp! : this.wsDown!;
    const c = up ? this.pongUp! : this.pongDown!;
    const end = chunk.length;
    let i = 0;
    while (i < end) {
      if (c.heldLen > 0 || w.paused) {
        w.paused = false;
        const verdict = c.take(chunk, i, end);
        i = c.next;
        if (verdict === PONG_PENDING) break;
        const held = Buffer.from(c.held.subarray(0, c.heldLen));
        c.heldLen = 0;
        w.pauseOnPong = false;
        const stop = w.feed(held, 0, held.length);
        if (verdict === PONG_OURS) {
          c.awaiting = false; // the side answered: not forwarded, not counted as tunnel bytes
          c.answered = true;
          continue;
        }
        w.pauseOnPong = true;
        if (stop !== WS_NO_STOP) {
          this.wsStopped(held, stop, up);
          return;
        }
        this.forwardPart(held, up);
        continue;
      }
      const stop = w.feed(chunk, i, end);
      if (stop === WS_NO_STOP) {
        this.forwardPart(i === 0 ? chunk : chunk.subarray(i), up);
        break;
      }
      if (w.stopped) {
        this.wsStopped(chunk.subarray(i), stop - i, up);
        return;
      }
      if (stop > i) this.forwardPart(chunk.subarray(i, stop), up);
      i = stop;
    }
    if (w.violations !== 0 && !this.wsReported) this.wsViolation(w.firstViolation, up ? 'client' : 'backend');
  }

  /** Forwards a part of a chunk (forwardCatching): counted, observed, with backpressure. */
  private forwardPart(part: Buffer, up: boolean): void {
    this.active = true;
    if (up) {
      this.up += part.length;
      this.sink.bytesUp += part.length;
      if (this.options.upObserver !== undefined) this.options.upObserver.onChunk(part);
      if (!this.backend!.write(part)) this.client!.pause();
    } else {
      this.down += part.length;
      this.sink.bytesDown += part.length;
      if (this.options.downObserver !== undefined) this.options.downObserver.onChunk(part);
      if (!this.client!.write(part)) this.backend!.pause();
    }
  }

  /**
   * A tracker stopped inside `chunk` at `stop` (a boundary asked for, or a violation in strict
   * mode): the bytes before it are forwarded, then the frame held for that boundary and a FIN.
   * What the direction carries after it is dropped.
   */
  private wsStopped(chunk: Buffer, stop: number, up: boolean): void {
    if (stop > 0) {
      const part = chunk.subarray(0, stop);
      if (up) {
        this.up += stop;
        this.sink.bytesUp += stop;
        if (!this.backend!.write(part)) this.client!.pause();
      } else {
        this.down += stop;
        this.sink.bytesDown += stop;
        if (!this.client!.write(part)) this.backend!.pause();
      }
      this.active = true;
    }
    const held = up ? this.heldUp : this.heldDown;
    if (held !== undefined) {
      if (up) this.heldUp = undefined;
      else this.heldDown = undefined;
      this.jsCloseToward(up ? 'backend' : 'client', held, false);
      return;
    }
    const w = up ? this.wsUp! : this.wsDown!;
    if (w.violations !== 0 && !this.wsReported) this.wsViolation(w.firstViolation, up ? 'client' : 'backend');
  }

  /** @internal A side sent its FIN: forward it once its bytes are written (end() flushes first). */
  sideEnded(fromClient: boolean): void {
    if (fromClient) {
      this.clientEnded = true;
      this.upEnded = true;
      this.backend!.end();
    } else {
      this.backendEnded = true;
      this.downEnded = true;
      this.client!.end();
    }
    if (this.clientEnded && this.backendEnded && this.closeReason === undefined) {
      this.closeReason = 'closed';
      // Both directions are done; bound how long a peer that stopped reading can hold them.
      this.clearIdle();
      this.timer = setTimeout(finTimeout, FIN_TIMEOUT_MS, this);
      this.timer.unref();
    }
  }

  /** @internal A socket closed. The tunnel finishes when both have. */
  sideClosed(fromClient: boolean): void {
    if (fromClient) this.clientClosed = true;
    else this.backendClosed = true;
    const self = fromClient ? this.client! : this.backend!;
    const ended = fromClient ? this.clientEnded : this.backendEnded;
    // Closed without a FIN we saw (a reset or a destroy); or, an HTTP/2 stream, closed after its
    // END_STREAM but with an error code: its session went away (the client vanished, a connection
    // error), so nothing will drain any more, and the other side, perhaps paused waiting for it,
    // would never read its own peer's FIN. The other side cannot continue. (A stream that closes
    // with NO_ERROR once the client is done is how a WebSocket over h2 ends: a clean close.)
    const rstCode = (self as Socket & { rstCode?: number }).rstCode;
    if (this.closeReason === undefined && this.wsReason === undefined && (!ended || (rstCode !== undefined && rstCode !== 0))) {
      this.closeReason = fromClient ? 'client-reset' : 'backend-reset';
    }
    if (this.closeReason !== undefined && this.closeReason !== 'closed' && !this.wsSurvive(fromClient)) {
      this.client!.destroy();
      this.backend!.destroy();
    }
    if (this.clientClosed && this.backendClosed) this.finish();
  }

  /** @internal */
  sideError(fromClient: boolean, err: Error): void {
    if ((this.closeReason === undefined || this.closeReason === 'closed') && this.wsReason === undefined) {
      this.closeReason = fromClient ? 'client-error' : 'backend-error';
      this.closeDetail = (err as NodeJS.ErrnoException).code ?? err.message;
    }
    if (this.wsSurvive(fromClient)) return;
    this.client!.destroy();
    this.backend!.destroy();
  }

  /** @internal Idle tick: close after IDLE_TICKS consecutive ticks without a byte. */
  idleTick(): void {
    if (this.finished) return;
    if (this.native) {
      this.refreshBytes();
      const total = this.up + this.down;
      if (total !== this.lastTotal) {
        this.lastTotal = total;
        this.active = true;
      }
    }
    if (this.active) {
      this.active = false;
      this.quietTicks = 0;
    } else if (++this.quietTicks >= IDLE_TICKS) {
      this.timer = undefined;
      // A WebSocket is told why (1001) rather than cut.
      if (this.closeWebSocket(1001, 'idle timeout', 'idle-timeout')) return;
      this.close('idle-timeout');
      return;
    }
    this.timer!.refresh();
  }

  private armIdle(): void {
    this.timer = setTimeout(idleTimeout, Math.max(1, Math.ceil(this.options.idleTimeoutMs / IDLE_TICKS)), this);
    this.timer.unref();
  }

  private clearIdle(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearIdle();
    if (this.wsTimer !== undefined) clearTimeout(this.wsTimer);
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    if (this.wsUp !== undefined) this.wsCounts(); // the JS pump's final counts (a native tunnel's came with its close)
    if (this.wsReason !== undefined && (this.closeReason === undefined || this.closeReason === 'closed')) this.closeReason = this.wsReason;
    this.endTicks = ticksNow();
    const client = this.client as TunnelSocket | undefined;
    const backend = this.backend as TunnelSocket | undefined;
    if (client !== undefined) client[kTunnel] = undefined;
    if (backend !== undefined) backend[kTunnel] = undefined;
    // Listeners stay attached: the sockets are closed and about to be collected. An error
    // handler must remain, so that a late error can never become an uncaught exception.
    this.options.onClose(this);
    if (this.finishWaiters !== undefined) for (const w of this.finishWaiters) w();
  }
}

/** Tunnels run by the native engine, by id, until it reports them closed. */
const live = new Map<number, Tunnel>();
const scratch = new Float64Array(2);
const wsScratch = new Float64Array(11);
/** Reads every native tunnel's counts while there is one (unref'd: it never keeps the process up). */
let pollTimer: NodeJS.Timeout | undefined;

function trackNative(t: Tunnel): void {
  live.set(t.id, t);
  if (pollTimer === undefined) {
    pollTimer = setInterval(pollNative, NATIVE_POLL_MS);
    pollTimer.unref();
  }
}

function untrackNative(t: Tunnel): void {
  live.delete(t.id);
  if (live.size === 0 && pollTimer !== undefined) {
    clearInterval(pollTimer);
    pollTimer = undefined;
  }
}

function pollNative(): void {
  for (const t of live.values()) t.poll();
}
const NATIVE_SHUTDOWN = NATIVE_REASONS.indexOf('shutdown');
const NATIVE_CLIENT_RESET = NATIVE_REASONS.indexOf('client-reset');

onNativeClose((id, reason, errno, up, down) => {
  if (reason >= WS_EVENT) live.get(id)?.nativeWs(reason, errno, up, down);
  else live.get(id)?.nativeClosed(reason, errno, up, down);
});

interface StreamHandle {
  fd: number;
  readStop(): number;
}

/** The libuv TCP handle of a plain (non-TLS) connected socket, or undefined. */
function handleOf(s: TunnelClient): StreamHandle | undefined {
  if ((s as Socket & { encrypted?: boolean }).encrypted === true || s.destroyed) return undefined;
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  if (h == null || typeof h.fd !== 'number' || h.fd < 0 || typeof h.readStop !== 'function') return undefined;
  return h;
}

/** Takes what a paused socket has buffered, after `first`. */
function drainReadable(s: TunnelClient, first: Buffer | undefined): Buffer | undefined {
  const parts: Buffer[] = first !== undefined && first.length > 0 ? [first] : [];
  for (let c: Buffer | null; (c = s.read() as Buffer | null) !== null; ) parts.push(c);
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

function ignoreError(): void {}

function zeroCounts(): WsCounts {
  return { framesUp: 0, messagesUp: 0, violationsUp: 0, framesDown: 0, messagesDown: 0, violationsDown: 0 };
}

function idleTimeout(t: Tunnel): void {
  t.idleTick();
}

function pingTick(t: Tunnel): void {
  t.pingTick();
}

function wsGraceOver(t: Tunnel): void {
  t.close('closed');
}

function finTimeout(t: Tunnel): void {
  t.close('fin-timeout');
}

function clientOnData(this: TunnelSocket, chunk: Buffer): void {
  this[kTunnel]?.forwardUp(chunk);
}
function backendOnData(this: TunnelSocket, chunk: Buffer): void {
  this[kTunnel]?.forwardDown(chunk);
}
function clientOnDrain(this: TunnelSocket): void {
  this[kTunnel]?.backend?.resume();
}
function backendOnDrain(this: TunnelSocket): void {
  this[kTunnel]?.client?.resume();
}
function clientOnEnd(this: TunnelSocket): void {
  this[kTunnel]?.sideEnded(true);
}
function backendOnEnd(this: TunnelSocket): void {
  this[kTunnel]?.sideEnded(false);
}
function clientOnError(this: TunnelSocket, err: Error): void {
  this[kTunnel]?.sideError(true, err);
}
function backendOnError(this: TunnelSocket, err: Error): void {
  this[kTunnel]?.sideError(false, err);
}
function clientOnClose(this: TunnelSocket): void {
  this[kTunnel]?.sideClosed(true);
}
function backendOnClose(this: TunnelSocket): void {
  this[kTunnel]?.sideClosed(false);
}

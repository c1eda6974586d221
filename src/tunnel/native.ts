// Loads the native engine (native/: binding.cc, engine.cc, tunnel.cc, front.cc; built by node-gyp at `npm ci`),
// if it is there and wanted. It runs on this thread's event loop and reports closed tunnels and
// the native front's handshake events through the callbacks given to start(). Without it every
// connection uses Node's sockets and every tunnel the JavaScript pump in tunnel.ts, which pass
// the same tests; `WSGATE_NATIVE=0` forces that.

import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { MAX_HEAD_BYTES } from '../http/head';
import { PING_PAYLOAD, WS_MASKED, WS_STRICT, WS_VIOLATIONS } from './wsframe';

export interface NativeBinding {
  start(onClose: (events: number[]) => void, onFront: (events: unknown[]) => void): void;
  /** `wsFlags` (wsframe.ts; 0 or absent: not a WebSocket tunnel) sets up its frame trackers. */
  adopt(
    id: number,
    clientFd: number,
    backendFd: number,
    keepaliveSeconds: number,
    toBackend?: Buffer,
    toClient?: Buffer,
    wsFlags?: number,
  ): void;
  /** Ends a tunnel now and fills `out` with [up, down]; false if it had already ended. */
  close(id: number, out: Float64Array): boolean;
  bytes(id: number, out: Float64Array): boolean;
  /**
   * Writes `bytes` toward one side (0 client, 1 backend) after every byte already queued for it;
   * false if the tunnel is gone or that direction ended.
   */
  send(id: number, toward: 0 | 1, bytes: Buffer): boolean;
  /** Sends a FIN toward one side once its queued bytes are written; false if gone or already ended. */
  endToward(id: number, toward: 0 | 1): boolean;
  /**
   * A WebSocket tunnel: writes `frame` toward one side at the next frame boundary of that
   * direction (now if it is at one), then ends the direction; false if gone, not WebSocket, or ended.
   */
  closeAtBoundary(id: number, toward: 0 | 1, frame: Buffer): boolean;
  /**
   * [frames, messages, violations] up, the same down, at a boundary up (0/1), down, then the
   * close codes the client and the backend sent (0 none), and who closed first (0 none, 1 client,
   * 2 backend, 3 wsgate) + 4 × the code of a close the engine sent itself; false if gone or not WebSocket.
   */
  wsStats(id: number, out: Float64Array): boolean;
  /** A WebSocket tunnel pings a side silent `intervalMs`, and one that does not answer within it is dead; false if gone or not WebSocket. */
  wsPing(id: number, intervalMs: number): boolean;
  /** Test hooks: a lone C++ frame tracker (native/wsframe.h). */
  wsTestTracker(flags: number): object;
  wsTestFeed(tracker: object, bytes: Buffer, stopAtBoundary: boolean): number;
  /** Fills [frames, messages, violations, firstViolation, atBoundary, inMessage, stopped, closeCode (given 8 slots)]. */
  wsTestState(tracker: object, out: Float64Array): void;

  // The native front (native/front.cc): handshakes by id.
  /**
   * Accepts on `fd`: a head's bytes may be `silenceMs` apart (Timeout); the whole head gets
   * `headerMs` from accept, extended by 1 s per `headerMinRate` bytes up to `headerMaxMs` (0: no
   * cap), RequestReadTimeout's header stage (`headerMs` 0: off).
   */
  frontListen(
    listenerId: number,
    fd: number,
    silenceMs: number,
    keepaliveSeconds: number,
    headerMs: number,
    headerMaxMs: number,
    headerMinRate: number,
    /** An https port: each connection starts with a `hello` event (native/front.h). */
    tls?: boolean,
    /** RequestReadTimeout's handshake stage on an https port, as the header stage (0: off). */
    handshakeMs?: number,
    handshakeMaxMs?: number,
    handshakeMinRate?: number,
  ): void;
  frontUnlisten(listenerId: number): void;
  /**
   * A listening socket of this process's own on `ip`:`port` ('': every address) with
   * SO_REUSEPORT, for `frontListen` (then closed by the caller, which owns it): [fd, port,
   * family 4 or 6], or an errno. `exclusive`: EADDRINUSE when any socket holds the port already.
   */
  frontBindShared(ip: string, port: number, exclusive: boolean): [number, number, 4 | 6] | number;
  /** New limits (as frontListen's) for the connections `listenerId` accepts from now on; false for an unknown id. */
  frontLimits(
    listenerId: number,
    silenceMs: number,
    headerMs: number,
    headerMaxMs: number,
    headerMinRate: number,
    handshakeMs?: number,
    handshakeMaxMs?: number,
    handshakeMinRate?: number,
  ): boolean;
  /** [clientFd, backendFd or -1]; the caller owns them. Undefined when the handshake had ended. */
  frontHandoff(id: number): [number, number] | undefined;
  /** 0, or the errno of a connect that failed at once. */
  frontConnect(id: number, ip: string, port: number, head: Buffer, connectTimeoutMs: number, answerTimeoutMs: number): number;
  /** `wsFlags`/`headLength`: a WebSocket tunnel's trackers, and the 101 head at the start of `toClient` (not frames). */
  frontEstablish(
    id: number,
    tunnelId: number,
    toClient: Buffer,
    toBackend: Buffer | undefined,
    keepaliveSeconds: number,
    wsFlags?: number,
    headLength?: number,
  ): boolean;
  frontRespond(id: number, response: Buffer): boolean;
  frontAbort(id: number): boolean;
  frontLocalAddress(id: number): string;
  /** The engine runs the TLS handshake of a connection whose ClientHello came (`alpn`: the protocol to select, '' none); false if gone. */
  frontTlsStart(id: number, contextId: number, alpn: string): boolean;
  /** [protocol, cipher, servername, alpn, resumed ('1' or '')] of the engine's TLS session ('' for none), or undefined. */
  frontTlsInfo(id: number): [string, string, string, string, string] | undefined;
  /** A TLS context (native/tls.h) for frontTlsStart: its id, or what OpenSSL refused. */
  tlsContext(options: NativeTlsOptions): number | string;
  tlsContextFree(id: number): boolean;
  /** [TLS sessions made, handshakes completed] by the engine since the process started. */
  tlsCounts(): [number, number];
  /** The numbers the engine and this side share, defined once in C++ (see checkContract). */
  readonly contract: NativeContract;
}

/** What a native TLS context is made of (listeners/native-tls.ts builds it as Node's createSecureContext would). */
export interface NativeTlsOptions {
  readonly cert: string;
  readonly key: string;
  /** OpenSSL's version numbers (0x0303 = TLS 1.2). */
  readonly minVersion: number;
  readonly maxVersion: number;
  /** TLS ≤ 1.2 ciphers and TLS 1.3 suites, as Node splits its `ciphers` ('' : OpenSSL's default). */
  readonly cipherList: string;
  readonly cipherSuites: string;
  readonly honorCipherOrder: boolean;
  readonly noTickets: boolean;
  readonly sessionTimeout: number;
  readonly groups?: string;
  readonly sigalgs?: string;
}

export interface NativeContract {
  readonly events: Readonly<Record<string, number>>;
  readonly reasons: readonly string[];
  readonly wsViolations: readonly string[];
  readonly limits: {
    readonly wsEvent: number;
    readonly wsCountsEvent: number;
    readonly wsCloseEvent: number;
    readonly pingPayload: number;
    readonly wsMasked: number;
    readonly wsStrict: number;
    readonly wsCloseGraceMs: number;
    readonly finTimeoutMs: number;
    readonly readSize: number;
    readonly maxUnreadHeads: number;
    readonly maxHead: number;
    readonly respondTimeoutMs: number;
    readonly acceptBatch: number;
  };
}

/** The native front's event types (native/front.h). */
export const enum FrontEvent {
  Head = 1,
  ConnectFailed = 2,
  Answer = 3,
  BackendLost = 4,
  AnswerTimeout = 5,
  ClientGone = 6,
  HeadTimeout = 7,
  HeadEvicted = 8,
  Hello = 9,
  TlsFailed = 10,
  TlsStageTimeout = 11,
}

/** Hears the front's events: (type, handshake id, a number, the client address, bytes). */
export type FrontEventHandler = (type: FrontEvent, id: number, a: number, text: string | undefined, bytes: Buffer | undefined) => void;

/** Close reasons as numbered by the native engine. */
export const NATIVE_REASONS = [
  'closed',
  'client-error',
  'backend-error',
  'client-reset',
  'backend-reset',
  'shutdown',
  'fin-timeout',
  'ping-timeout',
] as const;

/**
 * Events on the close channel that are not closes: a WebSocket tunnel's first violation
 * (errno: the violation, up: the side it came from), and its final counts per direction
 * (WS_COUNTS_EVENT + side: errno violations, up frames, down messages) just before its close.
 */
export const WS_EVENT = 100;
export const WS_COUNTS_EVENT = 101;
/**
 * A WebSocket tunnel's close frames, just before its close: errno who closed first (0 none,
 * 1 client, 2 backend, 3 wsgate) + 4 × the code of a close the engine sent itself, up the
 * client's close code, down the backend's (0: none; wsStats has the same). Past both counts
 * events (101 client, 102 backend), which it must not be mistaken for.
 */
export const WS_CLOSE_EVENT = 103;
/** After wsgate sent its close frames, the peers get this long to answer before TCP is closed (both engines). */
export const WS_CLOSE_GRACE_MS = 2000;

/** Both FINs in, a tunnel gets this long to flush before it is destroyed: the same in both engines. */
export const FIN_TIMEOUT_MS = 30_000;

/** What this side compiles in (FrontEvent is a const enum, inlined): the engine must agree. */
const EXPECTED_EVENTS: Readonly<Record<string, number>> = {
  head: FrontEvent.Head,
  connectFailed: FrontEvent.ConnectFailed,
  answer: FrontEvent.Answer,
  backendLost: FrontEvent.BackendLost,
  answerTimeout: FrontEvent.AnswerTimeout,
  clientGone: FrontEvent.ClientGone,
  headTimeout: FrontEvent.HeadTimeout,
  headEvicted: FrontEvent.HeadEvicted,
  hello: FrontEvent.Hello,
  tlsFailed: FrontEvent.TlsFailed,
  tlsStageTimeout: FrontEvent.TlsStageTimeout,
};

/**
 * The differences between the engine's contract and what this side relies on (empty: they
 * agree). `maxHead` is the head limit of http/head.ts plus the blank line's 4 bytes.
 */
export function contractDrift(c: NativeContract | undefined, maxHeadBytes: number): string[] {
  if (c === undefined) return ['the addon exports no contract'];
  const drift: string[] = [];
  for (const [name, n] of Object.entries(EXPECTED_EVENTS)) {
    if (c.events[name] !== n) drift.push(`front event "${name}" is ${c.events[name]} in C++, ${n} in TypeScript`);
  }
  for (const name of Object.keys(c.events)) {
    if (!(name in EXPECTED_EVENTS)) drift.push(`front event "${name}" (${c.events[name]}) is unknown to TypeScript`);
  }
  if (c.reasons.length !== NATIVE_REASONS.length || c.reasons.some((r, i) => r !== NATIVE_REASONS[i])) {
    drift.push(`close reasons are [${c.reasons.join(', ')}] in C++, [${NATIVE_REASONS.join(', ')}] in TypeScript`);
  }
  const ws = c.wsViolations ?? [];
  if (ws.length !== WS_VIOLATIONS.length || ws.some((r, i) => r !== WS_VIOLATIONS[i])) {
    drift.push(`WebSocket violations are [${ws.join(', ')}] in C++, [${WS_VIOLATIONS.join(', ')}] in TypeScript`);
  }
  if (c.limits.wsEvent !== WS_EVENT || c.limits.wsCountsEvent !== WS_COUNTS_EVENT || c.limits.wsCloseEvent !== WS_CLOSE_EVENT)
    drift.push(
      `the WebSocket events are ${c.limits.wsEvent}/${c.limits.wsCountsEvent}/${c.limits.wsCloseEvent} in C++, ${WS_EVENT}/${WS_COUNTS_EVENT}/${WS_CLOSE_EVENT} in TypeScript`,
    );
  if (c.limits.pingPayload !== PING_PAYLOAD)
    drift.push(`the ping payload is ${c.limits.pingPayload} bytes in C++, ${PING_PAYLOAD} in TypeScript`);
  if (c.limits.wsMasked !== WS_MASKED || c.limits.wsStrict !== WS_STRICT)
    drift.push(`the WebSocket tracker flags are ${c.limits.wsMasked}/${c.limits.wsStrict} in C++, ${WS_MASKED}/${WS_STRICT} in TypeScript`);
  if (c.limits.wsCloseGraceMs !== WS_CLOSE_GRACE_MS)
    drift.push(`the WebSocket close grace is ${c.limits.wsCloseGraceMs} ms in C++, ${WS_CLOSE_GRACE_MS} in TypeScript`);
  if (c.limits.maxHead !== maxHeadBytes + 4) drift.push(`the head limit is ${c.limits.maxHead} in C++, ${maxHeadBytes} + 4 in TypeScript`);
  if (c.limits.finTimeoutMs !== FIN_TIMEOUT_MS)
    drift.push(`the FIN timeout is ${c.limits.finTimeoutMs} ms in C++, ${FIN_TIMEOUT_MS} in TypeScript`);
  return drift;
}

export type NativeCloseHandler = (id: number, reason: number, errno: number, up: number, down: number) => void;

let binding: NativeBinding | undefined;
let loadError: string | undefined;
let closeHandler: NativeCloseHandler | undefined;
let frontHandler: FrontEventHandler | undefined;

function load(): NativeBinding | undefined {
  if (binding !== undefined || loadError !== undefined) return binding;
  let checked: NativeBinding;
  if (process.env.WSGATE_NATIVE === '0') {
    loadError = 'disabled by WSGATE_NATIVE=0';
    return undefined;
  }
  try {
    // dist/src/tunnel → the package root's build/Release.
    const b = require(path.join(__dirname, '..', '..', '..', 'build', 'Release', 'wsgate_tunnel.node')) as NativeBinding;
    checked = b;
  } catch (e) {
    loadError = (e as Error).message;
    return undefined;
  }
  // An addon that disagrees with this code would misread every event: that is a build to fix,
  // not a reason to fall back quietly to the JavaScript engine.
  const drift = contractDrift(checked.contract, MAX_HEAD_BYTES);
  if (drift.length > 0) {
    throw new Error(
      `wsgate: the native engine (build/Release/wsgate_tunnel.node) does not match this code: ${drift.join('; ')}. Rebuild it (npm ci) or bring native/ and src/tunnel/native.ts back in step.`,
    );
  }
  checked.start(dispatch, dispatchFront);
  binding = checked;
  return binding;
}

function dispatch(events: number[]): void {
  const h = closeHandler!;
  for (let i = 0; i < events.length; i += 5) h(events[i], events[i + 1], events[i + 2], events[i + 3], events[i + 4]);
}

function dispatchFront(events: unknown[]): void {
  const h = frontHandler;
  if (h === undefined) return;
  for (let i = 0; i < events.length; i += 5) {
    h(
      events[i] as FrontEvent,
      events[i + 1] as number,
      events[i + 2] as number,
      events[i + 3] as string | undefined,
      events[i + 4] as Buffer | undefined,
    );
  }
}

/** The engine, or undefined when it is not available (see `nativeUnavailableReason`). */
export function nativeEngine(): NativeBinding | undefined {
  return load();
}

export function nativeUnavailableReason(): string | undefined {
  load();
  return loadError;
}

/** Sets the one function that hears of every tunnel the engine ends by itself. */
export function onNativeClose(handler: NativeCloseHandler): void {
  closeHandler = handler;
}

/** Sets the one function that hears the native front's events. */
export function onFrontEvent(handler: FrontEventHandler): void {
  frontHandler = handler;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
/** The symbolic name of an errno the engine reported (ECONNRESET…). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

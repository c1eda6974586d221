// Loads the native engine (native/tunnel.cc and native/front.cc, built by node-gyp at `npm ci`),
// if it is there and wanted. It runs on this thread's event loop and reports closed tunnels and
// the native front's handshake events through the callbacks given to start(). Without it every
// connection uses Node's sockets and every tunnel the JavaScript pump in tunnel.ts, which pass
// the same tests; `WSGATE_NATIVE=0` forces that.

import { constants as osConstants } from 'node:os';
import * as path from 'node:path';

export interface NativeBinding {
  start(onClose: (events: number[]) => void, onFront: (events: unknown[]) => void): void;
  adopt(id: number, clientFd: number, backendFd: number, keepaliveSeconds: number, toBackend?: Buffer, toClient?: Buffer): void;
  /** Ends a tunnel now and fills `out` with [up, down]; false if it had already ended. */
  close(id: number, out: Float64Array): boolean;
  bytes(id: number, out: Float64Array): boolean;

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
  ): void;
  frontUnlisten(listenerId: number): void;
  /** [clientFd, backendFd or -1]; the caller owns them. Undefined when the handshake had ended. */
  frontHandoff(id: number): [number, number] | undefined;
  /** 0, or the errno of a connect that failed at once. */
  frontConnect(id: number, ip: string, port: number, head: Buffer, connectTimeoutMs: number, answerTimeoutMs: number): number;
  frontEstablish(id: number, tunnelId: number, toClient: Buffer, toBackend: Buffer | undefined, keepaliveSeconds: number): boolean;
  frontRespond(id: number, response: Buffer): boolean;
  frontAbort(id: number): boolean;
  frontLocalAddress(id: number): string;
  readonly limits: { readonly maxUnreadHeads: number };
}

/** The native front's event types (native/front.cc). */
export const enum FrontEvent {
  Head = 1,
  ConnectFailed = 2,
  Answer = 3,
  BackendLost = 4,
  AnswerTimeout = 5,
  ClientGone = 6,
  HeadTimeout = 7,
  HeadEvicted = 8,
}

/** Hears the front's events: (type, handshake id, a number, the client address, bytes). */
export type FrontEventHandler = (type: FrontEvent, id: number, a: number, text: string | undefined, bytes: Buffer | undefined) => void;

/** Close reasons as numbered by the native engine. */
export const NATIVE_REASONS = ['closed', 'client-error', 'backend-error', 'client-reset', 'backend-reset', 'shutdown', 'fin-timeout'] as const;

export type NativeCloseHandler = (id: number, reason: number, errno: number, up: number, down: number) => void;

let binding: NativeBinding | undefined;
let loadError: string | undefined;
let closeHandler: NativeCloseHandler | undefined;
let frontHandler: FrontEventHandler | undefined;

function load(): NativeBinding | undefined {
  if (binding !== undefined || loadError !== undefined) return binding;
  if (process.env.WSGATE_NATIVE === '0') {
    loadError = 'disabled by WSGATE_NATIVE=0';
    return undefined;
  }
  try {
    // dist/src/tunnel → the package root's build/Release.
    const b = require(path.join(__dirname, '..', '..', '..', 'build', 'Release', 'wsgate_tunnel.node')) as NativeBinding;
    b.start(dispatch, dispatchFront);
    binding = b;
  } catch (e) {
    loadError = (e as Error).message;
  }
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
    h(events[i] as FrontEvent, events[i + 1] as number, events[i + 2] as number, events[i + 3] as string | undefined, events[i + 4] as Buffer | undefined);
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

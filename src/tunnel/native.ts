// Loads the native tunnel engine (native/tunnel.cc, built by node-gyp at `npm ci`), if it is
// there and wanted. It runs on this thread's event loop and reports closed tunnels through the
// callback given to start(). Without it every tunnel uses the JavaScript pump in tunnel.ts, which passes
// the same tests; `WSGATE_NATIVE=0` forces that.

import * as path from 'node:path';

interface NativeBinding {
  start(onClose: (events: number[]) => void): void;
  adopt(id: number, clientFd: number, backendFd: number, keepaliveSeconds: number, toBackend?: Buffer, toClient?: Buffer): void;
  /** Ends a tunnel now and fills `out` with [up, down]; false if it had already ended. */
  close(id: number, out: Float64Array): boolean;
  bytes(id: number, out: Float64Array): boolean;
}

/** Close reasons as numbered by the native engine. */
export const NATIVE_REASONS = ['closed', 'client-error', 'backend-error', 'client-reset', 'backend-reset', 'shutdown', 'fin-timeout'] as const;

export type NativeCloseHandler = (id: number, reason: number, errno: number, up: number, down: number) => void;

let binding: NativeBinding | undefined;
let loadError: string | undefined;
let closeHandler: NativeCloseHandler | undefined;

function load(): NativeBinding | undefined {
  if (binding !== undefined || loadError !== undefined) return binding;
  if (process.env.WSGATE_NATIVE === '0') {
    loadError = 'disabled by WSGATE_NATIVE=0';
    return undefined;
  }
  try {
    // dist/src/tunnel → the package root's build/Release.
    const b = require(path.join(__dirname, '..', '..', '..', 'build', 'Release', 'wsgate_tunnel.node')) as NativeBinding;
    b.start(dispatch);
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

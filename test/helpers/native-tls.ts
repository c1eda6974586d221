// Whether this run's https ports terminate TLS in the native engine (unless WSGATE_NATIVE_TLS=0, with
// the engine and its front on): tests that name the engine a TLS tunnel runs on read it.

import { nativeEngine } from '../../src/tunnel/native';

export function nativeTlsFront(): boolean {
  return process.env.WSGATE_NATIVE_TLS !== '0' && process.env.WSGATE_NATIVE_FRONT !== '0' && nativeEngine() !== undefined;
}

/** Whether a tunnel through a `tls` (or plain) front of this run runs on the engine, not the JavaScript pump. */
export function tunnelOnEngine(tls: boolean): boolean {
  return tls ? nativeTlsFront() : nativeEngine() !== undefined;
}

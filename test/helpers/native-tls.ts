// Whether this run's https ports terminate TLS in the native engine (WSGATE_NATIVE_TLS=1 with the
// engine and its front on): tests that name the engine a TLS tunnel runs on read it.

import { nativeEngine } from '../../src/tunnel/native';

export function nativeTlsFront(): boolean {
  return process.env.WSGATE_NATIVE_TLS === '1' && process.env.WSGATE_NATIVE_FRONT !== '0' && nativeEngine() !== undefined;
}

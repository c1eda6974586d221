// The RFC 6455 handshake's key and accept values. An HTTP/2 WebSocket (RFC 8441) has no key:
// the proxy makes a fresh one for the HTTP/1.1 backend and checks the backend's answer to it.

import { createHash, randomBytes } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A fresh `Sec-WebSocket-Key`: 16 random bytes, base64. */
export function newWebSocketKey(): string {
  return randomBytes(16).toString('base64');
}

/** The `Sec-WebSocket-Accept` a server must answer to `key`. */
export function webSocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

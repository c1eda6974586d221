// Building the heads wsgate sends: the request to the backend and the response to the client.
// REFERENCE §3: hop-by-hop headers removed (Connection and what it names, Keep-Alive,
// Proxy-Connection, TE, Trailer, Upgrade); everything else passes in its order and case;
// X-Forwarded-* appended; Connection/Upgrade re-added for upgrades.

import type { RequestHead, ResponseHead } from './head';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function isHopByHop(lowerName: string, connectionTokens: readonly string[]): boolean {
  return HOP_BY_HOP.has(lowerName) || (connectionTokens.length > 0 && connectionTokens.includes(lowerName));
}

export interface BackendRequestOptions {
  readonly method: string;
  /** Request-target for the backend (path and query). */
  readonly path: string;
  /** `Host` to send: the backend's host[:port], or the client's with ProxyPreserveHost On. */
  readonly host: string | undefined;
  /** Client IP for X-Forwarded-For, or undefined when ProxyAddHeaders is Off. */
  readonly forwardedFor: string | undefined;
  /** X-Forwarded-Server value (the ServerName). */
  readonly forwardedServer: string;
  /** The `Upgrade` value to send, for an upgrade; undefined for plain HTTP. */
  readonly upgrade: string | undefined;
  /** HTTP/1.0 clients are forwarded as HTTP/1.0 so the answer needs no chunked decoding. */
  readonly http10: boolean;
  /** ProxyVia On/Full: this proxy's Via element, merged after the client's Via values. */
  readonly via?: string;
  /** ProxyVia Block: the client's Via fields are not forwarded. */
  readonly blockVia?: boolean;
}

/** The request head for the backend, as one Buffer ready to write. */
export function buildBackendRequest(req: RequestHead, o: BackendRequestOptions): Buffer {
  let head = `${o.method} ${o.path} HTTP/1.${o.http10 ? 0 : 1}\r\n`;
  // Host first, as Apache sends it.
  if (o.host !== undefined) head += `Host: ${o.host}\r\n`;
  const h = req.headers;
  let sawForwardedFor = false;
  let sawVia = false;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i];
    const lower = name.toLowerCase();
    if (lower === 'host' || isHopByHop(lower, req.connectionTokens)) continue;
    if (lower === 'via' && (o.blockVia === true || o.via !== undefined)) {
      // Block drops them; On/Full merges every Via value into the first field, then adds ours (Apache merges the field).
      if (o.blockVia !== true && !sawVia) head += `${name}: ${viaValues(h)}, ${o.via!}\r\n`;
      sawVia = true;
      continue;
    }
    if (o.forwardedFor !== undefined && lower === 'x-forwarded-for' && !sawForwardedFor) {
      // Append to the client's own list, in place (Apache merges into the existing field).
      sawForwardedFor = true;
      head += `${name}: ${h[i + 1]}, ${o.forwardedFor}\r\n`;
      continue;
    }
    head += `${name}: ${h[i + 1]}\r\n`;
  }
  if (o.via !== undefined && !sawVia) head += `Via: ${o.via}\r\n`;
  if (o.forwardedFor !== undefined) {
    if (!sawForwardedFor) head += `X-Forwarded-For: ${o.forwardedFor}\r\n`;
    if (req.host !== undefined) head += `X-Forwarded-Host: ${req.host}\r\n`;
    head += `X-Forwarded-Server: ${o.forwardedServer}\r\n`;
  }
  if (o.upgrade !== undefined) {
    head += `Connection: Upgrade\r\nUpgrade: ${o.upgrade}\r\n\r\n`;
  } else {
    head += o.http10 ? 'Connection: close\r\n\r\n' : '\r\n';
  }
  return Buffer.from(head, 'latin1');
}

/** Every Via value of a request, joined as one list. */
function viaValues(h: readonly string[]): string {
  let out = '';
  for (let i = 0; i < h.length; i += 2) {
    if (h[i].toLowerCase() !== 'via') continue;
    out = out === '' ? h[i + 1] : `${out}, ${h[i + 1]}`;
  }
  return out;
}

/**
 * The 101 for the client: the backend's status line and headers in their order and case, minus
 * hop-by-hop fields other than Connection/Upgrade, with `Connection: Upgrade` ensured.
 */
export function buildSwitchingResponse(res: ResponseHead): Buffer {
  let head = `HTTP/1.1 101 ${res.reason || 'Switching Protocols'}\r\n`;
  const h = res.headers;
  let sawConnection = false;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i];
    const lower = name.toLowerCase();
    if (lower === 'connection') {
      if (!sawConnection) head += `${name}: Upgrade\r\n`;
      sawConnection = true;
      continue;
    }
    if (lower === 'upgrade') {
      head += `${name}: ${h[i + 1]}\r\n`;
      continue;
    }
    if (isHopByHop(lower, res.connectionTokens) || lower === 'content-length' || lower === 'transfer-encoding') continue;
    head += `${name}: ${h[i + 1]}\r\n`;
  }
  if (!sawConnection) head += 'Connection: Upgrade\r\n';
  return Buffer.from(head + '\r\n', 'latin1');
}

/**
 * A non-101 response for the client: the backend's head minus hop-by-hop fields, with our own
 * `Connection` decision. `keepUpgrade` keeps the backend's `Upgrade` (and `Connection: Upgrade`)
 * when the route allows that protocol (REFERENCE §3, apache-httpd §2.5).
 */
export function buildClientResponse(res: ResponseHead, keepAlive: boolean, keepUpgrade: boolean): Buffer {
  let head = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  const h = res.headers;
  let upgrade: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    const lower = h[i].toLowerCase();
    if (lower === 'upgrade') {
      if (keepUpgrade && upgrade === undefined) upgrade = h[i + 1];
      continue;
    }
    if (isHopByHop(lower, res.connectionTokens)) continue;
    head += `${h[i]}: ${h[i + 1]}\r\n`;
  }
  if (upgrade !== undefined) head += `Upgrade: ${upgrade}\r\nConnection: Upgrade, ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`;
  else head += keepAlive ? '\r\n' : 'Connection: close\r\n\r\n';
  return Buffer.from(head, 'latin1');
}

/** The interim responses (100 Continue, 103 Early Hints) are relayed as the backend sent them. */
export function buildInterimResponse(res: ResponseHead): Buffer {
  let head = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  const h = res.headers;
  for (let i = 0; i < h.length; i += 2) {
    if (isHopByHop(h[i].toLowerCase(), res.connectionTokens)) continue;
    head += `${h[i]}: ${h[i + 1]}\r\n`;
  }
  return Buffer.from(head + '\r\n', 'latin1');
}

const REASONS: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  305: 'Use Proxy',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  405: 'Method Not Allowed',
  410: 'Gone',
  411: 'Length Required',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** The reason phrase of a status wsgate answers itself. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}

/** The body of an error response generated by wsgate (HTTP/1.1 and HTTP/2 alike). */
export function errorBody(status: number): string {
  return `${status} ${reasonPhrase(status)}\n`;
}

/** A minimal error response generated by wsgate itself; `withBody` false for an answer to HEAD (same head, no body). */
export function buildErrorResponse(status: number, keepAlive: boolean, extraHeaders = '', withBody = true): Buffer {
  const reason = reasonPhrase(status);
  const body = errorBody(status);
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
      `${extraHeaders}Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n${withBody ? body : ''}`,
    'latin1',
  );
}

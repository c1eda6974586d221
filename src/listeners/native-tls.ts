// TLS in the native engine (issue 17, direction 1), for the native front's https ports: the
// engine's TLS contexts, made from the same FrontTls settings and with the same cipher rules as
// Node's tls.createSecureContext in listeners/tls.ts, and the socket Node's HTTP/1 path gets for a
// connection whose TLS the engine terminated (a socket pair end that reads as a TLS socket).
// Off unless WSGATE_NATIVE_TLS=1 while it is being measured.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type { FrontTls, TlsVersion } from '../config/model';
import type { NativeBinding, NativeTlsOptions } from '../tunnel/native';

/** Whether https ports run on the native front (WSGATE_NATIVE_TLS=1; the engine must be there too). */
export function nativeTlsWanted(): boolean {
  return process.env.WSGATE_NATIVE_TLS === '1';
}

const VERSIONS: Readonly<Record<TlsVersion, number>> = { TLSv1: 0x0301, 'TLSv1.1': 0x0302, 'TLSv1.2': 0x0303, 'TLSv1.3': 0x0304 };
const TLS1_2 = 0x0303;
const TLS1_3 = 0x0304;

/**
 * The engine's options for `t`, or undefined when it asks for something only Node's TLS does here
 * (DH parameters). Ciphers are split and the versions narrowed exactly as Node's secure context
 * does with its `ciphers` option: `TLS_…` names are TLS 1.3 suites, the rest the TLS ≤ 1.2 list;
 * no list raises the minimum to 1.3; no suites leaves TLS 1.3 its default suites (Node too: a
 * TLS 1.2 list such as certbot's still lets a client agree TLS 1.3).
 */
export function nativeTlsOptions(t: FrontTls): NativeTlsOptions | undefined {
  if (t.dhparam !== undefined) return undefined;
  const names = (t.ciphers ?? tls.DEFAULT_CIPHERS).split(':').filter((c) => c.length > 0);
  const cipherList = names.filter((c) => !c.startsWith('TLS_')).join(':');
  const cipherSuites = names.filter((c) => c.startsWith('TLS_')).join(':');
  if (cipherList === '' && cipherSuites === '') return undefined; // Node refuses it too (a config error there)
  let minVersion = VERSIONS[t.minVersion];
  const maxVersion = VERSIONS[t.maxVersion];
  if (cipherList === '' && minVersion < TLS1_3 && maxVersion > TLS1_2) minVersion = TLS1_3;
  return {
    cert: t.cert,
    key: t.key,
    minVersion,
    maxVersion,
    cipherList,
    cipherSuites,
    honorCipherOrder: t.honorCipherOrder,
    noTickets: !t.sessionTickets,
    sessionTimeout: t.sessionTimeoutS,
    ...(t.ecdhCurve !== undefined && t.ecdhCurve !== 'auto' ? { groups: t.ecdhCurve } : {}),
    ...(t.sigalgs !== undefined ? { sigalgs: t.sigalgs } : {}),
  };
}

// One engine context per FrontTls (a config's object: a reload makes new ones, and the old
// contexts are freed once their FrontTls is collected; sessions keep theirs alive meanwhile).
const contexts = new WeakMap<FrontTls, number>();
const refused = new WeakSet<FrontTls>();
let engineOfContexts: NativeBinding | undefined;
const release = new FinalizationRegistry<number>((id) => engineOfContexts?.tlsContextFree(id));

/** The engine's context for `t`, made at its first use; undefined when only Node's TLS can serve it. */
export function nativeContext(engine: NativeBinding, t: FrontTls): number | undefined {
  const known = contexts.get(t);
  if (known !== undefined) return known;
  if (refused.has(t)) return undefined;
  const options = nativeTlsOptions(t);
  const made = options === undefined ? undefined : engine.tlsContext(options);
  if (typeof made !== 'number') {
    // Node's TLS serves it (and reports what is wrong with it, if anything, as it does today).
    refused.add(t);
    return undefined;
  }
  engineOfContexts = engine;
  contexts.set(t, made);
  release.register(t, made);
  return made;
}

/** What a connection's TLS session was, for the HTTP/1 path's SSL variables and logs. */
export interface NativeTlsInfo {
  readonly protocol: string;
  readonly cipher: string;
  readonly servername: string | undefined;
  readonly alpn: string | undefined;
  readonly resumed: boolean;
}

export function tlsInfoOf(engine: NativeBinding, id: number): NativeTlsInfo | undefined {
  const i = engine.frontTlsInfo(id);
  if (i === undefined) return undefined;
  return { protocol: i[0], cipher: i[1], servername: i[2] || undefined, alpn: i[3] || undefined, resumed: i[4] === '1' };
}

/**
 * The part of a TLSSocket that wsgate reads (encrypted, alpnProtocol, servername, getProtocol,
 * getCipher, isSessionReused), for a session the engine holds: what headerScope and the SSL
 * variables read.
 */
export function tlsView(info: NativeTlsInfo): Record<string, unknown> {
  return {
    encrypted: true,
    alpnProtocol: info.alpn ?? false,
    servername: info.servername ?? false,
    getProtocol: () => info.protocol,
    getCipher: () => ({ name: info.cipher, standardName: info.cipher, version: info.protocol }),
    isSessionReused: () => info.resumed,
  };
}

/**
 * A Node socket that carries the decrypted bytes of a session the engine holds, made to read as
 * that TLS connection (tlsView), with the client connection's addresses, not the socket pair's.
 */
export function asTlsSocket(socket: net.Socket, info: NativeTlsInfo, remote: string, local: string, localPort: number): net.Socket {
  const own = {
    ...tlsView(info),
    remoteAddress: remote,
    remoteFamily: net.isIPv6(remote) ? 'IPv6' : 'IPv4',
    remotePort: undefined,
    localAddress: local,
    localPort,
  };
  for (const [name, value] of Object.entries(own)) {
    Object.defineProperty(socket, name, { value, configurable: true, enumerable: true, writable: false });
  }
  return socket;
}

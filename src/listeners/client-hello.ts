// The two things the native TLS front needs from a ClientHello before anyone answers it: the SNI
// name (which certificate) and the ALPN offer (HTTP/2 goes to Node). It reads the first TLS record
// as the engine peeked it; anything it cannot read whole is left to Node's TLS server, which
// reads it again from the socket and answers as it always does.

export interface ClientHello {
  /** The SNI host name, or undefined when the client sent none. */
  readonly servername: string | undefined;
  /** The ALPN protocols offered, in the client's order (empty: no ALPN extension). */
  readonly alpn: readonly string[];
}

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/** Parses a ClientHello that fits in the first record of `bytes`; undefined for anything else. */
export function parseClientHello(bytes: Buffer): ClientHello | undefined {
  if (bytes.length < 9 || bytes[0] !== RECORD_HANDSHAKE) return undefined;
  const recordEnd = 5 + bytes.readUInt16BE(3);
  if (bytes.length < recordEnd || bytes[5] !== HANDSHAKE_CLIENT_HELLO) return undefined;
  const helloEnd = 9 + bytes.readUIntBE(6, 3);
  // A hello spread over several records is rare (and Node reads it fine).
  if (helloEnd > recordEnd) return undefined;
  let p = 9 + 2 + 32; // client version, random
  if (p >= helloEnd) return undefined;
  p += 1 + bytes[p]!; // session id
  if (p + 2 > helloEnd) return undefined;
  p += 2 + bytes.readUInt16BE(p); // cipher suites
  if (p + 1 > helloEnd) return undefined;
  p += 1 + bytes[p]!; // compression methods
  let servername: string | undefined;
  const alpn: string[] = [];
  if (p === helloEnd) return { servername, alpn }; // no extensions
  if (p + 2 > helloEnd) return undefined;
  const extEnd = p + 2 + bytes.readUInt16BE(p);
  if (extEnd > helloEnd) return undefined;
  p += 2;
  while (p + 4 <= extEnd) {
    const type = bytes.readUInt16BE(p);
    const len = bytes.readUInt16BE(p + 2);
    const body = p + 4;
    p = body + len;
    if (p > extEnd) return undefined;
    if (type === EXT_SERVER_NAME && len >= 5) {
      // A list of (type, name); a host name is type 0.
      let q = body + 2;
      while (q + 3 <= p) {
        const nameLen = bytes.readUInt16BE(q + 1);
        if (q + 3 + nameLen > p) return undefined;
        if (bytes[q] === 0) {
          servername = bytes.toString('latin1', q + 3, q + 3 + nameLen);
          break;
        }
        q += 3 + nameLen;
      }
    } else if (type === EXT_ALPN && len >= 2) {
      let q = body + 2;
      while (q < p) {
        const n = bytes[q]!;
        if (q + 1 + n > p) return undefined;
        alpn.push(bytes.toString('latin1', q + 1, q + 1 + n));
        q += 1 + n;
      }
    }
  }
  if (p !== extEnd) return undefined;
  return { servername, alpn };
}

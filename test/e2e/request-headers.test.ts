// mod_headers on the wire (issue 10): `RequestHeader` changes reach the backend on every front —
// HTTP/1.1 (native front on a plain port by default, Node's with WSGATE_NATIVE_FRONT=0), HTTP/1.1
// over TLS and HTTP/2 (plain requests and RFC 8441 WebSockets) — and `Header` in a <Location>
// changes the answers of that path only.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { upgradeRequest, wsAccept, WS_KEY } from '../helpers/edges';
import { h2Connect, h2Request, h2WebSocket, wsClose, wsEcho } from '../helpers/h2';
import {
  closeWs,
  echo,
  headComplete,
  headerIn,
  randomBytes,
  rawExchange,
  sha256,
  startEchoBackend,
  startGateway,
  type EchoBackend,
  type SeenRequest,
} from '../helpers/harness';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

const RULES = [
  'RequestHeader unset X-Forwarded-User',
  'RequestHeader set X-Forwarded-Proto "https" env=HTTPS',
  'RequestHeader setifempty X-Forwarded-Proto "http"',
  'RequestHeader set X-TLS "%{HTTPS}s %{SSL_PROTOCOL}s %{SSL_CLIENT_VERIFY}s %{SSL_CLIENT_S_DN}s"',
  'RequestHeader append X-List b',
  'RequestHeader merge X-List a',
  'RequestHeader edit* X-Edit "o+" "[$0]"',
  'RequestHeader add X-Copy "from %{X-Edit}i"',
  'RequestHeader set X-Time "%t %D"',
  '<Location /ws/>',
  '  RequestHeader set X-Loc ws',
  '  Header set X-Loc-Answer ws',
  '</Location>',
  '<LocationMatch "^/plain/">',
  '  RequestHeader set X-Loc plain',
  '  Header set X-Loc-Answer plain',
  '</LocationMatch>',
].join('\n');

/** The client's own fields: a spoofed identity, a list and a value to edit. */
const CLIENT_FIELDS: Record<string, string> = { 'x-forwarded-user': 'admin', 'x-list': 'a', 'x-edit': 'foo boo' };

function field(seen: SeenRequest, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) if (seen.rawHeaders[i]!.toLowerCase() === name) out.push(seen.rawHeaders[i + 1]!);
  return out;
}

function assertSeen(seen: SeenRequest, tls: boolean, loc: string): void {
  assert.deepEqual(field(seen, 'x-forwarded-user'), [], 'the spoofed X-Forwarded-User is removed');
  assert.deepEqual(field(seen, 'x-forwarded-proto'), [tls ? 'https' : 'http']);
  const [x] = field(seen, 'x-tls');
  if (tls) assert.match(x!, /^on TLSv1\.[23] NONE \(null\)$/);
  else assert.equal(x, 'off (null) (null) (null)');
  assert.deepEqual(field(seen, 'x-list'), ['a, b']);
  assert.deepEqual(field(seen, 'x-edit'), ['f[oo] b[oo]']);
  assert.deepEqual(field(seen, 'x-copy'), ['from f[oo] b[oo]']);
  assert.match(field(seen, 'x-time')[0]!, /^t=\d{16} D=\d+$/);
  assert.deepEqual(field(seen, 'x-loc'), [loc]);
  // mod_proxy's own fields are still added after the rules.
  assert.equal(field(seen, 'x-forwarded-for').length, 1);
}

async function withBackend(body: (b: EchoBackend) => Promise<void>): Promise<void> {
  const b = await startEchoBackend('rh');
  try {
    await body(b);
  } finally {
    await b.close();
  }
}

const routes = (port: number): string => `ProxyPass /ws/ ws://127.0.0.1:${port}/ws/\nProxyPass / http://127.0.0.1:${port}/\n`;

describe('RequestHeader and Header in <Location>', () => {
  test('plain HTTP/1.1: an upgrade and a plain request carry the changes; Header in <Location> answers per path', {
    timeout: 30_000,
  }, async () => {
    await withBackend(async (b) => {
      const g = await startGateway(`Listen 127.0.0.1:0\n${RULES}\n${routes(b.port)}`);
      try {
        const extra = Object.entries(CLIENT_FIELDS)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        const up = await rawExchange(g.port, upgradeRequest('/ws/x', extra), headComplete);
        assert.match(up.head, /^HTTP\/1\.1 101 /);
        assert.equal(headerIn(up.head, 'sec-websocket-accept'), wsAccept(WS_KEY));
        assert.equal(headerIn(up.head, 'x-loc-answer'), 'ws');
        assertSeen(b.upgrades.at(-1)!, false, 'ws');
        up.socket.destroy();

        const get = await rawExchange(g.port, `GET /plain/p HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n${extra}\r\n`);
        assert.match(get.head, /^HTTP\/1\.1 200 /);
        assert.equal(headerIn(get.head, 'x-loc-answer'), 'plain');
        assertSeen(b.requests.at(-1)!, false, 'plain');

        const other = await rawExchange(g.port, 'GET /other HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
        assert.equal(headerIn(other.head, 'x-loc-answer'), undefined, 'no <Location> matches /other');
        assert.deepEqual(field(b.requests.at(-1)!, 'x-loc'), []);

        // A WebSocket through the changed handshake still works end to end.
        const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/echo`, { headers: CLIENT_FIELDS });
        ws.on('error', () => {});
        await once(ws, 'open');
        const data = randomBytes(64 * 1024);
        assert.equal(sha256((await echo(ws, data)).data), sha256(data));
        await closeWs(ws);
      } finally {
        await g.stop();
      }
    });
  });

  test('TLS: HTTP/1.1 and HTTP/2 (plain requests and RFC 8441) carry the changes and the TLS variables', { timeout: 30_000 }, async () => {
    await withBackend(async (b) => {
      const tls = `SSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\nProtocols h2 http/1.1\nH2WebSockets on\n`;
      const g = await startGateway(`Listen 127.0.0.1:0\n${tls}${RULES}\n${routes(b.port)}`);
      try {
        const ws = new WebSocket(`wss://localhost:${g.port}/ws/echo`, { ca: certs.ca.pem, headers: CLIENT_FIELDS });
        ws.on('error', () => {});
        const upgraded = once(ws, 'upgrade');
        const opened = once(ws, 'open');
        const [res] = (await upgraded) as [{ headers: Record<string, string> }];
        assert.equal(res.headers['x-loc-answer'], 'ws');
        await opened;
        assertSeen(b.upgrades.at(-1)!, true, 'ws');
        const data = randomBytes(32 * 1024);
        assert.equal(sha256((await echo(ws, data)).data), sha256(data));
        await closeWs(ws);

        const session = await h2Connect(g.port, certs.ca.pem);
        try {
          const r = await h2Request(session, { ':method': 'GET', ':path': '/plain/h2', ...CLIENT_FIELDS });
          assert.equal(r.status, 200);
          assert.equal(r.headers['x-loc-answer'], 'plain');
          assertSeen(b.requests.at(-1)!, true, 'plain');

          const h2ws = await h2WebSocket(session, '/ws/h2', CLIENT_FIELDS);
          assert.equal(h2ws.status, 200);
          assert.equal(h2ws.headers['x-loc-answer'], 'ws');
          assertSeen(b.upgrades.at(-1)!, true, 'ws');
          const d2 = randomBytes(16 * 1024);
          assert.equal(sha256((await wsEcho(h2ws.ws!, d2)).data), sha256(d2));
          await wsClose(h2ws.ws!);
        } finally {
          session.close();
        }
      } finally {
        await g.stop();
      }
    });
  });

  test('TraceEnable Off: TRACE is answered 501 and never reaches the backend', { timeout: 30_000 }, async () => {
    await withBackend(async (b) => {
      const g = await startGateway(`Listen 127.0.0.1:0\nTraceEnable Off\n${routes(b.port)}`);
      try {
        const r = await rawExchange(g.port, 'TRACE /x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
        assert.match(r.head, /^HTTP\/1\.1 501 /);
        assert.equal(b.requests.length, 0);
      } finally {
        await g.stop();
      }
    });
  });
});

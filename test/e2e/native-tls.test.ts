// TLS terminated by the native engine on https ports (the default; issue 17, direction 1): the
// engine's counters prove which path each connection took. The other TLS tests (tls.test.ts,
// sslengine.test.ts, h2.test.ts…) run on this path in the main stage, and on Node's TLS in
// `npm run test:node-tls` (WSGATE_NATIVE_TLS=0).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { before, describe, test } from 'node:test';
import { parseClientHello } from '../../src/listeners/client-hello';
import { nativeEngine } from '../../src/tunnel/native';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  openWs,
  randomBytes,
  rawExchange,
  sha256,
  startEchoBackend,
  startGateway,
} from '../helpers/harness';

// Read when the gateway binds its ports: this file's gateways all take the native TLS path, whatever the run says.
process.env.WSGATE_NATIVE_TLS = '1';
const engine = process.env.WSGATE_NATIVE_FRONT === '0' ? undefined : nativeEngine();
const skip = engine === undefined ? 'the native engine or its front is off in this run' : false;

let certs: Certs;
let front: CertFiles;
let frontA: CertFiles;
let frontB: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost', 'gw.test']);
  frontA = certs.issue('a.test', ['a.test']);
  frontB = certs.issue('b.test', ['b.test']);
});

/** [sessions, completed handshakes] of the engine. */
function counts(): [number, number] {
  return engine!.tlsCounts();
}

function frontConf(backendPort: number, extra = ''): string {
  return (
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${front.key}"\n${extra}\n` +
    `ProxyPass /echo/ ws://127.0.0.1:${backendPort}/\nProxyPass /web/ http://127.0.0.1:${backendPort}/\n`
  );
}

function httpsGet(port: number, servername: string, path: string): Promise<{ status: number; body: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, servername, ca: certs.ca.pem, agent: false, headers: { host: servername } },
      (res) => {
        const cert = (res.socket as tls.TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), cn: String(cert.subject.CN) }));
      },
    );
    req.on('error', reject);
  });
}

/** One HTTPS request on a connection of its own (offering `session` to resume), and what the session was. */
function httpsOnce(
  port: number,
  path: string,
  session?: Buffer,
  maxVersion: tls.SecureVersion = 'TLSv1.3',
): Promise<{ body: string; reused: boolean; tickets: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const tickets: Buffer[] = [];
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'gw.test',
      ca: certs.ca.pem,
      maxVersion,
      ...(session ? { session } : {}),
    });
    const chunks: Buffer[] = [];
    s.on('session', (t: Buffer) => tickets.push(t));
    let reused = false;
    s.on('secureConnect', () => {
      reused = s.isSessionReused();
      s.write(`GET ${path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    // Tickets come right after the handshake, before any answer: all are in by the close.
    s.on('close', () => resolve({ body: Buffer.concat(chunks).toString(), reused, tickets }));
  });
}

describe('TLS in the native engine', { skip }, () => {
  test('wss:// echo through the engine’s TLS: 1 MiB and many small messages intact, a native tunnel', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port));
    try {
      const before = counts();
      const ws = await openWs(`wss://127.0.0.1:${g.port}/echo/big`, undefined, { ca: certs.ca.pem });
      const big = randomBytes(1024 * 1024);
      const r = await echo(ws, big);
      assert.equal(sha256(r.data), sha256(big));
      for (let i = 0; i < 50; i++) {
        const small = randomBytes(64 + i);
        assert.equal(sha256((await echo(ws, small)).data), sha256(small));
      }
      await closeWs(ws);
      const after = counts();
      assert.equal(after[1] - before[1], 1, 'one handshake run by the engine');
      assert.match(await g.waitForLog(/tunnel closed /), /engine=native/);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('SNI picks each name’s certificate; plain HTTPS requests reach Node’s HTTP/1 path through the engine', async () => {
    const ba = await startEchoBackend('A');
    const bb = await startEchoBackend('B');
    const g = await startGateway(
      'Listen 127.0.0.1:0 https\n' +
        `<VirtualHost *:*>\nServerName a.test\nSSLEngine on\nSSLCertificateFile "${frontA.cert}"\nSSLCertificateKeyFile "${frontA.key}"\nProxyPass / http://127.0.0.1:${ba.port}/\n</VirtualHost>\n` +
        `<VirtualHost *:*>\nServerName b.test\nSSLEngine on\nSSLCertificateFile "${frontB.cert}"\nSSLCertificateKeyFile "${frontB.key}"\nProxyPass / http://127.0.0.1:${bb.port}/\n</VirtualHost>\n`,
    );
    try {
      const before = counts();
      const a = await httpsGet(g.port, 'a.test', '/x');
      assert.deepEqual(a, { status: 200, body: 'backend:A GET /x', cn: 'a.test' });
      const b = await httpsGet(g.port, 'b.test', '/y');
      assert.deepEqual(b, { status: 200, body: 'backend:B GET /y', cn: 'b.test' });
      assert.equal(counts()[1] - before[1], 2, 'both handshakes run by the engine');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await ba.close();
      await bb.close();
    }
  });

  test('a client offering h2 gets HTTP/2 from Node; an HTTP/1.1 client on the same port stays native', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port, 'Protocols h2 http/1.1'));
    try {
      const before = counts();
      const session = http2.connect(`https://127.0.0.1:${g.port}`, { ca: certs.ca.pem, servername: 'gw.test' });
      const req = session.request({ ':path': '/web/h2', ':authority': 'gw.test' });
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      await once(req, 'end');
      assert.equal(headers[':status'], 200);
      assert.equal(Buffer.concat(chunks).toString(), 'backend:plain GET /h2');
      assert.equal(session.alpnProtocol, 'h2');
      session.close();
      assert.equal(counts()[0], before[0], 'the h2 connection went to Node untouched');
      const h1 = await httpsGet(g.port, 'gw.test', '/web/h1');
      assert.equal(h1.body, 'backend:plain GET /h1');
      assert.equal(counts()[1] - before[1], 1, 'the HTTP/1.1 client was the engine’s');
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('sessions resume by tickets only: SSLSessionTickets off sends none and keeps no session to resume; on resumes', async () => {
    const backend = await startEchoBackend('plain');
    const off = await startGateway(frontConf(backend.port, 'SSLSessionTickets off'));
    const on = await startGateway(frontConf(backend.port));
    try {
      const before = counts();
      const first = await httpsOnce(off.port, '/web/a');
      assert.match(first.body, /^HTTP\/1\.1 200 [\s\S]*backend:plain GET \/a$/);
      assert.deepEqual(first.tickets, [], 'no ticket (nothing could resume it)');
      // A client that kept its session anyway (from a ticketed port) offers it: a full handshake.
      const ticketed = await httpsOnce(on.port, '/web/b');
      assert.ok(ticketed.tickets.length > 0, 'tickets on: the client gets one');
      const again = await httpsOnce(off.port, '/web/c', ticketed.tickets.at(-1));
      assert.equal(again.reused, false);
      assert.match(again.body, /^HTTP\/1\.1 200 [\s\S]*GET \/c$/);
      const resumed = await httpsOnce(on.port, '/web/d', ticketed.tickets.at(-1));
      assert.equal(resumed.reused, true, 'tickets on: the ticket resumes the session');
      assert.match(resumed.body, /^HTTP\/1\.1 200 [\s\S]*GET \/d$/);
      // TLS 1.2 gives out a session id: offered back to the same port it still starts a full
      // handshake, since the engine keeps no session store (as Node's TLS server).
      const id = await httpsOnce(off.port, '/web/e', undefined, 'TLSv1.2');
      assert.ok(id.tickets.length > 0, 'TLS 1.2: the client has a session to offer');
      const offered = await httpsOnce(off.port, '/web/f', id.tickets.at(-1), 'TLSv1.2');
      assert.equal(offered.reused, false, 'no session store: the session id resumes nothing');
      assert.match(offered.body, /^HTTP\/1\.1 200 [\s\S]*GET \/f$/);
      assert.equal(counts()[1] - before[1], 6, 'every handshake was the engine’s');
    } finally {
      await off.stop();
      await on.stop();
      await backend.close();
    }
  });

  test('garbage instead of a ClientHello: closed, one log line; TLS 1.2 refused by SSLProtocol TLSv1.3 in the engine', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port, 'SSLProtocol TLSv1.3'));
    try {
      const res = await rawExchange(g.port, 'GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n');
      assert.equal(res.status, 0);
      await g.waitForLog(/TLS handshake with client failed/);
      assert.equal(g.logs.filter((l) => /TLS handshake with client failed/.test(l)).length, 1);
      const before = counts();
      const old = tls.connect({ host: '127.0.0.1', port: g.port, ca: certs.ca.pem, maxVersion: 'TLSv1.2', servername: 'gw.test' });
      await once(old, 'error');
      const line = await g.waitForLog(/TLS handshake with client failed.*UNSUPPORTED_PROTOCOL/);
      assert.match(line, new RegExp(`client=127\\.0\\.0\\.1 local=127\\.0\\.0\\.1:${g.port} reason=ERR_SSL_UNSUPPORTED_PROTOCOL`));
      assert.equal(counts()[0] - before[0], 1, 'the engine ran (and refused) that handshake');
      assert.equal(counts()[1], before[1]);
      assert.equal(g.logs.filter((l) => /TLS handshake with client failed/.test(l)).length, 2);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await backend.close();
    }
  });
});

describe('parseClientHello', () => {
  test('reads the SNI name and ALPN offer of a real ClientHello; a cut one is not read', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const got = once(server, 'connection');
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'name.test', ALPNProtocols: ['h2', 'http/1.1'] });
    client.on('error', () => {});
    const [socket] = (await got) as [net.Socket];
    const [hello] = (await once(socket, 'data')) as [Buffer];
    assert.deepEqual(parseClientHello(hello), { servername: 'name.test', alpn: ['h2', 'http/1.1'] });
    assert.equal(parseClientHello(hello.subarray(0, hello.length - 1)), undefined);
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')), undefined);
    client.destroy();
    socket.destroy();
    server.close();
  });
});

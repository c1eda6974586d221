// TLS decided as Apache decides it: by `SSLEngine on` in the server that owns a port (issue 10),
// not only by `Listen … https`; and TLS clients that connect by IP address (ALPN offered, no SNI)
// get the port's default server on every https port.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { expectError, lines, load } from '../config/helpers';
import { h2WebSocket, wsEcho, wsClose } from '../helpers/h2';
import { closeWs, echo, openWs, randomBytes, sha256, startEchoBackend, startGateway, type RunningGateway } from '../helpers/harness';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

const sslLines = (): string => `SSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n`;

/** A TLS connection by IP address: no `servername`, so no SNI; ALPN as given. */
async function tlsByIp(port: number, alpn: string[]): Promise<tls.TLSSocket> {
  // Node sends no SNI when the host is an IP address and no servername is given.
  const s = tls.connect({ host: '127.0.0.1', port, ca: certs.ca.pem, ALPNProtocols: alpn });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  return s;
}

async function wsEchoChecked(ws: WebSocket): Promise<void> {
  const data = randomBytes(32 * 1024);
  const back = await echo(ws, data);
  assert.equal(sha256(back.data), sha256(data));
}

/** A plain-text HTTP request on a TLS port gets no 200: the server expects a ClientHello. */
async function plainGetsNo200(port: number): Promise<void> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.write('GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'close');
  assert.doesNotMatch(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.[01] 200/);
}

async function withGateway(text: string, body: (g: RunningGateway, backendPort: number) => Promise<void>): Promise<void> {
  const backend = await startEchoBackend('b');
  const g = await startGateway(text.replaceAll('BACKEND', String(backend.port)));
  try {
    await body(g, backend.port);
  } finally {
    await g.stop();
    await backend.close();
  }
}

describe('TLS by SSLEngine', () => {
  test('server-level SSLEngine on makes a plain Listen speak TLS; a plain client gets no 200', async () => {
    await withGateway(`Listen 127.0.0.1:0\n${sslLines()}ProxyPass /ws/ ws://127.0.0.1:BACKEND/\n`, async (g) => {
      assert.equal(g.gateway.config.listen[0]!.protocol, 'https');
      const ws = await openWs(`wss://localhost:${g.port}/ws/`, undefined, { ca: certs.ca.pem });
      await wsEchoChecked(ws);
      await closeWs(ws);
      await plainGetsNo200(g.port);
    });
  });

  test('a <VirtualHost> with SSLEngine on makes its port speak TLS (Listen with no protocol)', async () => {
    const text = `Listen 127.0.0.1:0\n<VirtualHost *:*>\nServerName localhost\n${sslLines()}ProxyPass /ws/ ws://127.0.0.1:BACKEND/\n</VirtualHost>\n`;
    await withGateway(text, async (g) => {
      assert.equal(g.gateway.config.listen[0]!.protocol, 'https');
      const ws = await openWs(`wss://localhost:${g.port}/ws/`, undefined, { ca: certs.ca.pem });
      await wsEchoChecked(ws);
      await closeWs(ws);
      await plainGetsNo200(g.port);
    });
  });

  test('Listen 443 with no protocol is https, as in Apache; Listen 443 http stays plain', () => {
    const { config } = load({ 'wsgate.conf': lines('Listen 443', '<VirtualHost *:443>', sslLines().trim(), '</VirtualHost>') });
    assert.equal(config.listen[0]!.protocol, 'https');
    expectError(
      { 'wsgate.conf': lines('Listen 443', 'ProxyPass / ws://h/') },
      { line: 1, message: /port 443 defaults to https as in Apache: write "Listen 443 http"/ },
    );
    const plain = load({ 'wsgate.conf': lines('Listen 443 http', 'ProxyPass / ws://h/') }).config;
    assert.equal(plain.listen[0]!.protocol, 'http');
    // Any other port defaults to http.
    assert.equal(load({ 'wsgate.conf': lines('Listen 8080', 'ProxyPass / ws://h/') }).config.listen[0]!.protocol, 'http');
  });

  test('a port where some virtual hosts have SSLEngine on and others not is an error naming both lines', () => {
    const err = expectError(
      {
        'wsgate.conf': lines(
          'Listen 8443',
          '<VirtualHost *:8443>',
          'ServerName a.test',
          `SSLEngine on`,
          `SSLCertificateFile ${front.cert}`,
          `SSLCertificateKeyFile ${front.key}`,
          '</VirtualHost>',
          '<VirtualHost *:8443>',
          'ServerName b.test',
          '</VirtualHost>',
        ),
      },
      { line: 8, message: /has no "SSLEngine on" but another server on the same port has \(.*wsgate\.conf:4\)/ },
    );
    assert.match(err.message, /Listen \*:8443/);
  });

  test('SSLEngine off in a virtual host next to SSLEngine on is the same error', () => {
    expectError(
      {
        'wsgate.conf': lines(
          'Listen 8443',
          `SSLCertificateFile ${front.cert}`,
          `SSLCertificateKeyFile ${front.key}`,
          '<VirtualHost *:8443>',
          'SSLEngine off',
          '</VirtualHost>',
          '<VirtualHost *:8443>',
          'SSLEngine on',
          '</VirtualHost>',
        ),
      },
      { line: 4, message: /another server on the same port has \(.*wsgate\.conf:8\)/ },
    );
  });

  test('SSLEngine on without a certificate is an error at its line', () => {
    expectError(
      { 'wsgate.conf': lines('Listen 8443', 'SSLEngine on', 'ProxyPass / ws://h/') },
      { line: 2, message: /SSLEngine on needs SSLCertificateFile/ },
    );
    expectError(
      { 'wsgate.conf': lines('Listen 8443', '<VirtualHost *:8443>', 'SSLEngine on', '</VirtualHost>') },
      { line: 3, message: /SSLEngine on needs SSLCertificateFile/ },
    );
  });
});

describe('ALPN without SNI', () => {
  const text = (): string =>
    `Listen 127.0.0.1:0 https\nProtocols h2 http/1.1\nH2WebSockets on\n` +
    `<VirtualHost *:*>\nServerName first.test\n${sslLines()}ProxyPass /ws/ ws://127.0.0.1:BACKEND/\n</VirtualHost>\n` +
    `<VirtualHost *:*>\nServerName second.test\n${sslLines()}ProxyPass /ws/ ws://127.0.0.1:BACKEND/\n</VirtualHost>\n`;

  test('http/1.1 offered by ALPN, no SNI: the handshake completes and a WebSocket echoes', async () => {
    await withGateway(text(), async (g) => {
      const probe = await tlsByIp(g.port, ['http/1.1']);
      assert.equal(probe.alpnProtocol, 'http/1.1');
      probe.destroy();
      const ws = new WebSocket(`wss://127.0.0.1:${g.port}/ws/`, { ca: certs.ca.pem, ALPNProtocols: ['http/1.1'] } as never);
      ws.on('error', () => {});
      await once(ws, 'open');
      await wsEchoChecked(ws);
      await closeWs(ws);
      assert.ok(!g.logs.some((l) => /charCodeAt/.test(l)), g.logs.join('\n'));
    });
  });

  test('h2 offered by ALPN, no SNI: the session opens and an RFC 8441 WebSocket echoes', async () => {
    await withGateway(text(), async (g) => {
      const probe = await tlsByIp(g.port, ['h2', 'http/1.1']);
      assert.equal(probe.alpnProtocol, 'h2');
      probe.destroy();
      // No servername: http2.connect to an IP address sends no SNI.
      const session = http2.connect(`https://127.0.0.1:${g.port}`, { ca: certs.ca.pem });
      session.on('error', () => {});
      const [settings] = (await once(session, 'remoteSettings')) as [http2.Settings];
      assert.equal(settings.enableConnectProtocol, true);
      const r = await h2WebSocket(session, '/ws/', { ':scheme': 'https', ':authority': `127.0.0.1:${g.port}` });
      assert.equal(r.status, 200);
      const ws = r.ws!;
      const data = randomBytes(16 * 1024);
      const back = await wsEcho(ws, data);
      assert.equal(sha256(back.data), sha256(data));
      await wsClose(ws);
      session.close();
      assert.ok(!g.logs.some((l) => /charCodeAt/.test(l)), g.logs.join('\n'));
    });
  });
});

// TLS on both sides (issue 5, parts 1, 2 and 4): wss:// clients on a `Listen … https` port,
// certificates chosen by SNI, wss:// and https:// backends verified against SSLProxy* settings,
// mTLS to backends, and the error mappings (backend TLS failure → 502 with the reason logged;
// a client's failed handshake → one log line). Certificates are made by openssl (helpers/certs.ts).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { before, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { assertClosedWith, upgradeRequest } from '../helpers/edges';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { nativeTlsFront } from '../helpers/native-tls';
import { expectError, load } from '../config/helpers';
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
  type RunningGateway,
} from '../helpers/harness';

let certs: Certs;
/** The proxy's own certificate: 127.0.0.1, localhost, gw.test. */
let front: CertFiles;
let frontA: CertFiles;
let frontB: CertFiles;
/** Backend certificates, all for 127.0.0.1 unless said. */
let good: CertFiles;
let wrongName: CertFiles;
let expired: CertFiles;
let rogue: CertFiles;
let rogueExpired: CertFiles;
let client: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost', 'gw.test']);
  frontA = certs.issue('a.test', ['a.test']);
  frontB = certs.issue('b.test', ['b.test', '*.b.test']);
  good = certs.issue('backend', ['127.0.0.1', 'backend.test']);
  wrongName = certs.issue('elsewhere', ['elsewhere.test']);
  expired = certs.issue('expired', ['127.0.0.1'], { expired: true });
  rogue = certs.issue('rogue', ['127.0.0.1'], { rogue: true });
  rogueExpired = certs.issue('rogue-expired', ['127.0.0.1'], { rogue: true, expired: true });
  client = certs.issue('gateway-client', [], { client: true });
});

interface TlsBackend {
  port: number;
  /** Plain HTTP requests and upgrades seen, in order: "METHOD url". */
  seen: string[];
  /** The SNI name of each TLS connection ('-' without SNI). */
  servernames: string[];
  close(): Promise<void>;
}

/** An https + wss echo backend with `cert`; with `requireClientCert`, only clients with a certificate from the test CA get through. */
async function startTlsBackend(cert: CertFiles, opts: { requireClientCert?: boolean } = {}): Promise<TlsBackend> {
  const seen: string[] = [];
  const server = https.createServer(
    {
      cert: cert.certPem,
      key: cert.keyPem,
      ...(opts.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: certs.ca.pem } : {}),
    },
    (req, res) => {
      const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
      seen.push(`${req.method} ${req.url}`);
      const body = `tls-backend ${req.method} ${req.url} client=${peer?.subject?.CN ?? '-'}`;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    },
  );
  server.on('tlsClientError', () => {});
  const servernames: string[] = [];
  server.on('secureConnection', (s: tls.TLSSocket) => servernames.push(typeof s.servername === 'string' ? s.servername : '-'));
  const wss = new WebSocketServer({ server });
  server.on('upgrade', (req) => seen.push(`UPGRADE ${req.url}`));
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    servernames,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A TLS connection to the gateway that asks `servername` and trusts the test CA. */
async function tlsClient(port: number, servername?: string, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: certs.ca.pem, ...(servername !== undefined ? { servername } : {}), ...extra });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  return s;
}

/** One HTTP/1.1 request over a fresh TLS connection; resolves with the whole response (the request says Connection: close). */
async function httpsGet(
  port: number,
  host: string,
  urlPath: string,
  servername?: string,
): Promise<{ status: number; body: string; cert: tls.PeerCertificate }> {
  const s = await tlsClient(port, servername);
  const cert = s.getPeerCertificate();
  s.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'close');
  const text = Buffer.concat(chunks).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4), cert };
}

/** Runs `body` with a gateway on a plain port proxying /s/ to the TLS backend with `sslLines`. */
async function viaGateway(backendPort: number, sslLines: string, body: (g: RunningGateway) => Promise<void>): Promise<void> {
  const g = await startGateway(
    `Listen 127.0.0.1:0\n${sslLines}\nProxyPass /s/ wss://127.0.0.1:${backendPort}/\nProxyPass /h/ https://127.0.0.1:${backendPort}/\n`,
  );
  try {
    await body(g);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
  }
}

async function assertWsEcho(url: string, options: Parameters<typeof openWs>[2] = {}): Promise<void> {
  const ws = await openWs(url, undefined, options);
  try {
    const data = randomBytes(64 * 1024);
    const r = await echo(ws, data);
    assert.equal(sha256(r.data), sha256(data));
  } finally {
    await closeWs(ws);
  }
}

describe('TLS to backends (SSLProxy*)', () => {
  test('trusted CA via SSLProxyCACertificateFile: wss:// and https:// work, SNI-less IP backend checked by IP SAN', async () => {
    const b = await startTlsBackend(good);
    try {
      await viaGateway(b.port, `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"`, async (g) => {
        await assertWsEcho(`ws://127.0.0.1:${g.port}/s/chat`);
        const res = await rawExchange(g.port, 'GET /h/page?q=1 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
        assert.equal(res.status, 200);
        assert.match(res.data.toString(), /tls-backend GET \/page\?q=1 client=-$/);
      });
      assert.deepEqual(b.seen, ['UPGRADE /chat', 'GET /page?q=1']);
      assert.deepEqual(b.servernames, ['-', '-'], 'no SNI for an IP address');
    } finally {
      await b.close();
    }
  });

  const failures: [string, () => CertFiles, string, RegExp][] = [
    ['untrusted CA', () => rogue, '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/],
    ['wrong name', () => wrongName, '', /ERR_TLS_CERT_ALTNAME_INVALID/],
    ['expired', () => expired, '', /CERT_HAS_EXPIRED/],
    [
      'untrusted and expired, with SSLProxyCheckPeerExpire off',
      () => rogueExpired,
      'SSLProxyCheckPeerExpire off',
      /does not lead to a trusted CA/,
    ],
    [
      'wrong name, with SSLProxyCheckPeerExpire off (the name is still checked)',
      () => wrongName,
      'SSLProxyCheckPeerExpire off',
      /ERR_TLS_CERT_ALTNAME_INVALID/,
    ],
  ];
  for (const [what, cert, extra, reason] of failures) {
    test(`502 with the reason logged: ${what}`, async () => {
      const b = await startTlsBackend(cert());
      try {
        await viaGateway(b.port, `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\n${extra}`, async (g) => {
          const res = await rawExchange(g.port, upgradeRequest('/s/x'));
          assertClosedWith(res, 502);
          const line = await g.waitForLog(/status=502 /);
          assert.match(line, /reason="TLS handshake with the backend failed: /);
          assert.match(line, reason);
          const res2 = await rawExchange(g.port, 'GET /h/y HTTP/1.1\r\nHost: gw.test\r\n\r\n');
          assertClosedWith(res2, 502);
          // Counted as TLS failures of the backend, not as answers it could not use.
          const { failures } = [...g.gateway.origins.all()].find((o) => o.origin.port === b.port)!.counters;
          assert.deepEqual([failures.tls, failures.badAnswer, failures.refused], [2, 0, 0]);
        });
        assert.deepEqual(b.seen, [], 'no request reached the backend');
      } finally {
        await b.close();
      }
    });
  }

  test('SNI is the backend host of the URL, and the name check uses it', async () => {
    const named = certs.issue('localhost-only', ['localhost']);
    const b = await startTlsBackend(named);
    try {
      const g = await startGateway(
        `Listen 127.0.0.1:0\nSSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\nProxyPass /s/ wss://localhost:${b.port}/\n`,
      );
      try {
        await assertWsEcho(`ws://127.0.0.1:${g.port}/s/named`);
        await assertNoOpenSockets(g);
      } finally {
        await g.stop();
      }
      assert.deepEqual(b.servernames, ['localhost']);
    } finally {
      await b.close();
    }
  });

  test('without SSLProxyCACertificateFile the test CA is not trusted (system CAs only): 502', async () => {
    const b = await startTlsBackend(good);
    try {
      await viaGateway(b.port, 'SSLProxyEngine on', async (g) => {
        assertClosedWith(await rawExchange(g.port, upgradeRequest('/s/x')), 502);
      });
    } finally {
      await b.close();
    }
  });

  const passes: [string, () => CertFiles, string][] = [
    ['SSLProxyVerify none: an untrusted certificate', () => rogue, 'SSLProxyVerify none'],
    ['SSLProxyVerify none: a wrong name', () => wrongName, 'SSLProxyVerify none'],
    ['SSLProxyVerify none: an expired certificate', () => expired, 'SSLProxyVerify none'],
    ['SSLProxyCheckPeerName off: a wrong name', () => wrongName, 'SSLProxyCheckPeerName off'],
    ['SSLProxyCheckPeerExpire off: an expired certificate from the trusted CA', () => expired, 'SSLProxyCheckPeerExpire off'],
  ];
  for (const [what, cert, extra] of passes) {
    test(`works: ${what}`, async () => {
      const b = await startTlsBackend(cert());
      try {
        await viaGateway(b.port, `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\n${extra}`, async (g) => {
          await assertWsEcho(`ws://127.0.0.1:${g.port}/s/ok`);
        });
      } finally {
        await b.close();
      }
    });
  }

  test('mTLS: a backend that requires a client certificate: 502 without SSLProxyMachineCertificateFile, works with it', async () => {
    const b = await startTlsBackend(good, { requireClientCert: true });
    try {
      await viaGateway(b.port, `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"`, async (g) => {
        const res = await rawExchange(g.port, upgradeRequest('/s/x'));
        assertClosedWith(res, 502);
        const line = await g.waitForLog(/status=502 /);
        assert.match(line, /CERTIFICATE_REQUIRED|certificate required|handshake/i);
      });
      await viaGateway(
        b.port,
        `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\nSSLProxyMachineCertificateFile "${client.both}"`,
        async (g) => {
          await assertWsEcho(`ws://127.0.0.1:${g.port}/s/mtls`);
          const res = await rawExchange(g.port, 'GET /h/who HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
          assert.equal(res.status, 200);
          assert.match(res.data.toString(), /client=gateway-client$/);
        },
      );
    } finally {
      await b.close();
    }
  });

  test('a TCP connect failure to a wss:// backend stays 503', async () => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    await viaGateway(port, 'SSLProxyEngine on', async (g) => {
      assertClosedWith(await rawExchange(g.port, upgradeRequest('/s/x')), 503);
      await g.waitForLog(/status=503 reason="backend unreachable: ECONNREFUSED/);
    });
  });
});

describe('TLS on the front (Listen … https, SSLEngine)', () => {
  const frontConf = (backendPort: number, extra = ''): string =>
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${front.key}"\n${extra}\n` +
    `ProxyPass /echo/ ws://127.0.0.1:${backendPort}/\nProxyPass /web/ http://127.0.0.1:${backendPort}/\n`;

  test('wss:// client → TLS front → ws:// backend: 1 MiB echoed intact, text too', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port));
    try {
      const ws = await openWs(`wss://127.0.0.1:${g.port}/echo/big`, undefined, { ca: certs.ca.pem });
      const data = randomBytes(1024 * 1024);
      const r = await echo(ws, data);
      assert.equal(r.isBinary, true);
      assert.equal(sha256(r.data), sha256(data));
      const t = await echo(ws, 'héllo over TLS');
      assert.equal(t.data.toString(), 'héllo over TLS');
      await closeWs(ws);
      assert.equal(backend.upgrades[0]?.url, '/big');
      // The tunnel ran on the engine, which terminated TLS, or (WSGATE_NATIVE_TLS=0) on the JS pump.
      await g.waitForLog(nativeTlsFront() ? /tunnel closed .*engine=native/ : /tunnel closed .*engine=js/);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('plain HTTP through the TLS front to an https:// backend (TLS on both sides), keep-alive on the front', async () => {
    const b = await startTlsBackend(good);
    const g = await startGateway(
      `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.both}"\n` +
        `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\nProxyPass /api/ https://127.0.0.1:${b.port}/\n`,
    );
    try {
      const s = await tlsClient(g.port);
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.write('GET /api/one HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /api/two HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n');
      await once(s, 'close');
      const text = Buffer.concat(chunks).toString();
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
      assert.deepEqual(statuses, ['200', '200']);
      assert.match(text, /tls-backend GET \/one client=-/);
      assert.match(text, /tls-backend GET \/two client=-$/);
      assert.deepEqual(b.seen, ['GET /one', 'GET /two']);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await b.close();
    }
  });

  test('two names on one https port: each SNI name gets its own certificate; Host still picks the vhost', async () => {
    const ba = await startEchoBackend('A');
    const bb = await startEchoBackend('B');
    const g = await startGateway(
      'Listen 127.0.0.1:0 https\n' +
        `<VirtualHost *:*>\nServerName a.test\nSSLEngine on\nSSLCertificateFile "${frontA.cert}"\nSSLCertificateKeyFile "${frontA.key}"\nProxyPass / http://127.0.0.1:${ba.port}/\n</VirtualHost>\n` +
        `<VirtualHost *:*>\nServerName b.test\nServerAlias *.b.test\nSSLEngine on\nSSLCertificateFile "${frontB.cert}"\nSSLCertificateKeyFile "${frontB.key}"\nProxyPass / http://127.0.0.1:${bb.port}/\n</VirtualHost>\n`,
    );
    try {
      const a = await httpsGet(g.port, 'a.test', '/x', 'a.test');
      assert.equal(a.cert.subject.CN, 'a.test');
      assert.equal(a.cert.subjectaltname, 'DNS:a.test');
      assert.equal(a.status, 200);
      assert.equal(a.body, 'backend:A GET /x');
      const b = await httpsGet(g.port, 'b.test', '/y', 'b.test');
      assert.equal(b.cert.subject.CN, 'b.test');
      assert.equal(b.cert.subjectaltname, 'DNS:b.test, DNS:*.b.test');
      assert.equal(b.body, 'backend:B GET /y');
      const alias = await httpsGet(g.port, 'x.b.test', '/z', 'x.b.test');
      assert.equal(alias.cert.subject.CN, 'b.test');
      assert.equal(alias.body, 'backend:B GET /z');
      // No SNI (or an unknown name): the first vhost's certificate, as Apache's default vhost.
      const none = await tlsClient(g.port, undefined, { checkServerIdentity: () => undefined });
      assert.equal(none.getPeerCertificate().subject.CN, 'a.test');
      none.destroy();
      const other = await tlsClient(g.port, 'unknown.test', { checkServerIdentity: () => undefined });
      assert.equal(other.getPeerCertificate().subject.CN, 'a.test');
      other.destroy();
      // The certificate follows SNI, routing follows Host (as Apache without SSLStrictSNIVHostCheck).
      const mixed = await httpsGet(g.port, 'b.test', '/m', 'a.test');
      assert.equal(mixed.cert.subject.CN, 'a.test');
      assert.equal(mixed.body, 'backend:B GET /m');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await ba.close();
      await bb.close();
    }
  });

  test('a client speaking garbage to the TLS port: one log line, nothing else changes', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port));
    try {
      const res = await rawExchange(g.port, 'GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n');
      assert.equal(res.status, 0, 'no HTTP answer on a TLS port');
      const line = await g.waitForLog(/TLS handshake with client failed/);
      assert.match(
        line,
        new RegExp(`^\\S+ info TLS handshake with client failed client=127\\.0\\.0\\.1 local=127\\.0\\.0\\.1:${g.port} reason=\\S+`),
      );
      // A client that does not trust the proxy's certificate fails its own handshake.
      const untrusting = tls.connect({ host: '127.0.0.1', port: g.port, ca: certs.rogueCa.pem });
      const err = await once(untrusting, 'error').then(([e]) => e as NodeJS.ErrnoException);
      assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      await assertWsEcho(`wss://127.0.0.1:${g.port}/echo/after`, { ca: certs.ca.pem });
      assert.equal(g.logs.filter((l) => /TLS handshake with client failed/.test(l)).length, 2);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('SSLProtocol TLSv1.3 only: a TLSv1.2-only client is refused, a TLSv1.3 one served', async () => {
    const backend = await startEchoBackend('plain');
    const g = await startGateway(frontConf(backend.port, 'SSLProtocol -all +TLSv1.3\nSSLCipherSuite HIGH:!aNULL\nSSLHonorCipherOrder on'));
    try {
      const old = tls.connect({ host: '127.0.0.1', port: g.port, ca: certs.ca.pem, maxVersion: 'TLSv1.2' });
      await once(old, 'error');
      const ok = await tlsClient(g.port, undefined, { minVersion: 'TLSv1.2' });
      assert.equal(ok.getProtocol(), 'TLSv1.3');
      ok.destroy();
      await g.waitForLog(/TLS handshake with client failed .*reason=\S*(VERSION|PROTOCOL)/i);
    } finally {
      await g.stop();
      await backend.close();
    }
  });

  test('a tunnel with TLS on both sides (JS pump) carries data both ways and half-closes', async () => {
    // A raw TLS backend: answers the upgrade with 101, echoes what it gets prefixed, and when
    // the client half-closes, still sends its final words, then ends.
    const server = tls.createServer({ cert: good.certPem, key: good.keyPem, allowHalfOpen: true } as tls.TlsOptions, (s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      let upgraded = false;
      const received: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        if (upgraded) {
          received.push(c);
          return;
        }
        buf = Buffer.concat([buf, c]);
        const i = buf.indexOf('\r\n\r\n');
        if (i === -1) return;
        upgraded = true;
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-raw\r\nConnection: Upgrade\r\n\r\n');
        if (i + 4 < buf.length) received.push(buf.subarray(i + 4));
      });
      s.on('end', () => {
        const got = Buffer.concat(received);
        s.end(`backend got ${got.length} bytes sha256=${sha256(got)}; bye`);
      });
    });
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const bport = (server.address() as net.AddressInfo).port;
    const g = await startGateway(
      `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${front.key}"\n` +
        `SSLProxyEngine on\nSSLProxyCACertificateFile "${certs.ca.cert}"\nProxyPass /raw/ wss://127.0.0.1:${bport}/ upgrade=x-raw\n`,
    );
    try {
      const s = await tlsClient(g.port, undefined, { allowHalfOpen: true } as tls.ConnectionOptions);
      s.write('GET /raw/t HTTP/1.1\r\nHost: gw.test\r\nUpgrade: x-raw\r\nConnection: Upgrade\r\n\r\n');
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      // Wait for the 101 before sending the payload and half-closing.
      while (!Buffer.concat(chunks).includes('\r\n\r\n')) await once(s, 'data');
      const payload = randomBytes(300 * 1024);
      s.end(payload);
      await once(s, 'end');
      const text = Buffer.concat(chunks).toString('latin1');
      assert.match(text, /^HTTP\/1\.1 101 /);
      assert.ok(text.endsWith(`backend got ${payload.length} bytes sha256=${sha256(payload)}; bye`), text.slice(-200));
      await once(s, 'close');
      const closedLine = await g.waitForLog(/tunnel closed .*engine=js/);
      assert.match(closedLine, new RegExp(`up=${payload.length} `));
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('TLS configuration errors at FILE:LINE', () => {
  const L = 'Listen 127.0.0.1:0';
  test('a wss:// or https:// route without SSLProxyEngine on', () => {
    expectError(
      { 'wsgate.conf': `${L}\nProxyPass /a/ ws://h/\nProxyPass /s/ wss://h/\n` },
      { line: 3, message: /"wss:\/\/h\/": TLS to backends needs "SSLProxyEngine on"/ },
    );
    expectError(
      { 'wsgate.conf': `${L}\nSSLProxyEngine on\n<VirtualHost *:*>\nSSLProxyEngine off\nProxyPass /s/ https://h/\n</VirtualHost>\n` },
      { line: 5, message: /SSLProxyEngine on/ },
    );
  });
  test('a missing certificate file', () => {
    expectError(
      {
        'wsgate.conf': `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile /nonexistent/cert.pem\nSSLCertificateKeyFile "${front.key}"\n`,
      },
      { line: 3, message: /SSLCertificateFile: cannot read "\/nonexistent\/cert.pem": ENOENT/ },
    );
    expectError(
      { 'wsgate.conf': `${L}\nSSLProxyEngine on\nSSLProxyCACertificateFile missing-ca.pem\nProxyPass /s/ wss://h/\n` },
      { line: 3, message: /SSLProxyCACertificateFile: cannot read ".*missing-ca.pem": ENOENT/ },
    );
  });
  test('a key that does not match the certificate, a file without a certificate', () => {
    expectError(
      {
        'wsgate.conf': `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${frontA.key}"\n`,
      },
      { line: 4, message: /the private key does not match the certificate/ },
    );
    expectError(
      { 'wsgate.conf': `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.key}"\n` },
      { line: 3, message: /holds no PEM certificate/ },
    );
  });
  test('an https Listen without a certificate, SSLEngine on without SSLCertificateFile', () => {
    expectError(
      { 'wsgate.conf': `${L}\nListen 127.0.0.1:0 https\nProxyPass /a/ ws://h/\n` },
      { line: 2, message: /https: no server for this port has "SSLEngine on"/ },
    );
    expectError(
      { 'wsgate.conf': `Listen 127.0.0.1:0 https\nSSLEngine on\n` },
      { line: 2, message: /SSLEngine on needs SSLCertificateFile/ },
    );
  });
  test("SSLProtocol as mod_ssl reads it → Node minVersion/maxVersion; vhosts inherit the main server's SSL settings", () => {
    const { config } = load({
      'wsgate.conf':
        `Listen 127.0.0.1:0 https\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${front.key}"\nSSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\n` +
        `<VirtualHost *:*>\nServerName a.test\nSSLEngine on\n</VirtualHost>\n` +
        `<VirtualHost *:*>\nServerName b.test\nSSLEngine on\nSSLProtocol TLSv1 +TLSv1.1 +TLSv1.2\nSSLCipherSuite HIGH\n</VirtualHost>\n`,
    });
    const [a, b] = config.virtualHosts;
    assert.equal(config.mainServer.tls, undefined, 'the main server has no SSLEngine on');
    assert.deepEqual(
      [a?.tls?.minVersion, a?.tls?.maxVersion, a?.tls?.ciphers, a?.tls?.cert],
      ['TLSv1.2', 'TLSv1.3', undefined, front.certPem.trim() + '\n'],
    );
    assert.deepEqual([b?.tls?.minVersion, b?.tls?.maxVersion, b?.tls?.ciphers], ['TLSv1', 'TLSv1.2', 'HIGH']);
  });

  test('bad SSLProtocol, SSLCipherSuite, SSLProxyVerify, SSLEngine values', () => {
    expectError({ 'wsgate.conf': `${L}\nSSLProtocol +SSLv3\n` }, { line: 2, message: /SSLProtocol: SSLv3 is not supported/ });
    expectError({ 'wsgate.conf': `${L}\nSSLProtocol TLSv1.4\n` }, { line: 2, message: /unknown protocol "TLSv1.4"/ });
    expectError({ 'wsgate.conf': `${L}\nSSLProtocol TLSv1 +TLSv1.3\n` }, { line: 2, message: /not a contiguous range/ });
    expectError({ 'wsgate.conf': `${L}\nSSLProtocol all -all\n` }, { line: 2, message: /leaves no protocol enabled/ });
    expectError(
      { 'wsgate.conf': `${L}\nSSLCipherSuite NO-SUCH-CIPHER\n` },
      { line: 2, message: /SSLCipherSuite: OpenSSL accepts no cipher in "NO-SUCH-CIPHER"/ },
    );
    expectError({ 'wsgate.conf': `${L}\nSSLProxyVerify sometimes\n` }, { line: 2, message: /SSLProxyVerify must be none or require/ });
    expectError({ 'wsgate.conf': `${L}\nSSLEngine optional\n` }, { line: 2, message: /SSLEngine optional/ });
    expectError(
      { 'wsgate.conf': `${L}\nSSLOpenSSLConfCmd Foo bar\n` },
      { line: 2, message: /SSLOpenSSLConfCmd Foo is not supported: wsgate maps Curves/ },
    );
  });
});

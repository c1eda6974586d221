// OCSP stapling (SSLUseStapling on and its tuning) against a real responder: `openssl ocsp` on an
// index of the test CA, certificates whose Authority Information Access names it, and clients that
// ask for the status (requestOCSP) and check the staple they get with `openssl ocsp -respin`. Also a
// responder that drops every connection and one that never answers: the handshake goes on.

import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { expectError, lines, load } from '../config/helpers';
import { makeCerts, type Certs } from '../helpers/certs';
import { startGateway } from '../helpers/harness';

const BOUND = { timeout: 60_000 };
const TRY_LATER = '30030a0103';

let certs: Certs;
let caKey: string;
const children: ChildProcess[] = [];
const servers: net.Server[] = [];

before(() => {
  certs = makeCerts();
  caKey = path.join(certs.dir, 'ca.key');
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(c.pid!, 'SIGTERM');
  for (const s of servers) s.close();
});

/**
 * Starts `openssl ocsp` on port 0 for an index holding `good` (valid) and `revoked` serials, signing
 * with the CA; `requests` makes it exit after that many. Resolves with its port.
 */
async function startResponder(serials: { good: string[]; revoked: string[] }, requests?: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(certs.dir, 'ocsp-'));
  const index = path.join(dir, 'index.txt');
  const line = (s: string, revoked: boolean): string =>
    revoked ? `R\t301231000000Z\t250101000000Z\t${s}\tunknown\t/CN=r${s}\n` : `V\t301231000000Z\t\t${s}\tunknown\t/CN=g${s}\n`;
  fs.writeFileSync(index, [...serials.good.map((s) => line(s, false)), ...serials.revoked.map((s) => line(s, true))].join(''));
  const args = ['ocsp', '-index', index, '-port', '0', '-rsigner', certs.ca.cert, '-rkey', caKey, '-CA', certs.ca.cert, '-nmin', '60'];
  if (requests !== undefined) args.push('-nrequest', String(requests));
  const child = spawn('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8');
  return await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`openssl ocsp did not start: ${out}`)), 20_000);
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /ACCEPT \S*:(\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`openssl ocsp exited (${code}): ${out}`)));
  });
}

/** A certificate for localhost with `serial`, whose AIA names `ocspUrl` (none when undefined); the file has the CA after it. */
function leaf(name: string, serial: string, ocspUrl: string | undefined): { cert: string; key: string; leafOnly: string } {
  const dir = certs.dir;
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const leafOnly = path.join(dir, `${name}.leaf.pem`);
  const ext = path.join(dir, `${name}.ext`);
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/CN=${name}`,
    ],
    {
      stdio: 'ignore',
    },
  );
  fs.writeFileSync(
    ext,
    [
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      'basicConstraints=CA:FALSE',
      ...(ocspUrl ? [`authorityInfoAccess=OCSP;URI:${ocspUrl}`] : []),
    ].join('\n') + '\n',
  );
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      certs.ca.cert,
      '-CAkey',
      caKey,
      '-set_serial',
      `0x${serial}`,
      '-days',
      '3',
      '-extfile',
      ext,
      '-out',
      leafOnly,
    ],
    { stdio: 'ignore' },
  );
  const cert = path.join(dir, `${name}.chain.pem`);
  fs.writeFileSync(cert, fs.readFileSync(leafOnly, 'utf8') + certs.ca.pem);
  return { cert, key, leafOnly };
}

/** A server whose every connection is dropped at once (a responder that is down), or never answered. */
async function brokenResponder(kind: 'drop' | 'silent'): Promise<number> {
  const s = net.createServer((sock) => {
    if (kind === 'drop') sock.destroy();
    else sock.on('error', () => {});
  });
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as net.AddressInfo).port;
}

function config(
  cert: { cert: string; key: string },
  extra: string[] = [],
  top: string[] = ['SSLStaplingCache shmcb:/var/run/ocsp(128000)'],
): string {
  return lines(
    'Listen 127.0.0.1:0',
    ...top,
    '<VirtualHost *:0>',
    '  ServerName localhost',
    '  SSLEngine on',
    `  SSLCertificateFile ${cert.cert}`,
    `  SSLCertificateKeyFile ${cert.key}`,
    '  SSLUseStapling on',
    ...extra.map((l) => `  ${l}`),
    '  ProxyPass / http://127.0.0.1:9/',
    '</VirtualHost>',
  );
}

/** A TLS handshake that asks for the certificate's status: the staple (null when none) and the protocol. */
async function handshake(port: number): Promise<{ staple: Buffer | null; protocol: string | null }> {
  // requestOCSP is a tls.TLSSocket option that tls.connect passes on (missing from @types/node's ConnectionOptions).
  const opts = { host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca.pem, requestOCSP: true };
  const s = tls.connect(opts as tls.ConnectionOptions);
  // Node emits 'OCSPResponse' before 'secureConnect', with null when the server stapled nothing.
  let staple: Buffer | null = null;
  s.on('OCSPResponse', (r: Buffer | null) => {
    staple = r;
  });
  await once(s, 'secureConnect');
  const protocol = s.getProtocol();
  s.destroy();
  return { staple, protocol };
}

/** What `openssl ocsp` says of a stapled answer for `leafOnly`: "good", "revoked"…, after verifying its signature. */
function verdict(staple: Buffer, leafOnly: string): string {
  const file = path.join(certs.dir, `staple-${process.hrtime.bigint()}.der`);
  fs.writeFileSync(file, staple);
  const out = execFileSync('openssl', ['ocsp', '-respin', file, '-CAfile', certs.ca.cert, '-issuer', certs.ca.cert, '-cert', leafOnly], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = new RegExp(`${leafOnly.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (\\w+)`).exec(out);
  return m?.[1] ?? out;
}

describe('OCSP stapling', () => {
  test(
    'SSLUseStapling on: the responder named in the certificate is asked and its signed "good" answer stapled; later handshakes get the cached one',
    BOUND,
    async () => {
      // -nrequest 1: the responder answers once and exits, so the second staple can only come from the cache.
      const port = await startResponder({ good: ['5A01'], revoked: [] }, 1);
      const c = leaf('stapled', '5A01', `http://127.0.0.1:${port}/`);
      const g = await startGateway(config(c, ['SSLStaplingResponderTimeout 5']));
      try {
        const first = await handshake(g.port);
        assert.ok(first.staple !== null, 'a staple is sent');
        assert.equal(verdict(first.staple, c.leafOnly), 'good');
        const child = children.at(-1)!;
        if (child.exitCode === null) await once(child, 'exit');
        const second = await handshake(g.port);
        assert.ok(second.staple !== null);
        assert.ok(second.staple.equals(first.staple), 'the cached answer');
      } finally {
        await g.stop();
      }
    },
  );

  test('a revoked certificate: stapled by default (SSLStaplingReturnResponderErrors on), not with it off', BOUND, async () => {
    const port = await startResponder({ good: [], revoked: ['5A02', '5A03'] });
    const a = leaf('revoked-a', '5A02', `http://127.0.0.1:${port}/`);
    const b = leaf('revoked-b', '5A03', `http://127.0.0.1:${port}/`);
    const ga = await startGateway(config(a));
    const gb = await startGateway(config(b, ['SSLStaplingReturnResponderErrors off']));
    try {
      const sa = await handshake(ga.port);
      assert.ok(sa.staple !== null);
      assert.equal(verdict(sa.staple, a.leafOnly), 'revoked');
      const sb = await handshake(gb.port);
      assert.equal(sb.staple, null, 'no staple');
      assert.ok(sb.protocol !== null, 'the handshake completed');
      await gb.waitForLog(/OCSP answer not good.*certificate revoked/);
    } finally {
      await ga.stop();
      await gb.stop();
    }
  });

  test(
    'a responder that is down: a fake tryLater is stapled (SSLStaplingFakeTryLater on), none with it off; handshakes and requests go on',
    BOUND,
    async () => {
      const down = await brokenResponder('drop');
      const a = leaf('down-a', '5A04', `http://127.0.0.1:${down}/`);
      const b = leaf('down-b', '5A05', `http://127.0.0.1:${down}/`);
      const ga = await startGateway(config(a));
      const gb = await startGateway(config(b, ['SSLStaplingFakeTryLater off']));
      try {
        const sa = await handshake(ga.port);
        assert.equal(sa.staple?.toString('hex'), TRY_LATER);
        const sb = await handshake(gb.port);
        assert.equal(sb.staple, null);
        assert.ok(sb.protocol !== null);
        await gb.waitForLog(/OCSP responder query failed/);
        // The fake answer is cached (SSLStaplingErrorCacheTimeout): the same again without asking.
        assert.equal((await handshake(ga.port)).staple?.toString('hex'), TRY_LATER);
      } finally {
        await ga.stop();
        await gb.stop();
      }
    },
  );

  test(
    'SSLStaplingResponderTimeout bounds a responder that never answers; SSLStaplingForceURL overrides the certificate',
    BOUND,
    async () => {
      const silent = await brokenResponder('silent');
      const port = await startResponder({ good: ['5A07'], revoked: [] });
      const a = leaf('silent', '5A06', `http://127.0.0.1:${silent}/`);
      // The certificate names the silent one; SSLStaplingForceURL sends the query to the real responder.
      const b = leaf('forced', '5A07', `http://127.0.0.1:${silent}/`);
      const ga = await startGateway(config(a, ['SSLStaplingResponderTimeout 1']));
      const gb = await startGateway(config(b, [`SSLStaplingForceURL http://127.0.0.1:${port}/`, 'SSLStaplingResponderTimeout 1']));
      try {
        const sa = await handshake(ga.port);
        assert.equal(sa.staple?.toString('hex'), TRY_LATER);
        await ga.waitForLog(/OCSP responder query failed.*no answer within 1 s/);
        const sb = await handshake(gb.port);
        assert.ok(sb.staple !== null);
        assert.equal(verdict(sb.staple, b.leafOnly), 'good');
      } finally {
        await ga.stop();
        await gb.stop();
      }
    },
  );

  test('SSLStaplingStandardCacheTimeout: an answer is asked again once it has expired', BOUND, async () => {
    const port = await startResponder({ good: ['5A08'], revoked: [] }, 1);
    const c = leaf('expiring', '5A08', `http://127.0.0.1:${port}/`);
    const g = await startGateway(config(c, ['SSLStaplingStandardCacheTimeout 1']));
    try {
      const first = await handshake(g.port);
      assert.ok(first.staple !== null);
      assert.equal(verdict(first.staple, c.leafOnly), 'good');
      const child = children.at(-1)!;
      if (child.exitCode === null) await once(child, 'exit');
      await new Promise((r) => setTimeout(r, 1200));
      // The responder is gone now: asking again fails, so the fake tryLater shows the answer was not reused.
      assert.equal((await handshake(g.port)).staple?.toString('hex'), TRY_LATER);
    } finally {
      await g.stop();
    }
  });

  test('without SSLUseStapling, or for a client that does not ask, nothing is stapled', BOUND, async () => {
    const c = leaf('plain', '5A09', 'http://127.0.0.1:9/');
    const g = await startGateway(config(c).replace('  SSLUseStapling on\n', ''));
    try {
      assert.equal((await handshake(g.port)).staple, null);
    } finally {
      await g.stop();
    }
  });

  test('errors and notices at load', () => {
    const c = leaf('conf', '5A0A', 'http://127.0.0.1:9/');
    expectError({ 'wsgate.conf': config(c, [], []) }, { line: 7, message: /SSLUseStapling on needs SSLStaplingCache at server level/ });
    expectError(
      { 'wsgate.conf': config(c, ['SSLStaplingForceURL https://ocsp.example/']) },
      { line: 9, message: /OCSP responder "https:\/\/ocsp\.example\/" is not an http:\/\/ URL/ },
    );
    expectError(
      { 'wsgate.conf': config(c, ['SSLStaplingCache shmcb:/x(1)'], []) },
      { line: 8, message: /SSLStaplingCache is not allowed inside <VirtualHost>|SSLStaplingCache.*not allowed/ },
    );
    expectError(
      { 'wsgate.conf': config(c, ['SSLStaplingResponderTimeout 0']) },
      { line: 9, message: /SSLStaplingResponderTimeout: "0" is not a number of seconds/ },
    );
    // No responder in the certificate, or its issuer missing from the files: served without a staple, as mod_ssl does.
    const bare = leaf('bare', '5A0B', undefined);
    const { config: noAia } = load({ 'wsgate.conf': config(bare) });
    assert.equal(noAia.virtualHosts[0]!.tls?.stapling, undefined);
    assert.ok(noAia.notices.some((n) => /names no OCSP responder/.test(n)));
    const { config: noIssuer } = load({ 'wsgate.conf': config({ cert: c.leafOnly, key: c.key }) });
    assert.equal(noIssuer.virtualHosts[0]!.tls?.stapling, undefined);
    assert.ok(noIssuer.notices.some((n) => /the issuer of .* is not in SSLCertificateFile/.test(n)));
    const { config: ok } = load({ 'wsgate.conf': config(c) });
    assert.equal(ok.virtualHosts[0]!.tls?.stapling?.url, 'http://127.0.0.1:9/');
  });
});

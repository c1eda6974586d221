// A real browser (Debian's chromium, headless, driven by playwright-core) loads a page over https
// from wsgate and opens a WebSocket on the same origin. With `Protocols h2 http/1.1` and
// `H2WebSockets on`, Chromium (by default, no flag needed) opens the WebSocket as an RFC 8441
// extended CONNECT on the HTTP/2 connection that loaded the page, because that connection's
// SETTINGS carried ENABLE_CONNECT_PROTOCOL; with `H2WebSockets off` it opens a separate HTTP/1.1
// connection. Which one happened is asserted from wsgate's side: the tunnel registry's record.
//
// Skipped only when /usr/bin/chromium is missing outside CI (.ci/run installs it).

import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { randomBytes, sha256, startEchoBackend, startGateway } from '../helpers/harness';
import type { TunnelRecord } from '../../src/gateway';

const CHROMIUM = '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)` : false;

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

/** The page: opens wss://<same origin>/ws/echo, sends the message it is given, resolves with what comes back. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>wsgate h2</title><script>
window.echoOnce = (msg) => new Promise((resolve, reject) => {
  const ws = new WebSocket('wss://' + location.host + '/ws/echo');
  ws.onopen = () => ws.send(msg);
  ws.onmessage = (e) => { window.openSocket = ws; resolve(e.data); };
  ws.onerror = () => reject(new Error('WebSocket error'));
});
</script>`;

/** Chromium trusts the proxy's certificate by its public key hash (`--ignore-certificate-errors-spki-list`), so the page is a secure context with no error interstitial and HTTP/2 is used as on a real site. */
function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

async function runBrowser(
  h2WebSockets: 'on' | 'off',
): Promise<{ protocol: string; record: TunnelRecord; echoed: string; sent: string; pageProtocol: string }> {
  const backend = await startEchoBackend('browser');
  // The backend serves the page for every plain request.
  backend.server.removeAllListeners('request');
  backend.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(PAGE) });
    res.end(PAGE);
  });
  const g = await startGateway(
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n` +
      `Protocols h2 http/1.1\nH2WebSockets ${h2WebSockets}\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\nProxyPass / http://127.0.0.1:${backend.port}/\n`,
  );
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-chromium-'));
  const { chromium } = await import('playwright-core');
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--ignore-certificate-errors-spki-list=${spkiHash(front.certPem)}`,
      ],
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const response = await page.goto(`https://localhost:${g.port}/`, { timeout: 30_000 });
    assert.equal(response?.status(), 200);
    // Which protocol loaded the page, as the browser reports it.
    const pageProtocol = String(await page.evaluate('performance.getEntriesByType("navigation")[0].nextHopProtocol'));
    const sent = randomBytes(48_000).toString('base64');
    const echoed = await page.evaluate((msg) => (globalThis as unknown as { echoOnce(m: string): Promise<string> }).echoOnce(msg), sent);
    // The page keeps its socket open: the tunnel is live in the registry now.
    const records = [...g.gateway.tunnels.values()];
    assert.equal(records.length, 1, 'one live tunnel');
    return { protocol: records[0].protocol, record: records[0], echoed, sent, pageProtocol };
  } finally {
    await context?.close().catch(() => {});
    await g.stop();
    await backend.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

describe('a real browser (chromium) through wsgate', { skip }, () => {
  test('H2WebSockets on: the page loads over h2 and its WebSocket runs on the same HTTP/2 connection (RFC 8441)', {
    timeout: 120_000,
  }, async () => {
    const r = await runBrowser('on');
    assert.equal(r.pageProtocol, 'h2');
    assert.equal(sha256(r.echoed), sha256(r.sent));
    assert.equal(r.protocol, 'h2', 'the tunnel ran over HTTP/2');
    assert.ok(r.record.tunnel.bytesUp > 48_000 && r.record.tunnel.bytesDown > 48_000, 'the message passed through this tunnel');
  });

  test('H2WebSockets off: the page still loads over h2 and its WebSocket works over HTTP/1.1', { timeout: 120_000 }, async () => {
    const r = await runBrowser('off');
    assert.equal(r.pageProtocol, 'h2');
    assert.equal(sha256(r.echoed), sha256(r.sent));
    assert.equal(r.protocol, 'http/1.1', 'the tunnel ran over its own HTTP/1.1 connection');
  });
});

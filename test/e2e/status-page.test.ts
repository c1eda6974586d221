// The live status page (`SetHandler status`) in a real browser (Debian's chromium, headless,
// driven by playwright-core): the page shows a tunnel opened after it loaded, without a reload;
// a member disabled by a click on the page gets no new connection and keeps its tunnels; the same
// change through balancer-manager's URL parameters, the nonce, and `?json`/`?auto`; a drain closes
// the member's tunnels with 1001. A screenshot is kept in the
// temp directory (its path is printed).
//
// Skipped only when /usr/bin/chromium is missing outside CI (.ci/run installs it).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { StatusSnapshot } from '../../src/observe/status';
import { eventually, randomBytes, sha256, startGateway } from '../helpers/harness';
import { echoServer, get } from '../helpers/observe';

const CHROMIUM = '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)` : false;
const BOUND = { timeout: 120_000 };

function post(
  port: number,
  target: string,
  form: string,
  accept = 'application/json',
): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: target,
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(form), Accept: accept },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(parts).toString('utf8'),
            ...(res.headers.location !== undefined ? { location: res.headers.location } : {}),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(form);
  });
}

async function echoOnce(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/`);
  await once(ws, 'open');
  const p = randomBytes(4096);
  ws.send(p);
  const [data] = (await once(ws, 'message')) as [Buffer];
  assert.equal(sha256(data), sha256(p));
  return ws;
}

async function snapshot(port: number, target = '/wsgate-status?json'): Promise<StatusSnapshot> {
  const res = await get(port, target);
  assert.equal(res.status, 200);
  assert.match(res.type, /^application\/json/);
  return JSON.parse(res.body) as StatusSnapshot;
}

describe('the status page in a real browser (chromium)', { skip }, () => {
  test('shows a new tunnel without a reload; a click disables a member and new connections avoid it', BOUND, async () => {
    const a = await echoServer();
    const b = await echoServer();
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        '<Proxy "balancer://pool">',
        `  BalancerMember ws://127.0.0.1:${a.port}`,
        `  BalancerMember ws://127.0.0.1:${b.port}`,
        '</Proxy>',
        'ProxyPass /ws/ balancer://pool/',
        '<Location "/wsgate-status">',
        '  SetHandler status',
        '  Require ip 127.0.0.1',
        '</Location>',
        '<Location "/balancer-manager">',
        '  SetHandler balancer-manager',
        '  Require ip 127.0.0.1',
        '</Location>',
        '',
      ].join('\n'),
    );
    const sockets: WebSocket[] = [];
    const userDataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-chromium-'));
    const { chromium } = await import('playwright-core');
    let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
    try {
      const first = await snapshot(g.port);
      const members = first.balancers[0]!.members.map((m) => m.url);
      assert.equal(members.length, 2);
      const [memberA, memberB] = members as [string, string];

      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        timeout: 60_000,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page = await context.newPage();
      page.setDefaultTimeout(30_000);
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(`http://127.0.0.1:${g.port}/`)) external.push(r.url());
      });
      const response = await page.goto(`http://127.0.0.1:${g.port}/wsgate-status`);
      assert.equal(response?.status(), 200);
      await page.waitForSelector('#live.on');
      assert.equal(await page.locator('tr[data-tunnel]').count(), 0);

      // A tunnel opened after the page loaded appears on it, with no reload.
      const ws = await echoOnce(g.port);
      sockets.push(ws);
      const id = [...g.gateway.tunnels.values()][0]!.tunnel.id;
      await page.waitForSelector(`tr[data-tunnel="${id}"]`);
      assert.equal(await page.locator('#opencount').textContent(), '1');

      // Disable member A by clicking its button; the page shows the new state.
      await page.locator(`button[data-action="disable"][data-member="${memberA}"]`).click();
      await page.waitForFunction(
        `(document.querySelector('tr[data-member-row="${memberA}"] td[data-state]')?.textContent ?? '').startsWith('disabled')`,
      );
      const shot = path.join(tmpdir(), 'wsgate-status.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`status page screenshot: ${shot}`);
      assert.deepEqual(external, [], 'the page loads nothing from elsewhere');

      // New connections avoid the disabled member; its open tunnel stays.
      const aBefore = a.connections();
      const bBefore = b.connections();
      for (let i = 0; i < 6; i++) sockets.push(await echoOnce(g.port));
      assert.equal(a.connections(), aBefore, 'no new connection to the disabled member');
      assert.equal(b.connections(), bBefore + 6);
      assert.equal(g.gateway.tunnels.size, 7, 'the tunnel open before the change stays');

      // balancer-manager: Apache's parameters; a change needs the nonce and a POST.
      const snap = await snapshot(g.port, '/balancer-manager?json');
      const stateOf = (s: StatusSnapshot, url: string) => s.balancers[0]!.members.find((m) => m.url === url)!.state;
      assert.equal(stateOf(snap, memberA), 'disabled');
      assert.equal(
        (await post(g.port, '/balancer-manager', `b=pool&w=${encodeURIComponent(memberA)}&w_status_D=0&nonce=wrong`)).status,
        403,
      );
      assert.equal(
        (await get(g.port, `/balancer-manager?b=pool&w=${encodeURIComponent(memberA)}&w_status_D=0&nonce=${snap.nonce}`)).status,
        405,
      );
      assert.equal(
        (await post(g.port, '/balancer-manager', `b=pool&w=${encodeURIComponent(memberA)}&w_lf=5&nonce=${snap.nonce}`)).status,
        400,
      );
      // Member B drained: its 6 tunnels are sent 1001 (no ProxyWebsocketDrainRate: all at once);
      // then A enabled again (a plain form post is sent back to the page).
      const onB = sockets.slice(1); // made while A was disabled
      const bCount = g.gateway.tunnels.countBackend(memberB);
      assert.ok(bCount === 6 || bCount === 7, `${bCount} tunnels on B`);
      const bCloses = onB.map((ws) => once(ws, 'close') as Promise<[number, Buffer]>);
      const drained = await post(g.port, '/balancer-manager', `b=pool&w=${encodeURIComponent(memberB)}&w_status_N=1&nonce=${snap.nonce}`);
      assert.equal(drained.status, 200, drained.body);
      assert.deepEqual((({ state, closing }) => ({ state, closing }))(JSON.parse(drained.body) as { state: string; closing: number }), {
        state: 'draining',
        closing: bCount,
      });
      for (const [code] of await Promise.all(bCloses)) assert.equal(code, 1001);
      const enabled = await post(
        g.port,
        '/balancer-manager',
        `b=balancer://pool&w=${encodeURIComponent(memberA)}&w_status_D=0&nonce=${snap.nonce}`,
        'text/html',
      );
      assert.equal(enabled.status, 303);
      assert.equal(enabled.location, '/balancer-manager');
      const aNow = a.connections();
      const bNow = b.connections();
      for (let i = 0; i < 3; i++) sockets.push(await echoOnce(g.port));
      assert.equal(a.connections(), aNow + 3, 'A takes new connections again');
      assert.equal(b.connections(), bNow, 'B, draining, takes none');

      // B's tunnels were closed by the drain; A's and the 3 new ones stay.
      await eventually(() => g.gateway.tunnels.size === 10 - bCount, 10_000, 'B’s tunnels closed');
      const auto = await get(g.port, '/wsgate-status?auto');
      assert.match(auto.body, new RegExp(`^OpenTunnels: ${10 - bCount}$`, 'm'));
      assert.match(auto.body, new RegExp(`^Member: pool ${memberB.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} draining `, 'm'));
      const final = await snapshot(g.port);
      assert.equal(final.openTunnels, 10 - bCount);
      assert.equal(final.tunnels.length, 10 - bCount);
      assert.ok(final.tunnels.every((t) => t.bytesUp >= 4096 && t.bytesDown >= 4096 && t.client === '127.0.0.1'));
      assert.equal(final.totals.handshakes, 10);
      // The rate counts whole seconds: one second on, the last handshakes are in it.
      assert.ok(g.gateway.status.handshakeRate(Date.now() + 1000) >= 0.3);
    } finally {
      for (const s of sockets) s.terminate();
      await context?.close().catch(() => {});
      await g.stop();
      await a.close();
      await b.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});

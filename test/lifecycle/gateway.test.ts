// Gateway.reload and Gateway.stop in process: a port that cannot be bound leaves the old config
// in force; balancer members that stay keep their state (a removed one loses it); a tunnel whose
// balancer member is removed ends by reload while the others go on; the state a readiness check
// reads goes serving → draining → stopped, and a drain whose work is done ends before its grace.
// GracefulShutdownTimeout and PidFile as read from a file.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { WebSocket } from 'ws';
import { load } from '../config/helpers';
import {
  closeWs,
  echo,
  eventually,
  openWs,
  randomBytes,
  sha256,
  startEchoBackend,
  startGateway,
  type EchoBackend,
} from '../helpers/harness';

let a: EchoBackend;
let b: EchoBackend;

before(async () => {
  a = await startEchoBackend('a');
  b = await startEchoBackend('b');
});

after(async () => {
  await a.close();
  await b.close();
});

const balancer = (members: string[]): string =>
  `<Proxy "balancer://pool">\n${members.map((m) => `BalancerMember "${m}"`).join('\n')}\nProxySet lbmethod=bybusyness\n</Proxy>\n`;

test('a reload whose new port cannot be bound changes nothing', { timeout: 30_000 }, async () => {
  const busy = net.createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const busyPort = (busy.address() as net.AddressInfo).port;
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${a.port}/"\n`);
  try {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/x`);
    const old = g.gateway.config;
    const { config } = load({
      'wsgate.conf': `Listen 127.0.0.1:${g.port}\nListen 127.0.0.1:${busyPort}\nProxyPass "/other/" "ws://127.0.0.1:${b.port}/"\n`,
    });
    await assert.rejects(g.gateway.reload(config), /cannot listen on 127\.0\.0\.1:\d+/);
    assert.equal(g.gateway.config, old);
    assert.deepEqual(
      g.gateway.addresses().map((x) => x.port),
      [g.port],
    );
    const payload = randomBytes(4000);
    assert.equal(sha256((await echo(ws, payload)).data), sha256(payload));
    await closeWs(ws);
  } finally {
    await g.stop();
    busy.close();
  }
});

test('balancer members that stay keep their state and their tunnels; a removed member loses both', { timeout: 30_000 }, async () => {
  const urlA = `ws://127.0.0.1:${a.port}`;
  const urlB = `ws://127.0.0.1:${b.port}`;
  const g = await startGateway(
    `Listen 127.0.0.1:0\nGracefulShutdownTimeout 0\n${balancer([urlA, urlB])}ProxyPass "/ws/" "balancer://pool/"\n`,
  );
  try {
    // bybusyness spreads four tunnels over both members.
    const list: WebSocket[] = [];
    for (let i = 0; i < 4; i++) list.push(await openWs(`ws://127.0.0.1:${g.port}/ws/${i}`));
    assert.equal(g.gateway.tunnels.countBackend(urlA), 2);
    assert.equal(g.gateway.tunnels.countBackend(urlB), 2);
    const stateA = g.gateway.balancers.peek(`balancer://pool|${urlA}`)!;
    assert.ok(stateA !== undefined);
    stateA.lbstatus = 12345;
    const closes = list.map((ws) => once(ws, 'close') as Promise<[number, Buffer]>);

    const { config } = load({
      'wsgate.conf': `Listen 127.0.0.1:${g.port}\nGracefulShutdownTimeout 0\n${balancer([urlA])}ProxyPass "/ws/" "balancer://pool/"\n`,
    });
    const r = await g.gateway.reload(config);
    assert.equal(r.tunnelsKept, 2);
    assert.equal(r.tunnelsEnding, 2);
    assert.equal(g.gateway.balancers.peek(`balancer://pool|${urlA}`), stateA, 'the same state object');
    assert.equal(stateA.lbstatus, 12345);
    // The kept tunnels count on the new config's route (max tunnels, status).
    const route = config.mainServer.routes[0];
    await eventually(() => g.gateway.tunnels.countRoute(route) === 2, 5000, 'kept tunnels on the new route');
    // The member's tunnels end at once (grace 0) with 1012; the others still echo.
    await eventually(() => g.gateway.tunnels.size === 2, 5000, 'the removed member tunnels to end');
    await eventually(() => list.filter((ws) => ws.readyState === ws.CLOSED).length === 2, 5000, 'two clients closed');
    let ended = 0;
    for (let i = 0; i < list.length; i++) {
      const ws = list[i];
      if (ws.readyState === ws.CLOSED) {
        assert.equal((await closes[i])[0], 1012);
        ended++;
        continue;
      }
      const payload = randomBytes(3000);
      assert.equal(sha256((await echo(ws, payload)).data), sha256(payload));
    }
    assert.equal(ended, 2);
    assert.equal(b.wss.clients.size, 0, 'the removed member has no tunnel left');
    assert.equal(g.logs.filter((l) => / tunnel closed .* reason=reload /.test(l)).length, 2);
    await eventually(() => g.gateway.balancers.peek(`balancer://pool|${urlB}`) === undefined, 5000, 'the removed member state pruned');
    for (const ws of list) ws.terminate();
  } finally {
    await g.stop();
  }
});

test('stop with a grace: draining at once, stopped as soon as the last tunnel ends, well before the grace', {
  timeout: 30_000,
}, async () => {
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${a.port}/"\n`);
  const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/drain`);
  assert.equal(g.gateway.state, 'serving');
  const startedAt = Date.now();
  const stopping = g.gateway.stop({ graceMs: 20_000 });
  assert.equal(g.gateway.state, 'draining');
  // Still a working tunnel while draining.
  assert.equal((await echo(ws, 'during the drain')).data.toString(), 'during the drain');
  await closeWs(ws);
  await stopping;
  assert.equal(g.gateway.state, 'stopped');
  assert.ok(Date.now() - startedAt < 15_000, 'the drain ended when the work did');
});

test('a second stop without grace ends the drain at once (1001)', { timeout: 30_000 }, async () => {
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${a.port}/"\n`);
  const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/hurry`);
  const closed = once(ws, 'close') as Promise<[number, Buffer]>;
  const first = g.gateway.stop({ graceMs: 60_000 });
  const second = g.gateway.stop();
  await Promise.all([first, second]);
  assert.equal((await closed)[0], 1001);
  assert.equal(g.gateway.state, 'stopped');
});

test('GracefulShutdownTimeout and PidFile: defaults, values, 0, and errors at their line', () => {
  const none = load({ 'wsgate.conf': 'Listen 80\n' }).config;
  assert.equal(none.process.gracefulShutdownTimeoutMs, 30_000);
  assert.equal(none.process.pidFile, undefined);
  const set = load({ 'wsgate.conf': 'ServerRoot /srv/w\nListen 80\nGracefulShutdownTimeout 5\nPidFile run/wsgate.pid\n' }).config;
  assert.equal(set.process.gracefulShutdownTimeoutMs, 5000);
  assert.equal(set.process.pidFile, path.resolve('/srv/w/run/wsgate.pid'));
  const rel = load({ 'wsgate.conf': 'Listen 80\nGracefulShutdownTimeout 0\nPidFile wsgate.pid\n' });
  assert.equal(rel.config.process.gracefulShutdownTimeoutMs, 0);
  assert.equal(rel.config.process.pidFile, path.join(rel.dir, 'wsgate.pid'));
  assert.throws(
    () => load({ 'wsgate.conf': 'Listen 80\nGracefulShutdownTimeout soon\n' }),
    /wsgate\.conf:2: GracefulShutdownTimeout: "soon" is not a duration/,
  );
  assert.throws(() => load({ 'wsgate.conf': 'Listen 80\n<VirtualHost *:80>\nPidFile x\n</VirtualHost>\n' }), /wsgate\.conf:3: PidFile/);
});

test('a member disabled from the status page stays disabled across a reload, until the file gives it another status=', {
  timeout: 30_000,
}, async () => {
  const urlA = `ws://127.0.0.1:${a.port}`;
  const urlB = `ws://127.0.0.1:${b.port}`;
  const conf = (statusB: string) =>
    `Listen 127.0.0.1:0\nGracefulShutdownTimeout 0\n<Proxy "balancer://pool">\nBalancerMember "${urlA}"\nBalancerMember "${urlB}"${statusB}\nProxySet lbmethod=byrequests\n</Proxy>\nProxyPass "/ws/" "balancer://pool/"\n<Location "/bm">\nSetHandler balancer-manager\n</Location>\n`;
  const g = await startGateway(conf(''));
  try {
    const page = await fetch(`http://127.0.0.1:${g.port}/bm?json`);
    const nonce = /"nonce":"([^"]+)"/.exec(await page.text())?.[1];
    assert.ok(nonce !== undefined, 'the page gives its nonce');
    const post = await fetch(`http://127.0.0.1:${g.port}/bm`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', referer: `http://127.0.0.1:${g.port}/bm` },
      body: new URLSearchParams({ b: 'pool', w: urlB, w_status_D: '1', nonce }).toString(),
    });
    assert.ok(post.status < 400, `the change was taken (${post.status})`);
    const landsOn = async (): Promise<string[]> => {
      const before = [a.upgrades.length, b.upgrades.length];
      for (let i = 0; i < 4; i++) await closeWs(await openWs(`ws://127.0.0.1:${g.port}/ws/${i}`));
      return [a.upgrades.length > before[0]! ? 'a' : '', b.upgrades.length > before[1]! ? 'b' : ''].filter((x) => x !== '');
    };
    assert.deepEqual(await landsOn(), ['a'], 'disabled: new connections avoid b');
    const same = load({ 'wsgate.conf': conf('').replace('Listen 127.0.0.1:0', `Listen 127.0.0.1:${g.port}`) }).config;
    await g.gateway.reload(same);
    assert.deepEqual(await landsOn(), ['a'], 'still disabled after a reload of the same file');
    const edited = load({ 'wsgate.conf': conf(' status=+I').replace('Listen 127.0.0.1:0', `Listen 127.0.0.1:${g.port}`) }).config;
    await g.gateway.reload(edited);
    assert.deepEqual(await landsOn(), ['a', 'b'], 'a new status= in the file wins');
  } finally {
    await g.stop();
  }
});

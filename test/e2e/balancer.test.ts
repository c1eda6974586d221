// REFERENCE §4–5: balancer://, the lb methods, error state, failover, 503 + Retry-After and hot
// standby, against real `ws` echo backends on loopback.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type * as net from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { assertClosedWith, deadPort, upgradeRequest } from '../helpers/edges';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  eventually,
  headerIn,
  openWs,
  randomBytes,
  rawExchange,
  sha256,
  startGateway,
  type RunningGateway,
} from '../helpers/harness';

/** A ws echo backend that records the paths it was asked to upgrade, and can be stopped and started again on its port. */
class Member {
  readonly paths: string[] = [];
  port = 0;
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;

  constructor(
    readonly name: string,
    private readonly order?: string[],
  ) {}

  get upgrades(): number {
    return this.paths.length;
  }

  get open(): number {
    return this.wss?.clients.size ?? 0;
  }

  async start(): Promise<this> {
    const server = http.createServer((_req, res) => res.end(`backend:${this.name}`));
    const wss = new WebSocketServer({ server });
    server.on('upgrade', (req) => {
      this.paths.push(req.url ?? '');
      this.order?.push(this.name);
    });
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
      ws.on('error', () => {});
    });
    server.on('error', () => {});
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    this.wss = wss;
    return this;
  }

  /** Closes the backend's tunnels from its side (a close frame), keeping the server up. */
  closeClients(): void {
    for (const c of this.wss?.clients ?? []) c.close(1001, 'bye');
  }

  async stop(): Promise<void> {
    const { server, wss } = this;
    if (server === undefined || wss === undefined) return;
    this.server = undefined;
    this.wss = undefined;
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

async function members(names: string[], order?: string[]): Promise<Member[]> {
  return Promise.all(names.map((n) => new Member(n, order).start()));
}

/** One complete WebSocket session through the gateway: 101, an echoed random payload (by SHA-256), close. */
async function session(url: string): Promise<void> {
  const ws = await openWs(url);
  const payload = randomBytes(512);
  const r = await echo(ws, payload);
  assert.equal(sha256(r.data), sha256(payload), 'echoed bytes');
  await closeWs(ws);
}

async function withGateway(config: string, ms: Member[], body: (g: RunningGateway) => Promise<void>): Promise<void> {
  let g: RunningGateway | undefined;
  try {
    g = await startGateway(`Listen 127.0.0.1:0\n${config}\n`);
    await body(g);
    await assertNoOpenSockets(g);
  } finally {
    await g?.stop();
    for (const m of ms) await m.stop();
  }
}

const lines = (ms: Member[], params: (m: Member, i: number) => string = () => ''): string =>
  ms.map((m, i) => `  BalancerMember "ws://127.0.0.1:${m.port}/${m.name}" ${params(m, i)}`).join('\n');

test('byrequests: alternates between equal members, member path in front of the request path', { timeout: 60_000 }, async () => {
  const order: string[] = [];
  const ms = await members(['a', 'b'], order);
  await withGateway(`<Proxy "balancer://pool">\n${lines(ms)}\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`, ms, async (g) => {
    for (let i = 0; i < 10; i++) await session(`ws://127.0.0.1:${g.port}/lb/room/${i}?q=${i}`);
    assert.equal(order.join(''), 'ababababab');
    assert.deepEqual(ms[0]!.paths.slice(0, 2), ['/a/room/0?q=0', '/a/room/2?q=2']);
    assert.deepEqual(ms[1]!.paths.slice(0, 1), ['/b/room/1?q=1']);
  });
});

test('byrequests: loadfactor 3:1 gives about 3:1 over 200 connections', { timeout: 120_000 }, async () => {
  const ms = await members(['a', 'b']);
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, (_m, i) => (i === 0 ? 'loadfactor=3' : 'loadfactor=1'))}\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      for (let i = 0; i < 200; i++) await session(`ws://127.0.0.1:${g.port}/lb/x`);
      const [a, b] = [ms[0]!.upgrades, ms[1]!.upgrades];
      assert.equal(a + b, 200);
      assert.ok(a >= 140 && a <= 160 && b >= 40 && b <= 60, `a=${a} b=${b}`);
    },
  );
});

test('bybusyness: new tunnels go to the member with fewer open ones', { timeout: 60_000 }, async () => {
  const ms = await members(['a', 'b']);
  const [a, b] = ms as [Member, Member];
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms)}\n  ProxySet lbmethod=bybusyness\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      const url = `ws://127.0.0.1:${g.port}/lb/x`;
      const held = [];
      for (let i = 0; i < 4; i++) held.push(await openWs(url));
      await eventually(() => a.open === 2 && b.open === 2, 5000, 'two held tunnels on each member');
      // a's tunnels end (closed by the backend); b keeps its two.
      a.closeClients();
      await eventually(() => g.gateway.tunnels.size === 2, 5000, "a's tunnels to close");
      for (let i = 0; i < 2; i++) held.push(await openWs(url));
      await eventually(() => a.open === 2, 5000, 'the new tunnels on a');
      assert.equal(a.upgrades, 4, 'both new tunnels went to the idle member');
      assert.equal(b.upgrades, 2);
      for (const ws of held) await closeWs(ws);
    },
  );
});

test('a member killed mid-run: no client sees an error; after retry=1 it is used again', { timeout: 90_000 }, async () => {
  const ms = await members(['a', 'b', 'c']);
  const [, b] = ms as [Member, Member, Member];
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, () => 'retry=1')}\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      const url = `ws://127.0.0.1:${g.port}/lb/x`;
      for (let i = 0; i < 9; i++) await session(url);
      assert.deepEqual(
        ms.map((m) => m.upgrades),
        [3, 3, 3],
      );
      await b.stop();
      // Every session still gets its 101 and its echo; b takes none of them.
      for (let i = 0; i < 30; i++) await session(url);
      assert.equal(b.upgrades, 3);
      assert.equal(ms[0]!.upgrades + ms[2]!.upgrades, 36);
      await g.waitForLog(
        new RegExp(
          `warn balancer member in error state balancer=balancer://pool member=ws://127\\.0\\.0\\.1:${b.port}/b retry_ms=1000 reason="backend unreachable: ECONNREFUSED`,
        ),
      );
      await g.waitForLog(/info balancer failover balancer=balancer:\/\/pool from=ws:\/\/127\.0\.0\.1:\d+\/b /);
      // b comes back on its port: once its retry has passed, it is elected again.
      await b.start();
      const deadline = Date.now() + 20_000;
      while (b.upgrades === 3) {
        assert.ok(Date.now() < deadline, 'b used again within 20 s');
        await session(url);
        await new Promise((r) => setTimeout(r, 50));
      }
      await g.waitForLog(/info balancer member leaves error state balancer=balancer:\/\/pool member=\S+\/b why="retry elapsed"/);
    },
  );
});

test('all members down: 503 with Retry-After; forcerecovery tries them again on the next request', { timeout: 30_000 }, async () => {
  const [p1, p2] = [await deadPort(), await deadPort()];
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember ws://127.0.0.1:${p1} retry=30\n  BalancerMember ws://127.0.0.1:${p2} retry=30\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    [],
    async (g) => {
      for (let i = 0; i < 2; i++) {
        const res = await rawExchange(g.port, upgradeRequest('/lb/x'));
        assertClosedWith(res, 503);
        const after = Number(headerIn(res.head, 'retry-after'));
        assert.ok(after >= 1 && after <= 30, `Retry-After: ${headerIn(res.head, 'retry-after')}`);
      }
      await g.waitForLog(/balancer member leaves error state .*why="forcerecovery: every member was in error"/);
      await g.waitForLog(
        /warn proxy request failed status=503 reason="backend unreachable: ECONNREFUSED.* backend=ws:\/\/127\.0\.0\.1:\d+ /,
      );
    },
  );
});

test('forcerecovery=Off: while every member is in error, 503 at once with the seconds left in Retry-After', {
  timeout: 30_000,
}, async () => {
  const p1 = await deadPort();
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember ws://127.0.0.1:${p1} retry=20\n  ProxySet forcerecovery=Off\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    [],
    async (g) => {
      assertClosedWith(await rawExchange(g.port, upgradeRequest('/lb/x')), 503);
      const res = await rawExchange(g.port, upgradeRequest('/lb/y'));
      assertClosedWith(res, 503);
      const after = Number(headerIn(res.head, 'retry-after'));
      assert.ok(after >= 15 && after <= 20, `Retry-After: ${after}`);
      await g.waitForLog(
        /status=503 reason="no usable member of balancer:\/\/pool \(in error state\)" .*path=\/lb\/y backend=balancer:\/\/pool /,
      );
    },
  );
});

test('hot standby (status=+H) is used only when every other member is down', { timeout: 60_000 }, async () => {
  const ms = await members(['a', 'b', 'h']);
  const [a, b, h] = ms as [Member, Member, Member];
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, (m) => (m.name === 'h' ? 'status=+H' : ''))}\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      const url = `ws://127.0.0.1:${g.port}/lb/x`;
      for (let i = 0; i < 10; i++) await session(url);
      assert.deepEqual([a.upgrades, b.upgrades, h.upgrades], [5, 5, 0]);
      await a.stop();
      for (let i = 0; i < 4; i++) await session(url);
      assert.deepEqual([b.upgrades, h.upgrades], [9, 0]);
      await b.stop();
      for (let i = 0; i < 4; i++) await session(url);
      assert.equal(h.upgrades, 4);
    },
  );
});

test('max= reached on every member: 503', { timeout: 30_000 }, async () => {
  const ms = await members(['a']);
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, () => 'max=1')}\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      const ws = await openWs(`ws://127.0.0.1:${g.port}/lb/x`);
      const res = await rawExchange(g.port, upgradeRequest('/lb/y'));
      assertClosedWith(res, 503);
      assert.equal(headerIn(res.head, 'retry-after'), undefined);
      await g.waitForLog(/status=503 reason="max= reached on every member of balancer:\/\/pool"/);
      await closeWs(ws);
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the tunnel to close');
      await session(`ws://127.0.0.1:${g.port}/lb/z`);
    },
  );
});

test('balancer config errors stop the gateway before it listens, at file:line', async () => {
  const cases: Array<[string, RegExp]> = [
    [
      '<Proxy balancer://p>\nBalancerMember ws://127.0.0.1:1\nProxySet lbmethod=roundrobin\n</Proxy>',
      /wsgate\.conf:4: ProxySet: unknown lbmethod "roundrobin"/,
    ],
    [
      '<Proxy balancer://p>\nBalancerMember ws://127.0.0.1:1\n</Proxy>\nProxyPass /x balancer://p/ upgrade=websocket',
      /wsgate\.conf:5: ProxyPass: upgrade= is not a balancer parameter/,
    ],
    ['BalancerMember ws://127.0.0.1:1', /wsgate\.conf:2: BalancerMember is only valid inside <Proxy "balancer:\/\/name">/],
    ['ProxyPass /x balancer://nope/', /wsgate\.conf:2: ProxyPass: no balancer "balancer:\/\/nope" is defined/],
  ];
  for (const [config, message] of cases) {
    await assert.rejects(startGateway(`Listen 127.0.0.1:0\n${config}\n`), message);
  }
});

test('stickysession: the cookie or URL parameter route keeps a client on its member; unknown or dotless routes are balanced', {
  timeout: 60_000,
}, async () => {
  const ms = await members(['a', 'b']);
  const [a, b] = ms as [Member, Member];
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, (m) => `route=${m.name}`)}\n  ProxySet stickysession=ROUTEID|rid\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      const url = `ws://127.0.0.1:${g.port}/lb/x`;
      const sticky = async (u: string, cookie?: string): Promise<void> => {
        const ws = await openWs(u, undefined, cookie !== undefined ? { headers: { Cookie: cookie } } : {});
        const r = await echo(ws, 'hi');
        assert.equal(r.data.toString(), 'hi');
        await closeWs(ws);
      };
      for (let i = 0; i < 6; i++) await sticky(url, 'lang=en; ROUTEID=sess42.b');
      assert.deepEqual([a.upgrades, b.upgrades], [0, 6]);
      // The URL parameter wins over the cookie.
      for (let i = 0; i < 3; i++) await sticky(`${url}?rid=s.a`, 'ROUTEID=.b');
      assert.deepEqual([a.upgrades, b.upgrades], [3, 6]);
      // No separator or an unknown route: the lb method (round robin) decides.
      for (let i = 0; i < 4; i++) await sticky(url, i % 2 === 0 ? 'ROUTEID=b' : 'ROUTEID=.zzz');
      assert.deepEqual([a.upgrades, b.upgrades], [5, 8]);
      // b goes down: its sessions fail over to a without an error (nofailover is Off).
      await b.stop();
      for (let i = 0; i < 3; i++) await sticky(url, 'ROUTEID=.b');
      assert.equal(a.upgrades, 8);
    },
  );
});

test('nofailover=On: a session whose member is down gets 503 instead of another member', { timeout: 30_000 }, async () => {
  const ms = await members(['a']);
  const dead = await deadPort();
  await withGateway(
    `<Proxy "balancer://pool">\n${lines(ms, () => 'route=a')}\n  BalancerMember ws://127.0.0.1:${dead} route=b retry=30\n  ProxySet stickysession=ROUTEID nofailover=On\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    ms,
    async (g) => {
      for (let i = 0; i < 2; i++) {
        const res = await rawExchange(g.port, upgradeRequest('/lb/x', 'Cookie: ROUTEID=.b\r\n'));
        assertClosedWith(res, 503);
      }
      await g.waitForLog(/status=503 reason="the member of route \\"b\\" is not usable and balancer:\/\/pool has nofailover=On"/);
      assert.equal(ms[0]!.upgrades, 0);
      // Requests without a route still go to a.
      await session(`ws://127.0.0.1:${g.port}/lb/x`);
      assert.equal(ms[0]!.upgrades, 1);
    },
  );
});

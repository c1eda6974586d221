// Issue 4, the balancer's failure parameters against real backends on loopback: failonstatus=
// (and failontimeout=) put a member in error state while the answer is still relayed, hot spares
// (status=+R) stand in for an unusable member, and the balancer's timeout= makes a request wait
// for a free member instead of getting an immediate 503.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { assertClosedWith, upgradeRequest } from '../helpers/edges';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  headerIn,
  openWs,
  randomBytes,
  rawExchange,
  sha256,
  startGateway,
  type RunningGateway,
} from '../helpers/harness';

/** An HTTP + ws echo backend answering plain requests with `status` (or never, when `silent`); it counts what it got. */
class Backend {
  requests = 0;
  upgrades = 0;
  port = 0;
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;

  constructor(
    readonly name: string,
    private readonly status = 200,
    private readonly silent = false,
  ) {
    this.server = http.createServer((_req, res) => {
      this.requests++;
      if (this.silent) return;
      const body = `backend:${this.name}`;
      res.writeHead(this.status, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
      res.end(body);
    });
    this.wss = new WebSocketServer({ server: this.server });
    this.server.on('upgrade', () => this.upgrades++);
    this.wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
      ws.on('error', () => {});
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

async function withGateway(config: string, backends: Backend[], body: (g: RunningGateway) => Promise<void>): Promise<void> {
  let g: RunningGateway | undefined;
  try {
    g = await startGateway(`Listen 127.0.0.1:0\n${config}\n`);
    await body(g);
    await assertNoOpenSockets(g);
  } finally {
    await g?.stop();
    for (const b of backends) await b.stop();
  }
}

/** A plain GET through the gateway: its status and body. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n`);
  const text = res.data.toString('latin1');
  return { status: res.status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

/** One WebSocket session: 101, an echoed random payload compared by SHA-256, close. */
async function session(url: string): Promise<void> {
  const ws = await openWs(url);
  const payload = randomBytes(700);
  assert.equal(sha256((await echo(ws, payload)).data), sha256(payload), 'echoed bytes');
  await closeWs(ws);
}

test('failonstatus=: the listed status is relayed to the client and its member goes into error state', { timeout: 60_000 }, async () => {
  const bad = await new Backend('bad', 503).start();
  const good = await new Backend('good').start();
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember http://127.0.0.1:${bad.port} upgrade=websocket\n  BalancerMember http://127.0.0.1:${good.port} upgrade=websocket\n  ProxySet failonstatus=500,503\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    [bad, good],
    async (g) => {
      const first = await get(g.port, '/lb/a');
      assert.deepEqual(first, { status: 503, body: 'backend:bad' }, "the member's own 503 is relayed");
      await g.waitForLog(
        new RegExp(
          `balancer member in error state balancer=balancer://pool member=http://127\\.0\\.0\\.1:${bad.port} retry_ms=60000 reason="answered 503, listed in failonstatus="`,
        ),
      );
      for (let i = 0; i < 6; i++) assert.deepEqual(await get(g.port, `/lb/${i}`), { status: 200, body: 'backend:good' });
      await session(`ws://127.0.0.1:${g.port}/lb/ws`);
      assert.deepEqual([bad.requests, bad.upgrades, good.requests, good.upgrades], [1, 0, 6, 1]);
    },
  );
});

test('failontimeout=On: a member that does not answer within its timeout goes into error state (504 to that client)', {
  timeout: 60_000,
}, async () => {
  const silent = await new Backend('silent', 200, true).start();
  const good = await new Backend('good').start();
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember http://127.0.0.1:${silent.port} timeout=1\n  BalancerMember http://127.0.0.1:${good.port}\n  ProxySet failontimeout=On\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    [silent, good],
    async (g) => {
      assert.equal((await get(g.port, '/lb/a')).status, 504);
      await g.waitForLog(/balancer member in error state .*reason="no answer from backend within 1000 ms \(failontimeout=On\)"/);
      for (let i = 0; i < 4; i++) assert.deepEqual(await get(g.port, `/lb/${i}`), { status: 200, body: 'backend:good' });
      assert.equal(silent.requests, 1);
    },
  );
});

test('hot spare (status=+R): idle while the normal members are usable, stands in for one that is down', { timeout: 60_000 }, async () => {
  const [a, b, r] = await Promise.all([new Backend('a').start(), new Backend('b').start(), new Backend('r').start()]);
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember ws://127.0.0.1:${a.port}\n  BalancerMember ws://127.0.0.1:${b.port}\n  BalancerMember ws://127.0.0.1:${r.port} status=+R\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"`,
    [a, b, r],
    async (g) => {
      const url = `ws://127.0.0.1:${g.port}/lb/x`;
      for (let i = 0; i < 8; i++) await session(url);
      assert.deepEqual([a.upgrades, b.upgrades, r.upgrades], [4, 4, 0], 'the spare is not used while a and b are');
      await a.stop();
      // The first session after the stop fails over (a goes into error state); the spare then shares the load with b.
      for (let i = 0; i < 8; i++) await session(url);
      assert.equal(a.upgrades, 4);
      assert.equal(b.upgrades + r.upgrades, 12);
      assert.ok(r.upgrades >= 3, `the spare stood in for a (r=${r.upgrades}, b=${b.upgrades})`);
    },
  );
});

test('balancer timeout=: a request waits for a member at max= to free up, and gets 503 when none does in time', {
  timeout: 60_000,
}, async () => {
  const a = await new Backend('a').start();
  await withGateway(
    `<Proxy "balancer://pool">\n  BalancerMember ws://127.0.0.1:${a.port} max=1\n  ProxySet timeout=20\n</Proxy>\nProxyPass "/lb/" "balancer://pool/"\n` +
      `<Proxy "balancer://short">\n  BalancerMember ws://127.0.0.1:${a.port}/short max=1\n  ProxySet timeout=1\n</Proxy>\nProxyPass "/short/" "balancer://short/"`,
    [a],
    async (g) => {
      const held = await openWs(`ws://127.0.0.1:${g.port}/lb/held`);
      // The second session waits (no 503) until the first one's tunnel closes.
      const waiting = session(`ws://127.0.0.1:${g.port}/lb/waiting`);
      await g.waitForLog(
        /info balancer wait for a usable member balancer=balancer:\/\/pool timeout_ms=20000 reason="max= reached on every member of balancer:\/\/pool"/,
      );
      assert.equal(a.upgrades, 1, 'the waiting request has not reached the member');
      await closeWs(held);
      await waiting;
      assert.equal(a.upgrades, 2);

      // timeout=1 and the member stays busy: 503 after about a second.
      const busy = await openWs(`ws://127.0.0.1:${g.port}/short/held`);
      const started = Date.now();
      const res = await rawExchange(g.port, upgradeRequest('/short/x'));
      const waited = Date.now() - started;
      assertClosedWith(res, 503);
      assert.equal(headerIn(res.head, 'retry-after'), undefined);
      assert.ok(waited >= 900 && waited < 15_000, `answered after ${waited} ms`);
      await g.waitForLog(/status=503 reason="max= reached on every member of balancer:\/\/short, after waiting timeout=1000 ms"/);
      await closeWs(busy);
    },
  );
});

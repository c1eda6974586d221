// The one set of counters per backend (src/upstream/counters.ts), end to end: lbmethod=bytraffic
// over plain HTTP members sees the bytes of their answers; the byte counts of an open tunnel move
// while it runs (on the engine this process uses: run with WSGATE_NATIVE=0 for the JS pump);
// failures are counted by class.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type * as net from 'node:net';
import { test } from 'node:test';
import { nativeEngine } from '../../src/tunnel/native';
import type { BackendCounters } from '../../src/upstream/counters';
import { Collector, onlyTunnel, pattern, rawUpgrade, upgradeHead } from '../helpers/datapath';
import { deadPort } from '../helpers/edges';
import { eventually, readRequestHead, sha256, startGateway, startRawBackend, type RunningGateway } from '../helpers/harness';

const BIG = 256 * 1024;

/** A plain HTTP member: `/big` answers BIG bytes of a pattern, anything else a short body naming the member. */
async function httpMember(name: string): Promise<{ port: number; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const big = pattern(name.charCodeAt(0), BIG);
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const body = req.url?.endsWith('/big') ? big : Buffer.from(`member:${name}`);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'X-Member': name });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** GET `path` on the gateway (a new connection each time); the member that answered and the body. */
async function get(port: number, path: string): Promise<{ member: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Host: 'front.test' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode}`));
        else resolve({ member: String(res.headers['x-member']), body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function memberCounters(g: RunningGateway, balancer: string, port: number): BackendCounters {
  const st = g.gateway.balancers.peek(`balancer://${balancer}|http://127.0.0.1:${port}`);
  assert.ok(st !== undefined, `state of the member on port ${port}`);
  return st.counters;
}

test('bytraffic over two plain-HTTP members: a large answer from one sends the next requests to the other; equal answers alternate', {
  timeout: 60_000,
}, async () => {
  const a = await httpMember('A');
  const b = await httpMember('B');
  const g = await startGateway(
    `Listen 127.0.0.1:0\n<Proxy "balancer://traffic">\n  BalancerMember http://127.0.0.1:${a.port}\n  BalancerMember http://127.0.0.1:${b.port}\n` +
      `  ProxySet lbmethod=bytraffic\n</Proxy>\nProxyPass "/lb/" "balancer://traffic/"\n`,
  );
  try {
    // Both at 0 bytes: the first member wins the tie and sends BIG bytes.
    const first = await get(g.port, '/lb/big');
    assert.equal(first.member, 'A');
    assert.equal(sha256(first.body), sha256(pattern('A'.charCodeAt(0), BIG)));
    const ca = memberCounters(g, 'traffic', a.port);
    const cb = memberCounters(g, 'traffic', b.port);
    assert.ok(ca.bytesDown > BIG, `A's answer counted: ${ca.bytesDown}`);
    assert.ok(ca.bytesUp > 0, `A's request head counted: ${ca.bytesUp}`);
    // Short answers from B stay far below A's count: every one goes to B.
    const next: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await get(g.port, `/lb/small${i}`);
      assert.equal(r.body.toString(), `member:${r.member}`);
      next.push(r.member);
    }
    assert.equal(next.join(''), 'BBBBBB', 'after A sent 256 KiB, B takes the small requests');
    assert.deepEqual(b.hits, ['/small0', '/small1', '/small2', '/small3', '/small4', '/small5']);
    // B now sends BIG too: both carry about the same bytes, and the next one goes to the lighter.
    const bBig = await get(g.port, '/lb/big');
    assert.equal(bBig.member, 'B');
    assert.ok(cb.bytes > ca.bytes, `B (${cb.bytes}) now above A (${ca.bytes})`);
    assert.equal((await get(g.port, '/lb/x')).member, 'A');
    assert.equal(ca.inFlight + cb.inFlight + ca.openTunnels + cb.openTunnels, 0, 'nothing left busy');
    assert.equal(ca.requests + cb.requests, 9);
  } finally {
    await g.stop();
    await a.close();
    await b.close();
  }
});

test('the byte counts of an open tunnel move while it runs, both ways, and the tunnel is counted open', { timeout: 60_000 }, async () => {
  const N = 3 * 1024 * 1024 + 17;
  const M = 1024 * 1024 + 5;
  const down = pattern(7, M);
  let backendSide: Collector | undefined;
  let backendSocket: net.Socket | undefined;
  const backend = await startRawBackend((s) => {
    readRequestHead(s).then(
      ({ rest }) => {
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto\r\nConnection: Upgrade\r\n\r\n');
        backendSocket = s;
        backendSide = new Collector(s, false, rest);
      },
      () => {},
    );
  });
  // No idle limit: the once-a-second poll alone must bring a native tunnel's counts.
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/t/" "http://127.0.0.1:${backend.port}/" upgrade=myproto\n`);
  const client = await rawUpgrade(g.port, upgradeHead('/t/live', 'myproto'));
  try {
    assert.equal(client.status, 101);
    const rec = await onlyTunnel(g);
    const wantNative = process.env.WSGATE_NATIVE !== '0' && nativeEngine() !== undefined;
    assert.equal(rec.tunnel.usedNative, wantNative, `engine: ${wantNative ? 'native' : 'js'}`);
    const counters = g.gateway.origins.peek(`http://127.0.0.1:${backend.port}`)!.counters;
    assert.equal(counters.openTunnels, 1);
    assert.equal(counters.inFlight, 0);
    assert.equal(counters.tunnels, 1);
    await eventually(() => backendSide !== undefined, 5000, 'the backend side');
    const upBefore = counters.bytesUp;
    const downBefore = counters.bytesDown;
    const clientSide = new Collector(client.socket, false, client.rest);

    const up = pattern(3, N);
    client.socket.write(up);
    await backendSide!.untilBytes(N, 30_000);
    // Read straight from the counters (not through the tunnel): only the live counting shows it.
    await eventually(() => counters.bytesUp - upBefore === N, 10_000, `bytesUp to grow by ${N} (is ${counters.bytesUp - upBefore})`);
    backendSocket!.write(down);
    await clientSide.untilBytes(M, 30_000);
    await eventually(
      () => counters.bytesDown - downBefore === M,
      10_000,
      `bytesDown to grow by ${M} (is ${counters.bytesDown - downBefore})`,
    );
    assert.equal(g.gateway.tunnels.size, 1, 'the tunnel is still open');
    assert.equal(counters.openTunnels, 1);
    assert.equal(backendSide!.digest(), sha256(up));
    assert.equal(clientSide.digest(), sha256(down));

    // Both ends go away (the tunnel forwards a FIN as a half-close, and waits for the other).
    client.socket.destroy();
    backendSocket!.destroy();
    await eventually(
      () => g.gateway.tunnels.size === 0 && counters.openTunnels === 0,
      5000,
      `the tunnel to close (tunnels ${g.gateway.tunnels.size}, open ${counters.openTunnels})`,
    );
    // Counted once: the close adds nothing that was counted already.
    assert.equal(counters.bytesUp - upBefore, N);
    assert.equal(counters.bytesDown - downBefore, M);
  } finally {
    client.socket.destroy();
    await g.stop();
    await backend.close();
  }
});

test('failures are counted by class: refused, bad answer, timeout; nothing stays in flight', { timeout: 60_000 }, async () => {
  const dead = await deadPort();
  const garbage = await startRawBackend((s) => {
    readRequestHead(s).then(
      () => s.end('NOT HTTP AT ALL\r\n\r\n'),
      () => {},
    );
  });
  const silent = await startRawBackend(() => {});
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass "/dead/" "http://127.0.0.1:${dead}/"\nProxyPass "/bad/" "http://127.0.0.1:${garbage.port}/"\n` +
      `ProxyPass "/slow/" "http://127.0.0.1:${silent.port}/" timeout=1\n`,
  );
  const status = async (path: string): Promise<number> =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: g.port, path, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
  try {
    assert.equal(await status('/dead/'), 503);
    assert.equal(await status('/bad/'), 502);
    assert.equal(await status('/slow/'), 504);
    const of = (port: number): BackendCounters => g.gateway.origins.peek(`http://127.0.0.1:${port}`)!.counters;
    assert.deepEqual(of(dead).failures, { refused: 1, connectTimeout: 0, connect: 0, tls: 0, badAnswer: 0, timeout: 0 });
    assert.deepEqual(of(garbage.port).failures, { refused: 0, connectTimeout: 0, connect: 0, tls: 0, badAnswer: 1, timeout: 0 });
    assert.deepEqual(of(silent.port).failures, { refused: 0, connectTimeout: 0, connect: 0, tls: 0, badAnswer: 0, timeout: 1 });
    for (const port of [dead, garbage.port, silent.port]) {
      assert.equal(of(port).inFlight, 0);
      assert.equal(of(port).requests, 1);
    }
  } finally {
    await g.stop();
    await garbage.close();
    await silent.close();
  }
});

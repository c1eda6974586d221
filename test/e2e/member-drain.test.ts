// A balancer member drained from balancer-manager (`w_status_N=1`) has its open tunnels closed
// with 1001, paced at ProxyWebsocketDrainRate, while the other member's tunnels keep echoing and
// new connections go to the other member. Disabling (`w_status_D=1`) alone keeps the tunnels.
// On the native engine where the addon loads (a plain front), and on a TLS front (the JavaScript
// pump).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import { before, test } from 'node:test';
import { WebSocket } from 'ws';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { eventually, randomBytes, type RunningGateway, sha256, startGateway } from '../helpers/harness';
import { echoServer } from '../helpers/observe';
import { tunnelOnEngine } from '../helpers/native-tls';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});

interface Closed {
  code: number;
  reason: string;
  at: number;
}

function post(tls: boolean, port: number, form: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request(
      {
        host: '127.0.0.1',
        port,
        path: '/balancer-manager',
        method: 'POST',
        agent: false,
        ca: certs.ca.pem,
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': Buffer.byteLength(form),
          Accept: 'application/json',
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(form);
  });
}

async function open(tls: boolean, port: number): Promise<{ ws: WebSocket; closed: Promise<Closed> }> {
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/ws/`, { ca: certs.ca.pem });
  ws.on('error', () => {});
  const closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), at: Date.now() }));
  await once(ws, 'open');
  return { ws, closed };
}

/** One round trip of random bytes, checked by hash. */
async function echoChecked(ws: WebSocket, n = 8192): Promise<void> {
  const p = randomBytes(n);
  const got = once(ws, 'message');
  ws.send(p);
  const [data] = (await got) as [Buffer];
  assert.equal(sha256(data), sha256(p));
}

for (const tls of [false, true]) {
  const engine = !tunnelOnEngine(tls) ? 'the JavaScript pump' : 'the native engine';

  test(`${engine}: draining member B closes its 10 tunnels with 1001, paced; A's keep echoing; new ones go to A`, {
    timeout: 90_000,
  }, async () => {
    const a = await echoServer();
    const b = await echoServer();
    const listen = tls
      ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}`
      : 'Listen 127.0.0.1:0';
    const memberA = `ws://127.0.0.1:${a.port}`;
    const memberB = `ws://127.0.0.1:${b.port}`;
    let g: RunningGateway | undefined;
    const sockets: WebSocket[] = [];
    try {
      g = await startGateway(
        [
          listen,
          'ProxyWebsocketDrainRate 5',
          'GracefulShutdownTimeout 60',
          '<Proxy "balancer://pool">',
          `  BalancerMember ${memberA}`,
          `  BalancerMember ${memberB}`,
          '</Proxy>',
          'ProxyPass /ws/ balancer://pool/',
          '<Location "/balancer-manager">',
          '  SetHandler balancer-manager',
          '  Require ip 127.0.0.1',
          '</Location>',
          '',
        ].join('\n'),
      );
      const port = g.port;
      const nonce = g.gateway.status.nonce;
      const change = async (member: string, field: string): Promise<{ state: string; closing: number }> => {
        const res = await post(tls, port, `b=pool&w=${encodeURIComponent(member)}&${field}&nonce=${nonce}`);
        assert.equal(res.status, 200, res.body);
        return JSON.parse(res.body) as { state: string; closing: number };
      };

      // 10 tunnels on B (A disabled meanwhile), then 3 on A (B disabled meanwhile).
      await change(memberA, 'w_status_D=1');
      const onB = [];
      for (let i = 0; i < 10; i++) onB.push(await open(tls, port));
      assert.equal(b.connections(), 10);
      await change(memberA, 'w_status_D=0');
      await change(memberB, 'w_status_D=1');
      const onA = [];
      for (let i = 0; i < 3; i++) onA.push(await open(tls, port));
      assert.equal(a.connections(), 3);
      sockets.push(...onA.map((o) => o.ws), ...onB.map((o) => o.ws));

      // Disabled alone (Apache's D): B's open tunnels stay and still echo.
      for (const o of onB) await echoChecked(o.ws);
      assert.equal(g.gateway.tunnels.countBackend(memberB), 10);

      // Drain (N): B's tunnels get 1001 at 5 a second, about 2 s from the first to the last.
      const bTunnels = g.gateway.tunnels.byBackendOf(memberB).map((r) => r.tunnel);
      const drained = await change(memberB, 'w_status_N=1');
      assert.deepEqual(drained, { ...drained, state: 'disabled', closing: 10 });
      // Meanwhile A's tunnels go on, and new connections go to A.
      for (const o of onA) await echoChecked(o.ws);
      const extra = await open(tls, port);
      sockets.push(extra.ws);
      await echoChecked(extra.ws);
      assert.equal(a.connections(), 4);
      assert.equal(b.connections(), 10);

      const got = await Promise.all(onB.map((o) => o.closed));
      for (const c of got) assert.deepEqual({ code: c.code, reason: c.reason }, { code: 1001, reason: 'backend draining' });
      const times = got.map((c) => c.at).sort((x, y) => x - y);
      const spread = times[times.length - 1]! - times[0]!;
      // 10 at 5 a second: about 1.8 s between the first and the last (all at once: a few ms).
      assert.ok(spread >= 900, `the closes were spread over ${spread} ms`);
      await eventually(() => g!.gateway.tunnels.countBackend(memberB) === 0, 10_000, 'B’s tunnels gone');
      for (const t of bTunnels) assert.equal(t.closeReason, 'drain');

      // A's tunnels are untouched: all 4 still echo, hash-checked.
      for (const o of [...onA, extra]) await echoChecked(o.ws, 65536);
      assert.equal(g.gateway.tunnels.countBackend(memberA), 4);
    } finally {
      for (const s of sockets) s.terminate();
      await g?.stop();
      await a.close();
      await b.close();
    }
  });
}

// The exchange (src/proxy/exchange.ts) on its own: a ClientSide that records what the exchange
// asks of it, in front of real backends on 127.0.0.1. The decisions every front shares — the
// answer head, the 101 check, the response timeout, the stale-pool retry, failover counts in the
// request record, the failure line — are checked here once, and the failure line against the one
// a real gateway's native front and HTTP/2 front write.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load';
import type { Config } from '../../src/config/model';
import type { BodyFramer } from '../../src/http/body';
import { findHeadEnd, parseRequestHead, type ResponseHead } from '../../src/http/head';
import { webSocketAccept } from '../../src/http/websocket-key';
import { createLogger } from '../../src/observe/log';
import type { GatewayContext, TunnelStart } from '../../src/proxy/context';
import { type ClientSide, Exchange, readAnswerHead, switchRefusal } from '../../src/proxy/exchange';
import { RequestRecord, type FrontProtocol } from '../../src/proxy/record';
import { Upstream } from '../../src/proxy/upstream';
import { routeHead } from '../../src/routing/router';
import { BalancerRegistry } from '../../src/upstream/balancer/state';
import { OriginRegistry } from '../../src/upstream/origins';
import { randomBytes, rawExchange, sha256, startGateway } from '../helpers/harness';
import { HandshakeRate } from '../../src/access/handshake-rate';
import { Observers } from '../../src/observe/observers';
import { TunnelRegistry } from '../../src/tunnel/registry';

const BOUND = { timeout: 20_000 };

/** What the exchange asked of its client, in order, and how it ended. */
class RecordingClient implements ClientSide {
  readonly clientIp = '127.0.0.1';
  readonly secure = false;
  readonly mayUpgrade: boolean;
  readonly hasBody = false;
  readonly chunkBody = false;
  readonly dechunk: boolean;
  readonly events: string[] = [];
  readonly body: Buffer[] = [];
  head: ResponseHead | undefined;
  errorStatus = 0;
  readonly done: Promise<string>;
  private finish!: (how: string) => void;

  constructor(
    readonly protocol: FrontProtocol,
    readonly wsKey: string | undefined = undefined,
  ) {
    this.mayUpgrade = protocol === 'http/1.1' || wsKey !== undefined;
    this.dechunk = protocol === 'h2';
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
  }
  pause(): void {}
  resume(): void {}
  backendReady(): void {
    this.events.push('backendReady');
  }
  interim(res: ResponseHead): void {
    this.events.push(`interim ${res.status}`);
  }
  answerHead(_x: Exchange, res: ResponseHead, _framer: BodyFramer): boolean {
    this.head = res;
    this.events.push(`head ${res.status}`);
    return true;
  }
  answerBody(part: Buffer): boolean {
    this.body.push(Buffer.from(part));
    return true;
  }
  answerDone(_x: Exchange, reusable: boolean): void {
    this.finish(`done reusable=${reusable}`);
  }
  error(status: number): void {
    this.errorStatus = status;
    this.finish(`error ${status}`);
  }
  abort(): void {
    this.finish('abort');
  }
  switchHead(_x: Exchange, res: ResponseHead): boolean {
    this.head = res;
    this.events.push('switch');
    return true;
  }
  tunnelEnd(): { client: net.Socket; early: Buffer | undefined } {
    this.finish('tunnel');
    return { client: new net.Socket(), early: undefined };
  }
}

interface Bench {
  ctx: GatewayContext;
  config: Config;
  logs: string[];
  tunnels: TunnelStart[];
}

function bench(conf: string): Bench {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-proxy-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, `Listen 127.0.0.1:0\n${conf}\n`);
  const config = loadConfigFile(file);
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', sink: (l) => logs.push(l) });
  const tunnels: TunnelStart[] = [];
  const ctx: GatewayContext = {
    log,
    origins: new OriginRegistry(),
    balancers: new BalancerRegistry(log),
    serverName: () => 'proxy-test',
    state: 'serving',
    startTunnel: (t) => tunnels.push(t),
    wsLimits: { tunnels: new TunnelRegistry(), handshakeRate: new HandshakeRate() },
    observers: new Observers(log),
  };
  return { ctx, config, logs, tunnels };
}

/** Runs one exchange for `head` through `client`; resolves with how it ended. */
function run(b: Bench, head: string, client: RecordingClient): { x: Exchange; record: RequestRecord } {
  const buf = Buffer.from(head, 'latin1');
  const req = parseRequestHead(buf, findHeadEnd(buf));
  const listen = b.config.listen[0]!;
  const { vhost, decision } = routeHead(b.config, listen, () => '127.0.0.1', req, '127.0.0.1');
  if (decision.kind !== 'proxy' && decision.kind !== 'balance') throw new Error(`not proxied: ${decision.kind}`);
  const record = new RequestRecord(
    { clientIp: '127.0.0.1', clientPort: 1, listen, tls: false, alpn: undefined, protocol: client.protocol },
    req,
    Date.now(),
  );
  record.routed(vhost, decision.route);
  const x = new Exchange(b.ctx, client, vhost, req, new Upstream(b.ctx, decision, record, req.headers));
  x.bodyEnd();
  x.start();
  return { x, record };
}

/** A backend that answers each request head with `answer(head, socket)`. */
async function backend(answer: (head: string, s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let acc = '';
    s.on('data', (d) => {
      acc += d.toString('latin1');
      const end = acc.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = acc.slice(0, end + 4);
      acc = acc.slice(end + 4);
      answer(head, s);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** The field names of a log line, in order. */
function fieldNames(line: string): string[] {
  return [...line.matchAll(/ (\w+)=/g)].map((m) => m[1]);
}

const WS_HEAD = (key: string): string =>
  `GET /ws/a HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe('Exchange: one backend side for every front', () => {
  test(
    'a chunked answer is relayed whole (framing kept for HTTP/1.1, payload only for HTTP/2) and the connection pooled',
    BOUND,
    async () => {
      const payload = randomBytes(50_000);
      const be = await backend((_h, s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        s.write(`${(30_000).toString(16)}\r\n`);
        s.write(payload.subarray(0, 30_000));
        s.write(`\r\n${(20_000).toString(16)}\r\n`);
        s.write(payload.subarray(30_000));
        s.write('\r\n0\r\n\r\n');
      });
      const b = bench(`ProxyPass "/" "http://127.0.0.1:${be.port}/"`);
      try {
        const h2 = new RecordingClient('h2');
        const { record } = run(b, 'GET /p HTTP/1.1\r\nHost: a\r\n\r\n', h2);
        assert.equal(await h2.done, 'done reusable=true');
        assert.equal(sha256(Buffer.concat(h2.body)), sha256(payload));
        assert.deepEqual(h2.events, ['backendReady', 'head 200']);
        assert.equal(record.outcome?.kind, 'answered');
        assert.equal(record.tries, 1);
        assert.ok(record.connectedAt >= record.headAt && record.answeredAt >= record.connectedAt);

        // The second request takes the pooled connection: no new try at connecting.
        const h1 = new RecordingClient('http/1.1');
        const second = run(b, 'GET /p HTTP/1.1\r\nHost: a\r\n\r\n', h1);
        assert.equal(await h1.done, 'done reusable=true');
        assert.equal(second.record.tries, 0, 'a pooled connection is no connection attempt');
        const raw = Buffer.concat(h1.body).toString('latin1');
        assert.match(raw, /^7530\r\n/);
        assert.match(raw, /\r\n0\r\n\r\n$/);
      } finally {
        b.ctx.origins.closeIdle();
        await be.close();
      }
    },
  );

  test('a stale pooled connection is retried once on a fresh one', BOUND, async () => {
    let heads = 0;
    const be = await backend((_h, s) => {
      heads++;
      // The first connection answers once, then closes as soon as it is asked again.
      if ((s as net.Socket & { served?: boolean }).served === true) {
        s.destroy();
        return;
      }
      (s as net.Socket & { served?: boolean }).served = true;
      s.write('HTTP/1.1 204 No Content\r\n\r\n');
    });
    const b = bench(`ProxyPass "/" "http://127.0.0.1:${be.port}/"`);
    try {
      const first = new RecordingClient('http/1.1');
      run(b, 'GET /p HTTP/1.1\r\nHost: a\r\n\r\n', first);
      assert.equal(await first.done, 'done reusable=true');
      const again = new RecordingClient('h2');
      const { record } = run(b, 'GET /p HTTP/1.1\r\nHost: a\r\n\r\n', again);
      assert.equal(await again.done, 'done reusable=true');
      assert.equal(again.head?.status, 204);
      assert.equal(heads, 3, 'the stale connection was asked, then a fresh one');
      assert.equal(record.tries, 1, 'one fresh connection after the pooled one');
    } finally {
      b.ctx.origins.closeIdle();
      await be.close();
    }
  });

  test('a 101 becomes one TunnelStart carrying the record; the bytes after it are the tunnel’s', BOUND, async () => {
    const be = await backend((_h, s) => {
      s.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(KEY)}\r\n\r\nearly`,
      );
    });
    const b = bench(`ProxyPass "/ws/" "ws://127.0.0.1:${be.port}/" upgrade=websocket`);
    try {
      const c = new RecordingClient('http/1.1');
      const { record } = run(b, WS_HEAD(KEY), c);
      assert.equal(await c.done, 'tunnel');
      assert.equal(b.tunnels.length, 1);
      const t = b.tunnels[0]!;
      assert.equal(t.record, record);
      assert.equal(record.outcome?.kind, 'tunnel');
      assert.ok(record.tunnelAt >= record.connectedAt && record.tunnelAt > 0);
      assert.equal(record.backend, `ws://127.0.0.1:${be.port}/`);
      assert.match(record.route ?? '', /wsgate\.conf:2$/);
      assert.equal(t.ends.kind, 'sockets');
      if (t.ends.kind === 'sockets') {
        assert.equal(t.ends.backendEarly?.toString(), 'early');
        t.ends.backend.destroy();
      }
      assert.equal(t.counters.openTunnels, 1, 'the request slot became an open tunnel');
      assert.equal(t.counted, true);
      t.counters.tunnelClosed();
      assert.equal(t.counters.openTunnels, 0);
    } finally {
      await be.close();
    }
  });

  test('where wsgate made the key (HTTP/2), a wrong Accept is a 502 with one failure line naming the protocol', BOUND, async () => {
    const be = await backend((_h, s) => {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n');
    });
    const b = bench(`ProxyPass "/ws/" "ws://127.0.0.1:${be.port}/" upgrade=websocket`);
    try {
      const c = new RecordingClient('h2', KEY);
      run(b, WS_HEAD(KEY), c);
      assert.equal(await c.done, 'error 502');
      assert.equal(b.tunnels.length, 0);
      const lines = b.logs.filter((l) => l.includes('proxy request failed'));
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /status=502 reason="backend 101 with a wrong Sec-WebSocket-Accept \\"nope\\"".* protocol=h2$/);
    } finally {
      await be.close();
    }
  });

  test('no answer within ProxyTimeout is a 504; the failure line has the same fields on HTTP/1.1 and HTTP/2', BOUND, async () => {
    const be = await backend(() => {});
    const b = bench(`ProxyTimeout 1\nProxyPass "/" "http://127.0.0.1:${be.port}/" timeout=200ms`);
    try {
      const lines: string[] = [];
      for (const protocol of ['http/1.1', 'h2'] as const) {
        const c = new RecordingClient(protocol);
        const { record } = run(b, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n', c);
        assert.equal(await c.done, 'error 504');
        assert.deepEqual(record.outcome, { kind: 'failed', status: 504, reason: 'no answer from backend within 200 ms' });
        lines.push(b.logs.filter((l) => l.includes('proxy request failed')).pop()!);
      }
      assert.deepEqual(fieldNames(lines[0]!), ['status', 'reason', 'client', 'method', 'path', 'backend', 'route', 'protocol']);
      assert.deepEqual(fieldNames(lines[0]!), fieldNames(lines[1]!));
    } finally {
      await be.close();
    }
  });

  test('a balancer member that refuses is failed over; the record counts both tries and names the member used', BOUND, async () => {
    const dead = net.createServer();
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const deadPort = (dead.address() as net.AddressInfo).port;
    dead.close();
    await once(dead, 'close');
    const be = await backend((_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const b = bench(
      `<Proxy "balancer://pool">\nBalancerMember "http://127.0.0.1:${deadPort}"\nBalancerMember "http://127.0.0.1:${be.port}"\n</Proxy>\n` +
        'ProxyPass "/" "balancer://pool/"',
    );
    try {
      const c = new RecordingClient('http/1.1');
      const { record } = run(b, 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', c);
      assert.equal(await c.done, 'done reusable=true');
      assert.equal(Buffer.concat(c.body).toString(), 'ok');
      assert.equal(record.tries, 2);
      assert.equal(record.backend, `http://127.0.0.1:${be.port}`);
    } finally {
      b.ctx.origins.closeIdle();
      await be.close();
    }
  });
});

describe('the decisions the native front shares', () => {
  test(
    'a gateway (native front, or Node with WSGATE_NATIVE_FRONT=0) writes the same failure line, and the tunnel line reads the record',
    BOUND,
    async () => {
      const dead = net.createServer();
      dead.listen(0, '127.0.0.1');
      await once(dead, 'listening');
      const deadPort = (dead.address() as net.AddressInfo).port;
      dead.close();
      await once(dead, 'close');
      const be = await backend((_h, s) => {
        s.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(KEY)}\r\n\r\n`,
        );
        s.end();
      });
      const g = await startGateway(
        `Listen 127.0.0.1:0\nProxyPass "/dead/" "ws://127.0.0.1:${deadPort}/" upgrade=websocket\nProxyPass "/ws/" "ws://127.0.0.1:${be.port}/" upgrade=websocket`,
      );
      try {
        const refused = await rawExchange(g.port, WS_HEAD(KEY).replace('/ws/a', '/dead/a'));
        assert.match(refused.head, /^HTTP\/1\.1 503 /);
        const line = await g.waitForLog(/proxy request failed status=503/);
        assert.deepEqual(fieldNames(line), ['status', 'reason', 'client', 'method', 'path', 'backend', 'route', 'protocol']);
        assert.match(line, /route=\S*wsgate\.conf:2 protocol=http\/1\.1$/);

        const s = net.connect(g.port, '127.0.0.1');
        s.end(WS_HEAD(KEY));
        s.resume();
        await once(s, 'close');
        const closed = await g.waitForLog(/tunnel closed/);
        assert.match(
          closed,
          new RegExp(`protocol=http/1\\.1 backend=ws://127\\.0\\.0\\.1:${be.port}/ route=\\S*wsgate\\.conf:3 request=\\d+`),
        );
      } finally {
        await g.stop();
        await be.close();
      }
    },
  );

  const res = (text: string): ResponseHead => {
    const r = readAnswerHead(Buffer.from(text, 'latin1'));
    if (typeof r !== 'object') throw new Error(`no head: ${r}`);
    return r.res;
  };

  test('readAnswerHead: incomplete, too large, malformed and whole heads', () => {
    assert.equal(readAnswerHead(Buffer.from('HTTP/1.1 200 OK\r\n')), undefined);
    const big = Buffer.alloc(70_000, 0x61);
    big.write('HTTP/1.1 200 OK\r\nX: ', 'latin1');
    assert.equal(readAnswerHead(big), 'backend response head too large');
    assert.equal(readAnswerHead(Buffer.alloc(70_000, 0x61)), 'backend answer is not HTTP');
    assert.equal(readAnswerHead(Buffer.from('HTT')), undefined, 'a prefix of HTTP/ waits for more');
    assert.equal(readAnswerHead(Buffer.from('HTTQ')), 'backend answer is not HTTP', 'refused before the head ends');
    const whole = readAnswerHead(Buffer.from('HTTP/1.1 204 No Content\r\n\r\nrest'));
    assert.ok(typeof whole === 'object' && whole.res.status === 204 && whole.end === 27);
  });

  test('switchRefusal: the asked token, the body, and the Accept where wsgate made the key', () => {
    const ok = res(`HTTP/1.1 101 S\r\nUpgrade: WebSocket\r\nSec-WebSocket-Accept: ${webSocketAccept(KEY)}\r\n\r\n`);
    assert.equal(switchRefusal(ok, 'websocket', undefined, true), undefined);
    assert.equal(switchRefusal(ok, 'websocket', KEY, true), undefined);
    assert.match(switchRefusal(ok, undefined, undefined, true)!, /asked no upgrade/);
    assert.match(switchRefusal(ok, 'h2c', undefined, true)!, /switched to "WebSocket" but "h2c"/);
    assert.match(switchRefusal(ok, 'websocket', undefined, false)!, /before the request body was sent/);
    const noAccept = res('HTTP/1.1 101 S\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(switchRefusal(noAccept, 'websocket', undefined, true), undefined, 'the client checks its own key');
    assert.equal(switchRefusal(noAccept, 'websocket', KEY, true), 'backend 101 without Sec-WebSocket-Accept');
  });
});

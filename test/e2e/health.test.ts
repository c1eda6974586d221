// Health checks of balancer members (hcmethod=…; REFERENCE §5, research/apache-httpd.md §5.6)
// against real backends on loopback: failing members get no new tunnels, passing again brings
// them back, WS and TCP checks, and checks of one member never overlap.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { makeCerts } from '../helpers/certs';
import { closeWs, echo, eventually, openWs, startGateway, startRawBackend, type RunningGateway } from '../helpers/harness';

/** A ws echo backend with a /health endpoint that answers 200 or 503 (plain GETs elsewhere get 404); upgrades to …/chat count as tunnels, others as checks. */
async function healthBackend(name: string): Promise<{
  port: number;
  healthy: boolean;
  checks: http.IncomingMessage[];
  tunnels: number;
  closeCodes: number[];
  close(): Promise<void>;
}> {
  const state = {
    port: 0,
    healthy: true,
    checks: [] as http.IncomingMessage[],
    tunnels: 0,
    closeCodes: [] as number[],
    close: async (): Promise<void> => {},
  };
  const server = http.createServer((req, res) => {
    if (req.url?.endsWith('/health')) {
      state.checks.push(req);
      res.writeHead(state.healthy ? 200 : 503).end(name);
    } else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    if (req.url?.endsWith('/chat')) state.tunnels++;
    else state.checks.push(req);
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    ws.on('close', (code) => state.closeCodes.push(code));
    ws.on('error', () => {});
  });
  server.on('error', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  state.close = async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return state;
}

async function tunnelOnce(g: RunningGateway): Promise<void> {
  const ws = await openWs(`ws://127.0.0.1:${g.port}/chat`);
  const got = await echo(ws, 'hi');
  assert.equal(got.data.toString(), 'hi');
  await closeWs(ws);
}

test('a member failing its GET check gets no new tunnels while its port accepts; hcpasses=2 passes bring it back', async () => {
  const a = await healthBackend('a');
  const b = await healthBackend('b');
  a.healthy = false;
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${a.port}/app/ hcmethod=GET hcinterval=100ms hcpasses=2 hcuri=/health`,
      `  BalancerMember ws://127.0.0.1:${b.port}/app/`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, new RegExp(`ws://127.0.0.1:${a.port}/app/`));
    const first = a.checks[0];
    assert.ok(first);
    assert.equal(first.method, 'GET');
    assert.equal(first.url, '/app/health');
    assert.equal(first.httpVersion, '1.0');
    assert.equal(first.headers.host, `127.0.0.1:${a.port}`);
    for (let i = 0; i < 6; i++) await tunnelOnce(g);
    assert.equal(a.tunnels, 0, 'the failing member got no tunnel');
    assert.equal(b.tunnels, 6);

    const before = a.checks.length;
    a.healthy = true;
    await g.waitForLog(/passes its health checks again/);
    assert.ok(a.checks.length >= before + 2, 'two passes were needed');
    for (let i = 0; i < 6; i++) await tunnelOnce(g);
    assert.equal(a.tunnels, 3, 'byrequests shares evenly again');
    assert.equal(g.logs.filter((l) => /fails its health checks/.test(l)).length, 1, 'one log line per state change');
  } finally {
    await g.stop();
    await a.close();
    await b.close();
  }
});

test('hcmethod=WS passes against a WebSocket-only backend (404 to plain GET) and closes with a close frame; GET fails there', async () => {
  const a = await healthBackend('a');
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${a.port}/ws/ hcmethod=ws hcinterval=100ms`,
      `  BalancerMember ws://127.0.0.1:${a.port}/plain/ hcmethod=GET hcinterval=100ms`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    await eventually(() => a.closeCodes.length >= 3, 10_000, 'three WS checks to finish');
    assert.ok(
      a.closeCodes.every((c) => c === 1000),
      `close codes ${a.closeCodes.join(',')}`,
    );
    assert.ok(a.checks.some((r) => r.url === '/ws/' && r.headers.upgrade === 'websocket'));
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, /\/plain\//);
    assert.match(failed, /status 404/);
    assert.ok(!g.logs.some((l) => /fails its health checks/.test(l) && /\/ws\//.test(l)), 'the WS check passed');
    for (let i = 0; i < 3; i++) await tunnelOnce(g);
    assert.equal(a.tunnels, 3);
  } finally {
    await g.stop();
    await a.close();
  }
});

test('hcmethod=TCP detects a closed port; a stopped member is not checked', async () => {
  const raw = await startRawBackend((s) => s.end());
  let accepted = 0;
  raw.server.on('connection', () => accepted++);
  const stopped = await startRawBackend((s) => s.end());
  let stoppedAccepted = 0;
  stopped.server.on('connection', () => stoppedAccepted++);
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${raw.port}/ hcmethod=TCP hcinterval=100ms hcfails=2`,
      `  BalancerMember ws://127.0.0.1:${stopped.port}/ hcmethod=TCP hcinterval=100ms status=+S`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    await eventually(() => accepted >= 3, 10_000, 'three TCP checks');
    assert.ok(!g.logs.some((l) => /fails its health checks/.test(l)));
    assert.equal(stoppedAccepted, 0, 'the stopped member was not checked');
    await raw.close();
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, /ECONNREFUSED/);
  } finally {
    await g.stop();
    await stopped.close();
  }
});

test('checks of one member never overlap, even when the backend answers slower than hcinterval', async () => {
  let open = 0;
  let most = 0;
  let seen = 0;
  const raw = await startRawBackend((s) => {
    open++;
    seen++;
    most = Math.max(most, open);
    s.on('close', () => open--);
    s.once('data', () => {
      const t = setTimeout(() => s.end('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'), 300);
      s.once('close', () => clearTimeout(t));
    });
  });
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${raw.port}/ hcmethod=HEAD11 hcinterval=100ms timeout=10`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    await eventually(() => seen >= 4, 15_000, 'four checks');
    assert.equal(most, 1, 'at most one check connection at a time');
    assert.ok(!g.logs.some((l) => /fails its health checks/.test(l)));
  } finally {
    await g.stop();
    await raw.close();
  }
});

test('a check is bounded by the member timeout= when the backend never answers', async () => {
  const raw = await startRawBackend(() => {});
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${raw.port}/ hcmethod=OPTIONS hcinterval=100ms timeout=200ms`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, /no answer within 200 ms/);
  } finally {
    await g.stop();
    await raw.close();
  }
});

test('a backend that closes without answering fails the check at once, not at timeout=', async () => {
  const raw = await startRawBackend((s) => s.once('data', () => s.end()));
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://pool>',
      `  BalancerMember ws://127.0.0.1:${raw.port}/ hcmethod=GET11 hcinterval=100ms timeout=60`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, /connection closed before an answer/);
  } finally {
    await g.stop();
    await raw.close();
  }
});

test('hcmethod=WS fails on a 101 whose Sec-WebSocket-Accept does not answer the key, and on an answer that is not HTTP', async () => {
  // The first backend answers the key it was sent with the accept of another key.
  const wrongAccept = await startRawBackend((s) =>
    s.once('data', () =>
      s.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
      ),
    ),
  );
  const notHttp = await startRawBackend((s) =>
    s.once('data', () => s.write('HTTP/1.1 101 Switching Protocols\r\nbad header line\r\n\r\n')),
  );
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://a>',
      `  BalancerMember ws://127.0.0.1:${wrongAccept.port}/ hcmethod=WS hcinterval=100ms`,
      '</Proxy>',
      '<Proxy balancer://b>',
      `  BalancerMember ws://127.0.0.1:${notHttp.port}/ hcmethod=WS hcinterval=100ms`,
      '</Proxy>',
      'ProxyPass /a/ balancer://a/',
      'ProxyPass /b/ balancer://b/',
    ].join('\n'),
  );
  try {
    const a = await g.waitForLog(new RegExp(`fails its health checks.*member=ws://127\\.0\\.0\\.1:${wrongAccept.port}/`));
    assert.match(a, /reason="bad Sec-WebSocket-Accept"/);
    const b = await g.waitForLog(new RegExp(`fails its health checks.*member=ws://127\\.0\\.0\\.1:${notHttp.port}/`));
    assert.match(b, /reason="not an HTTP answer: malformed header/);
  } finally {
    await g.stop();
    await wrongAccept.close();
    await notHttp.close();
  }
});

test('wss:// members are checked over TLS: WS passes with a trusted certificate, fails with an untrusted one', async () => {
  const certs = makeCerts();
  const good = certs.issue('hc-good', ['127.0.0.1']);
  const rogue = certs.issue('hc-rogue', ['127.0.0.1'], { rogue: true });
  const upgrades: string[] = [];
  const servers = [good, rogue].map((c, i) => {
    const server = https.createServer({ cert: c.certPem, key: c.keyPem }, (_req, res) => res.writeHead(404).end());
    server.on('tlsClientError', () => {});
    server.on('error', () => {});
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      upgrades.push(`${i}:${req.url}`);
      ws.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    return { server, wss };
  });
  await Promise.all(servers.map((x) => once(x.server, 'listening')));
  const [gp, rp] = servers.map((x) => (x.server.address() as net.AddressInfo).port);
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'SSLProxyEngine on',
      `SSLProxyCACertificateFile "${certs.ca.cert}"`,
      '<Proxy balancer://pool>',
      `  BalancerMember wss://127.0.0.1:${gp}/good/ hcmethod=WS hcinterval=100ms`,
      `  BalancerMember wss://127.0.0.1:${rp}/rogue/ hcmethod=WS hcinterval=100ms`,
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ].join('\n'),
  );
  try {
    const failed = await g.waitForLog(/fails its health checks/);
    assert.match(failed, /\/rogue\//);
    assert.match(failed, /TLS handshake with the backend failed/);
    await eventually(() => upgrades.filter((u) => u === '0:/good/').length >= 3, 10_000, 'three WS checks over TLS');
    assert.ok(!upgrades.some((u) => u.startsWith('1:')), 'no handshake reached the untrusted backend');
    assert.ok(!g.logs.some((l) => /fails its health checks/.test(l) && /\/good\//.test(l)));
  } finally {
    await g.stop();
    for (const { server, wss } of servers) {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }
});

// Access log lines and tunnel records, read back from the files the gateway writes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WebSocket } from 'ws';
import { compileLogFormat } from '../../src/observe/log-format';
import {
  closeWs,
  echo,
  eventually,
  openWs,
  startEchoBackend,
  startGateway,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';

const COOKIE = 'sid=cookie-secret-4711';
const AUTH = `Basic ${Buffer.from('user:auth-secret-4712').toString('base64')}`;

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function linesOf(file: string): string[] {
  return read(file)
    .split('\n')
    .filter((l) => l !== '');
}

async function lineMatching(file: string, re: RegExp): Promise<string> {
  await eventually(() => linesOf(file).some((l) => re.test(l)), 10_000, `a line matching ${re} in ${file}`);
  return linesOf(file).find((l) => re.test(l))!;
}

interface TunnelLine {
  msg: string;
  request: number;
  client: string;
  vhost: string;
  route: string;
  backend: string;
  upgrade: string;
  http: string;
  handshakeMs: number;
  durationMs: number;
  bytesUp: number;
  bytesDown: number;
  endedBy: string;
  reason: string;
  error?: string;
  status?: number;
}

/** The tunnel records with `pred`, once there are `n` of them. */
async function records(file: string, pred: (r: TunnelLine) => boolean, n = 1): Promise<TunnelLine[]> {
  const all = (): TunnelLine[] =>
    linesOf(file)
      .map((l) => JSON.parse(l) as TunnelLine)
      .filter(pred);
  await eventually(() => all().length >= n, 10_000, `${n} tunnel record(s) in ${file}`);
  return all();
}

const COMBINED = /^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" (\d+)$/;

function get(port: number, pathName: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

function rawSocket(ws: WebSocket): net.Socket {
  return (ws as unknown as { _socket: net.Socket })._socket;
}

describe('logs', () => {
  let dir: string;
  let backend: EchoBackend;
  let g: RunningGateway;
  let access: string;
  let tunnels: string;
  let vhostLog: string;
  const keys: string[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'wsgate-logs-'));
    access = path.join(dir, 'access.log');
    tunnels = path.join(dir, 'tunnels.jsonl');
    vhostLog = path.join(dir, 'vh.log');
    backend = await startEchoBackend('b');
    backend.server.on('upgrade', (req: http.IncomingMessage) => {
      const k = req.headers['sec-websocket-key'];
      if (typeof k === 'string') keys.push(k);
    });
    g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        `ErrorLog ${path.join(dir, 'error.log')}`,
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\" %D" combinedus',
        `CustomLog ${access} combinedus`,
        `CustomLog ${tunnels} tunnel`,
        `CustomLog ${path.join(dir, 'secrets.log')} "%{Cookie}i %{Authorization}i %{Sec-WebSocket-Key}i %{Set-Cookie}o"`,
        `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/ws/`,
        'ProxyPass /dead/ ws://127.0.0.1:1/',
        `ProxyPass /http/ http://127.0.0.1:${backend.port}/`,
        // The first virtual host takes requests no ServerName matches (the WebSocket clients' 127.0.0.1).
        '<VirtualHost *:0>',
        '  ServerName main.test',
        '</VirtualHost>',
        '<VirtualHost *:0>',
        '  ServerName other.test',
        `  CustomLog ${vhostLog} "%v %>s %U %{BALANCER_WORKER_NAME}e"`,
        `  ProxyPass / http://127.0.0.1:${backend.port}/`,
        '</VirtualHost>',
      ].join('\n'),
    );
  });

  after(async () => {
    await g.stop();
    await backend.close();
  });

  test('a proxied request: one combined line with its fields', async () => {
    const r = await get(g.port, '/http/page?q=1', {
      Host: 'main.test',
      Referer: 'http://ref.example/"from"',
      'User-Agent': 'logs-test/1.0',
      Cookie: COOKIE,
      Authorization: AUTH,
    });
    assert.equal(r.status, 200);
    const line = await lineMatching(access, /"GET \/http\/page\?q=1 /);
    const m = COMBINED.exec(line);
    assert.ok(m, line);
    assert.equal(m[1], '127.0.0.1');
    assert.equal(m[2], '-');
    assert.equal(m[3], '-');
    assert.match(m[4]!, /^\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$/);
    assert.equal(m[5], 'GET /http/page?q=1 HTTP/1.1');
    assert.equal(m[6], '200');
    assert.equal(Number(m[7]), Buffer.byteLength(r.body));
    assert.equal(m[8], 'http://ref.example/\\"from\\"');
    assert.equal(m[9], 'logs-test/1.0');
    assert.ok(Number(m[10]) > 0 && Number(m[10]) < 60_000_000, `%D ${m[10]}`);
  });

  test('a refusal (404, no route) is logged with its status and body size', async () => {
    const r = await get(g.port, '/nowhere', { Host: 'main.test' });
    assert.equal(r.status, 404);
    const m = COMBINED.exec(await lineMatching(access, /"GET \/nowhere /));
    assert.ok(m);
    assert.equal(m[6], '404');
    assert.equal(Number(m[7]), Buffer.byteLength(r.body));
    assert.equal(m[8], '-');
  });

  test('a virtual host with its own CustomLog logs there, not in the main server’s', async () => {
    const r = await get(g.port, '/vh-only', { Host: 'other.test' });
    assert.equal(r.status, 200);
    assert.equal(await lineMatching(vhostLog, /\/vh-only/), 'other.test 200 /vh-only -');
    await get(g.port, '/http/after-vh', { Host: 'main.test' });
    await lineMatching(access, /after-vh/);
    assert.ok(!read(access).includes('/vh-only'));
  });

  test('a WebSocket closed cleanly: a 101 line and a tunnel record with its bytes', async () => {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/clean`, undefined, { headers: { Cookie: COOKIE, Authorization: AUTH } });
    const reply = await echo(ws, Buffer.alloc(1000, 7));
    assert.equal(reply.data.length, 1000);
    await closeWs(ws);
    const [rec] = await records(tunnels, (r) => r.msg === 'tunnel closed' && r.endedBy === 'clean');
    assert.ok(rec);
    assert.equal(rec.client, '127.0.0.1');
    assert.equal(rec.upgrade, 'websocket');
    assert.equal(rec.http, '1.1');
    assert.equal(rec.backend, `ws://127.0.0.1:${backend.port}/ws/`);
    assert.match(rec.route, /wsgate\.conf:7$/);
    assert.equal(rec.reason, 'closed');
    assert.ok(rec.bytesUp >= 1000 && rec.bytesDown >= 1000, JSON.stringify(rec));
    assert.ok(rec.handshakeMs >= 0 && rec.durationMs >= 0);
    const m = COMBINED.exec(await lineMatching(access, /"GET \/ws\/clean /));
    assert.ok(m);
    assert.equal(m[6], '101');
  });

  test('the client resets: endedBy client', async () => {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/client-reset`);
    await echo(ws, 'hi');
    rawSocket(ws).resetAndDestroy();
    const [rec] = await records(tunnels, (r) => r.endedBy === 'client');
    assert.match(rec!.reason, /^client-(reset|error)$/);
  });

  test('the backend resets: endedBy backend', async () => {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/backend-reset`);
    ws.on('error', () => {});
    await echo(ws, 'hi');
    const closed = once(ws, 'close');
    for (const c of backend.wss.clients) rawSocket(c as unknown as WebSocket).resetAndDestroy();
    await closed;
    const [rec] = await records(tunnels, (r) => r.endedBy === 'backend');
    assert.match(rec!.reason, /^backend-(reset|error)$/);
  });

  test('a failed handshake (backend refuses the connection) gets one record', async () => {
    await assert.rejects(openWs(`ws://127.0.0.1:${g.port}/dead/x`), /unexpected response 503/);
    const [rec] = await records(tunnels, (r) => r.msg === 'handshake failed');
    assert.equal(rec!.status, 503);
    assert.equal(rec!.upgrade, 'websocket');
    assert.equal(rec!.backend, 'ws://127.0.0.1:1/');
    assert.ok(rec!.error !== undefined && rec!.error.length > 0);
  });

  test('no secret reaches any log file', async () => {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/secrets`, undefined, { headers: { Cookie: COOKIE, Authorization: AUTH } });
    await closeWs(ws);
    await records(tunnels, (r) => r.msg === 'tunnel closed', 4);
    const s = await lineMatching(path.join(dir, 'secrets.log'), /\[redacted\] \[redacted\] \[redacted\]/);
    assert.equal(s, '[redacted] [redacted] [redacted] -');
    assert.ok(keys.length >= 3);
    const secrets = ['cookie-secret-4711', 'auth-secret-4712', Buffer.from('user:auth-secret-4712').toString('base64'), ...keys];
    for (const f of readdirSync(dir)) {
      const text = read(path.join(dir, f));
      for (const secret of secrets) assert.ok(!text.includes(secret), `${f} contains ${secret}`);
    }
  });
});

describe('tunnel records: idle limit and shutdown', () => {
  test('ProxyWebsocketIdleTimeout ends a tunnel as idle; gateway.stop() as shutdown', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-logs-'));
    const tunnels = path.join(dir, 't.jsonl');
    const backend = await startEchoBackend('b');
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        `CustomLog ${tunnels} tunnel`,
        'ProxyWebsocketIdleTimeout 1',
        `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/ws/`,
      ].join('\n'),
    );
    try {
      const idle = await openWs(`ws://127.0.0.1:${g.port}/ws/idle`);
      idle.on('error', () => {});
      await once(idle, 'close');
      const [rec] = await records(tunnels, (r) => r.endedBy === 'idle');
      assert.equal(rec!.reason, 'idle-timeout');
      assert.ok(rec!.durationMs >= 900, `durationMs ${rec!.durationMs}`);
      const open = await openWs(`ws://127.0.0.1:${g.port}/ws/open`);
      open.on('error', () => {});
      await echo(open, 'x');
      await g.stop();
      // Written before stop() resolved: the file is complete now.
      const shut = linesOf(tunnels)
        .map((l) => JSON.parse(l) as TunnelLine)
        .filter((r) => r.endedBy === 'shutdown');
      assert.equal(shut.length, 1);
      assert.equal(shut[0]!.reason, 'shutdown');
    } finally {
      await g.stop();
      await backend.close();
    }
  });
});

test('an idle tunnel keeps the request fields only when an access log prints one (%{Name}i)', { timeout: 30_000 }, async () => {
  const backend = await startEchoBackend('fields');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-fields-'));
  const conf = (format: string) =>
    `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\nCustomLog "${path.join(dir, 'a.log')}" "${format}"\n`;
  try {
    for (const [format, kept] of [
      ['%h %>s %{User-Agent}i', true],
      ['%h %>s %b', false],
    ] as const) {
      const g = await startGateway(conf(format));
      try {
        const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/x`);
        await eventually(() => g.gateway.tunnels.size === 1, 5000, 'the tunnel');
        const [rec] = [...g.gateway.tunnels.values()];
        assert.equal(rec!.request.headers.length > 0, kept, format);
        await closeWs(ws);
      } finally {
        await g.stop();
      }
    }
    assert.equal(compileLogFormat('%h %{Referer}i').readsRequestHeaders, true);
    assert.equal(compileLogFormat('%h %l %u %t "%r" %>s %b').readsRequestHeaders, false);
  } finally {
    await backend.close();
  }
});

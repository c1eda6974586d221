// ProxyPass flushpackets= (accepted: wsgate never buffers), ProxyPreserveHost inside <Location>,
// and ProxyVia On/Full/Block on the request to the backend and on the answer.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { expectError, load } from '../config/helpers';
import { rawExchange, startGateway } from '../helpers/harness';

const BOUND = { timeout: 30_000 };

/** A backend that records each request's raw headers and answers with `Via: 1.1 backend`. */
async function recorder(): Promise<{ port: number; seen: { url: string; raw: string[] }[]; stop(): Promise<void> }> {
  const seen: { url: string; raw: string[] }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', raw: req.rawHeaders });
    res.writeHead(200, { Via: '1.1 backend', 'Content-Length': 2 });
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function fields(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

function headFields(head: string, name: string): string[] {
  return head
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name}:`))
    .map((l) => l.slice(name.length + 1).trim());
}

test('flushpackets= and flushwait= are accepted (no effect: nothing is buffered); bad values refused', () => {
  const { config } = load({
    'wsgate.conf':
      'Listen 0\nProxyPass /ws/ ws://127.0.0.1:9/ws/ flushpackets=on flushwait=20\nProxyPass / http://127.0.0.1:9/ flushpackets=auto\n',
  });
  assert.equal(config.mainServer.routes.length, 2);
  assert.deepEqual(config.notices, []);
  expectError(
    { 'wsgate.conf': 'Listen 0\nProxyPass / http://h/ flushpackets=maybe\n' },
    { line: 2, message: /flushpackets= must be on, off or auto/ },
  );
  expectError(
    { 'wsgate.conf': 'Listen 0\nProxyPass / http://h/ flushwait=5000\n' },
    { line: 2, message: /flushwait= must be a number of milliseconds from 0 to 1000/ },
  );
});

test('ProxyPreserveHost inside <Location> applies to the requests in the section', BOUND, async () => {
  const b = await recorder();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `ProxyPass / http://127.0.0.1:${b.port}/`,
      '<Location /keep/>',
      '  ProxyPreserveHost On',
      '</Location>',
      '<Location /keep/not/>',
      '  ProxyPreserveHost Off',
      '</Location>',
      '',
    ].join('\n'),
  );
  try {
    for (const path of ['/keep/a', '/other', '/keep/not/b']) {
      await rawExchange(g.port, `GET ${path} HTTP/1.1\r\nHost: front.example:8080\r\nConnection: close\r\n\r\n`);
    }
    assert.deepEqual(
      b.seen.map((s) => [s.url, fields(s.raw, 'host')[0]]),
      [
        ['/keep/a', 'front.example:8080'],
        ['/other', `127.0.0.1:${b.port}`],
        ['/keep/not/b', `127.0.0.1:${b.port}`],
      ],
    );
  } finally {
    await g.stop();
    await b.stop();
  }
});

test(
  'ProxyVia On adds "1.1 ServerName[:port]" to the request (after the client\'s Via) and to the answer; Full names wsgate; Block drops the client\'s',
  BOUND,
  async () => {
    const b = await recorder();
    const conf = (mode: string): string =>
      ['Listen 127.0.0.1:0', 'ServerName gw.example', `ProxyVia ${mode}`, `ProxyPass / http://127.0.0.1:${b.port}/`, ''].join('\n');
    const ask = (port: number, host: string): Promise<{ head: string }> =>
      rawExchange(port, `GET /v HTTP/1.1\r\nHost: ${host}\r\nVia: 1.0 fred\r\nVia: 1.1 p.example (x)\r\nConnection: close\r\n\r\n`);
    const on = await startGateway(conf('On'));
    try {
      const r = await ask(on.port, 'front.example:8080');
      assert.deepEqual(fields(b.seen[0]!.raw, 'via'), ['1.0 fred, 1.1 p.example (x), 1.1 gw.example:8080']);
      assert.deepEqual(headFields(r.head, 'via'), ['1.1 backend', '1.1 gw.example:8080']);
      await ask(on.port, 'front.example');
      assert.deepEqual(fields(b.seen[1]!.raw, 'via'), ['1.0 fred, 1.1 p.example (x), 1.1 gw.example'], 'the default port is left out');
    } finally {
      await on.stop();
    }
    const full = await startGateway(conf('Full'));
    try {
      const r = await ask(full.port, 'front.example:8080');
      assert.deepEqual(fields(b.seen[2]!.raw, 'via'), ['1.0 fred, 1.1 p.example (x), 1.1 gw.example:8080 (wsgate)']);
      assert.equal(headFields(r.head, 'via').at(-1), '1.1 gw.example:8080 (wsgate)');
    } finally {
      await full.stop();
    }
    const block = await startGateway(conf('Block'));
    try {
      const r = await ask(block.port, 'front.example:8080');
      assert.deepEqual(fields(b.seen[3]!.raw, 'via'), [], 'Block: no Via reaches the backend');
      assert.deepEqual(headFields(r.head, 'via'), ['1.1 backend'], "the answer's Via passes unchanged");
    } finally {
      await block.stop();
      await b.stop();
    }
  },
);

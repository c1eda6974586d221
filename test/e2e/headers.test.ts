// `Header` rules on the wire: the route cookie of a sticky balancer on a relayed 101 (set when
// the route changes, absent when the session keeps its member), set/unset on relayed HTTP
// answers, and `always` rules on wsgate's own 503.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { assertClosedWith, deadPort, upgradeRequest, wsAccept, WS_KEY } from '../helpers/edges';
import { headComplete, headerIn, rawExchange, startGateway } from '../helpers/harness';

/** A ws backend named `name`: it answers plain requests with `X-Backend`, `X-Powered-By` and its name. */
async function backend(name: string): Promise<{ port: number; upgrades: number; stop(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'X-Backend': name, 'X-Powered-By': 'test', 'Content-Length': name.length });
    res.end(name);
  });
  const wss = new WebSocketServer({ server });
  const state = { port: 0, upgrades: 0, stop: async (): Promise<void> => {} };
  server.on('upgrade', () => state.upgrades++);
  wss.on('connection', (ws) => ws.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as AddressInfo).port;
  state.stop = async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return state;
}

test('Header on relayed answers: the sticky cookie on a 101 only when the route changed; set and unset on HTTP', {
  timeout: 30_000,
}, async () => {
  const a = await backend('a');
  const b = await backend('b');
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED',
      'Header unset X-Powered-By',
      'Header set X-Member "%{BALANCER_WORKER_NAME}e"',
      '<Proxy "balancer://pool">',
      `  BalancerMember "http://127.0.0.1:${a.port}" route=a upgrade=websocket`,
      `  BalancerMember "http://127.0.0.1:${b.port}" route=b upgrade=websocket`,
      '  ProxySet stickysession=ROUTEID',
      '</Proxy>',
      'ProxyPass "/" "balancer://pool/"',
      '',
    ].join('\n'),
  );
  try {
    const fresh = await rawExchange(g.port, upgradeRequest('/ws'), headComplete);
    fresh.socket.destroy();
    assert.equal(fresh.status, 101);
    assert.equal(headerIn(fresh.head, 'sec-websocket-accept'), wsAccept(WS_KEY));
    assert.equal(headerIn(fresh.head, 'set-cookie'), 'ROUTEID=.a; path=/', 'no route yet: the cookie names the elected member');
    assert.equal(headerIn(fresh.head, 'x-member'), `http://127.0.0.1:${a.port}`);

    const sticky = await rawExchange(g.port, upgradeRequest('/ws', 'Cookie: ROUTEID=.b\r\n'), headComplete);
    sticky.socket.destroy();
    assert.equal(sticky.status, 101);
    assert.equal(headerIn(sticky.head, 'set-cookie'), undefined, 'the session keeps its member: no cookie');
    assert.equal(b.upgrades, 1, 'the cookie chose b');

    const plain = await rawExchange(g.port, 'GET /page HTTP/1.1\r\nHost: gw.test\r\nCookie: ROUTEID=.a\r\nConnection: close\r\n\r\n');
    assert.equal(plain.status, 200);
    assert.equal(headerIn(plain.head, 'x-backend'), 'a');
    assert.equal(headerIn(plain.head, 'x-powered-by'), undefined, 'unset removed the backend field');
    assert.equal(headerIn(plain.head, 'set-cookie'), undefined);
    assert.equal(plain.data.toString('latin1').split('\r\n\r\n')[1], 'a', 'body relayed unchanged');
  } finally {
    await g.stop();
    await a.stop();
    await b.stop();
  }
});

test("Header always reaches wsgate's own 503; onsuccess rules do not", { timeout: 30_000 }, async () => {
  const dead = await deadPort();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'Header always set X-Gateway wsgate',
      'Header set X-Relayed-Only 1',
      '<Proxy "balancer://pool">',
      `  BalancerMember "ws://127.0.0.1:${dead}" retry=30`,
      '  ProxySet forcerecovery=Off',
      '</Proxy>',
      'ProxyPass "/" "balancer://pool/"',
      '',
    ].join('\n'),
  );
  try {
    const res = await rawExchange(g.port, upgradeRequest('/x'));
    assertClosedWith(res, 503);
    assert.equal(headerIn(res.head, 'x-gateway'), 'wsgate');
    assert.equal(headerIn(res.head, 'x-relayed-only'), undefined);
    assert.ok(Number(headerIn(res.head, 'retry-after')) >= 1, 'Retry-After kept');
  } finally {
    await g.stop();
  }
});

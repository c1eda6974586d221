import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertNoOpenSockets, closeWs, echo, openWs, rawExchange, startEchoBackend, startGateway } from '../helpers/harness';

test('WebSocket echo and plain HTTP through the same backend', async () => {
  const backend = await startEchoBackend('b1');
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\nProxyPass "/" "http://127.0.0.1:${backend.port}/"\n`,
  );
  try {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/echo?x=1`);
    const r = await echo(ws, 'hello');
    assert.equal(r.data.toString(), 'hello');
    assert.equal(r.isBinary, false);
    assert.equal(backend.upgrades[0].url, '/echo?x=1');
    await closeWs(ws);
    const res = await rawExchange(g.port, 'GET /page?q=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 200);
    assert.match(res.data.toString(), /backend:b1 GET \/page\?q=2$/);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await backend.close();
  }
});

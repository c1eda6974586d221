// frontBindShared: the listening socket a `-w N` worker binds for itself (SO_REUSEPORT), and two
// gateways sharing a port that way, as workers do (here in one process: the kernel spreads the
// connections over the two sockets all the same).
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load';
import { Gateway } from '../../src/gateway';
import { createLogger } from '../../src/observe/log';
import { nativeEngine, nativeUnavailableReason } from '../../src/tunnel/native';
import { echo, openWs, randomBytes, sha256, startEchoBackend } from '../helpers/harness';
import { listeningPorts } from '../helpers/procfs';

const skip = nativeUnavailableReason() ?? (process.env.WSGATE_NATIVE_FRONT === '0' ? 'WSGATE_NATIVE_FRONT=0' : undefined);

test('frontBindShared: sockets of one port side by side; exclusive refuses a held port, and so does a plain socket', { skip }, async () => {
  const engine = nativeEngine()!;
  const first = engine.frontBindShared('127.0.0.1', 0, true);
  assert.ok(Array.isArray(first), `bound: ${String(first)}`);
  const [fd1, port, family] = first;
  assert.notEqual(port, 0);
  assert.equal(family, 4);
  const second = engine.frontBindShared('127.0.0.1', port, false);
  assert.ok(Array.isArray(second), 'a second SO_REUSEPORT socket on the same port');
  assert.equal(second[1], port);
  assert.equal(engine.frontBindShared('127.0.0.1', port, true), constants.errno.EADDRINUSE, 'exclusive: the port is held');
  assert.ok(listeningPorts(process.pid).includes(port));
  closeSync(fd1);
  closeSync(second[0]);

  // A socket without SO_REUSEPORT (Node's, or another program's) keeps the port to itself.
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const held = (server.address() as net.AddressInfo).port;
  try {
    assert.equal(engine.frontBindShared('127.0.0.1', held, false), constants.errno.EADDRINUSE);
    assert.equal(engine.frontBindShared('127.0.0.1', held, true), constants.errno.EADDRINUSE);
  } finally {
    server.close();
  }
  assert.equal(engine.frontBindShared('no-address', 1, false), constants.errno.EINVAL);
});

test('two gateways share a port with sockets of their own: connections land on both, each echoes', { skip }, async () => {
  const backend = await startEchoBackend('shared');
  const log = createLogger({ level: 'error' });
  const config = loadConfigText(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`, 'shared.conf');
  const a = new Gateway(config, { log, shared: { ports: new Map(), exclusive: true } });
  const [bound] = await a.start();
  const b = new Gateway(config, { log, shared: { ports: new Map([['127.0.0.1:0#0', bound!.port]]), exclusive: false } });
  try {
    const [other] = await b.start();
    assert.equal(other!.port, bound!.port, 'the port given for Listen …:0');
    const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => openWs(`ws://127.0.0.1:${bound!.port}/ws/${i}`)));
    await Promise.all(
      clients.map(async (ws) => {
        const data = randomBytes(1500);
        assert.equal(sha256((await echo(ws, data)).data), sha256(data));
      }),
    );
    assert.equal(a.tunnels.size + b.tunnels.size, 40);
    assert.ok(a.tunnels.size > 0 && b.tunnels.size > 0, `both take connections: ${a.tunnels.size} and ${b.tunnels.size}`);
    for (const g of [a, b]) for (const r of g.tunnels.keys()) assert.equal(r.usedNative, true, 'native tunnels');
    for (const ws of clients) ws.terminate();
  } finally {
    await a.stop();
    await b.stop();
    await backend.close();
  }
});

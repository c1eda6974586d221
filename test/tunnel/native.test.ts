// The native engine must really be in use where it can build (Linux with g++), or the e2e suite
// would silently test only the JavaScript pump. `npm test` runs the e2e suite twice: with the
// native engine (default) and with WSGATE_NATIVE=0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nativeEngine, nativeUnavailableReason } from '../../src/tunnel/native';
import { closeWs, echo, openWs, startEchoBackend, startGateway } from '../helpers/harness';

const wanted = process.env.WSGATE_NATIVE !== '0' && process.platform === 'linux';

test('the native tunnel engine loads on this machine', { skip: !wanted && 'WSGATE_NATIVE=0 or not Linux' }, () => {
  assert.ok(nativeEngine(), `native engine unavailable: ${nativeUnavailableReason()}`);
});

test('tunnels use the engine that was asked for', async () => {
  const backend = await startEchoBackend();
  const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass /ws ws://127.0.0.1:${backend.port}/\n`);
  try {
    const ws = await openWs(`ws://127.0.0.1:${g.port}/ws`);
    assert.equal((await echo(ws, 'x')).data.toString(), 'x');
    const rec = [...g.gateway.tunnels.values()][0];
    assert.equal(rec.tunnel.usedNative, wanted);
    await closeWs(ws);
  } finally {
    await g.stop();
    await backend.close();
  }
});

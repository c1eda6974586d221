// WebSocket frame tracking end to end: real `ws` clients and backends with permessage-deflate,
// through the native engine (a plain front, when the addon is loaded) and the JavaScript pump (a
// TLS front): the tunnel counts every frame and message each way, reports no violation on valid
// compressed traffic, and every message arrives intact (hashes). ProxyWebsocketStrict On closes a
// tunnel that breaks the protocol with 1002 toward each side; Off forwards and logs it once.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import type { TunnelRecord } from '../../src/gateway';
import { nativeEngine } from '../../src/tunnel/native';
import { nativeTlsFront } from '../helpers/native-tls';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { onlyTunnel, startWsBackend, type WsBackend } from '../helpers/datapath';
import { readUntil, upgradeRequest } from '../helpers/edges';
import { eventually, randomBytes, type RunningGateway, sha256, startGateway } from '../helpers/harness';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});
after(() => {});

const DEFLATE = { perMessageDeflate: { threshold: 0 } };

/** A backend that records the hash of every message and echoes it. */
async function hashingBackend(seen: string[]): Promise<WsBackend> {
  return startWsBackend((ws) => {
    ws.on('message', (data, isBinary) => {
      seen.push(sha256(data as Buffer));
      ws.send(data as Buffer, { binary: isBinary });
    });
  }, DEFLATE);
}

function conf(port: number, tls: boolean, extra = ''): string {
  const listen = tls
    ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\n`
    : 'Listen 127.0.0.1:0\n';
  return `${listen}${extra}ProxyPass "/ws/" "ws://127.0.0.1:${port}/"\n`;
}

async function open(g: RunningGateway, tls: boolean): Promise<WebSocket> {
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${g.port}/ws/x`, { ...DEFLATE, ca: certs.ca.pem });
  ws.on('error', () => {});
  await once(ws, 'open');
  return ws;
}

for (const tls of [false, true]) {
  // TLS tunnels run on the JavaScript pump where Node terminates TLS (WSGATE_NATIVE_TLS=0, no engine).
  const onNative = nativeEngine() !== undefined && (!tls || nativeTlsFront());
  const engineName = onNative ? 'the native engine' : 'the JavaScript pump';
  test(`permessage-deflate through ${engineName}: frames and messages counted each way, every message intact`, {
    timeout: 60_000,
  }, async () => {
    const seen: string[] = [];
    const backend = await hashingBackend(seen);
    const g = await startGateway(conf(backend.port, tls));
    try {
      const ws = await open(g, tls);
      assert.match(ws.extensions, /permessage-deflate/);
      const rec: TunnelRecord = await onlyTunnel(g);
      assert.equal(rec.tunnel.usedNative, onNative);
      const received: string[] = [];
      let pongs = 0;
      ws.on('message', (d) => received.push(sha256(d as Buffer)));
      ws.on('pong', () => pongs++);
      const sent: string[] = [];
      // 20 whole messages of every size class, text and binary.
      const sizes = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000, 1 << 20];
      for (let i = 0; i < 20; i++) {
        const data = randomBytes(sizes[i % sizes.length]);
        sent.push(sha256(data));
        if (i % 2 === 0) ws.send(data, { binary: true });
        else ws.send(data.toString('base64'), { binary: false });
        if (i % 2 === 1) sent[sent.length - 1] = sha256(Buffer.from(data.toString('base64')));
      }
      // One message in three fragments, with a ping between two of them.
      const parts = [randomBytes(3000), randomBytes(10), randomBytes(200_000)];
      ws.send(parts[0], { binary: true, fin: false });
      ws.ping(Buffer.from('mid'));
      ws.send(parts[1], { binary: true, fin: false });
      ws.send(parts[2], { binary: true, fin: true });
      sent.push(sha256(Buffer.concat(parts)));
      await eventually(() => received.length === sent.length && pongs === 1, 30_000, 'every echo and the pong');
      assert.deepEqual(seen, sent, 'the backend got every message intact');
      assert.deepEqual(received, sent, 'the client got every echo intact');
      // Up: 20 frames, 3 fragments and a ping; 21 messages. Down: 21 echoes and the pong.
      await eventually(() => rec.tunnel.wsCounts()?.framesDown === 22, 5000, 'the counts to settle');
      assert.deepEqual(rec.tunnel.wsCounts(), {
        framesUp: 24,
        messagesUp: 21,
        violationsUp: 0,
        framesDown: 22,
        messagesDown: 21,
        violationsDown: 0,
      });
      const closed = once(ws, 'close');
      ws.close(1000, 'done');
      const [code] = await closed;
      assert.equal(code, 1000);
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the tunnel to close');
      // The close handshake: one close frame each way.
      assert.equal(
        g.logs.some((l) => /WebSocket protocol violation/.test(l)),
        false,
      );
    } finally {
      await g.stop();
      await backend.close();
    }
  });
}

/** A raw WebSocket client (the upgrade done, the 101 read) that can send frames a `ws` client never would. */
async function rawClient(port: number): Promise<{ socket: net.Socket; rest: Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(upgradeRequest('/ws/x'));
  const got = await readUntil(socket, (b) => b.includes('\r\n\r\n'));
  const end = got.indexOf('\r\n\r\n') + 4;
  assert.match(got.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101/);
  return { socket, rest: got.subarray(end) };
}

/** An unmasked text frame: a violation from a client. */
const UNMASKED = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello')]);
/** A masked text frame "hi". */
function masked(text: string): Buffer {
  const key = [1, 2, 3, 4];
  const p = Buffer.from(text);
  for (let i = 0; i < p.length; i++) p[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from([0x81, 0x80 | p.length, ...key]), p]);
}

for (const tls of [false]) {
  test('ProxyWebsocketStrict On: a client frame without a mask closes the tunnel with 1002 toward each side', {
    timeout: 30_000,
  }, async () => {
    const backendCloses: Array<[number, string]> = [];
    const backendGot: string[] = [];
    const backend = await startWsBackend((ws) => {
      ws.on('message', (d) => backendGot.push(String(d)));
      ws.on('close', (code, reason) => backendCloses.push([code, String(reason)]));
    });
    const g = await startGateway(conf(backend.port, tls, 'ProxyWebsocketStrict On\n'));
    try {
      const { socket, rest } = await rawClient(g.port);
      // A valid frame, then the violation and a valid frame after it in the same write.
      socket.write(Buffer.concat([masked('first'), UNMASKED, masked('never')]));
      const got = await readUntil(socket, (b) => b.length >= 2 && b[0] === 0x88 && b.length >= 2 + (b[1] & 0x7f), rest);
      assert.equal(got[1] & 0x80, 0, 'unmasked toward the client');
      assert.equal(got.readUInt16BE(2), 1002);
      await eventually(() => backendCloses.length === 1, 5000, 'the backend to see a close');
      assert.deepEqual(backendCloses[0][0], 1002);
      assert.deepEqual(backendGot, ['first'], 'what came after the violation was not forwarded');
      await g.waitForLog(/WebSocket protocol violation.*unmasked client frame/);
      socket.destroy();
      await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the tunnel to close');
    } finally {
      await g.stop();
      await backend.close();
    }
  });
}

test('ProxyWebsocketStrict Off (the default): a violation is forwarded, counted and logged once', { timeout: 30_000 }, async () => {
  const got: Buffer[] = [];
  // A backend that reads raw bytes after its 101: ws would refuse an unmasked frame itself.
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    let upgraded = false;
    s.on('data', (c: Buffer) => {
      if (upgraded) {
        got.push(c);
        return;
      }
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      upgraded = true;
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
      if (head.length > end + 4) got.push(head.subarray(end + 4));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const g = await startGateway(conf((server.address() as net.AddressInfo).port, false));
  try {
    const { socket } = await rawClient(g.port);
    const sent = Buffer.concat([UNMASKED, UNMASKED, masked('ok')]);
    socket.write(sent);
    await eventually(() => Buffer.concat(got).length === sent.length, 5000, 'every byte at the backend');
    assert.equal(sha256(Buffer.concat(got)), sha256(sent));
    const rec = await onlyTunnel(g);
    assert.deepEqual([rec.tunnel.wsCounts()?.framesUp, rec.tunnel.wsCounts()?.messagesUp, rec.tunnel.wsCounts()?.violationsUp], [3, 3, 2]);
    await g.waitForLog(/WebSocket protocol violation/);
    assert.equal(g.logs.filter((l) => /WebSocket protocol violation/.test(l)).length, 1);
    socket.destroy();
  } finally {
    await g.stop();
    server.close();
  }
});

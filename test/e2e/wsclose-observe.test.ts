// WebSocket close codes where an operator reads them: each tunnel's JSON record (CustomLog FILE
// tunnel) carries the close code each peer sent, wsgate's own, and who closed first, with the
// frames and messages each way; the metrics count close frames by sender and code (application
// codes as `other`), WebSocket tunnels by who closed first, and protocol violations by sender.
// Four tunnels, on the native engine (a plain front, when the addon is loaded) and on the
// JavaScript pump (a TLS front with WSGATE_NATIVE_TLS=0): the client closes with 4001, the backend closes with 1000, the
// backend is reset (wsgate sends 1011), and a client sends two unmasked frames (the backend, a
// real `ws` server, answers 1002).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tls from 'node:tls';
import { WebSocket } from 'ws';
import { type CertFiles, type Certs, makeCerts } from '../helpers/certs';
import { startWsBackend } from '../helpers/datapath';
import { readUntil, upgradeRequest } from '../helpers/edges';
import { eventually, randomBytes, type RunningGateway, sha256, startGateway } from '../helpers/harness';
import { tunnelOnEngine } from '../helpers/native-tls';

let certs: Certs;
let front: CertFiles;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1']);
});

interface Rec {
  msg: string;
  route: string;
  endedBy: string;
  reason: string;
  closeClient?: number;
  closeBackend?: number;
  closeWsgate?: number;
  closeFirst?: string;
  framesUp?: number;
  framesDown?: number;
  messagesUp?: number;
  messagesDown?: number;
  violationsUp?: number;
  violationsDown?: number;
  tunnel: number;
}

function recordsIn(file: string): Rec[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Rec)
    .filter((r) => r.msg === 'tunnel closed');
}

/** The value of the sample `name{labels}` in an exposition text (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = m[2]!.split(',').sort();
    if (got.length === want.length && got.every((g, i) => g === want[i])) return Number(m[3]);
  }
  return 0;
}

/** A client that can send what `ws` never would: the upgrade done and the 101 read, over TCP or TLS. */
async function rawClient(port: number, secure: boolean): Promise<net.Socket> {
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', ca: certs.ca.pem, servername: '127.0.0.1' })
    : net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, secure ? 'secureConnect' : 'connect');
  socket.write(upgradeRequest('/ws/raw'));
  const got = await readUntil(socket, (b) => b.includes('\r\n\r\n'));
  assert.match(got.toString('latin1'), /^HTTP\/1\.1 101/);
  return socket;
}

/** An unmasked text frame: from a client, a protocol violation. */
const UNMASKED = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello')]);

for (const secure of [false, true]) {
  const engine = !tunnelOnEngine(secure) ? 'the JavaScript pump' : 'the native engine';

  test(`${engine}: tunnel records and metrics carry the close codes, who closed first, and violations`, { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-wsclose-'));
    const file = path.join(dir, 'tunnels.jsonl');
    const backend = await startWsBackend((ws, req) => {
      ws.on('message', (d, binary) => {
        // The backend closes first on /ws/bye; it echoes everywhere else.
        if (req.url === '/bye') ws.close(1000, 'done');
        else ws.send(d, { binary });
      });
    });
    const listen = secure
      ? `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}`
      : 'Listen 127.0.0.1:0';
    let g: RunningGateway | undefined;
    try {
      g = await startGateway(
        [
          listen,
          `CustomLog ${file} tunnel`,
          `ProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"`,
          '<Location "/metrics">',
          'SetHandler metrics',
          '</Location>',
          '',
        ].join('\n'),
      );
      const url = `${secure ? 'wss' : 'ws'}://127.0.0.1:${g.port}/ws/`;
      const open = async (p: string): Promise<WebSocket> => {
        const ws = new WebSocket(url + p, { ca: certs.ca.pem });
        ws.on('error', () => {});
        await once(ws, 'open');
        return ws;
      };
      const echoChecked = async (ws: WebSocket): Promise<void> => {
        const data = randomBytes(3000);
        const got = once(ws, 'message');
        ws.send(data);
        assert.equal(sha256((await got)[0] as Buffer), sha256(data));
      };

      // 1. The client closes with an application code; the backend (ws) answers with the same.
      const one = await open('one');
      await echoChecked(one);
      const oneClosed = once(one, 'close');
      one.close(4001, 'bye');
      assert.equal((await oneClosed)[0], 4001);
      await eventually(() => recordsIn(file).length === 1, 10_000, 'the first record');

      // 2. The backend closes first with 1000.
      const two = await open('bye');
      const twoClosed = once(two, 'close');
      two.send('go');
      assert.equal((await twoClosed)[0], 1000);
      await eventually(() => recordsIn(file).length === 2, 10_000, 'the second record');

      // 3. The backend is reset: wsgate closes toward the client with 1011.
      const three = await open('three');
      await echoChecked(three);
      const threeClosed = once(three, 'close');
      for (const c of backend.wss.clients) {
        const s = (c as unknown as { _socket: net.Socket })._socket;
        s.resetAndDestroy();
      }
      assert.equal((await threeClosed)[0], 1011);
      await eventually(() => recordsIn(file).length === 3, 10_000, 'the third record');

      // 4. Two unmasked client frames: forwarded (ProxyWebsocketStrict Off), counted; the ws backend answers 1002.
      const raw = await rawClient(g.port, secure);
      raw.write(Buffer.concat([UNMASKED, UNMASKED]));
      const fromBackend = await readUntil(raw, (b) => b.length >= 4 && b[0] === 0x88);
      assert.equal(fromBackend.readUInt16BE(2), 1002);
      raw.destroy();
      await eventually(() => recordsIn(file).length === 4, 10_000, 'the fourth record');

      const [r1, r2, r3, r4] = recordsIn(file) as [Rec, Rec, Rec, Rec];
      assert.deepEqual(
        {
          client: r1.closeClient,
          backend: r1.closeBackend,
          wsgate: r1.closeWsgate,
          first: r1.closeFirst,
          endedBy: r1.endedBy,
        },
        { client: 4001, backend: 4001, wsgate: undefined, first: 'client', endedBy: 'clean' },
      );
      // One data frame and the close each way.
      assert.deepEqual([r1.framesUp, r1.messagesUp, r1.framesDown, r1.messagesDown], [2, 1, 2, 1]);
      assert.equal(r1.violationsUp, undefined);
      assert.deepEqual([r2.closeFirst, r2.closeBackend, r2.closeClient, r2.closeWsgate], ['backend', 1000, 1000, undefined]);
      assert.equal(r3.closeFirst, 'wsgate');
      assert.equal(r3.closeWsgate, 1011);
      assert.equal(r3.closeBackend, undefined, 'the reset backend sent no close frame');
      assert.equal(r3.endedBy, 'backend');
      assert.deepEqual([r4.violationsUp, r4.closeBackend, r4.closeFirst], [2, 1002, 'backend']);

      const { text } = await g.gateway.metrics.render(g.gateway);
      const closes = (from: string, code: string): number => sample(text, 'wsgate_websocket_closes_total', { from, code });
      assert.equal(closes('client', 'other'), 1, '4001 is an application code: other');
      assert.equal(closes('backend', 'other'), 1);
      assert.equal(closes('backend', '1000'), 1);
      assert.equal(closes('wsgate', '1011'), 1);
      assert.equal(closes('backend', '1002'), 1);
      assert.equal(closes('client', '4001'), 0, 'no label per application code');
      const first = (who: string): number => sample(text, 'wsgate_websocket_tunnels_closed_total', { first: who });
      assert.deepEqual([first('client'), first('backend'), first('wsgate')], [1, 2, 1]);
      assert.equal(sample(text, 'wsgate_websocket_violations_total', { from: 'client' }), 2);
      assert.equal(sample(text, 'wsgate_websocket_violations_total', { from: 'backend' }), 0);
      assert.match(text, /# TYPE wsgate_websocket_closes_total counter/);
    } finally {
      await g?.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

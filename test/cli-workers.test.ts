// `wsgate -w N`: N worker processes share the Listen ports; the primary stops them all on SIGTERM
// and exits 0, passes SIGHUP and SIGUSR1 on once the config checks out, and replaces a worker that
// dies. With the native front every worker accepts on a socket of its own (SO_REUSEPORT).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { closeWs, echo, eventually, openWs, randomBytes, sha256, startEchoBackend } from './helpers/harness';
import { makeCerts } from './helpers/certs';
import { startWorkers } from './helpers/cli';
import { childrenOf, holders, listeningPorts } from './helpers/procfs';
import { nativeUnavailableReason } from '../src/tunnel/native';
import type WebSocket from 'ws';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('wsgate -w 2: two workers serve one port; SIGTERM to the primary stops them all, exit 0', { timeout: 60_000 }, async () => {
  const backend = await startEchoBackend('w');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  const run = startWorkers(file);
  try {
    const { port, primary, workers } = await run.ready();
    // Many connections, each with its own content, all through the shared port.
    const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => openWs(`ws://127.0.0.1:${port}/ws/c${i}`)));
    await Promise.all(
      clients.map(async (ws) => {
        const data = randomBytes(4096);
        const r = await echo(ws, data);
        assert.equal(sha256(r.data), sha256(data));
      }),
    );
    const open = clients.slice(0, 5);
    await Promise.all(clients.slice(5).map(closeWs));
    const closes = open.map((ws) => once(ws, 'close'));
    process.kill(primary, 'SIGTERM');
    const [code, signal] = await run.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, run.stderr());
    await Promise.all(closes);
    for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} stopped`);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    assert.equal(refused, true, 'the port is closed');
  } finally {
    run.kill();
    await backend.close();
  }
});

// SIGUSR1 would start Node's inspector in whichever process gets it, and SIGHUP would kill it:
// every process holds both. The primary passes them on to the workers once the config file checks
// out (a bad file is logged and the workers are not told); a worker sent one directly logs its line.
test('wsgate -w 2: SIGUSR1 and SIGHUP: passed on by the primary when the config is valid, each worker reloads, no inspector', {
  timeout: 60_000,
}, async () => {
  const backend = await startEchoBackend('ws');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-'));
  const file = path.join(dir, 'wsgate.conf');
  const good = `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`;
  writeFileSync(file, good);
  const run = startWorkers(file);
  const heldLines = (signal: string, pid: number): number =>
    run
      .stderr()
      .split('\n')
      .filter((l) => / info configuration reloaded /.test(l) && l.includes(` cause=${signal} `) && l.endsWith(` pid=${pid}`)).length;
  const passedOn = (signal: string): number =>
    run
      .stderr()
      .split('\n')
      .filter((l) => / info passing the signal on to the workers /.test(l) && l.includes(` signal=${signal} `)).length;
  try {
    const { port, primary, workers } = await run.ready();
    for (const signal of ['SIGUSR1', 'SIGHUP'] as const) {
      assert.equal(process.kill(primary, signal), true);
      await eventually(
        () => workers.every((w) => heldLines(signal, w) === 1) || /Debugger listening/.test(run.stderr()),
        20_000,
        `${signal} passed on`,
      );
      assert.equal(passedOn(signal), 1);
    }
    for (const pid of workers) {
      for (const signal of ['SIGUSR1', 'SIGHUP'] as const) {
        assert.equal(process.kill(pid, signal), true);
        await eventually(
          () => heldLines(signal, pid) === 2 || /Debugger listening/.test(run.stderr()),
          20_000,
          `the ${signal} line of ${pid}`,
        );
      }
    }
    assert.doesNotMatch(run.stderr(), /Debugger listening|inspector/i);
    // A file that does not load: the primary says where, and the workers are not told.
    writeFileSync(file, `${good}NoSuchDirective on\n`);
    process.kill(primary, 'SIGHUP');
    await eventually(
      () => / warn configuration not reloaded: the workers keep the one they run signal=SIGHUP/.test(run.stderr()),
      20_000,
      'the refusal',
    );
    assert.match(run.stderr(), new RegExp(` error ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: `), 'FILE:LINE of the mistake');
    writeFileSync(file, good);
    process.kill(primary, 'SIGHUP');
    await eventually(() => workers.every((w) => heldLines('SIGHUP', w) >= 3), 20_000, 'the second SIGHUP passed on');
    for (const pid of [primary, ...workers]) {
      assert.equal(alive(pid), true, `${pid} still runs`);
      for (const p of listeningPorts(pid)) assert.equal(p, port, `${pid} listens on ${p} (9229 is the inspector)`);
    }
    assert.deepEqual(childrenOf(primary), workers, 'the same workers, none restarted');
    const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => openWs(`ws://127.0.0.1:${port}/ws/s${i}`)));
    await Promise.all(
      clients.map(async (ws) => {
        const data = randomBytes(2048);
        assert.equal(sha256((await echo(ws, data)).data), sha256(data));
        await closeWs(ws);
      }),
    );
    process.kill(primary, 'SIGTERM');
    const [code, signal] = await run.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, run.stderr());
    assert.equal(heldLines('SIGUSR1', primary) + heldLines('SIGHUP', primary), 0, 'the primary passes them on, it does not hold them');
    assert.equal(passedOn('SIGHUP'), 2, 'the bad file was not passed on');
    for (const pid of workers) {
      assert.equal(heldLines('SIGUSR1', pid), 2, `two SIGUSR1 lines from ${pid}:\n${run.stderr()}`);
      assert.equal(heldLines('SIGHUP', pid), 3, `three SIGHUP lines from ${pid} (none for the bad file):\n${run.stderr()}`);
    }
  } finally {
    run.kill();
    await backend.close();
  }
});

async function echoAll(clients: WebSocket[]): Promise<void> {
  await Promise.all(
    clients.map(async (ws) => {
      const data = randomBytes(3000);
      assert.equal(sha256((await echo(ws, data)).data), sha256(data));
    }),
  );
}

test('wsgate -w 2, native front: each worker accepts on a socket of its own, connections land on both; a killed worker is replaced and only its tunnels are lost', {
  timeout: 90_000,
  skip: nativeUnavailableReason() ?? (process.env.WSGATE_NATIVE_FRONT === '0' ? 'WSGATE_NATIVE_FRONT=0' : undefined),
}, async () => {
  const backend = await startEchoBackend('k');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  const run = startWorkers(file);
  const all: WebSocket[] = [];
  try {
    const { port, primary, workers } = await run.ready();
    assert.deepEqual(listeningPorts(primary), [], 'the primary holds no listening socket');
    for (const pid of workers) assert.deepEqual(listeningPorts(pid), [port], `${pid} listens on the port itself`);

    const first = await Promise.all(Array.from({ length: 40 }, (_, i) => openWs(`ws://127.0.0.1:${port}/ws/a${i}`)));
    all.push(...first);
    await echoAll(first);
    const held = holders(first, workers, port);
    for (const pid of workers) assert.ok(held.includes(pid), `some connections land on ${pid}: ${held.join(' ')}`);

    const [victim, survivor] = workers as [number, number];
    const lost = first.filter((_, i) => held[i] === victim);
    const kept = first.filter((_, i) => held[i] === survivor);
    const closes = lost.map((ws) => once(ws, 'close'));
    process.kill(victim, 'SIGKILL');
    await Promise.all(closes);
    await echoAll(kept);

    await eventually(() => / info worker restarted /.test(run.stderr()), 30_000, 'a worker in the place of the killed one');
    assert.match(run.stderr(), new RegExp(` error worker exited; starting another pid=${victim} code=SIGKILL `));
    const now = childrenOf(primary);
    assert.equal(now.length, 2);
    assert.ok(now.includes(survivor), 'the other worker runs on');
    const replacement = now.find((p) => p !== survivor)!;
    assert.notEqual(replacement, victim);
    assert.deepEqual(listeningPorts(replacement), [port], 'the new worker listens on the same port');

    const second = await Promise.all(Array.from({ length: 40 }, (_, i) => openWs(`ws://127.0.0.1:${port}/ws/b${i}`)));
    all.push(...second);
    await echoAll(second);
    assert.ok(holders(second, now, port).includes(replacement), 'new connections land on the new worker too');
    await echoAll(kept);

    process.kill(primary, 'SIGTERM');
    const [code, signal] = await run.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, run.stderr());
  } finally {
    for (const ws of all) ws.terminate();
    run.kill();
    await backend.close();
  }
});

// TLS on the engine in workers (issue 17): each worker's https port is a socket of its own that
// the engine accepts on and terminates TLS for; h2 goes to the worker's Node TLS server. The
// tunnel records prove it: a wss tunnel the engine did not terminate would run on the JavaScript
// pump (`engine: js`), and each record names the worker that wrote it.
test('wsgate -w 2, https port: each worker terminates TLS in the engine (wss echo on both, native tunnels), h2 still served', {
  timeout: 90_000,
  skip:
    nativeUnavailableReason() ??
    (process.env.WSGATE_NATIVE_FRONT === '0'
      ? 'WSGATE_NATIVE_FRONT=0'
      : process.env.WSGATE_NATIVE_TLS === '0'
        ? 'WSGATE_NATIVE_TLS=0'
        : undefined),
}, async () => {
  const backend = await startEchoBackend('t');
  const certs = makeCerts();
  const front = certs.issue('front', ['127.0.0.1', 'gw.test']);
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-'));
  const file = path.join(dir, 'wsgate.conf');
  const tunnels = path.join(dir, 'tunnels.log');
  writeFileSync(
    file,
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile "${front.cert}"\nSSLCertificateKeyFile "${front.key}"\n` +
      `Protocols h2 http/1.1\nCustomLog "${tunnels}" tunnel\n` +
      `ProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\nProxyPass "/web/" "http://127.0.0.1:${backend.port}/"\n`,
  );
  const run = startWorkers(file);
  const all: WebSocket[] = [];
  try {
    const { port, primary, workers } = await run.ready();
    assert.deepEqual(listeningPorts(primary), [], 'the primary holds no listening socket');
    for (const pid of workers) assert.deepEqual(listeningPorts(pid), [port], `${pid} listens on the https port itself`);

    const clients = await Promise.all(
      Array.from({ length: 40 }, (_, i) => openWs(`wss://127.0.0.1:${port}/ws/t${i}`, undefined, { ca: certs.ca.pem })),
    );
    all.push(...clients);
    await echoAll(clients);
    const held = holders(clients, workers, port);
    for (const pid of workers) assert.ok(held.includes(pid), `some connections land on ${pid}: ${held.join(' ')}`);
    await Promise.all(clients.map(closeWs));

    // HTTP/2 on the same port: the engine hands it to the worker's Node TLS server.
    for (let i = 0; i < 4; i++) {
      const session = http2.connect(`https://127.0.0.1:${port}`, { ca: certs.ca.pem, servername: 'gw.test' });
      const req = session.request({ ':path': `/web/h2-${i}`, ':authority': 'gw.test' });
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      await once(req, 'end');
      assert.equal(headers[':status'], 200);
      assert.equal(Buffer.concat(chunks).toString(), `backend:t GET /h2-${i}`);
      assert.equal(session.alpnProtocol, 'h2');
      session.close();
    }

    let records: { pid: number; tls: boolean; engine: string; bytesUp: number }[] = [];
    const read = (): typeof records =>
      existsSync(tunnels)
        ? readFileSync(tunnels, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as (typeof records)[number])
        : [];
    await eventually(() => (records = read()).length === 40, 20_000, 'a tunnel record for each connection');
    for (const r of records) {
      assert.equal(r.tls, true);
      assert.equal(r.engine, 'native', 'a wss tunnel on the engine: its TLS was the engine’s');
      assert.ok(r.bytesUp >= 3000);
    }
    for (const pid of workers) {
      assert.equal(
        records.filter((r) => r.pid === pid).length,
        held.filter((h) => h === pid).length,
        `${pid} wrote a record per tunnel it held`,
      );
    }

    process.kill(primary, 'SIGTERM');
    const [code, signal] = await run.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, run.stderr());
  } finally {
    for (const ws of all) ws.terminate();
    run.kill();
    await backend.close();
  }
});

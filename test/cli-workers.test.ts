// `wsgate -w N`: N worker processes share the Listen sockets; the primary stops them all on
// SIGTERM and exits 0; SIGUSR1 and SIGHUP are held by every process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { closeWs, echo, eventually, openWs, randomBytes, sha256, startEchoBackend } from './helpers/harness';
import { listeningPorts } from './helpers/procfs';

const CLI = path.join(__dirname, '..', 'src', 'cli.js');

function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

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
  const child = spawn(process.execPath, [CLI, '-f', file, '-w', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const twoListening = new Promise<number>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      const ports = [...err.matchAll(/ info listening address=127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
      if (ports.length === 2) {
        assert.equal(ports[0], ports[1], 'both workers listen on the same port');
        resolve(ports[0]);
      }
    });
    child.once('exit', () => reject(new Error(`exited early: ${err}`)));
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const port = await twoListening;
    const workers = childrenOf(child.pid!);
    assert.equal(workers.length, 2, 'two worker processes');
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
    process.kill(child.pid!, 'SIGTERM');
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, err);
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
    if (child.exitCode === null && child.signalCode === null) {
      for (const pid of childrenOf(child.pid!)) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
    }
    await backend.close();
  }
});

// SIGUSR1 would start Node's inspector in whichever process gets it, and SIGHUP would kill it:
// the primary and each worker hold both, with one line each, and go on serving.
test('wsgate -w 2: SIGUSR1 and SIGHUP to the primary and to each worker: one line each, no inspector, still serving', {
  timeout: 60_000,
}, async () => {
  const backend = await startEchoBackend('ws');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, `Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`);
  const child = spawn(process.execPath, [CLI, '-f', file, '-w', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const heldLines = (signal: string, pid: number): number =>
    err.split('\n').filter((l) => / warn signal ignored: /.test(l) && l.includes(` signal=${signal} `) && l.endsWith(` pid=${pid}`)).length;
  try {
    await eventually(() => [...err.matchAll(/ info listening address=127\.0\.0\.1:(\d+)/g)].length === 2, 30_000, 'two workers listening');
    const port = Number(/ info listening address=127\.0\.0\.1:(\d+)/.exec(err)![1]);
    const primary = child.pid!;
    const workers = childrenOf(primary);
    assert.equal(workers.length, 2, 'two worker processes');
    for (const pid of [primary, ...workers]) {
      for (const signal of ['SIGUSR1', 'SIGHUP'] as const) {
        assert.equal(process.kill(pid, signal), true);
        await eventually(() => heldLines(signal, pid) === 1 || /Debugger listening/.test(err), 20_000, `the ${signal} line of ${pid}`);
        assert.doesNotMatch(err, /Debugger listening|inspector/i);
      }
    }
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
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, err);
    for (const pid of [primary, ...workers]) {
      for (const s of ['SIGUSR1', 'SIGHUP']) assert.equal(heldLines(s, pid), 1, `one ${s} line from ${pid}:\n${err}`);
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      for (const pid of childrenOf(child.pid!)) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
    }
    await backend.close();
  }
});

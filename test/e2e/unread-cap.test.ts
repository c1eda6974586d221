// The cap on connections accepted but still reading their first head (a quarter of the soft
// RLIMIT_NOFILE, at least 64; the oldest closed for each new one): the real `wsgate` command,
// started under `ulimit -n 256`, is flooded with connections that trickle a head a byte at a
// time; a legitimate WebSocket must still get through and echo, and the eviction warning is
// written once per second at most. On the native front and on Node's accepts.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { closeWs, echo, eventually, openWs, randomBytes, sha256, startEchoBackend } from '../helpers/harness';
import { listeningPorts } from '../helpers/procfs';

// dist/test/e2e/unread-cap.test.js → dist/src/cli.js; the package root is three levels up.
const CLI = path.join(__dirname, '..', '..', 'src', 'cli.js');
const ROOT = path.join(__dirname, '..', '..', '..');
/** The fd limit wsgate runs under: its cap is then max(64, 256 / 4) = 64. */
const FD_LIMIT = 256;
const CAP = 64;
const FLOOD = 300;
const EVICTED = /too many connections reading a request head: the oldest closed closed=(\d+) limit=(\d+)/;

/** Starts `wsgate -f conf` under `ulimit -n FD_LIMIT`; `exec` keeps the pid the node process's. */
function startUnderLimit(conf: string, env: NodeJS.ProcessEnv): { child: ChildProcess; stderr: () => string; exited: Promise<void> } {
  const cmd = `ulimit -n ${FD_LIMIT} && exec "$0" "$1" -f "$2"`;
  const child = spawn('sh', ['-c', cmd, process.execPath, CLI, conf], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { child, stderr: () => err, exited };
}

/** One connection that sends its head a byte at a time and never finishes it. */
interface Trickle {
  socket: net.Socket;
  closed: boolean;
}

const HEAD = Buffer.from('GET /slow HTTP/1.1\r\nHost: a\r\nX-Pad: ' + 'p'.repeat(200), 'latin1');

for (const front of ['native', 'node'] as const) {
  test(`${front} front: a flood of trickled heads under ulimit -n ${FD_LIMIT} evicts the oldest; a WebSocket still echoes`, {
    timeout: 90_000,
  }, async () => {
    const backend = await startEchoBackend('cap');
    const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-cap-'));
    const conf = path.join(dir, 'wsgate.conf');
    // Timeout and the header stage are long, so only the cap can close the trickles here.
    writeFileSync(
      conf,
      `Listen 127.0.0.1:0\nTimeout 300\nRequestReadTimeout header=120-300,MinRate=1\nProxyPass "/" "ws://127.0.0.1:${backend.port}/"\n`,
    );
    const env = { ...process.env };
    if (front === 'node') env.WSGATE_NATIVE_FRONT = '0';
    else delete env.WSGATE_NATIVE_FRONT;
    const g = startUnderLimit(conf, env);
    const trickles: Trickle[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      const pid = g.child.pid!;
      let port = 0;
      await eventually(
        () => {
          try {
            port = listeningPorts(pid)[0] ?? 0;
          } catch {
            port = 0;
          }
          return port !== 0;
        },
        20_000,
        `wsgate to listen; stderr: ${g.stderr()}`,
      );

      // The flood: every connection gets one more byte of its head every 100 ms.
      for (let i = 0; i < FLOOD; i++) {
        const t: Trickle = { socket: net.connect(port, '127.0.0.1'), closed: false };
        t.socket.on('error', () => {});
        t.socket.on('close', () => (t.closed = true));
        trickles.push(t);
      }
      await Promise.all(trickles.map((t) => (t.closed ? undefined : once(t.socket, 'connect').catch(() => undefined))));
      let sent = 0;
      const tick = (): void => {
        if (sent < HEAD.length) {
          for (const t of trickles) if (!t.closed) t.socket.write(HEAD.subarray(sent, sent + 1));
          sent++;
        }
      };
      tick();
      timer = setInterval(tick, 100);

      // The flood is past the cap: wsgate closes the oldest to keep at most CAP of them.
      await eventually(() => trickles.filter((t) => t.closed).length >= FLOOD - CAP, 30_000, 'the oldest trickles to be closed');
      const first = await eventuallyLine(g.stderr, EVICTED, 10_000);
      assert.equal(Number(EVICTED.exec(first)![2]), CAP, 'the cap is a quarter of the fd limit, at least 64');
      // The newest survive: eviction goes oldest first.
      const open = trickles.map((t, i) => (t.closed ? -1 : i)).filter((i) => i >= 0);
      assert.ok(open.length <= CAP, `${open.length} trickles still open, more than the cap`);
      assert.ok(
        open.every((i) => i >= FLOOD - CAP - 1),
        `an early trickle survived: ${open.slice(0, 5).join(',')}`,
      );

      // A legitimate client gets through while the trickles keep coming.
      const ws = await openWs(`ws://127.0.0.1:${port}/chat`);
      const payload = randomBytes(64 * 1024);
      const back = await echo(ws, payload);
      assert.equal(sha256(back.data), sha256(payload));
      await closeWs(ws);

      // One more wave of new trickles evicts more: the warning stays at one line per second.
      for (let i = 0; i < 100; i++) {
        const t: Trickle = { socket: net.connect(port, '127.0.0.1'), closed: false };
        t.socket.on('error', () => {});
        t.socket.on('close', () => (t.closed = true));
        t.socket.on('connect', () => t.socket.write('GET'));
        trickles.push(t);
      }
      await eventually(() => trickles.filter((t) => t.closed).length >= FLOOD + 100 - CAP, 30_000, 'the second wave to evict');
      // Let a pending summary line come out (it follows the previous one by a second).
      await eventually(() => evictedTotal(g.stderr()) >= FLOOD + 100 - CAP, 10_000, 'every eviction counted in a warn line');
      const lines = g
        .stderr()
        .split('\n')
        .filter((l) => EVICTED.test(l));
      assert.ok(lines.length >= 2, `expected a first line and a summary line, got ${lines.length}`);
      assert.ok(lines.length < FLOOD / 4, `${lines.length} warn lines for ${FLOOD + 100 - CAP} evictions: not rate limited`);
      const times = lines.map((l) => Date.parse(l.slice(0, l.indexOf(' '))));
      for (let i = 1; i < times.length; i++) {
        // Timer slack: setTimeout(1000) never fires early, the timestamps are milliseconds.
        assert.ok(times[i] - times[i - 1] >= 990, `warn lines ${times[i] - times[i - 1]} ms apart:\n${lines.join('\n')}`);
      }
      assert.doesNotMatch(g.stderr(), /EMFILE|uncaught|RangeError|TypeError/);
    } finally {
      if (timer !== undefined) clearInterval(timer);
      for (const t of trickles) t.socket.destroy();
      if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGTERM');
      await g.exited;
      await backend.close();
    }
  });
}

function evictedTotal(stderr: string): number {
  let n = 0;
  for (const l of stderr.split('\n')) {
    const m = EVICTED.exec(l);
    if (m !== null) n += Number(m[1]);
  }
  return n;
}

async function eventuallyLine(stderr: () => string, re: RegExp, ms: number): Promise<string> {
  await eventually(() => re.test(stderr()), ms, `a line matching ${re}; stderr:\n${stderr()}`);
  return stderr()
    .split('\n')
    .find((l) => re.test(l))!;
}

// The `wsgate` command as a child process: --version, --help, -t (Syntax OK / FILE:LINE errors),
// a bad config exits before listening, and a running wsgate proxies, then stops on SIGTERM or
// SIGINT with exit code 0, its port closed and its open tunnels closed.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { deadPort, ResponseReader, connectRaw } from './helpers/edges';
import { closeWs, echo, eventually, openWs, randomBytes, sha256, startEchoBackend } from './helpers/harness';
import { listeningPorts } from './helpers/procfs';
import { CLI, countLines, reap, ROOT, runCli, startCli, started, writeConf } from './helpers/cli';

const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** True when nothing listens on 127.0.0.1:port (a connect is refused). */
async function refused(port: number): Promise<boolean> {
  const s = net.connect(port, '127.0.0.1');
  try {
    await once(s, 'connect');
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  } finally {
    s.destroy();
  }
}

/** True when this process can bind 127.0.0.1:port (then releases it). */
async function canBind(port: number): Promise<boolean> {
  const srv = net.createServer();
  try {
    srv.listen(port, '127.0.0.1');
    await once(srv, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
}

test('--version and -v print the package version', { timeout: 30_000 }, async () => {
  for (const flag of ['--version', '-v']) {
    const r = await runCli([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `wsgate ${VERSION}\n`);
    assert.equal(r.stderr, '');
  }
});

test('--help and -h print the usage', { timeout: 30_000 }, async () => {
  for (const flag of ['--help', '-h']) {
    const r = await runCli([flag]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: wsgate -f FILE \[options\]\n {7}wsgate -t -f FILE\n/);
    assert.match(r.stdout, /-t, --check/);
    assert.equal(r.stderr, '');
  }
});

test('an unknown option or no -f: usage on stderr and exit 2', { timeout: 30_000 }, async () => {
  const unknown = await runCli(['--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^wsgate: unknown option --bogus\n\nUsage: /);
  const noFile = await runCli(['-t']);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /^wsgate: no configuration file given \(-f FILE\)\n/);
});

test('-t -f good.conf prints "Syntax OK" and exits 0', { timeout: 30_000 }, async () => {
  const file = writeConf(
    [
      'Listen 127.0.0.1:0',
      'ProxyTimeout 30',
      '<VirtualHost *:0>',
      '  ServerName gw.test',
      '  ProxyPass "/ws/" "ws://127.0.0.1:9/" timeout=5 connectiontimeout=2',
      '  ProxyPass "/" "http://127.0.0.1:9/"',
      '</VirtualHost>',
      '',
    ].join('\n'),
  );
  for (const args of [
    ['-t', '-f', file],
    ['--check', `--config=${file}`],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Syntax OK\n');
    assert.doesNotMatch(r.stderr, /listening/);
  }
});

test('-t -f bad.conf prints FILE:LINE: message on stderr and exits non-zero', { timeout: 30_000 }, async () => {
  const cases = [
    { text: 'Listen 127.0.0.1:0\n\nBogusDirective on\n', line: 3, msg: 'unknown directive "BogusDirective"' },
    { text: 'Listen 127.0.0.1:0\nProxyTimeout soon\n', line: 2, msg: 'ProxyTimeout: "soon" is not a duration' },
  ];
  for (const c of cases) {
    const file = writeConf(c.text);
    const r = await runCli(['-t', '-f', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '', 'no "Syntax OK"');
    const first = r.stderr.split('\n')[0];
    assert.ok(first.startsWith(`${file}:${c.line}: ${c.msg}`), `stderr: ${r.stderr}`);
  }
});

// Hostile files for `wsgate -t`: a clean FILE:LINE error, exit 1, no stack trace, in bounded time.
test('-t on hostile files: deep Include chain, doubling Defines, /dev/zero, a FIFO, Include /', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-cli-hostile-'));
  const at = (name: string): string => path.join(dir, name);
  for (let i = 0; i < 1500; i++) writeFileSync(at(`c${i}.conf`), i < 1499 ? `Include c${i + 1}.conf\n` : 'Listen 127.0.0.1:0\n');
  writeFileSync(at('double.conf'), `Listen 127.0.0.1:0\nDefine A x\n${'Define A ${A}${A}\n'.repeat(24)}`);
  writeFileSync(at('zero.conf'), 'Listen 127.0.0.1:0\nInclude /dev/zero\n');
  writeFileSync(at('fifo.conf'), 'Listen 127.0.0.1:0\n\nInclude pipe\n');
  writeFileSync(at('root.conf'), 'Listen 127.0.0.1:0\nInclude /\n');
  execFileSync('mkfifo', [at('pipe')]);
  const cases = [
    { main: 'c0.conf', file: 'c128.conf', line: 1, msg: /Include "c129\.conf": Include nesting deeper than 128 levels/ },
    { main: 'double.conf', file: 'double.conf', line: 22, msg: /line longer than 1 MiB once \$\{A\} is expanded/ },
    {
      main: 'zero.conf',
      file: 'zero.conf',
      line: 2,
      msg: /Include "\/dev\/zero": cannot read \/dev\/zero: a character device, not a regular file/,
    },
    { main: 'fifo.conf', file: 'fifo.conf', line: 3, msg: /Include "pipe": cannot read .*pipe: a FIFO \(named pipe\), not a regular file/ },
    { main: 'pipe', file: 'pipe', line: 0, msg: /cannot read the config file: a FIFO/ },
    // What stops this one depends on the machine; that it stops, at the Include line or in a file it read, does not.
    { main: 'root.conf', file: undefined, line: undefined, msg: /./ },
  ];
  for (const c of cases) {
    const started = Date.now();
    const r = await runCli(['-t', '-f', at(c.main)]);
    const took = Date.now() - started;
    assert.equal(r.code, 1, `${c.main}: ${r.stderr}`);
    assert.equal(r.stdout, '', 'no "Syntax OK"');
    assert.ok(took < 10_000, `${c.main} took ${took} ms`);
    const stderrLines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(stderrLines.length, 1, `one line, no stack trace: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /^\s+at |RangeError|internal error/m);
    const m = /^(.+?):(\d+): (.*)$/.exec(stderrLines[0]);
    assert.ok(m, `FILE:LINE: message, got ${stderrLines[0]}`);
    if (c.file !== undefined) {
      assert.equal(m[1], at(c.file));
      assert.equal(Number(m[2]), c.line);
    }
    assert.match(m[3], c.msg);
  }
});

// Not a mistake in the file but a bug in wsgate (here: a stack made small enough that a legal
// 128-level Include chain overflows it) is one line that says so; the stack only with -l debug.
test('-t: an internal error while loading is one "internal error" line, exit 70; -l debug adds the stack', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-cli-internal-'));
  for (let i = 0; i < 128; i++) writeFileSync(path.join(dir, `c${i}.conf`), `Include c${i + 1}.conf\n`);
  writeFileSync(path.join(dir, 'c128.conf'), 'Listen 127.0.0.1:0\n');
  const main = path.join(dir, 'c0.conf');
  const run = (extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      // --stack-size is V8's; 85 (KB) loads wsgate on Node 20 yet overflows in 128 nested Includes.
      const child = spawn(process.execPath, ['--stack-size=85', CLI, '-t', '-f', main, ...extra], { cwd: ROOT });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  const plain = await run([]);
  assert.equal(plain.code, 70, plain.stderr);
  assert.equal(plain.stdout, '');
  assert.equal(
    plain.stderr,
    `${main}: internal error while reading the configuration (a wsgate bug; -l debug shows where): RangeError: Maximum call stack size exceeded\n`,
  );
  const debug = await run(['-l', 'debug']);
  assert.equal(debug.code, 70);
  assert.match(debug.stderr, /internal error while reading the configuration .*RangeError/);
  assert.match(debug.stderr, /^\s+at .*parser\.js/m, 'the stack, with -l debug');
});

test('a bad config without -t exits non-zero before listening', { timeout: 30_000 }, async () => {
  const port = await deadPort();
  const file = writeConf(`Listen 127.0.0.1:${port}\nProxyPass "/" "http://127.0.0.1:9/"\nProxyPass "/x/" "gopher://127.0.0.1:9/"\n`);
  const s = startCli(['-f', file]);
  try {
    // While it runs, nothing may answer on the port.
    const probe = await refused(port);
    const { code } = await s.exited;
    assert.notEqual(code, 0);
    assert.ok(s.stderr().startsWith(`${file}:3: `), s.stderr());
    assert.doesNotMatch(s.stderr(), /listening/);
    assert.equal(probe, true, 'the port was never listening');
    assert.equal(await canBind(port), true, 'the port is still free');
  } finally {
    reap(s);
  }
});

test('a Listen address already in use: exit 1 with the reason', { timeout: 30_000 }, async () => {
  const busy = net.createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const port = (busy.address() as net.AddressInfo).port;
  try {
    const r = await runCli(['-f', writeConf(`Listen 127.0.0.1:${port}\nProxyPass "/" "http://127.0.0.1:9/"\n`)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error "?cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  } finally {
    await new Promise<void>((r) => busy.close(() => r()));
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`wsgate -f: proxies, then ${signal} exits 0 with the port closed and open tunnels closed`, { timeout: 60_000 }, async () => {
    const backend = await startEchoBackend('cli');
    // SIGTERM lets the tunnels run for the grace time (1 s here), SIGINT closes them at once.
    const file = writeConf(
      `Listen 127.0.0.1:0\nGracefulShutdownTimeout 1\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\nProxyPass "/" "http://127.0.0.1:${backend.port}/"\n`,
    );
    const s = startCli(['-f', file]);
    const open: WebSocket[] = [];
    try {
      const line = await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/);
      const port = Number(/:(\d+)$/.exec(line)![1]);
      // A WebSocket echo with content checks, then a plain HTTP request.
      const ws = await openWs(`ws://127.0.0.1:${port}/ws/one`);
      const payload = randomBytes(10_000);
      assert.deepEqual((await echo(ws, payload)).data, payload);
      await closeWs(ws);
      const client = await connectRaw(port);
      const reader = new ResponseReader(client);
      client.write('GET /page?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      const res = await reader.next();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:cli GET /page?q=1');
      await reader.expectClose();
      // Two tunnels left open across the signal.
      for (const p of ['/ws/a', '/ws/b']) {
        const t = await openWs(`ws://127.0.0.1:${port}${p}`);
        open.push(t);
        assert.equal((await echo(t, `open ${p}`)).data.toString(), `open ${p}`);
      }
      const closes = open.map((t) => once(t, 'close') as Promise<[number, Buffer]>);
      assert.equal(process.kill(s.child.pid!, signal), true);
      const { code, signal: killedBy } = await s.exited;
      assert.equal(killedBy, null, `exited by itself, not killed by ${killedBy}`);
      assert.equal(code, 0, s.stderr());
      assert.match(
        s.stderr(),
        new RegExp(` info stopping signal=${signal} tunnels=2 grace_ms=${signal === 'SIGTERM' ? 1000 : 0}(\\n|$)`, 'm'),
      );
      for (const c of await Promise.all(closes)) assert.ok([1001, 1006].includes(c[0]), `close code ${c[0]}`);
      assert.equal(await refused(port), true, 'the listening port is closed');
      await eventually(() => backend.wss.clients.size === 0, 5000, 'the backend side of the tunnels to close');
    } finally {
      for (const t of open) t.terminate();
      reap(s);
      await backend.close();
    }
  });
}

// SIGUSR1 (Apache's graceful restart, sent by logrotate scripts) would start Node's inspector on
// 127.0.0.1:9229 and SIGHUP would kill the process; both reload the config (test/lifecycle has the
// reload itself), and SIGWINCH (Apache's graceful stop) stops.
test('SIGUSR1 and SIGHUP: a reload each, no inspector, still serving; SIGWINCH stops with exit 0', { timeout: 60_000 }, async () => {
  const backend = await startEchoBackend('sig');
  const s = startCli(['-f', writeConf(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`)]);
  try {
    const line = await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/);
    const port = Number(/:(\d+)$/.exec(line)![1]);
    const pid = s.child.pid!;
    assert.deepEqual(listeningPorts(pid), [port]);
    for (const signal of ['SIGUSR1', 'SIGHUP', 'SIGUSR1'] as const) {
      const before = countLines(s.stderr(), new RegExp(`cause=${signal}\\b`));
      assert.equal(process.kill(pid, signal), true);
      // Either the line that says it reloaded, or the inspector's own announcement.
      await Promise.race([
        eventually(() => countLines(s.stderr(), new RegExp(`cause=${signal}\\b`)) > before, 20_000, `the ${signal} line`),
        s.waitForStderr(/Debugger listening|inspector/i),
      ]);
      assert.doesNotMatch(s.stderr(), /Debugger listening|inspector/i);
      assert.deepEqual(listeningPorts(pid), [port], 'no port other than the Listen one (9229 is the inspector)');
      // Still serving, content checked.
      const ws = await openWs(`ws://127.0.0.1:${port}/ws/after-${signal}`);
      const payload = randomBytes(5000);
      assert.equal(sha256((await echo(ws, payload)).data), sha256(payload));
      await closeWs(ws);
    }
    assert.equal(process.kill(pid, 'SIGWINCH'), true);
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr());
    const err = s.stderr();
    assert.equal(countLines(err, / info configuration reloaded cause=SIGUSR1 /), 2, err);
    assert.equal(countLines(err, / info configuration reloaded cause=SIGHUP /), 1, err);
    assert.equal(countLines(err, / info stopping signal=SIGWINCH tunnels=0 grace_ms=30000$/), 1, err);
  } finally {
    reap(s);
    await backend.close();
  }
});

// A terminal that hung up (EIO) or a pipe whose reader left (EPIPE): log lines are lost, the
// proxy goes on serving and still stops cleanly.
test('stderr closed under wsgate: a log line (here, the SIGHUP one) does not kill it', { timeout: 60_000 }, async () => {
  const backend = await startEchoBackend('pipe');
  const s = startCli(['-f', writeConf(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${backend.port}/"\n`)]);
  try {
    const line = await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/);
    const port = Number(/:(\d+)$/.exec(line)![1]);
    s.child.stderr!.destroy();
    // Two log lines into the closed pipe, then check it still proxies.
    for (const signal of ['SIGHUP', 'SIGUSR1'] as const) {
      assert.equal(process.kill(s.child.pid!, signal), true);
      const ws = await openWs(`ws://127.0.0.1:${port}/ws/${signal}`);
      const payload = randomBytes(3000);
      assert.equal(sha256((await echo(ws, payload)).data), sha256(payload));
      await closeWs(ws);
    }
    assert.equal(process.kill(s.child.pid!, 'SIGTERM'), true);
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
  } finally {
    reap(s);
    await backend.close();
  }
});

test('every child process this file started has exited', () => {
  assert.equal(started.size, 0);
});

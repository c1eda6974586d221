// Reload and stop on the real `wsgate` process (issue 13, items 1, 2 and 4): a config rewritten
// under 200 live tunnels and loaded by SIGHUP keeps every tunnel of a route it still has (content
// checked), routes and ports follow the new file, the tunnels of a removed route end after
// GracefulShutdownTimeout with 1012 and a `reason=reload` line, a port in both configs refuses no
// connection throughout, and a broken file leaves the running config in force with its FILE:LINE.
// SIGTERM then drains: no new connections, a request under way is answered, the rest is closed
// (1001) at the grace time, exit 0. A second process: TLS certificates re-read, PidFile and
// `wsgate -k` (graceful, restart refused on a broken file, stop, and the cases with no process).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, test } from 'node:test';
import type { WebSocket } from 'ws';
import { makeCerts, type CertFiles } from '../helpers/certs';
import { countLines, reap, runCli, startCli, started, writeConf } from '../helpers/cli';
import { echo, eventually, openWs, randomBytes, sha256, startEchoBackend, type EchoBackend } from '../helpers/harness';

let one: EchoBackend;
let two: EchoBackend;

before(async () => {
  one = await startEchoBackend('one');
  two = await startEchoBackend('two');
});

after(async () => {
  await one.close();
  await two.close();
});

/** Opens `n` WebSockets to `url(i)`, a few at a time. */
async function openMany(n: number, url: (i: number) => string): Promise<WebSocket[]> {
  const out: WebSocket[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => openWs(url(i + j))));
    out.push(...batch);
  }
  return out;
}

/** Every socket echoes a fresh random payload, byte for byte. */
async function allEcho(list: readonly WebSocket[], what: string): Promise<void> {
  await Promise.all(
    list.map(async (ws, i) => {
      const payload = randomBytes(1500 + (i % 7) * 100);
      const got = await echo(ws, payload);
      assert.equal(sha256(got.data), sha256(payload), `${what} #${i} echoes`);
    }),
  );
}

/** Connects to `port` over and over until stopped; every connect that fails is kept with its error. */
function connectLoop(port: number): { stop(): Promise<{ ok: number; failures: string[] }> } {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  // Bounded on its own too: a test that fails before stop() must not leave it spinning.
  const until = Date.now() + 60_000;
  const loop = (async () => {
    while (running && failures.length < 100 && Date.now() < until) {
      const s = net.connect(port, '127.0.0.1');
      try {
        await once(s, 'connect');
        ok++;
      } catch (e) {
        failures.push((e as NodeJS.ErrnoException).code ?? String(e));
      } finally {
        s.destroy();
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failures };
    },
  };
}

function portOf(line: string): number {
  return Number(/:(\d+)$/.exec(line)![1]);
}

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

test('SIGHUP under 200 tunnels: kept routes keep every tunnel, a removed route ends by reload, ports follow; SIGTERM drains', {
  timeout: 90_000,
}, async () => {
  // An HTTP backend that answers after a while: a request under way when the stop begins.
  const slowSeen: (() => void)[] = [];
  const slow = http.createServer((_req, res) => {
    for (const f of slowSeen.splice(0)) f();
    setTimeout(() => res.end('slow answer'), 1000);
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  const slowPort = (slow.address() as net.AddressInfo).port;

  const file = writeConf(
    [
      'Listen 127.0.0.1:0',
      'GracefulShutdownTimeout 4',
      `ProxyPass "/gone/" "ws://127.0.0.1:${one.port}/"`,
      `ProxyPass "/keep/" "ws://127.0.0.1:${one.port}/"`,
      '',
    ].join('\n'),
  );
  const s = startCli(['-f', file]);
  const open: WebSocket[] = [];
  try {
    const port = portOf(await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/));
    const keep = await openMany(200, (i) => `ws://127.0.0.1:${port}/keep/${i}`);
    const gone = await openMany(5, (i) => `ws://127.0.0.1:${port}/gone/${i}`);
    open.push(...keep, ...gone);
    await allEcho(keep, 'kept tunnel before the reload');
    await allEcho(gone, 'tunnel of the removed route before the reload');
    const goneCloses = gone.map((ws) => once(ws, 'close') as Promise<[number, Buffer]>);
    const keepCloses = keep.map((ws) => once(ws, 'close') as Promise<[number, Buffer]>);

    // The new file: the port kept (by its number), one port added, /gone/ removed, /new/ added,
    // /keep/ moved to another line.
    writeFileSync(
      file,
      [
        `Listen 127.0.0.1:${port}`,
        'Listen 127.0.0.1:0',
        'GracefulShutdownTimeout 4',
        `ProxyPass "/slow" "http://127.0.0.1:${slowPort}/"`,
        `ProxyPass "/new/" "ws://127.0.0.1:${two.port}/"`,
        `ProxyPass "/keep/" "ws://127.0.0.1:${one.port}/"`,
        '',
      ].join('\n'),
    );
    const loop = connectLoop(port);
    await new Promise((r) => setTimeout(r, 100)); // the loop is under way before the signal
    process.kill(s.child.pid!, 'SIGHUP');
    const reloaded = await s.waitForStderr(/ info configuration reloaded cause=SIGHUP /);
    assert.match(reloaded, / listeners_kept=1 listeners_added=127\.0\.0\.1:\d+ tunnels_kept=200 tunnels_ending=5 grace_ms=4000 pid=\d+$/);
    const added = Number(/listeners_added=127\.0\.0\.1:(\d+)/.exec(reloaded)![1]);

    // Every kept tunnel still echoes; the removed route's tunnels too, until the grace time ends.
    await allEcho(keep, 'kept tunnel after the reload');
    await allEcho(gone, 'tunnel of the removed route within the grace time');
    // New connections follow the new file, on both ports.
    for (const p of [port, added]) {
      const ws = await openWs(`ws://127.0.0.1:${p}/new/on-${p}`);
      open.push(ws);
      await allEcho([ws], `new route on port ${p}`);
      assert.ok(
        two.upgrades.some((u) => u.url === `/on-${p}`),
        'the new route goes to its backend',
      );
      await assert.rejects(openWs(`ws://127.0.0.1:${p}/gone/after`), /unexpected response 404/);
    }

    // The removed route's tunnels end with 1012 and a close line that says why.
    for (const [code] of await Promise.all(goneCloses)) assert.equal(code, 1012);
    await eventually(
      () => countLines(s.stderr(), / info tunnel closed .* reason=reload /) === 5,
      10_000,
      `five reload close lines; the close lines were:\n${s
        .stderr()
        .split('\n')
        .filter((l) => / tunnel closed /.test(l))
        .join('\n')}`,
    );
    await allEcho(keep, 'kept tunnel after the grace time');

    // A broken file: refused with its FILE:LINE; the running config goes on unchanged.
    writeFileSync(file, `Listen 127.0.0.1:${port}\nGracefulShutdownTimeout 4\nProxyWebsocketIdleTimeout banana\n`);
    process.kill(s.child.pid!, 'SIGHUP');
    const refusedLine = await s.waitForStderr(/ error reload refused, the running configuration is kept: /);
    assert.ok(refusedLine.includes(`${file}:3: ProxyWebsocketIdleTimeout`), refusedLine);
    const after = await openWs(`ws://127.0.0.1:${added}/new/after-broken`);
    open.push(after);
    await allEcho([after], 'new route after the broken file');
    await allEcho(keep, 'kept tunnel after the broken file');

    const { ok, failures } = await loop.stop();
    assert.deepEqual(failures, [], 'no connect failed on the kept port during the reloads');
    assert.ok(ok > 0);
    assert.equal(countLines(s.stderr(), / info configuration reloaded /), 1);

    // Stop: a request under way is answered, no new connection is accepted, the tunnels get 1001
    // at the grace time, and the process exits 0.
    const seen = new Promise<void>((r) => slowSeen.push(r));
    const answer = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => `${r.status} ${await r.text()}`);
    await seen;
    const stopAt = Date.now();
    process.kill(s.child.pid!, 'SIGTERM');
    await s.waitForStderr(/ info stopping signal=SIGTERM tunnels=203 grace_ms=4000$/);
    assert.equal(await answer, '200 slow answer');
    for (let i = 0; !(await refused(port)); i++) {
      assert.ok(i < 100, 'the port stops accepting');
      await new Promise((r) => setTimeout(r, 20));
    }
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr());
    assert.ok(Date.now() - stopAt < 4000 + 10_000, 'exits within the grace time (and the close handshakes)');
    for (const [c] of await Promise.all(keepCloses)) assert.equal(c, 1001);
  } finally {
    for (const ws of open) ws.terminate();
    reap(s);
    slow.close();
  }
});

let certA: CertFiles;
let certB: CertFiles;

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The certificate the port shows a client (with SNI `servername`, or none). */
async function peerCertificate(port: number, servername?: string): Promise<string> {
  const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) });
  try {
    await once(s, 'secureConnect');
    return s.getPeerX509Certificate()!.fingerprint256;
  } finally {
    s.destroy();
  }
}

test('TLS certificates re-read by wsgate -k graceful; PidFile; -k restart refuses a broken file; -k stop; no process', {
  timeout: 60_000,
}, async () => {
  const certs = makeCerts();
  certA = certs.issue('reload-a', ['127.0.0.1', 'localhost']);
  certB = certs.issue('reload-b', ['127.0.0.1', 'localhost']);
  const confText = (cert: CertFiles): string =>
    [
      `PidFile "wsgate.pid"`,
      'Listen 127.0.0.1:0 https',
      'SSLEngine on',
      `SSLCertificateFile "${cert.cert}"`,
      `SSLCertificateKeyFile "${cert.key}"`,
      'GracefulShutdownTimeout 1',
      `ProxyPass "/ws/" "ws://127.0.0.1:${one.port}/"`,
      '',
    ].join('\n');
  const file = writeConf(confText(certA));
  const pidFile = path.join(path.dirname(file), 'wsgate.pid');
  const s = startCli(['-f', file]);
  let ws: WebSocket | undefined;
  try {
    const port = portOf(await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/));
    assert.equal(readFileSync(pidFile, 'utf8'), `${s.child.pid}\n`);
    ws = await openWs(`wss://127.0.0.1:${port}/ws/tls`, undefined, { rejectUnauthorized: false });
    await allEcho([ws], 'wss tunnel');
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    assert.equal(await peerCertificate(port), fingerprint(certA.certPem));
    assert.equal(await peerCertificate(port, 'localhost'), fingerprint(certA.certPem));

    writeFileSync(file, confText(certB));
    const graceful = await runCli(['-k', 'graceful', '-f', file]);
    assert.equal(graceful.code, 0, graceful.stderr);
    await s.waitForStderr(/ info configuration reloaded cause=SIGUSR1 .*tunnels_kept=1 tunnels_ending=0 pid=\d+$/);
    assert.equal(await peerCertificate(port), fingerprint(certB.certPem), 'a client without SNI sees the new certificate');
    assert.equal(await peerCertificate(port, 'localhost'), fingerprint(certB.certPem), 'so does one with SNI');
    await allEcho([ws], 'wss tunnel after the reload');

    // A broken file: -k restart says where and sends nothing.
    writeFileSync(file, `${confText(certB)}Bogus on\n`);
    const restart = await runCli(['-k', 'restart', '-f', file]);
    assert.equal(restart.code, 1);
    assert.match(restart.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8: `));
    writeFileSync(file, confText(certB));

    const stop = await runCli(['-k', 'stop', '-f', file]);
    assert.equal(stop.code, 0, stop.stderr);
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr());
    assert.equal((await closed)[0], 1001);
    assert.equal(countLines(s.stderr(), / info configuration reloaded /), 1, 'the broken file was never sent');
    assert.equal(existsSync(pidFile), false, 'the pid file is removed at exit');

    const again = await runCli(['-k', 'stop', '-f', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^wsgate -k stop: no wsgate is running \(PidFile .*wsgate\.pid does not exist\)\n$/);

    // A pid file left by a process that is gone.
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    writeFileSync(pidFile, `${dead.pid}\n`);
    const stale = await runCli(['-k', 'graceful', '-f', file]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, new RegExp(`names pid ${dead.pid}, which has exited without removing it: a stale file`));

    const noPid = await runCli(['-k', 'graceful', '-f', writeConf('Listen 127.0.0.1:0\n')]);
    assert.equal(noPid.code, 1);
    assert.match(noPid.stderr, /has no PidFile line, so the running wsgate cannot be found/);
  } finally {
    ws?.terminate();
    reap(s);
  }
});

test('logrotate: SIGUSR1 reopens the access log, so new lines go to a new file at the old path', { timeout: 30_000 }, async () => {
  const file = writeConf(
    ['Listen 127.0.0.1:0', `ProxyPass "/p/" "http://127.0.0.1:${one.port}/"`, 'CustomLog "access.log" "%>s %U"', ''].join('\n'),
  );
  const log = path.join(path.dirname(file), 'access.log');
  const s = startCli(['-f', file]);
  try {
    const port = portOf(await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/));
    const get = async (p: string): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${port}${p}`);
      await res.arrayBuffer();
    };
    await get('/p/before');
    await eventually(() => existsSync(log) && readFileSync(log, 'utf8').includes('/p/before'), 10_000, 'the first line');
    renameSync(log, `${log}.1`);
    s.child.kill('SIGUSR1');
    await s.waitForStderr(/ info configuration reloaded cause=SIGUSR1 /);
    await get('/p/after');
    await eventually(() => existsSync(log) && readFileSync(log, 'utf8').includes('/p/after'), 10_000, 'the line in the new file');
    assert.equal(readFileSync(log, 'utf8'), '200 /p/after\n');
    assert.equal(readFileSync(`${log}.1`, 'utf8'), '200 /p/before\n');
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
    reap(s);
  }
});

test('SIGTERM: readiness (SetHandler health) turns 503 first, tunnels go on until the grace time, then 1001 and exit 0', {
  timeout: 60_000,
}, async () => {
  const file = writeConf(
    [
      'Listen 127.0.0.1:0',
      'GracefulShutdownTimeout 3',
      `ProxyPass "/ws/" "ws://127.0.0.1:${one.port}/"`,
      '<Location "/healthz">',
      '  SetHandler health',
      '</Location>',
      '',
    ].join('\n'),
  );
  const s = startCli(['-f', file]);
  let probe: net.Socket | undefined;
  const open: WebSocket[] = [];
  try {
    const port = portOf(await s.waitForStderr(/ info listening address=127\.0\.0\.1:\d+$/));
    open.push(...(await openMany(3, (i) => `ws://127.0.0.1:${port}/ws/${i}`)));
    const closes = open.map((ws) => once(ws, 'close') as Promise<[number, Buffer]>);
    // The probe's keep-alive connection, as an orchestrator's checker keeps one.
    probe = net.connect(port, '127.0.0.1');
    await once(probe, 'connect');
    let got = '';
    probe.setEncoding('latin1').on('data', (d: string) => (got += d));
    const ask = async (): Promise<string> => {
      const from = got.length;
      probe!.write('GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n');
      await eventually(() => /\r\n\r\n[a-z]+\n$/.test(got.slice(from)), 10_000, 'the health answer');
      return got.slice(from);
    };
    assert.match(await ask(), /^HTTP\/1\.1 200 /);
    const stopAt = Date.now();
    process.kill(s.child.pid!, 'SIGTERM');
    await s.waitForStderr(/ info stopping signal=SIGTERM /);
    assert.match(await ask(), /^HTTP\/1\.1 503 [\s\S]*\r\n\r\ndraining\n$/, 'not ready while draining');
    // The tunnels still carry data while the probe says 503.
    await allEcho(open, 'tunnel during the drain');
    const { code, signal } = await s.exited;
    assert.equal(code, 0, `signal ${signal}\n${s.stderr()}`);
    for (const [c] of await Promise.all(closes)) assert.equal(c, 1001);
    assert.ok(Date.now() - stopAt >= 2500, 'the tunnels were closed at the grace time, not at once');
  } finally {
    probe?.destroy();
    for (const ws of open) ws.terminate();
    reap(s);
  }
});

test('every child process this file started has exited', () => {
  assert.equal(started.size, 0);
});

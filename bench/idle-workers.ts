// How many idle tunnels `wsgate -w N` holds, and the memory each costs (not in `npm test`: it
// takes a minute and most of the machine's descriptors).
//
//   npx tsc -p . && node dist/bench/idle-workers.js [--workers 4] [--tunnels 40000] [--settle 5]
//
// Every process on this machine may open 20,000 files, and a tunnel takes two of the proxy's (the
// client's connection and the backend's), so a single process stops near 10,000 tunnels; with
// workers each holds its share. The load is spread over processes so that none of them hits that
// limit first: one C echo backend per CLIENTS (bench/echo-backend.c, a route each) and one C load
// generator per CLIENTS (bench/loadgen.c idle mode, each from its own 127.0.0.x address so that
// 40,000 connections to one port do not run out of ephemeral ports). Each generator opens its
// share, checks one echo on every tunnel, and holds them; once all say so, the script reads the
// RSS and the open descriptors of every wsgate process, then stops everything.
// Prints one JSON object (also written to bench/out/idle-workers-<time>.json).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const BENCH = path.join(ROOT, 'bench');
const BUILD = path.join(BENCH, 'build');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

interface Options {
  workers: number;
  tunnels: number;
  clients: number;
  settle: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { workers: 4, tunnels: 40_000, clients: 4, settle: 5 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = Number(argv[++i]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
    if (a === '--workers') o.workers = v;
    else if (a === '--tunnels') o.tunnels = v;
    else if (a === '--clients') o.clients = v;
    else if (a === '--settle') o.settle = v;
    else throw new Error(`unknown option ${a} (--workers N --tunnels N --clients N --settle SECONDS)`);
  }
  return o;
}

function buildC(): void {
  fs.mkdirSync(BUILD, { recursive: true });
  for (const prog of ['loadgen', 'echo-backend']) {
    const libs = prog === 'loadgen' ? ['-lssl', '-lcrypto'] : []; // its TLS mode (unused here) links OpenSSL
    const r = spawnSync('gcc', ['-O2', '-Wall', '-o', path.join(BUILD, prog), path.join(BENCH, `${prog}.c`), ...libs], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`gcc ${prog}.c failed:\n${r.stderr}`);
  }
}

/** Resolves with the first match of `re` in what `stream` says (the text so far is kept in `seen`). */
function waitFor(stream: NodeJS.ReadableStream, re: RegExp, what: string, timeoutMs: number): Promise<RegExpExecArray> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms:\n${seen}`)), timeoutMs);
    const onData = (d: Buffer | string): void => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m === null) return;
      clearTimeout(timer);
      stream.removeListener('data', onData);
      resolve(m);
    };
    stream.on('data', onData);
  });
}

function children(pid: number): number[] {
  const t = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return t === '' ? [] : t.split(/\s+/).map(Number);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  buildC();
  const started: ChildProcess[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-idle-workers-'));
  try {
    // One backend per client process: each holds a share of the backend connections.
    const backendPorts: number[] = [];
    for (let i = 0; i < o.clients; i++) {
      const b = spawn(path.join(BUILD, 'echo-backend'), ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      started.push(b);
      backendPorts.push(Number((await waitFor(b.stdout!, /listening (\d+)/, 'backend port', 10_000))[1]));
    }
    const conf = path.join(tmp, 'wsgate.conf');
    fs.writeFileSync(conf, `Listen 127.0.0.1:0\n${backendPorts.map((p, i) => `ProxyPass "/b${i}/" "ws://127.0.0.1:${p}/"\n`).join('')}`);
    const gw = spawn(process.execPath, [CLI, '-f', conf, '-w', String(o.workers)], { stdio: ['ignore', 'ignore', 'pipe'] });
    started.push(gw);
    let log = '';
    gw.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const listening = new RegExp(`(?:info listening address=127\\.0\\.0\\.1:(\\d+)[^]*){${o.workers}}`);
    const port = Number((await waitFor(gw.stderr!, listening, `${o.workers} workers listening`, 60_000))[1]);
    const workers = children(gw.pid!);
    const tree = [gw.pid!, ...workers];
    const rssBefore = tree.reduce((s, p) => s + rssKb(p), 0);

    const t0 = Date.now();
    const per = Math.ceil(o.tunnels / o.clients);
    const gens = Array.from({ length: o.clients }, (_, i) => {
      const conns = Math.min(per, o.tunnels - i * per);
      const g = spawn(
        path.join(BUILD, 'loadgen'),
        ['idle', '--port', String(port), '--path', `/b${i}/`, '--src', `127.0.0.${2 + i}`, '--conns', String(conns)].concat([
          '--concurrency',
          '256',
          '--settle',
          '3600',
        ]),
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      started.push(g);
      let out = '';
      g.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const opened = waitFor(g.stderr!, /idle-open (\d+) (\d+)/, 'idle-open line', 300_000);
      const result = new Promise<Record<string, unknown>>((resolve) => g.once('exit', () => resolve(JSON.parse(out || '{}'))));
      return { g, conns, opened, result };
    });
    const opened = await Promise.all(gens.map((x) => x.opened));
    const openSeconds = (Date.now() - t0) / 1000;
    const live = opened.reduce((s, m) => s + Number(m[1]), 0);
    await new Promise((r) => setTimeout(r, o.settle * 1000));
    const rssAfter = tree.reduce((s, p) => s + rssKb(p), 0);
    const perWorker = workers.map((pid) => ({ pid, rssKb: rssKb(pid), openFiles: openFds(pid) }));
    const stillRunning = children(gw.pid!).join(' ') === workers.join(' ');
    for (const x of gens) x.g.kill('SIGTERM');
    const results = await Promise.all(gens.map((x) => x.result));
    const report = {
      workers: o.workers,
      tunnelsAsked: o.tunnels,
      tunnelsLive: live,
      failed: o.tunnels - live,
      openSeconds,
      rssKbBefore: rssBefore,
      rssKbAfter: rssAfter,
      kbPerTunnel: live > 0 ? Number(((rssAfter - rssBefore) / live).toFixed(2)) : null,
      perWorker,
      sameWorkersThroughout: stillRunning,
      openFileLimit: Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()),
      generators: results.map((r) => ({ live: r.live, errors: r.errors, error_messages: r.error_messages })),
      wsgateErrors: log
        .split('\n')
        .filter((l) => / (error|warn) /.test(l))
        .slice(0, 10),
    };
    const text = `${JSON.stringify(report, null, 2)}\n`;
    process.stdout.write(text);
    fs.mkdirSync(path.join(BENCH, 'out'), { recursive: true });
    fs.writeFileSync(path.join(BENCH, 'out', `idle-workers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), text);
  } finally {
    await Promise.all(started.reverse().map(stop));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});

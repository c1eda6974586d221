// `npm run soak`: many clients at once through one gateway, round after round — WebSocket tunnels
// opened, echoed (every message hash-checked) and closed, plain requests with bodies, and faults:
// backends that reset mid-tunnel, clients that read slowly, clients that vanish, tunnels cut by
// the idle limit. After every round, once everything has closed, the process's descriptors, open
// tunnels and connections, and heap (after a GC) are measured against the baseline taken after
// the first round; the run fails if they do not come back near it or if any hash differs.
// Seeded (the mix of jobs and their sizes) and bounded (--max-seconds). Not part of npm test.
//
//   npm run soak
//   npm run soak -- --seed 7 --rounds 20 --jobs 5000 --concurrency 200 --max-seconds 1800

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigFile } from '../src/config/load';
import { Gateway } from '../src/gateway';
import { webSocketAccept } from '../src/http/websocket-key';
import { createLogger } from '../src/observe/log';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i !== -1 ? process.argv[i + 1] : process.env[`WSGATE_SOAK_${name.toUpperCase().replace(/-/g, '_')}`];
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v)) {
    console.error(`soak: --${name} must be a whole number, got "${v}"`);
    process.exit(2);
  }
  return Number(v);
}

const SEED = arg('seed', 0x50a4);
const ROUNDS = arg('rounds', 12);
const JOBS = arg('jobs', 2500);
const CONCURRENCY = arg('concurrency', 200);
const MAX_SECONDS = arg('max-seconds', 600);
/** How far the measures may drift from the baseline: descriptors (count), heap (fraction and bytes). */
const FD_SLACK = 8;
const HEAP_SLACK = 0.1;
const HEAP_SLACK_BYTES = 4 * 1024 * 1024;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('soak: run with node --expose-gc (npm run soak does)');
  process.exit(2);
}

/** mulberry32: the same sequence for the same seed everywhere. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- backends ------------------------------------------------------------------------------------

interface Backends {
  echo: number;
  reset: number;
  raw: number;
  http: number;
  close(): Promise<void>;
}

async function listen(server: net.Server | http.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function startBackends(): Promise<Backends> {
  // WebSocket echo.
  const echoHttp = http.createServer();
  const wss = new WebSocketServer({ server: echoHttp, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  wss.on('connection', (ws) => {
    ws.on('message', (d, isBinary) => ws.send(d as Buffer, { binary: isBinary }));
    ws.on('error', () => {});
  });
  // A backend that echoes the first message and then resets its connection (RST).
  const resetHttp = http.createServer();
  const rss = new WebSocketServer({ server: resetHttp, perMessageDeflate: false });
  rss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    ws.once('message', (d, isBinary) => {
      ws.send(d as Buffer, { binary: isBinary }, () => (req.socket as net.Socket).resetAndDestroy());
    });
  });
  // A raw `echo` upgrade backend (bytes back as they come, with backpressure both ways).
  const raw = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    const onHead = (c: Buffer): void => {
      head = Buffer.concat([head, c]);
      const i = head.indexOf('\r\n\r\n');
      if (i === -1) return;
      s.removeListener('data', onHead);
      const text = head.toString('latin1', 0, i);
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(text)?.[1];
      s.write(
        key === undefined
          ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n'
          : `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`,
      );
      const rest = head.subarray(i + 4);
      if (rest.length > 0) s.write(rest);
      s.pipe(s);
    };
    s.on('data', onHead);
  });
  // Plain HTTP: answers the sha256 of the request body.
  const plain = http.createServer((req, res) => {
    const h = createHash('sha256');
    req.on('data', (c: Buffer) => h.update(c));
    req.on('end', () => {
      const body = h.digest('hex');
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
  });
  plain.keepAliveTimeout = 2000;
  const ports = { echo: await listen(echoHttp), reset: await listen(resetHttp), raw: await listen(raw), http: await listen(plain) };
  return {
    ...ports,
    async close() {
      for (const w of [...wss.clients, ...rss.clients]) w.terminate();
      wss.close();
      rss.close();
      for (const s of [echoHttp, resetHttp, plain]) s.closeAllConnections();
      await Promise.all([echoHttp, resetHttp, raw, plain].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

// --- jobs ----------------------------------------------------------------------------------------

interface Tally {
  jobs: number;
  messages: number;
  plain: number;
  bytes: number;
  mismatches: string[];
  faults: Record<string, number>;
  errors: string[];
}

const newTally = (): Tally => ({ jobs: 0, messages: 0, plain: 0, bytes: 0, mismatches: [], faults: {}, errors: [] });

function bump(t: Tally, kind: string): void {
  t.faults[kind] = (t.faults[kind] ?? 0) + 1;
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

function wsEcho(ws: WebSocket, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error('closed before the echo'));
    ws.once('close', onClose);
    ws.once('message', (d) => {
      ws.removeListener('close', onClose);
      resolve(d as Buffer);
    });
    ws.send(data, { binary: true });
  });
}

function closed(ws: WebSocket, ms: number): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no close within ${ms} ms`)), ms);
    ws.once('close', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** A WebSocket tunnel: a few messages of random sizes echoed and hash-checked, then a clean close. */
async function jobEcho(port: number, r: () => number, t: Tally): Promise<void> {
  const ws = await openWs(`ws://127.0.0.1:${port}/ws/echo`);
  ws.on('error', () => {});
  const n = 1 + Math.floor(r() * 6);
  for (let i = 0; i < n; i++) {
    const data = randomBytes(1 + Math.floor(r() * r() * 256 * 1024));
    const back = await wsEcho(ws, data);
    t.messages++;
    t.bytes += data.length;
    if (sha(back) !== sha(data)) t.mismatches.push(`echo: ${data.length} bytes`);
  }
  ws.close(1000);
  await closed(ws, 10_000);
}

/** A plain POST with a random body on a fresh connection; the backend answers the body's hash. */
function jobPlain(port: number, r: () => number, t: Tally): Promise<void> {
  const body = randomBytes(Math.floor(r() * 128 * 1024));
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/plain/p', agent: false, headers: { 'content-length': body.length } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          t.bytes += body.length;
          t.plain++;
          if (res.statusCode !== 200 || Buffer.concat(parts).toString() !== sha(body)) t.mismatches.push(`plain: ${res.statusCode}`);
          resolve();
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The backend resets after one echo: the client must get a close frame (1011), not a dead socket. */
async function jobReset(port: number, t: Tally): Promise<void> {
  const ws = await openWs(`ws://127.0.0.1:${port}/reset/`);
  ws.on('error', () => {});
  const data = randomBytes(1000);
  const back = await wsEcho(ws, data);
  if (sha(back) !== sha(data)) t.mismatches.push('reset: first echo');
  const code = await closed(ws, 10_000);
  bump(t, `backend reset → close ${code}`);
}

/** A slow reader: 512 KB through a raw echo tunnel, read in small sips with pauses (backpressure all the way). */
async function jobSlowReader(port: number, r: () => number, t: Tally): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  const data = randomBytes(256 * 1024 + Math.floor(r() * 256 * 1024));
  s.write('GET /raw/slow HTTP/1.1\r\nHost: soak\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
  let got = Buffer.alloc(0);
  let headEnd = -1;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('slow reader: stalled')), 60_000);
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (headEnd === -1) {
        const i = got.indexOf('\r\n\r\n');
        if (i === -1) return;
        headEnd = i + 4;
        s.write(data);
      }
      // Sip: stop reading for a moment after each chunk.
      s.pause();
      setTimeout(() => s.resume(), 2);
      if (got.length - headEnd >= data.length) {
        clearTimeout(timer);
        resolve();
      }
    });
    s.once('close', () => reject(new Error('slow reader: closed')));
  });
  await done;
  t.bytes += data.length;
  if (sha(got.subarray(headEnd)) !== sha(data)) t.mismatches.push('slow reader');
  bump(t, 'slow reader');
  s.destroy();
}

/** A client that vanishes mid-tunnel (no close frame, no FIN: a reset). */
async function jobVanish(port: number, t: Tally): Promise<void> {
  const ws = await openWs(`ws://127.0.0.1:${port}/ws/vanish`);
  ws.on('error', () => {});
  await wsEcho(ws, randomBytes(2000));
  (ws as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
  bump(t, 'client vanished');
}

/** A tunnel left silent past ProxyWebsocketIdleTimeout: closed by the gateway (1001). */
async function jobIdle(port: number, t: Tally): Promise<void> {
  const ws = await openWs(`ws://127.0.0.1:${port}/idle/`);
  ws.on('error', () => {});
  const code = await closed(ws, 15_000);
  bump(t, `idle limit → close ${code}`);
}

interface Ports {
  main: number;
  idle: number;
}

async function runJob(ports: Ports, r: () => number, t: Tally): Promise<void> {
  const port = ports.main;
  const x = r();
  try {
    if (x < 0.55) await jobEcho(port, r, t);
    else if (x < 0.75) await jobPlain(port, r, t);
    else if (x < 0.83) await jobReset(port, t);
    else if (x < 0.9) await jobSlowReader(port, r, t);
    else if (x < 0.96) await jobVanish(port, t);
    else await jobIdle(ports.idle, t);
  } catch (e) {
    t.errors.push((e as Error).message);
  }
  t.jobs++;
}

async function runRound(ports: Ports, r: () => number, jobs: number): Promise<Tally> {
  const t = newTally();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs) {
      next++;
      await runJob(ports, r, t);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, jobs) }, worker));
  return t;
}

// --- measures ------------------------------------------------------------------------------------

interface Measure {
  fds: number;
  tunnels: number;
  connections: number;
  heap: number;
  rss: number;
}

async function settle(gs: Gateway[]): Promise<Measure> {
  const tunnels = (): number => gs.reduce((n, g) => n + g.tunnels.size, 0);
  const connections = (): number => gs.reduce((n, g) => n + g.openConnections(), 0);
  // Everything the round opened must close: wait for the gateways to have nothing open.
  const until = Date.now() + 30_000;
  while ((tunnels() > 0 || connections() > 0) && Date.now() < until) await sleep(50);
  // Keep-alive sockets to the backends and sockets in their last close steps.
  await sleep(2500);
  for (let i = 0; i < 3; i++) {
    gc!();
    await sleep(50);
  }
  const m = process.memoryUsage();
  return { fds: readdirSync('/proc/self/fd').length, tunnels: tunnels(), connections: connections(), heap: m.heapUsed, rss: m.rss };
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const started = Date.now();
  const backends = await startBackends();
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-soak-'));
  const file = path.join(dir, 'soak.conf');
  writeFileSync(
    file,
    [
      'Listen 127.0.0.1:0',
      `ProxyPass /ws/ ws://127.0.0.1:${backends.echo}/`,
      `ProxyPass /reset/ ws://127.0.0.1:${backends.reset}/`,
      `ProxyPass /raw/ http://127.0.0.1:${backends.raw}/ upgrade=echo`,
      `ProxyPass /plain/ http://127.0.0.1:${backends.http}/`,
      '',
    ].join('\n'),
  );
  // The idle limit is a server setting: a second gateway has it, for the idle jobs.
  const idleFile = path.join(dir, 'idle.conf');
  writeFileSync(idleFile, `Listen 127.0.0.1:0\nProxyWebsocketIdleTimeout 1\nProxyPass /idle/ ws://127.0.0.1:${backends.echo}/\n`);
  const quiet = { log: createLogger({ level: 'warn', sink: () => {} }) };
  const g = new Gateway(loadConfigFile(file), quiet);
  const gIdle = new Gateway(loadConfigFile(idleFile), quiet);
  const [bound] = await g.start();
  const [idleBound] = await gIdle.start();
  const gateways = [g, gIdle];
  const r = rng(SEED);
  console.log(`soak: seed ${SEED}, ${ROUNDS} rounds of ${JOBS} jobs, ${CONCURRENCY} at a time, at most ${MAX_SECONDS} s`);
  const total = newTally();
  let baseline: Measure | undefined;
  let last: Measure | undefined;
  const drift: string[] = [];
  let rounds = 0;
  for (let round = 0; round < ROUNDS; round++) {
    if ((Date.now() - started) / 1000 > MAX_SECONDS) {
      console.log(`soak: stopping after ${rounds} rounds (--max-seconds ${MAX_SECONDS})`);
      break;
    }
    const t0 = Date.now();
    const t = await runRound({ main: bound.port, idle: idleBound.port }, r, JOBS);
    const m = await settle(gateways);
    rounds++;
    total.jobs += t.jobs;
    total.messages += t.messages;
    total.plain += t.plain;
    total.bytes += t.bytes;
    total.mismatches.push(...t.mismatches);
    total.errors.push(...t.errors);
    for (const [k, v] of Object.entries(t.faults)) total.faults[k] = (total.faults[k] ?? 0) + v;
    // Round 0 warms up (JIT, pools, the engine's buffers): the baseline is taken after it.
    baseline ??= m;
    last = m;
    const heapLimit = Math.max(baseline.heap * (1 + HEAP_SLACK), baseline.heap + HEAP_SLACK_BYTES);
    const bad: string[] = [];
    if (m.fds > baseline.fds + FD_SLACK) bad.push(`fds ${m.fds} > ${baseline.fds}+${FD_SLACK}`);
    if (m.tunnels !== 0) bad.push(`${m.tunnels} tunnels open`);
    if (m.connections !== 0) bad.push(`${m.connections} connections open`);
    if (m.heap > heapLimit) bad.push(`heap ${mb(m.heap)} > ${mb(heapLimit)}`);
    drift.push(...bad.map((b) => `round ${round}: ${b}`));
    console.log(
      `round ${round}: ${t.jobs} jobs in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${t.messages} echoes, ${mb(t.bytes)}; ` +
        `fds ${m.fds}, tunnels ${m.tunnels}, connections ${m.connections}, heap ${mb(m.heap)}, rss ${mb(m.rss)}; ` +
        `mismatches ${t.mismatches.length}, errors ${t.errors.length}${bad.length > 0 ? ` — ${bad.join(', ')}` : ''}`,
    );
  }
  await g.stop();
  await gIdle.stop();
  await backends.close();
  const errorKinds = new Map<string, number>();
  for (const e of total.errors) errorKinds.set(e, (errorKinds.get(e) ?? 0) + 1);
  console.log('\nsoak summary');
  console.log(`  seed ${SEED}; ${rounds} rounds, ${total.jobs} jobs in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(
    `  ${total.messages} WebSocket echoes, ${total.plain} plain request bodies, ${mb(total.bytes)} hash-checked; mismatches: ${total.mismatches.length}`,
  );
  console.log(
    `  faults: ${Object.entries(total.faults)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ')}`,
  );
  console.log(`  baseline (after round 0): fds ${baseline?.fds}, heap ${mb(baseline?.heap ?? 0)}, rss ${mb(baseline?.rss ?? 0)}`);
  console.log(
    `  last round: fds ${last?.fds}, heap ${mb(last?.heap ?? 0)}, rss ${mb(last?.rss ?? 0)} (rss is reported, not checked: the allocator keeps pages)`,
  );
  console.log(`  job errors: ${total.errors.length}${[...errorKinds].map(([k, v]) => `\n    ${v} × ${k}`).join('')}`);
  console.log(`  drift from the baseline: ${drift.length === 0 ? 'none' : drift.join('; ')}`);
  const ok = total.mismatches.length === 0 && drift.length === 0 && total.errors.length === 0;
  console.log(ok ? 'soak: passed' : 'soak: FAILED');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

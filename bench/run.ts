// wsgate benchmark driver (`npm run bench [-- --quick] [-- --only wsgate,nginx]`).
//
// Builds the C load generator and echo backend into bench/build/, then for each target
// (direct, wsgate, wsgate with its WebSocket frame tracker off, wsgate with TLS in its engine, a bare Node pipe() tunnel, npm http-proxy, nginx and HAProxy when
// installed) and each scenario starts a fresh echo backend and a fresh proxy, pins the proxy
// to CPU 0 and the load generator + backend (and this driver) to CPU 1, and runs the load
// generator. The load generator samples /proc/PID/stat of the proxy's process tree at the
// edges of each measured window, so the CPU counted and the work counted cover the same
// interval. The tls-* scenarios are the same loads with TLS 1.3 between the load generator and
// the proxy (the proxy terminates it and speaks plain ws:// to the backend). Prints a table for
// plain and one for TLS and writes bench/out/results-<timestamp>.json.
// See docs/performance.md for the method.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';

const ROOT = path.resolve(__dirname, '..', '..');
const BENCH = path.join(ROOT, 'bench');
const BUILD = path.join(BENCH, 'build');
const OUT = path.join(BENCH, 'out');
const HOST = '127.0.0.1';
const PROXY_CPU = '0';
const LOAD_CPU = '1';
/** The server name the load generator sends (SNI) and the bench certificate is made for. */
const SNI = 'bench.test';

// ------------------------------------------------------------------ options
interface Options {
  quick: boolean;
  only: string[] | null;
  scenarios: string[] | null;
  keepTmp: boolean;
  idleTunnels: number | null;
  nice: number | null;
  retry: boolean;
  render: string | null;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    only: null,
    scenarios: null,
    keepTmp: false,
    idleTunnels: null,
    nice: null,
    retry: true,
    render: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`missing value for ${a}`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--only'))
      o.only = val()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (a.startsWith('--scenarios'))
      o.scenarios = val()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (a.startsWith('--tunnels')) o.idleTunnels = Number(val());
    else if (a === '--keep-tmp') o.keepTmp = true;
    else if (a.startsWith('--nice')) o.nice = Number(val());
    else if (a === '--no-retry') o.retry = false;
    else if (a.startsWith('--render')) o.render = val();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: npm run bench -- [--quick]\n' +
          '                       [--only direct,wsgate,wsgate-notrack,wsgate-native-tls,pipe,http-proxy,nginx,haproxy]\n' +
          '                       [--scenarios echo64,echo16k,handshake,idle,rate,tls-echo64,tls-echo16k,tls-handshake,tls-idle,tls-rate]\n' +
          '                       [--tunnels N] [--keep-tmp]\n' +
          '                       [--nice N] [--no-retry]\n' +
          '  --nice N     run proxy, backend and load generator at niceness N (e.g. -10, root only) so\n' +
          '               that other work on a shared machine disturbs the figures less\n' +
          '  --no-retry   do not rerun a scenario whose windows were contended by other processes\n' +
          '  --render F   print the table (text and markdown) of a results JSON again, runs nothing\n',
      );
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return o;
}

// ------------------------------------------------------------------ processes we started
interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  descendants: number[];
  exited: boolean;
  exitInfo: string;
  logFile: string | null;
}

const live = new Set<Proc>();
let hasTaskset = false;
let niceness: number | null = null;

function pinned(cpu: string, cmd: string, args: string[]): [string, string[]] {
  let [c, a] = hasTaskset ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];
  if (niceness !== null) [c, a] = ['nice', ['-n', String(niceness), c, ...a]];
  return [c, a];
}

function startProc(name: string, cpu: string, cmd: string, args: string[], logFile: string | null, env?: NodeJS.ProcessEnv): Proc {
  const [c, a] = pinned(cpu, cmd, args);
  const fd = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(c, a, { stdio: ['ignore', logFile ? fd : 'pipe', logFile ? fd : 'pipe'], env: env ?? process.env });
  if (typeof fd === 'number') fs.closeSync(fd);
  const p: Proc = { name, child, pid: child.pid ?? -1, descendants: [], exited: false, exitInfo: '', logFile };
  child.on('exit', (code, sig) => {
    p.exited = true;
    p.exitInfo = sig ? `killed by ${sig}` : `exited with ${code}`;
    live.delete(p);
  });
  child.on('error', (e) => {
    p.exited = true;
    p.exitInfo = `could not start: ${e.message}`;
    live.delete(p);
  });
  if (p.pid > 0) live.add(p);
  return p;
}

/** Children (recursively) of pid, from /proc. */
function descendantsOf(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(rest[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift() as number;
    for (const [c, pp] of parent)
      if (pp === p) {
        out.push(c);
        queue.push(c);
      }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stopProc(p: Proc, graceMs = 3000): Promise<void> {
  if (!p.exited && p.pid > 0) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const t0 = Date.now();
    while (!p.exited && Date.now() - t0 < graceMs) await sleep(20);
    if (!p.exited) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      const t1 = Date.now();
      while (!p.exited && Date.now() - t1 < 2000) await sleep(20);
    }
  }
  for (const d of p.descendants)
    if (alive(d)) {
      try {
        process.kill(d, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  live.delete(p);
}

function killAllSync(): void {
  for (const p of live) {
    for (const pid of [p.pid, ...p.descendants]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  live.clear();
}

function tail(file: string | null, n = 6): string {
  if (!file) return '';
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ');
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ helpers
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** One WebSocket upgrade through host:port (over TLS if asked); resolves null on 101, else a reason. */
function probeUpgrade(port: number, overTls: boolean, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const finish = (r: string | null): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(r);
    };
    const hello = (): void => {
      sock.write(
        `GET / HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    };
    // the bench certificate is self-signed: not verified here, as the load generator does not
    const sock = overTls
      ? tls.connect({ host: HOST, port, servername: SNI, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, hello)
      : net.connect({ host: HOST, port }, hello);
    sock.setTimeout(timeoutMs, () => finish('no answer'));
    sock.on('error', (e) => finish(e.message));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n\r\n');
      if (i >= 0) {
        const line = buf.slice(0, buf.indexOf('\r\n'));
        finish(/^HTTP\/1\.1 101/.test(line) ? null : `answered "${line}"`);
      }
    });
    sock.on('end', () => finish('closed without answering'));
  });
}

function which(bin: string, extra: string[] = []): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (!dir) continue;
    const f = path.join(dir, bin);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {
      /* next */
    }
  }
  return null;
}

function cmdOut(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

// ------------------------------------------------------------------ build
function buildC(): void {
  fs.mkdirSync(BUILD, { recursive: true });
  for (const prog of ['loadgen', 'echo-backend']) {
    const src = path.join(BENCH, `${prog}.c`);
    const out = path.join(BUILD, prog);
    // the load generator's TLS mode uses the system OpenSSL (libssl-dev)
    const libs = prog === 'loadgen' ? ['-lssl', '-lcrypto'] : [];
    const r = spawnSync('gcc', ['-O2', '-Wall', '-o', out, src, ...libs], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new Error(
        `gcc ${prog}.c failed${/openssl/.test(r.stderr) ? ' (OpenSSL headers missing? bash bench/setup.sh)' : ''}:\n${r.stderr}`,
      );
  }
}

/** The TLS scenarios' certificate: EC P-256, self-signed, made with the openssl command. */
function makeCert(tmp: string): CertFiles {
  const cert = path.join(tmp, 'bench-cert.pem');
  const key = path.join(tmp, 'bench-key.pem');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'];
  args.push('-keyout', key, '-out', cert, '-subj', `/CN=${SNI}`, '-addext', `subjectAltName=DNS:${SNI}`);
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr || r.error?.message}`);
  // HAProxy's crt takes the certificate and its key in one file
  const both = path.join(tmp, 'bench-cert-key.pem');
  fs.writeFileSync(both, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'));
  return { cert, key, both };
}

// ------------------------------------------------------------------ targets
interface CertFiles {
  cert: string;
  key: string;
  /** certificate then key, one file */
  both: string;
}

interface Ctx {
  tmp: string;
  backendPort: number;
  port: number;
  tag: string;
  /** set for the tls-* scenarios: the proxy terminates TLS with these files */
  tls: CertFiles | null;
}

interface Target {
  name: string;
  /** which scenarios it runs: plain ws:// ones, the tls-* ones, or both */
  fronts: readonly ('plain' | 'tls')[];
  /** why it cannot run at all, or null */
  unavailable(): string | null;
  /** starts the proxy (null for direct) */
  start(ctx: Ctx): Proc | null;
  version(): string;
}

const nodeBin = process.execPath;
const nginxBin = which('nginx', ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']);
const haproxyBin = which('haproxy', ['/usr/sbin', '/usr/local/sbin']);
const wsgateCli = path.join(ROOT, 'dist', 'src', 'cli.js');

/** wsgate's generated config: one Listen and one ProxyPass; on TLS runs an https port with the
 *  bench certificate, TLS 1.3 only, no tickets, X25519 (as nginx and HAProxy are set up). */
function wsgateConf(ctx: Ctx): string {
  const lines = ['# generated by bench/run.ts'];
  if (ctx.tls)
    lines.push(
      `Listen ${HOST}:${ctx.port} https`,
      'SSLEngine on',
      `SSLCertificateFile ${ctx.tls.cert}`,
      `SSLCertificateKeyFile ${ctx.tls.key}`,
      'SSLProtocol -all +TLSv1.3',
      'SSLSessionTickets off',
      'SSLOpenSSLConfCmd Curves X25519',
    );
  else lines.push(`Listen ${HOST}:${ctx.port}`);
  lines.push(`ProxyPass / ws://${HOST}:${ctx.backendPort}/`);
  return `${lines.join('\n')}\n`;
}

const BOTH = ['plain', 'tls'] as const;
const PLAIN = ['plain'] as const;

const TARGETS: Target[] = [
  {
    name: 'direct',
    fronts: PLAIN,
    unavailable: () => null,
    start: () => null,
    version: () => 'no proxy',
  },
  {
    // on TLS runs: Node's TLS (WSGATE_NATIVE_TLS=0)
    name: 'wsgate',
    fronts: BOTH,
    unavailable: () => (fs.existsSync(wsgateCli) ? null : 'dist/src/cli.js not built'),
    start: (ctx) => {
      const conf = path.join(ctx.tmp, `wsgate-${ctx.tag}.conf`);
      fs.writeFileSync(conf, wsgateConf(ctx));
      const env = ctx.tls ? { ...process.env, WSGATE_NATIVE_TLS: '0' } : undefined;
      return startProc('wsgate', PROXY_CPU, nodeBin, [wsgateCli, '-f', conf], path.join(ctx.tmp, `wsgate-${ctx.tag}.log`), env);
    },
    version: () => {
      try {
        return `wsgate ${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version} on node ${process.version}`;
      } catch {
        return 'wsgate';
      }
    },
  },
  {
    // wsgate with its WebSocket frame tracker off (WSGATE_WS_TRACK=0): what the tracker costs.
    name: 'wsgate-notrack',
    fronts: PLAIN,
    unavailable: () => (fs.existsSync(wsgateCli) ? null : 'dist/src/cli.js not built'),
    start: (ctx) => {
      const conf = path.join(ctx.tmp, `wsgate-notrack-${ctx.tag}.conf`);
      fs.writeFileSync(conf, `# generated by bench/run.ts\nListen ${HOST}:${ctx.port}\nProxyPass / ws://${HOST}:${ctx.backendPort}/\n`);
      return startProc('wsgate-notrack', PROXY_CPU, nodeBin, [wsgateCli, '-f', conf], path.join(ctx.tmp, `wsgate-notrack-${ctx.tag}.log`), {
        ...process.env,
        WSGATE_WS_TRACK: '0',
      });
    },
    version: () => `the wsgate above with WSGATE_WS_TRACK=0`,
  },
  {
    // wsgate whose engine terminates TLS (WSGATE_NATIVE_TLS=1; docs/architecture.md "TLS in the engine")
    name: 'wsgate-native-tls',
    fronts: ['tls'],
    unavailable: () => (fs.existsSync(wsgateCli) ? null : 'dist/src/cli.js not built'),
    start: (ctx) => {
      const conf = path.join(ctx.tmp, `wsgate-native-tls-${ctx.tag}.conf`);
      fs.writeFileSync(conf, wsgateConf(ctx));
      return startProc(
        'wsgate-native-tls',
        PROXY_CPU,
        nodeBin,
        [wsgateCli, '-f', conf],
        path.join(ctx.tmp, `wsgate-native-tls-${ctx.tag}.log`),
        { ...process.env, WSGATE_NATIVE_TLS: '1' },
      );
    },
    version: () => `the wsgate above with WSGATE_NATIVE_TLS=1`,
  },
  {
    name: 'pipe',
    fronts: PLAIN,
    unavailable: () => null,
    start: (ctx) =>
      startProc(
        'pipe',
        PROXY_CPU,
        nodeBin,
        [path.join(__dirname, 'pipe-proxy.js'), '--listen', String(ctx.port), '--target', String(ctx.backendPort)],
        path.join(ctx.tmp, `pipe-${ctx.tag}.log`),
      ),
    version: () => `node ${process.version} net + stream.pipe()`,
  },
  {
    name: 'http-proxy',
    fronts: PLAIN,
    unavailable: () => {
      try {
        require.resolve('http-proxy');
        return null;
      } catch {
        return 'npm http-proxy not installed (npm i)';
      }
    },
    start: (ctx) =>
      startProc(
        'http-proxy',
        PROXY_CPU,
        nodeBin,
        [path.join(__dirname, 'http-proxy-server.js'), '--listen', String(ctx.port), '--target', String(ctx.backendPort)],
        path.join(ctx.tmp, `http-proxy-${ctx.tag}.log`),
      ),
    version: () => {
      try {
        return `http-proxy ${JSON.parse(fs.readFileSync(require.resolve('http-proxy/package.json'), 'utf8')).version} on node ${process.version}`;
      } catch {
        return 'http-proxy';
      }
    },
  },
  {
    name: 'nginx',
    fronts: BOTH,
    unavailable: () => (nginxBin ? null : 'nginx not installed (bash bench/setup.sh)'),
    start: (ctx) => {
      const dir = path.join(ctx.tmp, `nginx-${ctx.tag}`);
      fs.mkdirSync(dir, { recursive: true });
      const user = process.getuid && process.getuid() === 0 ? 'user root;\n' : '';
      // TLS 1.3 only, X25519, no tickets and no session cache: every handshake is a full one
      const ssl = ctx.tls
        ? `
    ssl_certificate ${ctx.tls.cert};
    ssl_certificate_key ${ctx.tls.key};
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519;
    ssl_session_tickets off;
    ssl_session_cache off;`
        : '';
      const conf = `# generated by bench/run.ts
${user}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 24000; }  # > 2 × 9,950 tunnels + 1/16 spare, else nginx starts reusing connections
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen ${HOST}:${ctx.port}${ctx.tls ? ' ssl' : ''} backlog=4096;${ssl}
    location / {
      proxy_pass http://${HOST}:${ctx.backendPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      # upgraded connections relay through proxy_buffer_size buffers (default one page):
      # 16k as an operator tuning for WebSocket traffic would set it
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`;
      fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
      return startProc(
        'nginx',
        PROXY_CPU,
        nginxBin as string,
        ['-p', dir, '-e', `${dir}/error.log`, '-c', path.join(dir, 'nginx.conf')],
        path.join(dir, 'stderr.log'),
      );
    },
    version: () => (nginxBin ? cmdOut(nginxBin, ['-v']).replace(/^nginx version: /, '') : ''),
  },
  {
    name: 'haproxy',
    fronts: BOTH,
    unavailable: () => (haproxyBin ? null : 'haproxy not installed (bash bench/setup.sh)'),
    start: (ctx) => {
      const dir = path.join(ctx.tmp, `haproxy-${ctx.tag}`);
      fs.mkdirSync(dir, { recursive: true });
      // TLS 1.3 only, X25519, no tickets and no session cache: every handshake is a full one
      const ssl = ctx.tls ? ` ssl crt ${ctx.tls.both} ssl-min-ver TLSv1.3 no-tls-tickets curves X25519` : '';
      const conf = `# generated by bench/run.ts
global
  nbthread 1
  maxconn 9980
  pidfile ${dir}/haproxy.pid${ctx.tls ? '\n  tune.ssl.cachesize 0' : ''}
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout tunnel 1h
frontend fe
  bind ${HOST}:${ctx.port}${ssl}
  default_backend be
backend be
  server s1 ${HOST}:${ctx.backendPort}
`;
      fs.writeFileSync(path.join(dir, 'haproxy.cfg'), conf);
      return startProc(
        'haproxy',
        PROXY_CPU,
        haproxyBin as string,
        ['-db', '-f', path.join(dir, 'haproxy.cfg')],
        path.join(dir, 'stderr.log'),
      );
    },
    version: () => (haproxyBin ? (cmdOut(haproxyBin, ['-v']).split('\n')[0] ?? '').replace(/^HAProxy version /, '') : ''),
  },
];

// ------------------------------------------------------------------ scenarios
interface Scenario {
  id: string;
  mode: 'echo' | 'rate' | 'handshake' | 'idle';
  /** TLS between the load generator and the proxy (the tls-* copies of the plain scenarios) */
  tls: boolean;
  args: string[];
  /** bound for the load generator, seconds */
  limit: number;
}

function scenarios(o: Options): Scenario[] {
  const q = o.quick;
  const warm = q ? 0.3 : 2;
  const dur = q ? 0.5 : 2;
  const reps = q ? 2 : 5;
  const timing = (w: number, d: number, r: number): string[] => ['--warmup', String(w), '--duration', String(d), '--reps', String(r)];
  const tunnels = o.idleTunnels ?? (q ? 1000 : 9950);
  const plain: Omit<Scenario, 'tls'>[] = [
    {
      id: 'echo64',
      mode: 'echo',
      args: ['--conns', '100', '--inflight', '16', '--size', '64', ...timing(warm, dur, reps)],
      limit: warm + dur * reps + 40,
    },
    {
      id: 'echo16k',
      mode: 'echo',
      args: ['--conns', '50', '--inflight', '4', '--size', '16384', ...timing(warm, dur, reps)],
      limit: warm + dur * reps + 40,
    },
    { id: 'handshake', mode: 'handshake', args: ['--concurrency', '64', ...timing(warm, dur, reps)], limit: warm + dur * reps + 40 },
    { id: 'idle', mode: 'idle', args: ['--conns', String(tunnels), '--settle', q ? '0.5' : '3'], limit: 180 },
    {
      id: 'rate',
      mode: 'rate',
      args: ['--conns', '100', '--rate', '100', '--size', '64', ...timing(warm, q ? 1 : 3, reps)],
      limit: warm + (q ? 1 : 3) * reps + 40,
    },
  ];
  // the same loads over TLS; opening idle tunnels takes a full TLS handshake each
  const list: Scenario[] = [
    ...plain.map((s) => ({ ...s, tls: false })),
    ...plain.map((s) => ({ ...s, id: `tls-${s.id}`, tls: true, limit: s.limit + (s.mode === 'idle' ? 60 : 0) })),
  ];
  if (o.scenarios) for (const id of o.scenarios) if (!list.some((s) => s.id === id)) throw new Error(`unknown scenario ${id}`);
  return o.scenarios ? list.filter((s) => o.scenarios?.includes(s.id)) : list;
}

// ------------------------------------------------------------------ load generator
interface PS {
  cpu_us: number;
  sched_us: number;
  wait_us?: number;
  minflt: number;
  majflt: number;
  rss_kb_start: number;
  rss_kb_end: number;
  procs: number;
}
interface Lat {
  count: number;
  mean_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}
interface Core {
  user: number;
  sys: number;
  irq: number;
  idle: number;
  steal: number;
}
interface Win {
  seconds: number;
  echoes: number;
  bytes: number;
  handshakes: number;
  errors: number;
  proxy: PS;
  backend: PS;
  loadgen_cpu_us: number;
  ksoftirqd_us?: number[];
  others_cpu_us?: number;
  cores: Core[];
  lat: Lat;
  hist?: [number, number][];
}
interface LoadgenResult {
  mode: string;
  opened: number;
  live: number;
  connect_errors: number;
  errors: number;
  error_messages: string[];
  windows: Win[];
  lat_total: Lat;
  open_seconds: number;
  rss_kb_before?: number;
  rss_kb_after?: number;
  rss_samples_kb?: number[];
  elapsed_seconds: number;
}

function runLoadgen(sc: Scenario, port: number, watch: number, aux: number): Promise<LoadgenResult> {
  return new Promise((resolve, reject) => {
    const args = [sc.mode, '--host', HOST, '--port', String(port), '--watch', String(watch), '--aux', String(aux), ...sc.args];
    if (sc.tls) args.push('--tls', '--sni', SNI);
    const p = startProc('loadgen', LOAD_CPU, path.join(BUILD, 'loadgen'), args, null);
    let out = '';
    let err = '';
    p.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      setTimeout(() => {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 5000);
    }, sc.limit * 1000);
    p.child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(p);
      try {
        resolve(JSON.parse(out) as LoadgenResult);
      } catch {
        reject(new Error(`loadgen ${sc.mode} exited ${code}: ${err.trim() || out.trim() || 'no output'}`));
      }
    });
  });
}

// ------------------------------------------------------------------ figures
interface Figure {
  ok: boolean;
  note?: string;
  /** the headline number of the scenario (µs per echo/handshake, KB per tunnel, ms p99) */
  value?: number;
  min?: number;
  max?: number;
  extra: Record<string, number | string>;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

function derive(sc: Scenario, r: LoadgenResult, isDirect: boolean): Figure {
  const errs = r.errors > 0 ? `${r.errors} errors: ${r.error_messages.join('; ')}` : undefined;
  if (sc.mode === 'idle') {
    const before = r.rss_kb_before ?? 0;
    const after = r.rss_kb_after ?? 0;
    if (r.live === 0) return { ok: false, note: errs ?? 'no tunnel came up', extra: {} };
    const extra: Record<string, number | string> = {
      tunnels: r.live,
      open_seconds: r.open_seconds,
      rss_kb_before: before,
      rss_kb_after: after,
      errors: r.errors,
    };
    if (isDirect) return { ok: true, note: errs, extra };
    return { ok: r.live > 0, note: errs, value: (after - before) / r.live, extra };
  }
  const all = r.windows.filter((w) => w.seconds > 0);
  const work = (w: Win): number => (sc.mode === 'handshake' ? w.handshakes : w.echoes);
  if (all.length === 0 || all.every((w) => work(w) === 0)) return { ok: false, note: errs ?? 'no work done', extra: {} };
  // The machine may be shared: keep the windows in which other processes used under 5 % of a
  // core; if fewer than two were that quiet, the least contended half.
  const others = (w: Win): [number, number] => {
    const c0 = w.cores?.[Number(PROXY_CPU)];
    const c1 = w.cores?.[Number(LOAD_CPU)];
    const secs = w.seconds * 1e6;
    const ks = w.ksoftirqd_us ?? [];
    const ks0 = (ks[Number(PROXY_CPU)] ?? 0) / secs;
    const ks1 = (ks[Number(LOAD_CPU)] ?? 0) / secs;
    const o0 = c0 ? Math.max(0, c0.user + c0.sys - ks0 - (isDirect ? 0 : w.proxy.cpu_us / secs)) : 0;
    const o1 = c1 ? Math.max(0, c1.user + c1.sys - ks1 - (w.loadgen_cpu_us + w.backend.cpu_us) / secs) : 0;
    return [o0, o1];
  };
  // Preferred: the CPU that every other process on the machine used in the window (loadgen
  // scans /proc); fallback: the per-core estimate from /proc/stat.
  const contention = (w: Win): number =>
    typeof w.others_cpu_us === 'number' ? w.others_cpu_us / (w.seconds * 1e6) : isDirect ? others(w)[1] : Math.max(...others(w));
  let ws = all.filter((w) => contention(w) <= 0.05);
  if (ws.length < 2) {
    const keep = new Set([...all].sort((a, b) => contention(a) - contention(b)).slice(0, Math.max(1, Math.ceil(all.length / 2))));
    ws = all.filter((w) => keep.has(w));
  }
  ws = ws.filter((w) => work(w) > 0);
  const per = (f: (w: Win) => number): number[] => ws.map((w) => f(w) / work(w));
  const extra: Record<string, number | string> = {
    windows_used: `${ws.length}/${all.length}`,
    others_core0: median(ws.map((w) => others(w)[0])),
    others_core1: median(ws.map((w) => others(w)[1])),
    rate_per_s: median(ws.map((w) => work(w) / w.seconds)),
    load_busy: median(ws.map((w) => (w.loadgen_cpu_us + w.backend.cpu_us) / (w.seconds * 1e6))),
    loadgen_us: median(per((w) => w.loadgen_cpu_us)),
    backend_us: median(per((w) => w.backend.cpu_us)),
    errors: r.errors,
  };
  const core = (w: Win, i: string): Core | undefined => w.cores?.[Number(i)];
  const c0 = ws.map((w) => core(w, PROXY_CPU)).filter((c): c is Core => !!c);
  const c1 = ws.map((w) => core(w, LOAD_CPU)).filter((c): c is Core => !!c);
  if (c0.length && c1.length) {
    extra.core0_busy = median(c0.map((c) => c.user + c.sys + c.irq));
    extra.core0_irq = median(c0.map((c) => c.irq));
    extra.core1_busy = median(c1.map((c) => c.user + c.sys + c.irq));
    extra.core1_irq = median(c1.map((c) => c.irq));
    extra.steal = median(ws.map((w) => (w.cores ?? []).reduce((a, c) => a + c.steal, 0)));
    extra.ksoftirqd_core0 = median(ws.map((w) => (w.ksoftirqd_us?.[Number(PROXY_CPU)] ?? 0) / (w.seconds * 1e6)));
  }
  extra.contention = median(ws.map(contention));
  if (!isDirect) {
    // share of the window the proxy's threads spent runnable but not running (run-queue wait)
    extra.proxy_runq_wait = median(ws.map((w) => (w.proxy.wait_us ?? 0) / (w.seconds * 1e6)));
    extra.proxy_busy = median(ws.map((w) => w.proxy.cpu_us / (w.seconds * 1e6)));
    extra.proxy_sched_us = median(per((w) => w.proxy.sched_us));
    extra.minflt = median(per((w) => w.proxy.minflt));
    extra.majflt = median(per((w) => w.proxy.majflt));
  }
  if (sc.mode === 'rate') {
    // merge the kept windows' histograms ([value_ns, count] buckets)
    const buckets = new Map<number, number>();
    for (const w of ws) for (const [v, c] of w.hist ?? []) buckets.set(v, (buckets.get(v) ?? 0) + c);
    const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
    const total = sorted.reduce((a, [, c]) => a + c, 0);
    const pct = (p: number): number => {
      const want = Math.max(1, Math.round((total * p) / 100));
      let acc = 0;
      for (const [v, c] of sorted) if ((acc += c) >= want) return v / 1e6;
      return NaN;
    };
    extra.p50_ms = pct(50);
    extra.p999_ms = pct(99.9);
    extra.max_ms = Math.max(...ws.map((w) => w.lat.max_us)) / 1000;
    extra.delivered = ws.reduce((a, w) => a + w.echoes, 0) / ws.reduce((a, w) => a + w.seconds * 100 * 100, 0);
    const p99s = ws.map((w) => w.lat.p99_us / 1000);
    return { ok: true, note: errs, value: pct(99), min: Math.min(...p99s), max: Math.max(...p99s), extra };
  }
  if (isDirect) return { ok: true, note: errs, extra };
  const cpu = per((w) => w.proxy.cpu_us);
  return { ok: true, note: errs, value: median(cpu), min: Math.min(...cpu), max: Math.max(...cpu), extra };
}

// ------------------------------------------------------------------ table
const FIGS: { id: string; label: string; unit: string; target: string }[] = [
  { id: 'echo64', label: 'proxy CPU / 64 B echo', unit: 'µs', target: '≤1.0' },
  { id: 'echo16k', label: 'proxy CPU / 16 KiB echo', unit: 'µs', target: '≤12' },
  { id: 'handshake', label: 'proxy CPU / handshake', unit: 'µs', target: '≤90' },
  { id: 'idle', label: 'memory / idle tunnel', unit: 'KB', target: '≤4' },
  { id: 'rate', label: 'round-trip p99 100×100/s', unit: 'ms', target: '≤1' },
];

/** Issue 17's goals for wsgate's ratio to the better of nginx and HAProxy in the same run. */
const RATIO_GOALS: Record<string, string> = {
  echo64: '≤0.85',
  handshake: '≤0.9',
  idle: '≤1.0',
  rate: '≤1.0',
  'tls-echo64': '≤1.0',
  'tls-echo16k': '≤0.8',
  'tls-handshake': '≤1.0',
  'tls-idle': '≤1.0',
  'tls-rate': '≤1.0',
};

/** The C peers whose better figure the ratio columns divide by. */
const PEERS = ['nginx', 'haproxy'];

type Results = Record<
  string,
  { version: string; status: string; figures: Record<string, Figure>; raw: Record<string, LoadgenResult | { error: string }> }
>;

function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  return v.toPrecision(digits).replace(/\.?0+$/, (m) => (m.includes('.') ? '' : m));
}

function fmtRate(v: number | string | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M/s`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k/s`;
  return `${v.toFixed(0)}/s`;
}

const isContended = (x: Figure | undefined): boolean => typeof x?.extra.contention === 'number' && x.extra.contention > 0.1;

/**
 * One table: a row per figure, a column per target, then a ratio column per wsgate target in
 * `ratioOf`: its figure ÷ the better (lower) of nginx's and HAProxy's in the same run, with
 * issue 17's goal. `tls` picks the tls-* scenarios (and leaves out the issue-3 target column,
 * which is for plain ws:// only).
 */
function buildTable(res: Results, names: string[], tls: boolean, ratioOf: string[]): string[][] {
  const peers = PEERS.filter((p) => names.includes(p));
  const ratios = peers.length ? ratioOf.filter((n) => names.includes(n)) : [];
  const head = ['figure', ...(tls ? [] : ['target']), ...names, ...ratios.map((n) => `${n} ÷ best of ${peers.join('/')}`)];
  const rows: string[][] = [head];
  const fig = (t: string, id: string): Figure | undefined => res[t]?.figures[id];
  const cell = (t: string, id: string, f: (x: Figure) => string, headline = false): string => {
    const r = res[t];
    if (!r) return '';
    if (r.status !== 'ok' && !r.figures[id]) return r.status.startsWith('skipped') ? 'n/a' : 'failed';
    const x = r.figures[id];
    if (!x) return '–';
    if (!x.ok) return 'failed';
    // a proxy below 90 % of its core was not saturated: its CPU per unit includes idle wake-ups
    const unsaturated = x.value !== undefined && typeof x.extra.proxy_busy === 'number' && x.extra.proxy_busy < 0.9;
    const base = id.replace(/^tls-/, '');
    if (!headline) return f(x);
    return (
      f(x) +
      (x.extra.errors ? ' ERR' : '') +
      (isContended(x) ? ' *' : '') +
      (unsaturated && (base === 'echo64' || base === 'echo16k' || base === 'handshake') ? ' †' : '')
    );
  };
  /** value ÷ the better of the peers, with the goal; '–' when a figure is missing */
  const ratio = (n: string, id: string): string => {
    const x = fig(n, id);
    const ps = peers.map((p) => fig(p, id)).filter((p): p is Figure => !!p?.ok && p.value !== undefined);
    if (!x?.ok || x.value === undefined || ps.length === 0) return '–';
    const best = ps.reduce((a, b) => ((b.value as number) < (a.value as number) ? b : a));
    const goal = RATIO_GOALS[id];
    const marks = (x.extra.errors || best.extra.errors ? ' ERR' : '') + (isContended(x) || isContended(best) ? ' *' : '');
    return `${(x.value / (best.value as number)).toFixed(2)}×${goal ? ` (${goal})` : ''}${marks}`;
  };
  for (const F of FIGS) {
    const id = tls ? `tls-${F.id}` : F.id;
    if (!names.some((n) => res[n]?.figures[id])) continue;
    const ngx = fig('nginx', id)?.value;
    rows.push([
      `${F.label} (${F.unit})`,
      ...(tls ? [] : [F.target]),
      ...names.map((n) =>
        cell(
          n,
          id,
          (x) => {
            if (x.value === undefined) {
              if (F.id === 'echo64' || F.id === 'echo16k' || F.id === 'handshake')
                return `lg ${fmt(x.extra.loadgen_us as number)} + be ${fmt(x.extra.backend_us as number)}`;
              return '–';
            }
            let s = fmt(x.value);
            if (x.min !== undefined && x.max !== undefined && x.max - x.min > 0.0005 * x.value && F.id !== 'rate')
              s += ` [${fmt(x.min)}–${fmt(x.max)}]`;
            if (!tls && ngx && n !== 'nginx' && n !== 'direct') s += ` ${(x.value / ngx).toFixed(2)}×ngx`;
            return s;
          },
          true,
        ),
      ),
      ...ratios.map((n) => ratio(n, id)),
    ]);
    const pad = ratios.map(() => '');
    const sub = (label: string, f: (n: string) => string): void => {
      rows.push([label, ...(tls ? [] : ['']), ...names.map(f), ...pad]);
    };
    if (F.id === 'echo64' || F.id === 'echo16k' || F.id === 'handshake') {
      const direct = fig('direct', id)?.extra.rate_per_s as number | undefined;
      sub(direct ? '  rate (× direct)' : '  rate', (n) =>
        cell(n, id, (x) => {
          const r = x.extra.rate_per_s as number;
          return n === 'direct' || !direct ? fmtRate(r) : `${fmtRate(r)} ${(r / direct).toFixed(2)}×`;
        }),
      );
      const pct = (v: number | string | undefined): string => (typeof v === 'number' ? `${Math.round(v * 100)}%` : '–');
      sub('  busy: proxy / core0 / core1', (n) =>
        cell(n, id, (x) => `${pct(x.extra.proxy_busy)} / ${pct(x.extra.core0_busy)} / ${pct(x.extra.core1_busy)}`),
      );
      // no direct column over TLS: the load side's own CPU per unit (load generator + backend) here
      if (tls)
        sub('  load side: lg + be (µs)', (n) =>
          cell(n, id, (x) => `${fmt(x.extra.loadgen_us as number)} + ${fmt(x.extra.backend_us as number)}`),
        );
      if (F.id !== 'handshake')
        sub('  proxy page faults / echo', (n) =>
          cell(n, id, (x) => (x.extra.minflt !== undefined ? fmt(x.extra.minflt as number, 2) : '–')),
        );
    }
    if (F.id === 'idle') sub('  tunnels held', (n) => cell(n, id, (x) => String(x.extra.tunnels)));
    if (F.id === 'rate')
      sub('  p50 / p99.9 (ms)', (n) => cell(n, id, (x) => `${fmt(x.extra.p50_ms as number)} / ${fmt(x.extra.p999_ms as number)}`));
  }
  return rows;
}

/** The plain table's and the TLS table's rows (a table is left out when none of its scenarios ran). */
function buildTables(res: Results, names: string[], fronts: (n: string) => readonly string[]): { plain: string[][]; tls: string[][] } {
  const plainNames = names.filter((n) => fronts(n).includes('plain'));
  const tlsNames = names.filter((n) => fronts(n).includes('tls'));
  const plain = buildTable(res, plainNames, false, ['wsgate']);
  const tlsRows = buildTable(res, tlsNames, true, ['wsgate', 'wsgate-native-tls']);
  return { plain: plain.length > 1 ? plain : [], tls: tlsRows.length > 1 ? tlsRows : [] };
}

function renderTable(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (c ?? '').padEnd(w[i]))
      .join(' | ')
      .trimEnd();
  return [line(rows[0]), w.map((x) => '-'.repeat(x)).join('-|-'), ...rows.slice(1).map(line)].join('\n');
}

function markdownTable(rows: string[][]): string {
  return [
    `| ${rows[0].join(' | ')} |`,
    `|${rows[0].map(() => ' --- ').join('|')}|`,
    ...rows.slice(1).map((r) => `| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`),
  ].join('\n');
}

// ------------------------------------------------------------------ one scenario on one target
/** Starts a fresh backend and proxy, runs the load generator once, stops both. */
async function runOnce(
  t: Target,
  sc: Scenario,
  tmp: string,
  tag: string,
  cert: CertFiles | null,
): Promise<{ figure: Figure; raw: LoadgenResult | { error: string }; startFailed: boolean }> {
  let backend: Proc | null = null;
  let proxy: Proc | null = null;
  let startFailed = false;
  try {
    backend = startProc('echo-backend', LOAD_CPU, path.join(BUILD, 'echo-backend'), ['--host', HOST, '--port', '0'], null);
    const b = backend;
    const backendPort = await new Promise<number>((resolve, reject) => {
      let s = '';
      const to = setTimeout(() => reject(new Error('echo backend did not start')), 5000);
      b.child.stdout?.on('data', (d: Buffer) => {
        s += d.toString();
        const m = /listening (\d+)/.exec(s);
        if (m) {
          clearTimeout(to);
          resolve(Number(m[1]));
        }
      });
      b.child.on('exit', () => reject(new Error('echo backend exited')));
    });
    let port = backendPort;
    if (t.name !== 'direct') {
      port = await freePort();
      proxy = t.start({ tmp, backendPort, port, tag, tls: sc.tls ? cert : null });
      if (!proxy) throw new Error('no process');
      let last: string | null = 'not probed';
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline && !proxy.exited) {
        last = await probeUpgrade(port, sc.tls);
        if (last === null) break;
        await sleep(100);
      }
      if (last !== null) {
        startFailed = true;
        const reason = proxy.exited ? `${proxy.exitInfo}; ${tail(proxy.logFile)}` : `upgrade probe: ${last}; ${tail(proxy.logFile)}`;
        throw new Error(`did not start or answer: ${reason}`);
      }
      proxy.descendants = descendantsOf(proxy.pid);
    }
    const r = await runLoadgen(sc, port, proxy?.pid ?? 0, backend.pid);
    const f = derive(sc, r, t.name === 'direct');
    if (proxy?.exited) {
      f.ok = false;
      f.note = `proxy died: ${proxy.exitInfo}; ${tail(proxy.logFile)}`;
    }
    return { figure: f, raw: r, startFailed };
  } catch (e) {
    const msg = (e as Error).message;
    return { figure: { ok: false, note: msg, extra: {} }, raw: { error: msg }, startFailed };
  } finally {
    if (proxy) await stopProc(proxy);
    if (backend) await stopProc(backend);
  }
}

// ------------------------------------------------------------------ main
function machine(): Record<string, string | number> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown';
  return {
    nproc: os.cpus().length,
    cpu: model,
    mhz: /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? '',
    kernel: os.release(),
    node: process.version,
    mem_gb: Math.round(os.totalmem() / 2 ** 30),
    fd_limit: cmdOut('sh', ['-c', 'ulimit -n']),
  };
}

/** The fronts a target runs (a results file's unknown names: both). */
const frontsOf = (n: string): readonly string[] => TARGETS.find((t) => t.name === n)?.fronts ?? BOTH;

/** --render: recompute the figures of a results file from its raw windows and print the tables. */
function render(file: string): void {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    scenarios: Scenario[];
    targets: Record<string, { version: string; status: string; raw: Record<string, LoadgenResult | { error: string }> }>;
  };
  const res: Results = {};
  for (const [name, t] of Object.entries(j.targets)) {
    res[name] = { version: t.version, status: t.status, figures: {}, raw: t.raw };
    for (const sc of j.scenarios) {
      const raw = t.raw[sc.id];
      if (!raw) continue;
      res[name].figures[sc.id] = 'error' in raw ? { ok: false, note: raw.error, extra: {} } : derive(sc, raw, name === 'direct');
    }
  }
  const { plain, tls: tlsRows } = buildTables(res, Object.keys(j.targets), frontsOf);
  for (const rows of [plain, tlsRows]) if (rows.length) process.stdout.write(`${renderTable(rows)}\n\n${markdownTable(rows)}\n\n`);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.render) {
    render(opts.render);
    return;
  }
  const t0 = Date.now();
  hasTaskset = which('taskset') !== null;
  niceness = opts.nice;
  if (hasTaskset) spawnSync('taskset', ['-cp', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
  else process.stderr.write('warning: taskset not found; processes are not pinned\n');
  if (os.cpus().length < 2) process.stderr.write('warning: fewer than 2 CPUs; proxy and load share a core\n');
  buildC();
  fs.mkdirSync(OUT, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-bench-'));
  if (opts.only) for (const n of opts.only) if (!TARGETS.some((t) => t.name === n)) throw new Error(`unknown target ${n}`);
  const scs = scenarios(opts);
  const runs = (t: Target, sc: Scenario): boolean => t.fronts.includes(sc.tls ? 'tls' : 'plain');
  // a target none of the chosen scenarios applies to (wsgate-native-tls on a plain-only run) is left out
  const targets = TARGETS.filter((t) => (!opts.only || opts.only.includes(t.name)) && scs.some((sc) => runs(t, sc)));
  const cert = scs.some((sc) => sc.tls) ? makeCert(tmp) : null;
  const results: Results = {};
  process.stdout.write(
    `wsgate bench${opts.quick ? ' --quick' : ''}: ${targets.map((t) => t.name).join(', ')}; scenarios ${scs.map((s) => s.id).join(', ')}\n`,
  );

  for (const t of targets) {
    const why = t.unavailable();
    results[t.name] = { version: why ? '' : t.version(), status: why ? `skipped: ${why}` : 'ok', figures: {}, raw: {} };
    if (why) {
      process.stdout.write(`  ${t.name}: skipped (${why})\n`);
      continue;
    }
    let startFailures = 0;
    for (const sc of scs) {
      if (!runs(t, sc)) continue;
      if (startFailures >= 2) {
        results[t.name].raw[sc.id] = { error: 'not run: target failed to start twice' };
        continue;
      }
      // no reruns once the run is this old (whole run < 15 min; < 20 with the TLS scenarios)
      const budgetS = opts.quick ? 0 : cert ? 900 : 600;
      for (let attempt = 0; attempt < 2; attempt++) {
        const t1 = Date.now();
        const got = await runOnce(t, sc, tmp, `${sc.id}-${attempt}`, cert);
        if (got.startFailed) startFailures++;
        const f = got.figure;
        const prev = results[t.name].figures[sc.id];
        const c = (x: Figure | undefined): number => (typeof x?.extra.contention === 'number' ? x.extra.contention : 0);
        // keep the less contended of two attempts
        if (!prev || (f.ok && (!prev.ok || c(f) < c(prev)))) {
          results[t.name].figures[sc.id] = f;
          results[t.name].raw[sc.id] = got.raw;
        }
        if (attempt === 1) results[t.name].raw[`${sc.id}-rerun`] = got.raw;
        const v = f.value !== undefined ? fmt(f.value) : '';
        process.stdout.write(
          `  ${t.name.padEnd(17)} ${sc.id.padEnd(13)} ${f.ok ? 'ok    ' : 'FAILED'} ${v.padStart(7)} ` +
            `${f.extra.rate_per_s !== undefined ? fmtRate(f.extra.rate_per_s) : ''}` +
            `${c(f) > 0.05 ? ` contended ${Math.round(c(f) * 100)}%` : ''}${f.note ? '  ' + f.note.slice(0, 300) : ''} ` +
            `(${((Date.now() - t1) / 1000).toFixed(1)} s)\n`,
        );
        const again = attempt === 0 && opts.retry && f.ok && c(f) > 0.1 && (Date.now() - t0) / 1000 < budgetS;
        if (!again) break;
        process.stdout.write(
          `  ${t.name.padEnd(17)} ${sc.id.padEnd(13)} rerun: other processes took ${Math.round(c(f) * 100)}% of a core\n`,
        );
      }
    }
    if (Object.values(results[t.name].figures).every((f) => !f.ok)) results[t.name].status = 'failed';
  }

  const names = targets.map((t) => t.name);
  const tables = buildTables(results, names, frontsOf);
  const rows = tables.plain;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(OUT, `results-${stamp}.json`);
  const elapsed = (Date.now() - t0) / 1000;
  const json = {
    date: new Date().toISOString(),
    quick: opts.quick,
    elapsed_seconds: elapsed,
    machine: machine(),
    method: {
      pinning: hasTaskset
        ? `proxy on CPU ${PROXY_CPU}; load generator, echo backend and driver on CPU ${LOAD_CPU}`
        : 'none (taskset missing)',
      cpu: 'utime+stime+cutime+cstime of the proxy process tree from /proc/PID/stat, delta over each measured window, divided by the work done in it; median over windows',
      memory: '(sum of VmRSS of the proxy tree with N idle tunnels − before opening them) / N, in KiB',
      latency: 'round-trip of 64 B messages, 100 connections × 100 msg/s, open loop, p99 over all windows',
      tls: 'tls-* scenarios: the same loads with TLS 1.3 (TLS_AES_256_GCM_SHA384, X25519, EC P-256 self-signed certificate, a full handshake per connection: no tickets, no session cache) terminated by the proxy, plain ws:// to the backend',
      ratio: "wsgate's figure / the lower of nginx's and HAProxy's in the same run",
    },
    scenarios: scs,
    targets: Object.fromEntries(targets.map((t) => [t.name, results[t.name]])),
    table: rows,
    table_markdown: rows.length ? markdownTable(rows) : '',
    table_tls: tables.tls,
    table_tls_markdown: tables.tls.length ? markdownTable(tables.tls) : '',
  };
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  if (rows.length) process.stdout.write(`\nplain ws://\n${renderTable(rows)}\n`);
  if (tables.tls.length) process.stdout.write(`\nTLS front (TLS 1.3 to the proxy, plain ws:// behind it)\n${renderTable(tables.tls)}\n`);
  process.stdout.write('\ncells: median over windows [min–max], ×ngx = ratio to nginx in this run; rate × = ratio to direct;\n');
  process.stdout.write("÷ best = ratio to the lower of nginx and HAProxy in this run, with issue 17's goal in brackets;\n");
  process.stdout.write(
    "direct shows the load side's own CPU per echo (lg = loadgen, be = backend); ERR = verification errors (see JSON);\n",
  );
  process.stdout.write('* = other processes took > 10 % of a core during the kept windows (shared machine): rerun for clean figures.\n');
  process.stdout.write('† = the proxy used < 90 % of its core (not saturated): its CPU per unit includes idle wake-up cost.\n');
  for (const t of targets) {
    const r = results[t.name];
    for (const [id, f] of Object.entries(r.figures)) {
      if (f.note) process.stdout.write(`  ${t.name}/${id}: ${f.note.slice(0, 300)}\n`);
      const c = f.extra.contention;
      if (typeof c === 'number' && c > 0.1)
        process.stdout.write(
          `  ${t.name}/${id}: other processes used ${Math.round(c * 100)}% of a core in the kept windows (${f.extra.windows_used}); contended, rerun for clean figures\n`,
        );
    }
    if (r.status.startsWith('skipped')) process.stdout.write(`  ${t.name}: ${r.status}\n`);
  }
  process.stdout.write(`\nwritten ${path.relative(ROOT, file)} (${elapsed.toFixed(0)} s)\n`);
  if (!opts.keepTmp) fs.rmSync(tmp, { recursive: true, force: true });
  else process.stdout.write(`kept ${tmp}\n`);
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping the processes this run started\n`);
    killAllSync();
    process.exit(130);
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  killAllSync();
  process.exit(1);
});

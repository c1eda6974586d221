// `npm start`: run the demo backend and wsgate in front of it, then tell the user where to look.
//
//   1. start dist/demo/backend.js and wait for its "listening on" line;
//   2. start wsgate (dist/src/cli.js -f examples/wsgate.conf) and wait until it accepts
//      connections;
//   3. print the URL to open. Ctrl-C stops both; if either dies, the other is stopped too.
//
// Ports: WSGATE_DEMO_PORT (default 8080) and DEMO_BACKEND_PORT (default 9080). Both are always
// set in wsgate's environment, because examples/wsgate.conf reads them as ${...}.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';

const ROOT = path.resolve(__dirname, '../..'); // dist/demo → the repository
const BACKEND_JS = path.join(__dirname, 'backend.js');
const WSGATE_JS = path.join(ROOT, 'dist/src/cli.js');
const CONFIG = path.join(ROOT, 'examples/wsgate.conf');

const HOST = '127.0.0.1';
const BACKEND_READY_MS = 10_000;
const CONNECT_ATTEMPTS = 50; // × 100 ms: wsgate gets 5 s to start accepting
const STOP_GRACE_MS = 5_000; // after SIGTERM, before SIGKILL

const proxyPort = portFromEnv('WSGATE_DEMO_PORT', 8080);
const backendPort = portFromEnv('DEMO_BACKEND_PORT', 9080);

const children: ChildProcess[] = [];
let stopping = false;

main().catch((err: Error) => fail(`demo failed: ${err.message}`));

async function main(): Promise<void> {
  if (!existsSync(WSGATE_JS)) {
    fail(`${path.relative(process.cwd(), WSGATE_JS)} not found: build first with \`npm run build\``);
    return;
  }
  // If something already answers on the proxy port, the readiness check below would be fooled.
  if (await canConnect(proxyPort)) {
    fail(`port ${proxyPort} is already in use: pick another with WSGATE_DEMO_PORT=<port>`);
    return;
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  process.on('exit', killAll); // last resort, e.g. after an uncaught exception

  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => fail(`the backend did not report "listening on" within ${BACKEND_READY_MS} ms`), BACKEND_READY_MS);
    startChild('backend', [BACKEND_JS, String(backendPort)], process.env, (line) => {
      if (!/listening on/.test(line)) return;
      clearTimeout(timer);
      resolve();
    });
  });

  const env = { ...process.env, WSGATE_DEMO_PORT: String(proxyPort), DEMO_BACKEND_PORT: String(backendPort) };
  startChild('wsgate', [WSGATE_JS, '-f', CONFIG], env);
  if (!(await waitUntilAccepting(proxyPort))) {
    if (!stopping) fail(`wsgate did not accept connections on ${HOST}:${proxyPort} within 5 s`);
    return;
  }
  console.log(`\nwsgate is running: open http://${HOST}:${proxyPort}/ (demo backend on :${backendPort}). Ctrl-C to stop.\n`);
}

/**
 * Spawns `node <args>` with its output prefixed by `[name]`; `onLine` also sees each stdout
 * line. The child gets its own process group, so a Ctrl-C in the terminal reaches only us and
 * we stop the children ourselves (and never mistake their Ctrl-C exit for a crash).
 */
function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void = () => {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: process.platform !== 'win32',
  });
  children.push(child);
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    process.stdout.write(`[${name}] ${line}\n`);
    onLine(line);
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[${name}] ${line}\n`));
  child.on('error', (err) => fail(`cannot start ${name}: ${err.message}`));
  child.on('exit', (code, signal) => {
    if (!stopping) fail(`${name} exited unexpectedly (${signal ?? `exit code ${code}`}); see its output above`);
  });
  return child;
}

async function waitUntilAccepting(port: number): Promise<boolean> {
  for (let attempt = 0; attempt < CONNECT_ATTEMPTS && !stopping; attempt++) {
    if (await canConnect(port)) return true;
    await delay(100);
  }
  return false;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('close', () => resolve(false)); // after an error or the timeout; no-op after connect
    socket.once('error', () => {}); // reported by 'close'
  });
}

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    console.log(`${signal} again: killing`);
    killAll();
    return;
  }
  console.log(`\n${signal}: stopping wsgate and the demo backend…`);
  stopAll().then(() => process.exit(0));
}

function fail(message: string): void {
  if (stopping) return;
  console.error(`\n${message}`);
  stopAll().then(() => process.exit(1));
}

/** SIGTERM to every child still running, SIGKILL to any left after STOP_GRACE_MS. */
async function stopAll(): Promise<void> {
  stopping = true;
  const running = children.filter(isRunning);
  const exited = running.map((child) => new Promise((resolve) => child.once('exit', resolve)));
  for (const child of running) child.kill('SIGTERM');
  const grace = setTimeout(killAll, STOP_GRACE_MS);
  await Promise.all(exited);
  clearTimeout(grace);
}

function killAll(): void {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function portFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${name}="${text}" is not a port number (1-65535)`);
    process.exit(2);
  }
  return port;
}

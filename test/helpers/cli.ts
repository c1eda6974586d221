// The `wsgate` command as a child process, for tests that run the real CLI: start it, read its
// stderr as it comes, and kill (by pid) what a test started and left running.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { eventually } from './harness';
import { childrenOf } from './procfs';

// dist/test/helpers/cli.js → dist/src/cli.js; the package root is three levels up.
export const CLI = path.join(__dirname, '..', '..', 'src', 'cli.js');
export const ROOT = path.join(__dirname, '..', '..', '..');

export interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stderr line matching `re`; rejects if the process exits first. */
  waitForStderr(re: RegExp): Promise<string>;
}

export function writeConf(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-cli-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(file, text);
  return file;
}

/** Children started and not yet exited (a test file checks it is empty at its end). */
export const started = new Set<ChildProcess>();

export function startCli(args: string[], env?: NodeJS.ProcessEnv): Started {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env !== undefined ? { env } : {}),
  });
  started.add(child);
  let out = '';
  let err = '';
  const watchers: { re: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
    for (let i = watchers.length - 1; i >= 0; i--) {
      const line = err.split('\n').find((l) => watchers[i].re.test(l));
      if (line !== undefined) {
        watchers[i].resolve(line);
        watchers.splice(i, 1);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      started.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStderr(re) {
      const line = err.split('\n').find((l) => re.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return Promise.race([
        new Promise<string>((resolve) => watchers.push({ re, resolve })),
        exited.then(({ code, signal }) => {
          throw new Error(`wsgate exited (code ${code}, signal ${signal}) before ${re}; stderr:\n${err}`);
        }),
      ]);
    },
  };
}

/** Kills, by pid, a child this file started that is still running. */
export function reap(s: Started): void {
  if (s.child.exitCode === null && s.child.signalCode === null && s.child.pid !== undefined) process.kill(s.child.pid, 'SIGKILL');
}

export async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const s = startCli(args);
  try {
    const { code } = await s.exited;
    return { code, stdout: s.stdout(), stderr: s.stderr() };
  } finally {
    reap(s);
  }
}

/** Count of stderr lines matching `re`. */
export function countLines(text: string, re: RegExp): number {
  return text.split('\n').filter((l) => re.test(l)).length;
}

/** `wsgate -f FILE -w N` as a child process, with its stderr as it comes. */
export interface WorkersRun {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Once every worker says it listens, all on one port: that port, the primary's pid and the workers'. */
  ready(): Promise<{ port: number; primary: number; workers: number[] }>;
  /** Kills (by pid) the workers and the primary, if still running. */
  kill(): void;
}

const LISTENING = / info listening address=127\.0\.0\.1:(\d+)/g;

export function startWorkers(file: string, n = 2): WorkersRun {
  const child = spawn(process.execPath, [CLI, '-f', file, '-w', String(n)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    stderr: () => err,
    exited,
    async ready() {
      await eventually(() => child.exitCode !== null || [...err.matchAll(LISTENING)].length >= n, 30_000, `${n} workers listening`);
      const ports = [...err.matchAll(LISTENING)].map((m) => Number(m[1]));
      assert.equal(ports.length, n, `${n} workers listening:\n${err}`);
      assert.ok(
        ports.every((p) => p === ports[0]),
        'every worker listens on the same port',
      );
      const primary = child.pid!;
      const workers = childrenOf(primary);
      assert.equal(workers.length, n, `${n} worker processes`);
      return { port: ports[0]!, primary, workers };
    },
    kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      for (const pid of childrenOf(child.pid!)) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
    },
  };
}

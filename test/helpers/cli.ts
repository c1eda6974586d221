// The `wsgate` command as a child process, for tests that run the real CLI: start it, read its
// stderr as it comes, and kill (by pid) what a test started and left running.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

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

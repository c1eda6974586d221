// PidFile, as Apache keeps it: the running process writes its pid there once it listens and
// removes the file when it exits; `wsgate -k` reads it to find the process to signal. wsgate
// writes none unless the config has a PidFile line (Apache's default, logs/httpd.pid under
// ServerRoot, would put a file next to configs that wsgate often only borrows).

import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';

/** Writes this process's pid to `file`; throws an Error that says which file and why. */
export function writePidFile(file: string): void {
  try {
    writeFileSync(file, `${process.pid}\n`, { mode: 0o644 });
  } catch (e) {
    throw new Error(`PidFile ${file}: cannot write it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Writes the pid file at start, if the config names one; false (logged) when it cannot be
 * written: as in Apache, a process that `-k` could not find must not run unseen.
 */
export function claimPidFile(file: string | undefined, log: { error(msg: string): void }): boolean {
  if (file === undefined) return true;
  try {
    writePidFile(file);
    return true;
  } catch (e) {
    log.error((e as Error).message);
    return false;
  }
}

/** Removes `file` if it still holds this process's pid (another wsgate may have taken it over). */
export function removePidFile(file: string): void {
  if (readPid(file) !== process.pid) return;
  try {
    unlinkSync(file);
  } catch {
    // Gone already, or a directory we cannot write: nothing more to do on the way out.
  }
}

/** The pid in `file`, undefined when there is no file; NaN when it holds no pid. */
export function readPid(file: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : Number.NaN;
}

/** Whether a process with `pid` exists (one we may not signal counts: it exists). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

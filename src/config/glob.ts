// Include/IncludeOptional path expansion, as Apache's ap_process_fnmatch_configs does it.
//
// - `*`, `?` and `[...]` (with `!` or `^` to negate, and ranges) may appear in any path
//   component. A wildcard never matches a leading `.` (APR_FNM_PERIOD), nor `/`.
// - Matches are read in byte order of their names at every level (Apache sorts with strcmp).
// - A match that is a directory is read whole: every file in it and its subdirectories, sorted,
//   down to 128 directory levels (Apache's bound). A directory that cannot be listed is an error.
// - Every directory entry looked at counts against the load's budget (limits.ts), so a pattern
//   like `/` or `/*/*/*` ends in an error instead of walking the whole filesystem.
// - Wildcards in a directory component match directories only.
// Node 20 has no fs.glob, hence this small one.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileReadError } from './files';
import { LimitExceeded, LoadBudget } from './limits';

export function hasWildcard(s: string): boolean {
  return /[*?[]/.test(s);
}

/** Compiles one fnmatch pattern (no `/` inside) to an anchored RegExp. */
export function fnmatchRegExp(pattern: string, opts: { slashes?: boolean; ignoreCase?: boolean } = {}): RegExp {
  const any = opts.slashes ? '[\\s\\S]' : '[^/]';
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      re += `${any}*`;
    } else if (ch === '?') {
      re += any;
    } else if (ch === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      let negate = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        negate = true;
        body = body.slice(1);
      }
      const cls = body.replace(/[\\\]^]/g, (c) => `\\${c}`);
      re += negate ? `[^/${cls}]` : `[${cls}]`;
      i = close;
    } else if (ch === '\\' && i + 1 < pattern.length) {
      i++;
      re += escapeRegExp(pattern[i] as string);
    } else {
      re += escapeRegExp(ch);
    }
  }
  return new RegExp(`${re}$`, opts.ignoreCase ? 'i' : '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

interface Entry {
  readonly name: string;
  /** Known to be a directory, known not to be one, or a symbolic link / unknown type (stat it). */
  readonly dir: boolean | undefined;
}

/** The entries of `dir`, sorted by name, each counted against the load's budget of directory entries. */
function readDir(dir: string, budget: LoadBudget): Entry[] {
  let d: fs.Dir;
  try {
    d = fs.opendirSync(dir);
  } catch (err) {
    throw new FileReadError(dir, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  const entries: Entry[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      budget.dirEntry();
      const known = e.isDirectory() || e.isFile() || e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice();
      entries.push({ name: e.name, dir: known ? e.isDirectory() : undefined });
    }
  } catch (err) {
    if (err instanceof LimitExceeded) throw err;
    throw new FileReadError(dir, (err as NodeJS.ErrnoException).code ?? String(err));
  } finally {
    d.closeSync();
  }
  return entries.sort((a, b) => byName(a.name, b.name));
}

/** Every file under `dir`, recursively, in Apache's order; `depth` counts directory levels. */
function filesUnder(dir: string, out: string[], depth: number, budget: LoadBudget): void {
  if (depth > budget.limits.dirDepth) {
    throw new LimitExceeded(
      `${dir} is more than ${budget.limits.dirDepth} directories deep below the included one (a symbolic link loop?)`,
    );
  }
  for (const entry of readDir(dir, budget)) {
    const full = path.join(dir, entry.name);
    if (entry.dir ?? isDirectory(full)) filesUnder(full, out, depth + 1, budget);
    else out.push(full);
  }
}

export type ExpandResult = { readonly ok: true; readonly files: readonly string[] } | { readonly ok: false; readonly reason: string };

/**
 * Expands an absolute Include path into the files to read, in order. `ok: false` explains why
 * nothing matched (missing file, missing directory, wildcard without match); IncludeOptional
 * treats that as "nothing to read". Throws LimitExceeded past a bound, and FileReadError for a
 * matched directory that cannot be listed: those are errors even for IncludeOptional.
 */
export function expandInclude(absPattern: string, budget: LoadBudget = new LoadBudget()): ExpandResult {
  const root = path.parse(absPattern).root;
  const parts = absPattern
    .slice(root.length)
    .split(/[/\\]+/)
    .filter((p) => p !== '');
  if (!parts.some(hasWildcard)) {
    if (!exists(absPattern)) return { ok: false, reason: `"${absPattern}" does not exist` };
    if (isDirectory(absPattern)) {
      const files: string[] = [];
      filesUnder(absPattern, files, 1, budget);
      return { ok: true, files };
    }
    return { ok: true, files: [absPattern] };
  }
  let bases = [root];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const last = i === parts.length - 1;
    const next: string[] = [];
    for (const base of bases) {
      if (!hasWildcard(part)) {
        const full = path.join(base, part);
        if (last ? exists(full) : isDirectory(full)) next.push(full);
        continue;
      }
      let entries: Entry[];
      try {
        entries = readDir(base, budget);
      } catch (err) {
        if (err instanceof LimitExceeded) throw err;
        continue;
      }
      const re = fnmatchRegExp(part);
      for (const { name, dir } of entries) {
        if (name.startsWith('.') && !part.startsWith('.')) continue;
        if (!re.test(name)) continue;
        const full = path.join(base, name);
        if (!last && !(dir ?? isDirectory(full))) continue;
        next.push(full);
      }
    }
    if (next.length === 0) {
      const upTo = path.join(root, ...parts.slice(0, i + 1));
      return {
        ok: false,
        reason: hasWildcard(part) ? `no file or directory matches the wildcard "${upTo}"` : `"${upTo}" does not exist`,
      };
    }
    bases = next;
  }
  const files: string[] = [];
  for (const match of bases) {
    if (isDirectory(match)) filesUnder(match, files, 1, budget);
    else files.push(match);
  }
  return { ok: true, files };
}

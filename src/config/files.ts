// Reading a file named by the config (the config itself, an Include, a certificate or key).
//
// Only regular files are read, as Apache does (`/dev/null` excepted, Apache's way to include
// nothing). The type is checked with stat() before anything is opened: opening a FIFO for
// reading blocks until a writer appears, and opening a device may act on it. The open itself is
// non-blocking and the descriptor is checked again, in case the path changed in between. At
// most `maxBytes` are read, so `/dev/zero` or a file still growing cannot exhaust memory.

import * as fs from 'node:fs';
import { sizeText, type LoadBudget } from './limits';

const NULL_DEVICE = '/dev/null';
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** A file that cannot be read; `reason` says why without naming the file. */
export class FileReadError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`cannot read ${file}: ${reason}`);
    this.name = 'FileReadError';
  }
}

function refuse(file: string, st: fs.Stats): FileReadError {
  return new FileReadError(file, `${kindOf(st)}, not a regular file (only regular files are read)`);
}

function failed(file: string, err: unknown): FileReadError {
  // Node's message is "CODE: description, syscall 'path'"; the path is already in the sentence.
  const e = err as NodeJS.ErrnoException;
  return new FileReadError(file, String(e.message).replace(/, \w+ '.*'$/s, ''));
}

/**
 * The text (UTF-8) of a regular file of at most `maxBytes`. Throws a FileReadError, or the
 * budget's LimitExceeded.
 */
export function readTextFile(file: string, maxBytes: number, budget?: LoadBudget): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw failed(file, err);
  }
  if (!st.isFile()) {
    if (file === NULL_DEVICE && st.isCharacterDevice()) {
      budget?.file(0);
      return '';
    }
    throw refuse(file, st);
  }
  if (st.size > maxBytes) throw new FileReadError(file, `larger than ${sizeText(maxBytes)} (${st.size} bytes)`);
  budget?.file(st.size);
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    throw failed(file, err);
  }
  try {
    const opened = fs.fstatSync(fd);
    if (!opened.isFile()) throw refuse(file, opened);
    let buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, opened.size + 1));
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) throw new FileReadError(file, `larger than ${sizeText(maxBytes)}`);
        const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      let got: number;
      try {
        got = fs.readSync(fd, buf, n, buf.length - n, null);
      } catch (err) {
        throw failed(file, err);
      }
      if (got === 0) break;
      n += got;
    }
    return buf.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}

// Log files, opened once per path for the whole process: every virtual host, every config (a
// reload keeps the file open when the new config names it too) and the error log share one
// append stream per path. `reopenAll` opens each path again and swaps the stream under its
// writers, so logrotate can move a file and signal wsgate (the signal's wiring is elsewhere).

import * as fs from 'node:fs';

export class LogFile {
  /** Users of the file (gateways, the error log); closed when the last lets go. */
  refs = 0;
  private reported = false;

  constructor(
    readonly path: string,
    private stream: fs.WriteStream,
  ) {
    stream.on('error', onStreamError);
    (stream as StreamWithFile)[kFile] = this;
  }

  /** Appends `text` (lines with their newline). Never throws: a failing disk must not stop the proxy. */
  write(text: string): void {
    this.stream.write(text);
  }

  /** @internal */
  swap(next: fs.WriteStream): void {
    const old = this.stream;
    this.stream = next;
    next.on('error', onStreamError);
    (next as StreamWithFile)[kFile] = this;
    old.end();
  }

  /** @internal */
  end(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }

  /** @internal The first write error since the file was (re)opened goes to stderr once. */
  failed(e: Error): void {
    if (this.reported) return;
    this.reported = true;
    process.stderr.write(`wsgate: cannot write log file ${this.path}: ${e.message}\n`);
  }
}

const kFile = Symbol('wsgate.logFile');
type StreamWithFile = fs.WriteStream & { [kFile]?: LogFile };

function onStreamError(this: fs.WriteStream, e: Error): void {
  (this as StreamWithFile)[kFile]?.failed(e);
}

const files = new Map<string, LogFile>();

/** Opens `path` for appending (synchronously, so a missing directory or a permission problem is an error at start). */
function openStream(path: string): fs.WriteStream {
  const fd = fs.openSync(path, 'a', 0o640);
  return fs.createWriteStream(path, { fd, flags: 'a' });
}

/** The file at `path`, opened if nobody has it open yet; pair each call with `releaseLogFile`. */
export function acquireLogFile(path: string): LogFile {
  let f = files.get(path);
  if (f === undefined) {
    f = new LogFile(path, openStream(path));
    files.set(path, f);
  }
  f.refs++;
  return f;
}

/** Lets go of a file; the last user closes it (its pending lines are written first). */
export function releaseLogFile(f: LogFile): Promise<void> {
  f.refs--;
  if (f.refs > 0 || files.get(f.path) !== f) return Promise.resolve();
  files.delete(f.path);
  return f.end();
}

/** The open file at `path`, if any user still has it. */
export function openLogFile(path: string): LogFile | undefined {
  return files.get(path);
}

/**
 * Opens every log file again by its path (after logrotate moved it) and writes new lines there;
 * the old stream is ended once its pending lines are out. A path that cannot be opened keeps its
 * old stream; the failures are returned, one message each.
 */
export function reopenAll(): string[] {
  const failures: string[] = [];
  for (const f of files.values()) {
    try {
      f.swap(openStream(f.path));
    } catch (e) {
      failures.push(`${f.path}: ${(e as Error).message}`);
    }
  }
  return failures;
}

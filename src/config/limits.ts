// Bounds on what one config load may read and build, so that a broken or hostile config ends in
// a `FILE:LINE` error within bounded time and memory instead of a hang, a stack overflow or
// gigabytes of doubled `${VAR}` values. Each bound is far above what a real config needs.

export interface LoadLimits {
  /** Nested Include levels (the main file is level 0); Apache's AP_MAX_INCLUDE_DEPTH. */
  readonly includeDepth: number;
  /** Subdirectory levels read below an included directory; Apache's AP_MAX_INCLUDE_DIR_DEPTH. */
  readonly dirDepth: number;
  /** Bytes of one file (config, Include, certificate or key). */
  readonly fileBytes: number;
  /** Bytes read over the whole load, each read of a file counted. */
  readonly totalBytes: number;
  /** Files read over the whole load, repeats counted. */
  readonly files: number;
  /** Directory entries looked at by Include patterns over the whole load. */
  readonly dirEntries: number;
  /** Characters of one logical line (continuations joined), before and after `${VAR}` expansion. */
  readonly lineChars: number;
  /** Characters of all logical lines after `${VAR}` expansion, over the whole load. */
  readonly totalChars: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: LoadLimits = {
  includeDepth: 128,
  dirDepth: 128,
  fileBytes: 16 * MiB,
  totalBytes: 64 * MiB,
  files: 50_000,
  dirEntries: 100_000,
  lineChars: 1 * MiB,
  totalChars: 64 * MiB,
};

/** A size for messages: `16 MiB`, `1 MiB`, else bytes. */
export function sizeText(n: number): string {
  return n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

/** A bound was crossed; the caller turns `message` into a ConfigError at the line responsible. */
export class LimitExceeded extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LimitExceeded';
  }
}

/** The running totals of one load, checked against its limits. */
export class LoadBudget {
  private bytes = 0;
  private fileCount = 0;
  private entries = 0;
  private chars = 0;

  constructor(readonly limits: LoadLimits = DEFAULT_LIMITS) {}

  /** Counts one file about to be read, of `size` bytes. */
  file(size: number): void {
    if (++this.fileCount > this.limits.files) {
      throw new LimitExceeded(`more than ${this.limits.files} files read in one load (an Include fan-out?)`);
    }
    this.bytes += size;
    if (this.bytes > this.limits.totalBytes) {
      throw new LimitExceeded(`more than ${sizeText(this.limits.totalBytes)} of config read in one load (an Include fan-out?)`);
    }
  }

  /** Counts one directory entry looked at while expanding an Include pattern. */
  dirEntry(): void {
    if (++this.entries > this.limits.dirEntries) {
      throw new LimitExceeded(
        `more than ${this.limits.dirEntries} directory entries looked at by Include patterns in one load; include a directory of config files, not a whole tree`,
      );
    }
  }

  /** Counts one logical line after `${VAR}` expansion. */
  line(chars: number): void {
    this.chars += chars;
    if (this.chars > this.limits.totalChars) {
      throw new LimitExceeded(
        `the config grows beyond ${sizeText(this.limits.totalChars)} of text once Includes and \${VAR}s are expanded`,
      );
    }
  }
}

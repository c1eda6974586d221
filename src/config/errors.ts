// Errors and notices produced while loading a config.

import type { SourceRef } from './model';

/**
 * A mistake in the configuration. `message` is exactly `FILE:LINE: what is wrong`, so a CLI can
 * print it as is (`wsgate -t`) and editors can jump to it.
 */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  /** The text after `FILE:LINE: `. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }

  static at(where: SourceRef, reason: string): ConfigError {
    return new ConfigError(where.file, where.line, reason);
  }
}

/** Collects `file:line: text` notices; `once` keys let a kind of notice appear a single time per load. */
export class Notices {
  readonly list: string[] = [];
  private readonly seen = new Set<string>();

  add(where: SourceRef, text: string): void {
    this.list.push(`${where.file}:${where.line}: ${text}`);
  }

  /** Adds the notice only the first time `key` is seen during this load. */
  once(key: string, where: SourceRef, text: string): void {
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.add(where, text);
  }
}

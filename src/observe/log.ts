// The error log: one line per event, `time level message key=value…`.
//
// Kept dependency-free and synchronous-cheap: a line is built only when its level is enabled,
// and nothing on the tunnel's data path logs. Lines go to stderr, or to the file `ErrorLog`
// names (`errorLogSink`); the access log and the tunnel records have their own files.

import type { ErrorLogTarget } from '../config/model';
import { acquireLogFile } from './log-files';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  enabled(level: Level): boolean;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

export interface LoggerOptions {
  level?: Level;
  /** Where lines go (without trailing newline). Default: process.stderr. */
  sink?: (line: string) => void;
}

function formatValue(v: string | number | boolean): string {
  if (typeof v !== 'string') return String(v);
  return /^[\w.:/\-[\]@]+$/.test(v) ? v : JSON.stringify(v);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const sink = options.sink ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: Level, msg: string, fields?: Fields): void => {
    if (LEVELS[level] < min) return;
    let line = `${new Date().toISOString()} ${level} ${msg}`;
    if (fields !== undefined) {
      for (const k in fields) {
        const v = fields[k];
        if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
      }
    }
    sink(line);
  };
  return {
    enabled: (level) => LEVELS[level] >= min,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export function isLevel(s: string): s is Level {
  return s in LEVELS;
}

/**
 * Where the error log's lines go for `ErrorLog`: stderr, or the file (opened now, kept open and
 * reopened with the other log files by `reopenAll`). Throws when the file cannot be opened.
 */
export function errorLogSink(target: ErrorLogTarget | undefined): ((line: string) => void) | undefined {
  if (target === undefined || target.kind === 'stderr') return undefined;
  const file = acquireLogFile(target.file);
  return (line) => file.write(`${line}\n`);
}

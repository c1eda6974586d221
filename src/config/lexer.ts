// Lexing: text → logical lines → words, the way Apache's ap_cfg_getline / ap_getword_conf do.
//
// - A line ending in a single `\` (right before the newline) continues on the next line; the
//   backslash is removed and the next line appended as is. The directive keeps the number of
//   its first physical line.
// - A line whose first non-blank character is `#` is a comment (a `#` later in a line is an
//   ordinary character, as in Apache). Continuation is applied first, so `# a \` swallows the
//   next line too.
// - `${NAME}` is replaced by the value from `Define NAME value`, else the environment variable;
//   an undefined name is left as written and reported to the caller, who warns (as Apache does:
//   "Config variable ${NAME} is not defined"); a line that then makes no sense fails at its line.
// - A logical line is bounded in length, before and after `${NAME}` expansion (limits.ts).
// - Words are separated by blanks. A word that starts with `"` or `'` runs to the matching
//   quote and may contain blanks; inside it `\"` (or `\'`) and `\\` are escapes. Outside quotes
//   `\\` is one backslash. Any other backslash is kept (so regexes like `\.` survive).

import { ConfigError } from './errors';
import { sizeText } from './limits';
import type { SourceRef } from './model';

/** One directive's worth of text: comments and blank lines dropped, continuations joined. */
export interface LogicalLine {
  /** 1-based number of the first physical line. */
  readonly line: number;
  /** The text with leading and trailing blanks removed; never empty. */
  readonly text: string;
}

/**
 * `file` and `maxChars` bound a logical line: one longer is a ConfigError at its first line
 * (Apache's own bound is 8 KiB; wsgate's, in limits.ts, is far higher).
 */
export function splitLines(text: string, file = '', maxChars = Infinity): LogicalLine[] {
  const physical = text.split('\n');
  const out: LogicalLine[] = [];
  let i = 0;
  while (i < physical.length) {
    const first = i + 1;
    let joined = '';
    for (;;) {
      let piece = physical[i] ?? '';
      i++;
      if (piece.endsWith('\r')) piece = piece.slice(0, -1);
      const more = piece.endsWith('\\') && !piece.endsWith('\\\\') && i < physical.length;
      joined += more ? piece.slice(0, -1) : piece;
      if (joined.length > maxChars) {
        throw new ConfigError(file, first, `line longer than ${sizeText(maxChars)} (continuation lines included)`);
      }
      if (!more) break;
    }
    const trimmed = joined.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    out.push({ line: first, text: trimmed });
  }
  return out;
}

/** Looks a `${NAME}` up; undefined means "not defined". */
export type VarLookup = (name: string) => string | undefined;

/** `maxChars` bounds the result: a value doubled by Define after Define must not eat all memory. */
export function expandVars(
  text: string,
  lookup: VarLookup,
  where: SourceRef,
  maxChars = Infinity,
  onUndefined: (name: string) => void = () => {},
): string {
  if (!text.includes('${')) return text;
  let out = '';
  let pos = 0;
  for (;;) {
    const start = text.indexOf('${', pos);
    if (start < 0) break;
    const end = text.indexOf('}', start + 2);
    if (end < 0) break; // Apache leaves an unterminated `${` alone.
    const name = text.slice(start + 2, end);
    const found = lookup(name);
    if (found === undefined) onUndefined(name);
    const value = found ?? text.slice(start, end + 1);
    if (out.length + (start - pos) + value.length > maxChars) throw tooLong(where, maxChars, name);
    out += text.slice(pos, start) + value;
    pos = end + 1;
  }
  if (out.length + (text.length - pos) > maxChars) throw tooLong(where, maxChars);
  return out + text.slice(pos);
}

function tooLong(where: SourceRef, maxChars: number, name?: string): ConfigError {
  const what = name === undefined ? '${VAR}s are' : `\${${name}} is`;
  return ConfigError.at(where, `line longer than ${sizeText(maxChars)} once ${what} expanded (a value that Define lines keep doubling?)`);
}

function isBlank(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\f' || ch === '\v' || ch === '\r' || ch === '\n';
}

/** Splits a logical line into words (see the file comment for quoting rules). */
export function tokenize(text: string, where: SourceRef): string[] {
  const words: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && isBlank(text[i] as string)) i++;
    if (i >= n) break;
    const quote = text[i];
    let word = '';
    if (quote === '"' || quote === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const ch = text[i] as string;
        if (ch === '\\' && (text[i + 1] === quote || text[i + 1] === '\\')) {
          word += text[i + 1];
          i += 2;
          continue;
        }
        if (ch === quote) {
          closed = true;
          i++;
          break;
        }
        word += ch;
        i++;
      }
      if (!closed) throw ConfigError.at(where, `missing closing ${quote} in: ${text}`);
    } else {
      while (i < n && !isBlank(text[i] as string)) {
        const ch = text[i] as string;
        if (ch === '\\' && text[i + 1] === '\\') {
          word += '\\';
          i += 2;
          continue;
        }
        word += ch;
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

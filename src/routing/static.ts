// Which file a request no ProxyPass takes maps to (Apache's translate-name for mod_alias, then
// the core's DocumentRoot): a pure mapping of the decoded path, so that access control can judge
// the file by its <Directory> before anything is read. handlers/static.ts reads the file system.

import * as path from 'node:path';
import type { FileServing } from '../config/model';
import { aliasMatch, substitute } from './mapping';

export interface FileTarget {
  /** Absolute file-system path the request maps to (UTF-8; the file or directory may not exist). */
  readonly file: string;
  /** The directory the mapping serves from (DocumentRoot, an Alias's target): nothing above it is served. */
  readonly root: string;
  /** `Alias …` or `DocumentRoot` with FILE:LINE, for logs. */
  readonly via: string;
}

/**
 * The file for `uriPath` (decoded, normalised; a byte string), or undefined when no alias matches
 * and there is no DocumentRoot, or 404 when the path cannot name a file safely: bytes that are not
 * UTF-8, a backslash (a path separator elsewhere, refused rather than taken literally) or a
 * result outside its root.
 */
export function mapFile(files: FileServing, uriPath: string): FileTarget | 404 | undefined {
  for (const a of files.aliases) {
    if (a.kind === 'prefix') {
      const len = aliasMatch(uriPath, a.prefix);
      if (len === 0) continue;
      return within(a.dest, a.dest, uriPath.slice(len), `Alias at ${a.source.file}:${a.source.line}`);
    }
    const m = a.regex.exec(uriPath);
    if (m === null) continue;
    // The root of an AliasMatch is the fixed part of its target, up to the last '/' before a `$N`.
    const dollar = a.dest.indexOf('$');
    const fixed = dollar === -1 ? a.dest : a.dest.slice(0, a.dest.lastIndexOf('/', dollar) + 1);
    const root = fixed.length > 1 && fixed.endsWith('/') ? fixed.slice(0, -1) : fixed;
    return within(root, substitute(a.dest, m), '', `AliasMatch at ${a.source.file}:${a.source.line}`);
  }
  const root = files.documentRoot;
  if (root === undefined) return undefined;
  return within(root, root, uriPath, 'DocumentRoot');
}

function within(root: string, base: string, rest: string, via: string): FileTarget | 404 {
  // The config's paths are UTF-8 already; only the request's part is a byte string.
  const restText = Buffer.from(rest, 'latin1').toString('utf8');
  if (Buffer.from(restText, 'utf8').compare(Buffer.from(rest, 'latin1')) !== 0) return 404;
  const joined = base + restText;
  if (joined.includes('\\') || joined.includes('\0')) return 404;
  const file = path.resolve(joined);
  // parseTarget already removed dot-segments; this holds the line should a mapping ever produce one.
  if (file !== root && !file.startsWith(root === '/' ? '/' : `${root}/`)) return 404;
  // Keep a trailing slash: it asks for the directory's index.
  return { file: joined.endsWith('/') && file !== '/' ? `${file}/` : file, root, via };
}

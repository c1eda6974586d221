// Static files (DocumentRoot, Alias, AliasMatch: config/static-files.ts) for the paths no
// ProxyPass takes. Routing mapped the path to a file and access control judged it by its
// <Directory>/<Location> sections; this module checks the file system (what exists, where links
// lead, directory index and slash), then hands the file to the `send` package, which answers
// GET/HEAD with Content-Type, ETag, Last-Modified, conditional requests (304/412) and Range (206/416).
//
// `send` writes to a Node ServerResponse. Rather than one adapter per front, SendTarget is a
// Writable with the few ServerResponse members `send` uses (statusCode, the header methods,
// headersSent, finished) that turns what it writes into one LocalResponse answer, which each
// front already implements: a whole answer for bodiless ones (304, HEAD), a stream of known
// length with back-pressure for a file.
//
// Safety, on top of routing/static.ts (UTF-8, no backslash or NUL, inside the root):
// - symbolic links: followed only under `Options FollowSymLinks` (Apache 2.4's default) and only
//   while the real path stays inside the real root; a link out of the root is 403, whatever the
//   Options (stricter than Apache, which would follow it);
// - `.ht*` (.htaccess, .htpasswd) are 403 always, as Apache's stock `<Files ".ht*">`;
// - only regular files are served (no devices, FIFOs or sockets).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import send from 'send';
import { directoryApplies } from '../access/evaluate';
import type { DirSettings, FileServing } from '../config/model';
import type { FileTarget } from '../routing/static';
import type { HandlerHost, LocalRequest, LocalResponse, LocalStream } from './handler';

const TEXT = ['Content-Type', 'text/plain; charset=utf-8'];

export async function serveStatic(host: HandlerHost, req: LocalRequest, res: LocalResponse): Promise<void> {
  const target = req.file;
  const files = req.vhost.files;
  if (target === undefined || files === undefined) return void res.send(404, TEXT, 'Not Found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return void res.send(405, ['Allow', 'GET, HEAD', ...TEXT], 'Method Not Allowed\n');
  }
  const wantsDir = target.file.endsWith('/');
  const file = wantsDir && target.file !== '/' ? target.file.slice(0, -1) : target.file;
  if (hiddenName(file, target.root)) return void res.send(403, TEXT, 'Forbidden\n');
  const settings = settingsFor(files, file);
  const found = await resolve(file, target, settings);
  if (typeof found === 'number') return void res.send(found, TEXT, found === 403 ? 'Forbidden\n' : 'Not Found\n');
  if (found.dir) {
    if (!wantsDir) {
      if (!settings.slash) return void res.send(403, TEXT, 'Forbidden\n');
      // mod_dir: a directory is asked for with its slash, so relative links in its index resolve.
      const location = pathOnly(req.target) + '/' + (req.query !== undefined ? `?${req.query}` : '');
      return void res.send(301, ['Location', location, ...TEXT], 'Moved Permanently\n');
    }
    for (const name of settings.index) {
      if (name.startsWith('.ht')) continue;
      const index = await resolve(path.join(file, name), target, settings);
      if (typeof index !== 'number' && !index.dir) return sendFile(host, req, res, index.real);
    }
    // No index file and no directory listings (Options Indexes is refused at load): Apache's 403.
    return void res.send(403, TEXT, 'Forbidden\n');
  }
  if (wantsDir) return void res.send(404, TEXT, 'Not Found\n');
  sendFile(host, req, res, found.real);
}

/** The request-target's path as sent (no query), for the slash redirect. */
function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/** A name below the root that starts with `.ht`. */
function hiddenName(file: string, root: string): boolean {
  const below = file.slice(root.length);
  return below.split('/').some((part) => part.startsWith('.ht'));
}

/** Server-level mod_dir/Options settings, then each <Directory> section that covers the file, in merge order. */
function settingsFor(files: FileServing, file: string): Required<DirSettings> {
  const s = { ...files.base };
  for (const d of files.directories) {
    if (!directoryApplies(d.match, file)) continue;
    if (d.settings.index !== undefined) s.index = d.settings.index;
    if (d.settings.slash !== undefined) s.slash = d.settings.slash;
    if (d.settings.followSymlinks !== undefined) s.followSymlinks = d.settings.followSymlinks;
  }
  return s;
}

/** Where `file` really is, checked against the root; 404 when absent, 403 when refused. */
async function resolve(
  file: string,
  target: FileTarget,
  settings: Required<DirSettings>,
): Promise<{ real: string; dir: boolean } | 403 | 404> {
  let real: string;
  let realRoot: string;
  try {
    realRoot = await fs.promises.realpath(target.root);
    real = await fs.promises.realpath(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EACCES' ? 403 : 404;
  }
  if (real !== realRoot && !real.startsWith(realRoot === '/' ? '/' : `${realRoot}/`)) return 403;
  // Without FollowSymLinks no link is followed: the real path is the written one.
  if (!settings.followSymlinks && real !== path.join(realRoot, file.slice(target.root.length))) return 403;
  if (hiddenName(real, realRoot)) return 403;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(real);
  } catch {
    return 404;
  }
  if (st.isDirectory()) return { real, dir: true };
  if (!st.isFile()) return 403;
  return { real, dir: false };
}

function sendFile(host: HandlerHost, req: LocalRequest, res: LocalResponse, real: string): void {
  const headers: Record<string, string> = {};
  const fields = req.headers;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase();
    if (!(name in headers)) headers[name] = fields[i + 1]!;
  }
  // `send` decodes the path it is given: encode each segment so the real path comes back whole.
  const encoded = real
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
  const out = new SendTarget(res);
  const stream = send({ method: req.method, headers } as never, encoded, {
    dotfiles: 'allow',
    index: false,
    cacheControl: false,
    etag: true,
    lastModified: true,
    acceptRanges: true,
  });
  stream.on('error', (err: { status?: number; headers?: Record<string, string> }) => {
    const status = err.status ?? 500;
    const extra: string[] = [];
    for (const [k, v] of Object.entries(err.headers ?? {})) extra.push(k, v);
    if (status >= 500) host.log.warn('static file failed', { file: real, status });
    out.fail(status, extra);
  });
  stream.on('stream', (file: fs.ReadStream) => out.source(file));
  stream.pipe(out as never);
}

/** The part of Node's ServerResponse that `send` uses, answering through a LocalResponse. */
class SendTarget extends Writable {
  statusCode = 200;
  headersSent = false;
  /** on-finished (used by `send`) reads this as OutgoingMessage.finished. */
  finished = false;
  private readonly fields = new Map<string, [string, string]>();
  private out: LocalStream | undefined;
  private file: fs.ReadStream | undefined;

  constructor(private readonly res: LocalResponse) {
    super();
  }

  setHeader(name: string, value: string | number): this {
    this.fields.set(name.toLowerCase(), [name, String(value)]);
    return this;
  }

  getHeader(name: string): string | undefined {
    return this.fields.get(name.toLowerCase())?.[1];
  }

  getHeaderNames(): string[] {
    return [...this.fields.keys()];
  }

  removeHeader(name: string): void {
    this.fields.delete(name.toLowerCase());
  }

  /** The file stream `send` reads from: destroyed when the client leaves. */
  source(file: fs.ReadStream): void {
    this.file = file;
  }

  /** An error `send` reports (404, 412, 416 …) before anything was written. */
  fail(status: number, extra: readonly string[]): void {
    if (this.headersSent) {
      // Too late for a status: cut the answer short so the client sees it is incomplete.
      this.file?.destroy();
      this.destroy();
      return;
    }
    this.headersSent = true;
    this.finished = true;
    const text = status === 404 ? 'Not Found\n' : status === 403 ? 'Forbidden\n' : `${status}\n`;
    this.res.send(status, [...extra, ...TEXT], status === 412 || status === 416 ? '' : text);
  }

  private list(): string[] {
    const out: string[] = [];
    for (const [, [name, value]] of this.fields) if (name.toLowerCase() !== 'content-length') out.push(name, value);
    return out;
  }

  private start(): LocalStream {
    this.headersSent = true;
    const length = Number(this.getHeader('Content-Length') ?? 0);
    const stream = this.res.open(this.statusCode, this.list(), length);
    stream.onClose(() => {
      this.finished = true;
      this.file?.destroy();
    });
    this.out = stream;
    return stream;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, next: (e?: Error | null) => void): void {
    const out = this.out ?? this.start();
    if (!out.write(chunk, () => next())) {
      this.file?.destroy();
    }
  }

  override _final(done: (e?: Error | null) => void): void {
    this.finished = true;
    if (this.out !== undefined) this.out.end();
    else if (this.statusCode === 304) {
      this.headersSent = true;
      this.res.send(304, this.list(), '');
    } else this.start().end();
    done();
  }
}

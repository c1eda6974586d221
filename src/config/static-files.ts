// Static files, as mod_alias, mod_dir and the core serve them: DocumentRoot, Alias, AliasMatch,
// DirectoryIndex, DirectorySlash, Options and <Directory>/<DirectoryMatch> with the access
// directives inside. A server serves files only where a path reaches them: it has a DocumentRoot
// or an alias and does not proxy every path (a `ProxyPass /` with no `ProxyPass … !`); where it
// proxies every path, these lines change nothing and are noticed, as before files were served.
//
// <Directory> sections are read lazily (readDirectories), once the routes show that some server
// serves files: a config that proxies everything keeps loading as it did, whatever its stock
// <Directory> sections hold.

import * as path from 'node:path';
import type { DirectiveSpec, SectionSpec, Walk } from './directives';
import type { BuildState, Ctx, RouteDraft, ServerDraft } from './drafts';
import { ConfigError } from './errors';
import { hasWildcard } from './glob';
import type { DirSettings, DirectoryMatch, DirectorySection, FileAlias, FileServing, SourceRef } from './model';
import type { ConfigNode, DirectiveNode, SectionNode } from './parser';
import { parseOnOff, parseRegex } from './values';

export interface FilesDraft {
  documentRoot?: { readonly path: string; readonly source: SourceRef };
  readonly aliases: FileAlias[];
  /** Server-level DirectoryIndex/DirectorySlash/Options. */
  readonly settings: MutableDirSettings;
  /** The <Directory>/<DirectoryMatch> sections written in this server, read by readDirectories. */
  readonly sections: SectionNode[];
  /** What those sections said, once read. */
  readonly directories: { match: DirectoryMatch; settings: MutableDirSettings; source: SourceRef }[];
}

type MutableDirSettings = { -readonly [K in keyof DirSettings]: DirSettings[K] };

export function newFilesDraft(): FilesDraft {
  return { aliases: [], settings: {}, sections: [], directories: [] };
}

/** Inside a <Directory>: what the section's settings and access lines go to. */
export interface DirectoryCtx {
  readonly match: DirectoryMatch;
  readonly settings: MutableDirSettings;
  readonly source: SourceRef;
}

const SERVER_VHOST = ['server', 'vhost'] as const;

function base(ctx: Ctx): string {
  return ctx.state.serverRoot ?? path.dirname(path.resolve(ctx.state.main.source.file));
}

/** An absolute file-system path without a trailing slash (`/` stays `/`), relative ones against ServerRoot. */
function fsPath(arg: string, ctx: Ctx, what: string, where: SourceRef): string {
  if (arg.includes('\0')) throw ConfigError.at(where, `${what}: the path holds a NUL`);
  const p = path.resolve(base(ctx), arg);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function settingsOf(ctx: Ctx): MutableDirSettings {
  return ctx.directory?.settings ?? ctx.server.files.settings;
}

export function staticFileSpecs(): DirectiveSpec[] {
  return [
    {
      name: 'DocumentRoot',
      contexts: [...SERVER_VHOST],
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.files.documentRoot = { path: fsPath(node.args[0] as string, ctx, 'DocumentRoot', node.source), source: node.source };
      },
    },
    {
      name: 'Alias',
      contexts: [...SERVER_VHOST],
      minArgs: 2,
      maxArgs: 2,
      handle: (node, ctx) => {
        const [prefix, dest] = node.args as [string, string];
        if (!prefix.startsWith('/')) throw ConfigError.at(node.source, `Alias: the URL-path "${prefix}" must start with "/"`);
        ctx.server.files.aliases.push({ kind: 'prefix', prefix, dest: fsPath(dest, ctx, 'Alias', node.source), source: node.source });
      },
    },
    {
      name: 'AliasMatch',
      contexts: [...SERVER_VHOST],
      minArgs: 2,
      maxArgs: 2,
      handle: (node, ctx) => {
        const [pattern, dest] = node.args as [string, string];
        if (!dest.startsWith('/')) throw ConfigError.at(node.source, `AliasMatch: the file path "${dest}" must be absolute`);
        if (dest.includes('\0')) throw ConfigError.at(node.source, 'AliasMatch: the path holds a NUL');
        ctx.server.files.aliases.push({ kind: 'regex', regex: parseRegex(pattern, 'AliasMatch', node.source), dest, source: node.source });
      },
    },
    {
      name: 'DirectoryIndex',
      contexts: [...SERVER_VHOST, 'directory'],
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => {
        const names = node.args as string[];
        if (names.length === 1 && names[0]!.toLowerCase() === 'disabled') {
          settingsOf(ctx).index = [];
          return;
        }
        for (const n of names) {
          // Apache also takes a URL (`/cgi-bin/index.pl`): an internal redirect wsgate does not make.
          if (n.includes('/') || n === '.' || n === '..') {
            throw ConfigError.at(node.source, `DirectoryIndex ${n}: only file names in the directory are supported (no paths or URLs)`);
          }
        }
        settingsOf(ctx).index = names;
      },
    },
    {
      name: 'DirectorySlash',
      contexts: [...SERVER_VHOST, 'directory'],
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        settingsOf(ctx).slash = parseOnOff(node.args[0] as string, 'DirectorySlash', node.source);
      },
    },
    {
      name: 'Options',
      contexts: [...SERVER_VHOST, 'directory', 'proxy'],
      minArgs: 1,
      maxArgs: Infinity,
      handle: options,
    },
  ];
}

/**
 * `Options`: FollowSymLinks is honoured (see handlers/static.ts for how far a link may lead);
 * None/-X are accepted; what would make wsgate list directories, run CGI or server-side includes,
 * or negotiate content is refused. Without a +/- the list replaces what was set before.
 */
function options(node: DirectiveNode, ctx: Ctx): void {
  if (ctx.kind === 'proxy') {
    // Etherpad's published <Proxy *> has `Options FollowSymLinks MultiViews`: Apache takes it (a
    // <Proxy> is a per-directory section), and it changes nothing as no file is served there.
    ctx.state.notices.once(
      'ignored:options-proxy',
      node.source,
      'Options inside <Proxy> is ignored: its options apply to files served from disk, and a proxied request serves none',
    );
    return;
  }
  const s = settingsOf(ctx);
  let follow: boolean | undefined;
  const relative = node.args.every((a) => a.startsWith('+') || a.startsWith('-'));
  if (!relative) follow = false;
  for (const arg of node.args) {
    const sign = arg[0] === '+' || arg[0] === '-' ? arg[0] : '';
    const word = (sign === '' ? arg : arg.slice(1)).toLowerCase();
    const on = sign !== '-';
    switch (word) {
      case 'none':
        follow = false;
        break;
      case 'followsymlinks':
        follow = on;
        break;
      case 'indexes':
        if (on) {
          throw ConfigError.at(
            node.source,
            `Options ${arg}: wsgate lists no directories; write "Options -Indexes" (a directory without an index file then gets 403, as Apache without Indexes)`,
          );
        }
        break;
      case 'all':
      case 'execcgi':
      case 'includes':
      case 'includesnoexec':
      case 'multiviews':
      case 'symlinksifownermatch':
        if (on) {
          throw ConfigError.at(
            node.source,
            `Options ${arg}: not supported by wsgate's file serving (it serves files as they are: FollowSymLinks, -Indexes and None are what it takes)`,
          );
        }
        break;
      default:
        throw ConfigError.at(node.source, `Options: unknown option "${arg}"`);
    }
  }
  if (follow !== undefined) s.followSymlinks = follow;
}

/** `<Directory>`/`<DirectoryMatch>`: kept for readDirectories (the walk does not enter it). */
export function directorySections(): SectionSpec[] {
  const open = (node: SectionNode, ctx: Ctx): void => {
    ctx.server.files.sections.push(node);
  };
  return [
    { name: 'Directory', contexts: [...SERVER_VHOST], minArgs: 1, maxArgs: 2, open },
    { name: 'DirectoryMatch', contexts: [...SERVER_VHOST], minArgs: 1, maxArgs: 1, open },
  ];
}

/** Directives read inside a <Directory>: mod_dir, Options, and the access ones (others are refused there). */
const IN_DIRECTORY = new Set([
  'directoryindex',
  'directoryslash',
  'options',
  'require',
  'authmerging',
  'authzsendforbiddenonfailure',
  'order',
  'allow',
  'deny',
  'satisfy',
  'authtype',
  'authname',
  'authbasicprovider',
  'authuserfile',
  'authgroupfile',
  'setenvif',
  'setenvifnocase',
  'browsermatch',
  'browsermatchnocase',
]);
/** Accepted inside a <Directory> without effect: nothing wsgate does reads them. */
const NOTHING_IN_DIRECTORY = new Set(['allowoverride', 'allowoverridelist', 'ssloptions']);
/** Accepted in a served <Directory> only as `None`: other values make Apache read .htaccess files. */
const OVERRIDES = new Set(['allowoverride', 'allowoverridelist']);
const AUTHZ_SECTIONS = new Set(['requireall', 'requireany', 'requirenone']);

/** Whether a server serves files: something maps paths to files and some path is not proxied. */
export function servesFiles(server: ServerDraft, main: ServerDraft, inheritRoutes: boolean): boolean {
  const f = server.files;
  const hasFiles =
    f.documentRoot !== undefined || f.aliases.length > 0 || main.files.documentRoot !== undefined || main.files.aliases.length > 0;
  if (!hasFiles) return false;
  const routes: RouteDraft[] = [...server.serverRoutes, ...server.locationRoutes];
  if (server !== main && inheritRoutes) routes.push(...main.serverRoutes, ...main.locationRoutes);
  const all = routes.some((r) => !r.exclude && !r.regex && r.match.kind === 'prefix' && r.match.prefix === '/');
  return !all || routes.some((r) => r.exclude);
}

/**
 * Reads the <Directory> sections of every server when some server serves files (their lines
 * then matter); otherwise notes once that they are skipped, as wsgate always did.
 */
export function readDirectories(state: BuildState, serving: boolean, walk: Walk, sections: ReadonlyMap<string, SectionSpec>): void {
  if (serving) {
    for (const node of state.skippedFiles) refuseFilesAccess(node);
    const detail = state.fileDetails[0];
    if (detail !== undefined) {
      throw ConfigError.at(
        detail.source,
        `${detail.name}: wsgate serves files here but not with this line (it picks types, encodings and validators from the file as \`send\` does); remove it, or serve these files from a backend`,
      );
    }
  }
  const servers = [state.main, ...state.vhosts];
  for (const server of servers) {
    for (const node of server.files.sections) {
      if (!serving) {
        state.notices.once(
          `skipped:${node.key}`,
          node.source,
          `<${node.name}> sections are skipped: they apply to files Apache serves itself, and proxied requests never enter them`,
        );
        continue;
      }
      const match = directoryMatch(node, state);
      const dir: DirectoryCtx = { match, settings: {}, source: node.source };
      server.files.directories.push(dir);
      const ctx: Ctx = { kind: 'directory', server, state, directory: dir };
      walkDirectory(node.children, ctx, walk, sections);
    }
  }
}

/**
 * A line that shapes the files Apache serves (their type, charset, encoding, language, handler,
 * filters, ETag, Content-MD5, path info): a notice while no server serves files — it changes
 * nothing then — and an error once one does, as wsgate's file serving does not read it.
 */
export function fileDetail(name: string): DirectiveSpec {
  return {
    name,
    group: 'notice',
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    handle: (node, ctx) => {
      ctx.state.fileDetails.push(node);
      ctx.state.notices.once(
        `ignored:${name.toLowerCase()}`,
        node.source,
        `${name} is ignored: it applies to files Apache serves itself, and here every path is proxied`,
      );
    },
  };
}

/** Lines of a <Files> section that would decide who gets a file. */
const FILES_ACCESS = new Set([
  'require',
  'requireall',
  'requireany',
  'requirenone',
  'allow',
  'deny',
  'order',
  'satisfy',
  'authtype',
  'authname',
  'authuserfile',
  'authgroupfile',
  'authbasicprovider',
]);

/**
 * A <Files>/<FilesMatch> section with access lines, where wsgate serves files: Apache would apply
 * them to each file it serves, and wsgate does not read these sections, so it refuses rather than
 * serve what the section keeps out. The stock `.ht*` denial is kept without a word: wsgate never
 * serves those names.
 */
function refuseFilesAccess(node: SectionNode): void {
  const access = node.children.find((c) => FILES_ACCESS.has(c.key));
  if (access === undefined) return;
  const pattern = node.args[node.args.length - 1] ?? '';
  if (/^\^?\\?\.ht(\*|\.\*)?$/.test(pattern)) return;
  throw ConfigError.at(
    node.source,
    `<${node.name} ${node.args.join(' ')}> holds ${access.name} (line ${access.source.line}), and wsgate serves files here but does not apply <${node.name}> sections to them; write the rule in a <LocationMatch> or <DirectoryMatch> instead`,
  );
}

function walkDirectory(nodes: readonly ConfigNode[], ctx: Ctx, walk: Walk, sections: ReadonlyMap<string, SectionSpec>): void {
  for (const node of nodes) {
    if (node.kind === 'section') {
      if (AUTHZ_SECTIONS.has(node.key)) {
        const spec = sections.get(node.key)!;
        // The Require containers walk their own lines: those are Require lines or nested containers.
        spec.open(node, ctx, (children, inner) => walkDirectory(children, inner, walk, sections));
        continue;
      }
      throw ConfigError.at(node.source, `<${node.name}> inside <Directory> is not supported by wsgate's file serving`);
    }
    if (OVERRIDES.has(node.key) && !(node.args.length === 1 && (node.args[0] as string).toLowerCase() === 'none')) {
      // Apache would read .htaccess files in these served directories, and their lines can deny,
      // redirect or rewrite; wsgate reads none, so it cannot honour this.
      throw ConfigError.at(
        node.source,
        `${node.name} ${node.args.join(' ')}: wsgate does not read .htaccess files; put their lines in the config and write "${node.name} None"`,
      );
    }
    if (NOTHING_IN_DIRECTORY.has(node.key)) {
      ctx.state.notices.once(
        `dir-ignored:${node.key}`,
        node.source,
        `${node.name} inside <Directory> is ignored: nothing wsgate does reads it`,
      );
      continue;
    }
    if (!IN_DIRECTORY.has(node.key)) {
      throw ConfigError.at(
        node.source,
        `${node.name} inside <Directory> is not supported: wsgate reads DirectoryIndex, DirectorySlash, Options and the access directives there`,
      );
    }
    walk([node], ctx);
  }
}

function directoryMatch(node: SectionNode, state: BuildState): DirectoryMatch {
  const args = node.args;
  const regexForm = node.key === 'directorymatch' || (args.length === 2 && args[0] === '~');
  if (node.key === 'directory' && args.length === 2 && args[0] !== '~') {
    throw ConfigError.at(node.source, `<Directory> takes one path, or "~ regex"`);
  }
  const written = args[args.length - 1] as string;
  if (regexForm) return { kind: 'regex', regex: parseRegex(written, `<${node.name}>`, node.source), pattern: written };
  if (hasWildcard(written)) {
    throw ConfigError.at(
      node.source,
      `<Directory ${written}>: wildcards are not supported; write the directories out, or use <DirectoryMatch>`,
    );
  }
  // A relative <Directory> path means the same as it would for DocumentRoot.
  const baseDir = state.serverRoot ?? path.dirname(path.resolve(state.main.source.file));
  let dir = path.resolve(baseDir, written);
  if (dir.length > 1 && dir.endsWith('/')) dir = dir.slice(0, -1);
  return { kind: 'prefix', dir };
}

/** Apache's order: path sections by depth (shorter first, stable), then regex ones in config order. */
export function directoryRank(m: DirectoryMatch): number {
  if (m.kind === 'regex') return Number.MAX_SAFE_INTEGER;
  return m.dir === '/' ? 0 : m.dir.split('/').length - 1;
}

function sorted<T extends { readonly match: DirectoryMatch }>(list: readonly T[]): T[] {
  return list
    .map((d, i) => ({ d, i }))
    .sort((a, b) => directoryRank(a.d.match) - directoryRank(b.d.match) || a.i - b.i)
    .map((x) => x.d);
}

/** The static files of a server (undefined when it serves none); the main server's root and aliases are inherited. */
export function assembleFiles(server: ServerDraft, main: ServerDraft, serving: boolean): FileServing | undefined {
  if (!serving) return undefined;
  const root = server.files.documentRoot ?? main.files.documentRoot;
  const aliases = server === main ? server.files.aliases : [...server.files.aliases, ...main.files.aliases];
  const pick = <K extends keyof DirSettings>(k: K): DirSettings[K] => server.files.settings[k] ?? main.files.settings[k];
  const directories: DirectorySection[] = sorted(
    server === main ? main.files.directories : [...main.files.directories, ...server.files.directories],
  ).map((d) => ({ match: d.match, settings: { ...d.settings }, source: d.source }));
  return {
    ...(root !== undefined ? { documentRoot: root.path } : {}),
    aliases,
    base: { index: pick('index') ?? ['index.html'], slash: pick('slash') ?? true, followSymlinks: pick('followSymlinks') ?? true },
    directories,
  };
}

/** Sorts a server's directory access drafts the same way (access.ts buildAccess). */
export const sortDirectories = sorted;

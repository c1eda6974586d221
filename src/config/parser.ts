// Parsing: logical lines → a tree of directives and sections, each with its file:line.
//
// What Apache does "on read" (EXEC_ON_READ) happens here, in file order, so that the tree holds
// only what is in effect:
// - `Define NAME [value]` / `UnDefine NAME`: names for <IfDefine>, values for `${NAME}`.
// - `<IfDefine [!]NAME>`: kept or skipped. `<IfModule [!]module>`: kept when the module is one
//   wsgate implements or one a `LoadModule` line above named (modules.ts), else skipped.
// - `LoadModule name file`: marks the module loaded for later <IfModule> lines (and is kept in the
//   tree, where it is a notice).
// - `Include` / `IncludeOptional`: the files' contents are parsed in place (glob rules in
//   glob.ts). A relative path resolves against `ServerRoot` if one was set earlier, else the
//   main config file's directory. Include of a missing file is an error, IncludeOptional is
//   silent. A file that includes itself (directly or not) is an error, and so is nesting deeper
//   than 128 levels (Apache's bound). Only regular files are read (files.ts), and the whole load
//   is bounded in files, bytes, directory entries and line length (limits.ts).
// - `ServerRoot` (top level) takes effect at once for later Include lines.
// - `<IfVersion …>`: kept or skipped by comparing with APACHE_VERSION.
// - <Files>/<FilesMatch> sections are kept as an empty node
//   with `skipped: true`; their contents are not expanded or checked.
// Sections must be closed in the file that opened them, as in Apache.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from './errors';
import { FileReadError, readTextFile } from './files';
import { expandInclude } from './glob';
import { expandVars, splitLines, tokenize } from './lexer';
import { LimitExceeded, LoadBudget } from './limits';
import { builtInModuleNames, moduleSpellings } from './modules';
import type { SourceRef } from './model';

export interface DirectiveNode {
  readonly kind: 'directive';
  /** As written, e.g. `ProxyPass`. */
  readonly name: string;
  /** Lower-cased name, for table look-ups. */
  readonly key: string;
  readonly args: readonly string[];
  readonly source: SourceRef;
}

export interface SectionNode {
  readonly kind: 'section';
  /** As written without the `<`, e.g. `VirtualHost`. */
  readonly name: string;
  readonly key: string;
  readonly args: readonly string[];
  readonly source: SourceRef;
  readonly children: ConfigNode[];
  /** Contents not read (a section wsgate has no use for). */
  readonly skipped: boolean;
}

export type ConfigNode = DirectiveNode | SectionNode;

export interface ParseOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Directory that relative Include paths resolve against until a ServerRoot is seen. */
  readonly includeBase: string;
  /** Bounds and running totals of this load (default: a fresh one with the default limits). */
  readonly budget?: LoadBudget;
}

export interface ParseResult {
  readonly nodes: readonly ConfigNode[];
  /** Warnings found while reading (an undefined `${VAR}`), in file order. */
  readonly warnings: readonly { readonly where: SourceRef; readonly text: string }[];
  /** Files read, main first, each once. */
  readonly files: readonly string[];
}

/**
 * Sections whose contents are skipped: they apply to files Apache serves itself, and a proxied
 * request never enters them (mod_proxy maps it to storage before the directory and file walks).
 */
export const SKIPPED_SECTIONS: ReadonlySet<string> = new Set(['files', 'filesmatch']);

/** Conditional sections evaluated while reading (kept or skipped whole). */
export const CONDITIONAL_SECTIONS: readonly string[] = ['IfModule', 'IfDefine', 'IfVersion'];

/** Directives consumed while reading; they never reach the directive table. */
export const READ_DIRECTIVES: readonly string[] = ['Define', 'UnDefine', 'Include', 'IncludeOptional'];

/** The Apache version `<IfVersion>` compares against: the 2.4 line whose proxy behaviour wsgate follows. */
export const APACHE_VERSION: readonly [number, number, number] = [2, 4, 62];

/**
 * What a skipped section (<Files>, <FilesMatch>) holds is not read, but the names of its lines
 * are kept as its children (without arguments): once wsgate serves files, a `Require` there
 * would decide who gets a file, and the build refuses what it cannot honour (static-files.ts).
 */
function noteSkippedLine(raw: string, where: SourceRef, stack: Frame[]): void {
  const files = stack[stack.length - 1]?.files;
  if (files === undefined || raw.startsWith('</')) return;
  const name = raw.startsWith('<') ? (SECTION_NAME.exec(raw)?.[1] ?? '') : (/^\S+/.exec(raw)?.[0] ?? '');
  files.push({ kind: 'directive', name, key: name.toLowerCase(), args: [], source: where });
}

interface Frame {
  /** Inside a skipped <Files>/<FilesMatch> (at any depth): where the names of its lines go. */
  readonly files?: ConfigNode[];
  /** `section`: a node in the tree; `cond`: a taken <IfModule>/<IfDefine>; `skip`: contents ignored. */
  readonly kind: 'section' | 'cond' | 'skip';
  readonly name: string;
  readonly key: string;
  readonly source: SourceRef;
  /** Where the nodes inside this frame go (kept per frame: sections may nest very deep). */
  readonly target: ConfigNode[];
  /** Inside a section of this file (not only <IfModule>/<IfDefine>). */
  readonly inSection: boolean;
}

const SECTION_NAME = /^<\/?\s*([^\s>]*)/;

class Parser {
  private readonly defines = new Set<string>();
  private readonly modules = builtInModuleNames();
  private readonly vars = new Map<string, string>();
  private serverRoot: string | undefined;
  private readonly files: string[] = [];
  private readonly warnings: { where: SourceRef; text: string }[] = [];
  private readonly undefinedVars = new Set<string>();
  private readonly seenFiles = new Set<string>();
  /** Real paths of the files being read, outermost first, for loop detection. */
  private readonly reading: string[] = [];
  private readonly lookup = (name: string): string | undefined => this.vars.get(name) ?? this.opts.env[name];
  private readonly budget: LoadBudget;

  constructor(private readonly opts: ParseOptions) {
    this.budget = opts.budget ?? new LoadBudget();
  }

  parseMain(text: string, fileName: string): ParseResult {
    const nodes: ConfigNode[] = [];
    this.readFile(text, fileName, nodes);
    return { nodes, files: this.files, warnings: this.warnings };
  }

  private readFile(text: string, file: string, target: ConfigNode[]): void {
    if (!this.seenFiles.has(file)) {
      this.seenFiles.add(file);
      this.files.push(file);
    }
    this.reading.push(realPath(file));
    const stack: Frame[] = [];
    const limits = this.budget.limits;

    for (const { line, text: raw } of splitLines(text, file, limits.lineChars)) {
      const where: SourceRef = { file, line };
      const top = stack[stack.length - 1];
      if (top?.kind === 'skip') {
        this.soak(raw, where, stack);
        continue;
      }
      const expanded = expandVars(raw, this.lookup, where, limits.lineChars, (name) => this.undefinedVar(name, where));
      try {
        this.budget.line(expanded.length);
      } catch (err) {
        throw atLine(where, err);
      }
      const here = top?.target ?? target;
      if (expanded.startsWith('</')) {
        this.closeSection(expanded, where, stack);
      } else if (expanded.startsWith('<')) {
        this.openSection(expanded, where, stack, here, top?.inSection ?? false);
      } else {
        const words = tokenize(expanded, where);
        const name = words[0];
        if (name === undefined) continue;
        this.directive(name, words.slice(1), where, top?.inSection ?? false, here);
      }
    }

    const open = stack[stack.length - 1];
    if (open) {
      throw ConfigError.at(open.source, `<${open.name}> is never closed: no </${open.name}> before the end of ${file}`);
    }
    this.reading.pop();
  }

  /** Apache warns and keeps `${NAME}` as written; one warning per name per load. */
  private undefinedVar(name: string, where: SourceRef): void {
    if (this.undefinedVars.has(name)) return;
    this.undefinedVars.add(name);
    this.warnings.push({
      where,
      text: `Config variable \${${name}} is not defined (no "Define ${name} value" before this line and no environment variable ${name}): the text is kept as written`,
    });
  }

  /** Inside a skipped section: only follow nesting so the right closing line ends it. */
  private soak(raw: string, where: SourceRef, stack: Frame[]): void {
    noteSkippedLine(raw, where, stack);
    if (!raw.startsWith('<')) return;
    const name = SECTION_NAME.exec(raw)?.[1] ?? '';
    if (raw.startsWith('</')) {
      this.popFrame(name, where, stack);
    } else {
      const files = stack[stack.length - 1]?.files;
      stack.push({ kind: 'skip', name, key: name.toLowerCase(), source: where, target: [], inSection: true, ...(files ? { files } : {}) });
    }
  }

  private popFrame(name: string, where: SourceRef, stack: Frame[]): void {
    const top = stack.pop();
    if (!top) throw ConfigError.at(where, `</${name}> without a matching <${name}>`);
    if (top.key !== name.toLowerCase()) {
      throw ConfigError.at(where, `</${name}> does not close <${top.name}> (opened at ${top.source.file}:${top.source.line})`);
    }
  }

  private closeSection(text: string, where: SourceRef, stack: Frame[]): void {
    if (!text.endsWith('>')) throw ConfigError.at(where, `missing ">" at the end of "${text}"`);
    const inner = text.slice(2, -1).trim();
    if (inner === '' || /\s/.test(inner)) throw ConfigError.at(where, `malformed closing tag "${text}"`);
    this.popFrame(inner, where, stack);
  }

  private openSection(text: string, where: SourceRef, stack: Frame[], target: ConfigNode[], inSection: boolean): void {
    if (!text.endsWith('>')) throw ConfigError.at(where, `missing ">" at the end of "${text}"`);
    const words = tokenize(text.slice(1, -1), where);
    const name = words[0];
    if (name === undefined || name === '') throw ConfigError.at(where, `empty section name in "${text}"`);
    const key = name.toLowerCase();
    const args = words.slice(1);

    if (key === 'ifversion') {
      stack.push({ kind: ifVersionHolds(args, name, where) ? 'cond' : 'skip', name, key, source: where, target, inSection });
      return;
    }
    if (key === 'ifmodule' || key === 'ifdefine') {
      const arg = args[0];
      if (args.length !== 1 || arg === undefined) {
        throw ConfigError.at(where, `<${name}> takes 1 argument, got ${args.length}`);
      }
      const negated = arg.startsWith('!');
      const subject = negated ? arg.slice(1) : arg;
      if (subject === '') throw ConfigError.at(where, `<${name}> needs a name after "!"`);
      const holds = key === 'ifmodule' ? this.modules.has(subject) : this.defines.has(subject);
      stack.push({ kind: holds !== negated ? 'cond' : 'skip', name, key, source: where, target, inSection });
      return;
    }

    const skipped = SKIPPED_SECTIONS.has(key);
    const node: SectionNode = { kind: 'section', name, key, args, source: where, children: [], skipped };
    target.push(node);
    stack.push({
      kind: skipped ? 'skip' : 'section',
      name,
      key,
      source: where,
      target: node.children,
      inSection: true,
      ...(skipped ? { files: node.children } : {}),
    });
  }

  private directive(name: string, args: string[], where: SourceRef, inSection: boolean, target: ConfigNode[]): void {
    const key = name.toLowerCase();
    switch (key) {
      case 'define': {
        const varName = args[0];
        if (varName === undefined || args.length > 2) {
          throw ConfigError.at(where, `Define takes 1 or 2 arguments (NAME [value]), got ${args.length}`);
        }
        if (varName.includes(':') || varName === '') {
          throw ConfigError.at(where, `Define: bad variable name "${varName}" (must not contain ":")`);
        }
        this.defines.add(varName);
        const value = args[1];
        if (value !== undefined) this.vars.set(varName, value);
        return;
      }
      case 'undefine': {
        const varName = args[0];
        if (varName === undefined || args.length !== 1) {
          throw ConfigError.at(where, `UnDefine takes 1 argument, got ${args.length}`);
        }
        this.defines.delete(varName);
        this.vars.delete(varName);
        return;
      }
      case 'include':
      case 'includeoptional':
        this.include(name, key === 'includeoptional', args, where, target);
        return;
      case 'loadmodule':
        // Apache reads LoadModule on read too: <IfModule> below it sees the module.
        if (args.length === 2) for (const spelling of moduleSpellings(args[0] as string)) this.modules.add(spelling);
        break;
      case 'serverroot':
        if (args.length === 1 && !inSection) {
          this.serverRoot = path.resolve(this.opts.includeBase, args[0] as string);
        }
        break;
      default:
        break;
    }
    target.push({ kind: 'directive', name, key, args, source: where });
  }

  private include(name: string, optional: boolean, args: string[], where: SourceRef, target: ConfigNode[]): void {
    const pattern = args[0];
    if (pattern === undefined || args.length !== 1) {
      throw ConfigError.at(where, `${name} takes 1 argument, got ${args.length}`);
    }
    const base = this.serverRoot ?? this.opts.includeBase;
    const abs = path.resolve(base, pattern);
    // `reading` holds the main file too: its length is the nesting level the new files would get.
    if (this.reading.length > this.budget.limits.includeDepth) {
      throw ConfigError.at(
        where,
        `${name} "${pattern}": Include nesting deeper than ${this.budget.limits.includeDepth} levels (Apache's limit); is there a recursion?`,
      );
    }
    let found: ReturnType<typeof expandInclude>;
    try {
      found = expandInclude(abs, this.budget);
    } catch (err) {
      throw atLine(where, err, `${name} "${pattern}": `);
    }
    if (!found.ok) {
      if (optional) return;
      throw ConfigError.at(where, `${name} "${pattern}": ${found.reason}`);
    }
    for (const file of found.files) {
      const real = realPath(file);
      if (this.reading.includes(real)) {
        throw ConfigError.at(where, `${name} "${pattern}" loops: ${file} is already being read`);
      }
      let text: string;
      try {
        text = readTextFile(file, this.budget.limits.fileBytes, this.budget);
      } catch (err) {
        throw atLine(where, err, `${name} "${pattern}": `);
      }
      this.readFile(text, file, target);
    }
  }
}

/** A bound crossed or a file refused, as a ConfigError at the line responsible; anything else is rethrown. */
function atLine(where: SourceRef, err: unknown, prefix = ''): unknown {
  if (err instanceof LimitExceeded || err instanceof FileReadError) return ConfigError.at(where, prefix + err.message);
  return err;
}

/**
 * `<IfVersion [[!]op] version>` as mod_version reads it: op is =, ==, <, <=, >, >= (version
 * numbers; missing parts of the written version match any) or ~ (regex); `/regex/` alone is a
 * regex too; `!` negates.
 */
function ifVersionHolds(args: readonly string[], name: string, where: SourceRef): boolean {
  if (args.length < 1 || args.length > 2)
    throw ConfigError.at(where, `<${name}> takes 1 or 2 arguments ([[!]operator] version), got ${args.length}`);
  let op = args.length === 2 ? (args[0] as string) : '=';
  let version = args[args.length - 1] as string;
  const negate = op.startsWith('!');
  if (negate) op = op.slice(1);
  const mine = APACHE_VERSION.join('.');
  let holds: boolean;
  if (op === '~' || (args.length === 1 && version.length > 1 && version.startsWith('/') && version.endsWith('/'))) {
    if (version.startsWith('/') && version.endsWith('/') && version.length > 1) version = version.slice(1, -1);
    let re: RegExp;
    try {
      re = new RegExp(version);
    } catch {
      throw ConfigError.at(where, `<${name}>: bad regular expression "${version}"`);
    }
    holds = re.test(mine);
  } else {
    const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(version);
    if (m === null) throw ConfigError.at(where, `<${name}>: bad version "${version}" (major[.minor[.patch]])`);
    // Compare only the parts written: <IfVersion 2.4> is any 2.4.x.
    let cmp = 0;
    for (let i = 0; i < 3 && cmp === 0; i++) {
      if (m[i + 1] === undefined) break;
      cmp = Math.sign((APACHE_VERSION[i] as number) - Number(m[i + 1]));
    }
    switch (op) {
      case '=':
      case '==':
        holds = cmp === 0;
        break;
      case '<':
        holds = cmp < 0;
        break;
      case '<=':
        holds = cmp <= 0;
        break;
      case '>':
        holds = cmp > 0;
        break;
      case '>=':
        holds = cmp >= 0;
        break;
      default:
        throw ConfigError.at(where, `<${name}>: unknown operator "${op}" (=, ==, <, <=, >, >= or ~)`);
    }
  }
  return holds !== negate;
}

function realPath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

export function parseConfig(text: string, fileName: string, opts: ParseOptions): ParseResult {
  return new Parser(opts).parseMain(text, fileName);
}

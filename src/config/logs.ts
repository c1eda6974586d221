// mod_log_config's and the core's log directives: ErrorLog, LogLevel, LogFormat, CustomLog,
// TransferLog. Formats are compiled here, once, at their line (observe/log-format.ts), so an
// unknown `%` code is a FILE:LINE error and writing a line later parses nothing. Files are only
// named here; the gateway opens them when it starts (observe/access-log.ts).
//
// Per virtual host as in Apache: a <VirtualHost> with a CustomLog or TransferLog of its own logs
// only there; one without logs where the main server does. LogFormat nicknames of the main server
// are known in every virtual host. The error log is one for the whole process.

import * as path from 'node:path';
import type { Level } from '../observe/log';
import { compileLogFormat, LogFormatError, PREDEFINED_FORMATS, type CompiledFormat } from '../observe/log-format';
import type { ContextKind, Ctx, ServerDraft } from './drafts';
import { ConfigError } from './errors';
import type { AccessLogSpec, EnvCondition, ErrorLogTarget, SourceRef } from './model';
import type { DirectiveNode } from './parser';

/** The nickname that makes a CustomLog write one JSON record per tunnel instead of Apache lines. */
export const TUNNEL_NICKNAME = 'tunnel';

interface FormatDraft {
  readonly compiled: CompiledFormat;
  readonly source: SourceRef;
}

interface CustomLogDraft {
  readonly file: string;
  /** A nickname or a format string, as written; undefined for TransferLog (the default format). */
  readonly format: string | undefined;
  readonly condition: EnvCondition | undefined;
  readonly source: SourceRef;
}

export interface LogsDraft {
  readonly formats: Map<string, FormatDraft>;
  /** The last LogFormat without a nickname (what TransferLog uses). */
  defaultFormat?: FormatDraft;
  readonly custom: CustomLogDraft[];
}

export function newLogsDraft(): LogsDraft {
  return { formats: new Map(), custom: [] };
}

/** What the config says of the error log (main server only). */
export interface ErrorLogDraft {
  target?: ErrorLogTarget;
  level?: Level;
}

const SERVER_VHOST: readonly ContextKind[] = ['server', 'vhost'];

/** Apache's levels onto wsgate's four. */
const LEVELS: Record<string, Level> = {
  emerg: 'error',
  alert: 'error',
  crit: 'error',
  error: 'error',
  warn: 'warn',
  notice: 'info',
  info: 'info',
  debug: 'debug',
  trace1: 'debug',
  trace2: 'debug',
  trace3: 'debug',
  trace4: 'debug',
  trace5: 'debug',
  trace6: 'debug',
  trace7: 'debug',
  trace8: 'debug',
};
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Apache modules whose work wsgate does: a per-module level for one of them sets wsgate's level. */
const WSGATE_MODULES =
  /^(core|http|proxy|proxy_\w+|lbmethod_\w+|ssl|http2|rewrite|headers|alias|reqtimeout|auth_basic|authn_\w+|authz_\w+|access_compat|setenvif|env|log_config)$/;

function level(word: string, node: DirectiveNode): Level {
  const l = LEVELS[word.toLowerCase()];
  if (l === undefined) {
    throw ConfigError.at(
      node.source,
      `LogLevel: unknown level "${word}" (emerg, alert, crit, error, warn, notice, info, debug, trace1…trace8)`,
    );
  }
  return l;
}

function moduleName(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/^mod_/, '')
    .replace(/(_module|\.c)$/, '');
}

/**
 * `LogLevel [level] [module:level…]`: wsgate has one level, so it takes the most verbose of the
 * bare level and the levels given to modules wsgate implements (`LogLevel warn proxy:debug` →
 * debug); levels for other modules change nothing here.
 */
function logLevel(node: DirectiveNode, ctx: Ctx): void {
  if (!ctx.server.isMain) {
    ctx.state.notices.once(
      'vhost:loglevel',
      node.source,
      "LogLevel in <VirtualHost> is ignored: wsgate has one error log and one level, the main server's",
    );
    return;
  }
  let chosen: Level | undefined;
  const take = (l: Level): void => {
    if (chosen === undefined || ORDER[l] < ORDER[chosen]) chosen = l;
  };
  for (const word of node.args) {
    const colon = word.indexOf(':');
    if (colon === -1) {
      take(level(word, node));
      continue;
    }
    const l = level(word.slice(colon + 1), node);
    if (WSGATE_MODULES.test(moduleName(word.slice(0, colon)))) take(l);
  }
  if (chosen !== undefined) ctx.state.errorLog.level = chosen;
}

function refusePipe(name: string, file: string, node: DirectiveNode): void {
  if (file.startsWith('|')) {
    throw ConfigError.at(
      node.source,
      `${name} "${file}": piped logs are not supported; ${name === 'ErrorLog' ? 'leave ErrorLog unset (wsgate writes to stderr) and pipe stderr into the program' : 'write to a file and have the program read it (or use logrotate with SIGUSR1)'}`,
    );
  }
}

/** A relative file name is relative to ServerRoot, else to the main config file's directory. */
function resolveFile(file: string, ctx: Ctx): string {
  return path.resolve(ctx.state.serverRoot ?? path.dirname(path.resolve(ctx.state.main.source.file)), file);
}

function errorLog(node: DirectiveNode, ctx: Ctx): void {
  const file = node.args[0] as string;
  refusePipe('ErrorLog', file, node);
  if (/^syslog(:|$)/i.test(file)) {
    throw ConfigError.at(
      node.source,
      `ErrorLog ${file}: syslog is not supported; leave ErrorLog unset (wsgate writes to stderr) and let the service manager (journald) or a pipe collect it`,
    );
  }
  if (!ctx.server.isMain) {
    ctx.state.notices.once(
      'vhost:errorlog',
      node.source,
      "ErrorLog in <VirtualHost> is ignored: wsgate writes one error log, the main server's (its lines name the virtual host)",
    );
    return;
  }
  ctx.state.errorLog.target =
    file === '/dev/stderr' ? { kind: 'stderr' } : { kind: 'file', file: resolveFile(file, ctx), source: node.source };
}

function compile(format: string, node: DirectiveNode): CompiledFormat {
  try {
    return compileLogFormat(format);
  } catch (e) {
    if (e instanceof LogFormatError) throw ConfigError.at(node.source, `${node.name}: ${e.message}`);
    throw e;
  }
}

function logFormat(node: DirectiveNode, ctx: Ctx): void {
  const [format, nick] = node.args as [string, string | undefined];
  const compiled = compile(format, node);
  if (nick === undefined) {
    ctx.server.logs.defaultFormat = { compiled, source: node.source };
    return;
  }
  if (nick.toLowerCase() === TUNNEL_NICKNAME) {
    throw ConfigError.at(
      node.source,
      `LogFormat … ${nick}: "${TUNNEL_NICKNAME}" is reserved for the JSON tunnel records (CustomLog FILE tunnel)`,
    );
  }
  if (nick.includes('%')) throw ConfigError.at(node.source, `LogFormat: the nickname "${nick}" may not contain %`);
  ctx.server.logs.formats.set(nick, { compiled, source: node.source });
}

function envCondition(word: string, node: DirectiveNode): EnvCondition {
  if (/^expr=/i.test(word)) {
    throw ConfigError.at(
      node.source,
      `CustomLog ${word}: expr= conditions are not supported; set a variable with SetEnvIf and use env=VAR`,
    );
  }
  const m = /^env=(!?)(.+)$/i.exec(word);
  if (m === null) throw ConfigError.at(node.source, `CustomLog: "${word}" is not a condition (env=VAR or env=!VAR)`);
  return { name: m[2] as string, negate: m[1] === '!' };
}

function customLog(node: DirectiveNode, ctx: Ctx): void {
  const file = node.args[0] as string;
  refusePipe('CustomLog', file, node);
  const condition = node.args[2] === undefined ? undefined : envCondition(node.args[2], node);
  ctx.server.logs.custom.push({ file: resolveFile(file, ctx), format: node.args[1], condition, source: node.source });
}

function transferLog(node: DirectiveNode, ctx: Ctx): void {
  const file = node.args[0] as string;
  refusePipe('TransferLog', file, node);
  ctx.server.logs.custom.push({ file: resolveFile(file, ctx), format: undefined, condition: undefined, source: node.source });
}

export interface LogDirectiveSpec {
  readonly name: string;
  readonly contexts: readonly ContextKind[];
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

export function logSpecs(): LogDirectiveSpec[] {
  return [
    { name: 'ErrorLog', contexts: SERVER_VHOST, minArgs: 1, maxArgs: 1, handle: errorLog },
    { name: 'LogLevel', contexts: SERVER_VHOST, minArgs: 1, maxArgs: Infinity, handle: logLevel },
    { name: 'LogFormat', contexts: SERVER_VHOST, minArgs: 1, maxArgs: 2, handle: logFormat },
    { name: 'CustomLog', contexts: SERVER_VHOST, minArgs: 2, maxArgs: 3, handle: customLog },
    { name: 'TransferLog', contexts: SERVER_VHOST, minArgs: 1, maxArgs: 1, handle: transferLog },
  ];
}

const COMMON = compileLogFormat(PREDEFINED_FORMATS.get('common') as string);

/**
 * The logs of one server: its own CustomLog/TransferLog lines, or (a virtual host without any)
 * the main server's. Nicknames are looked up in the server's LogFormats, then the main server's,
 * then Apache's predefined ones; a word that is none of them and has no `%` is an error (Apache
 * would log the word itself on every line).
 */
export function assembleLogs(server: ServerDraft, main: ServerDraft | undefined, inherited: readonly AccessLogSpec[]): AccessLogSpec[] {
  if (server.logs.custom.length === 0) return [...inherited];
  return server.logs.custom.map((c): AccessLogSpec => {
    const when = c.condition === undefined ? {} : { condition: c.condition };
    if (c.format === undefined) {
      const d = server.logs.defaultFormat ?? main?.logs.defaultFormat;
      return { kind: 'access', file: c.file, format: d?.compiled ?? COMMON, ...when, source: c.source };
    }
    if (c.format.toLowerCase() === TUNNEL_NICKNAME) return { kind: 'tunnel', file: c.file, ...when, source: c.source };
    const named = server.logs.formats.get(c.format) ?? main?.logs.formats.get(c.format);
    if (named !== undefined) return { kind: 'access', file: c.file, format: named.compiled, ...when, source: c.source };
    const predefined = PREDEFINED_FORMATS.get(c.format);
    if (predefined !== undefined) return { kind: 'access', file: c.file, format: compileLogFormat(predefined), ...when, source: c.source };
    if (!c.format.includes('%')) {
      throw ConfigError.at(
        c.source,
        `CustomLog ${c.format}: no LogFormat has this nickname (known: ${[...new Set([...(main?.logs.formats.keys() ?? []), ...server.logs.formats.keys(), ...PREDEFINED_FORMATS.keys(), TUNNEL_NICKNAME])].join(', ')})`,
      );
    }
    let format: CompiledFormat;
    try {
      format = compileLogFormat(c.format);
    } catch (e) {
      if (e instanceof LogFormatError) throw ConfigError.at(c.source, `CustomLog: ${e.message}`);
      throw e;
    }
    return { kind: 'access', file: c.file, format, ...when, source: c.source };
  });
}

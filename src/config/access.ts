// Access-control directives → the AccessLayer model (model.ts), as Apache 2.4 reads them:
// mod_authz_core (Require, <RequireAll|Any|None>, AuthMerging, AuthzSendForbiddenOnFailure),
// mod_authz_host (Require ip|local), mod_access_compat (Order, Allow, Deny, Satisfy),
// mod_authn_core/mod_auth_basic (AuthType, AuthName, AuthBasicProvider), mod_authn_file
// (AuthUserFile), mod_authz_user/mod_authz_groupfile (Require user|valid-user|group,
// AuthGroupFile), mod_setenvif (SetEnvIf, SetEnvIfNoCase, BrowserMatch, BrowserMatchNoCase) and
// mod_env (SetEnv, UnsetEnv). Requests are judged by src/access/evaluate.ts.
//
// Contexts are Apache's: the authorization directives are per-directory ones (<Location>,
// <LocationMatch>, <Proxy>, <ProxyMatch>), SetEnvIf and SetEnv also work at the top level and in
// a <VirtualHost>. Password and group files are read here, at load (and so again on reload).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseIpNet } from '../access/ip';
import { passwordFormat } from '../access/passwords';
import type { Ctx } from './drafts';
import { ConfigError } from './errors';
import { fnmatchRegExp, hasWildcard } from './glob';
import type {
  AccessCompat,
  AccessConfig,
  AccessLayer,
  AuthzNode,
  AuthzTest,
  DirectoryMatch,
  EnvRule,
  GroupFile,
  HostMatch,
  RouteMatch,
  SourceRef,
  UserFile,
} from './model';
import type { DirectiveNode, SectionNode } from './parser';
import { parseOnOff, parseRegex } from './values';
import { proxyUrlMatcher } from './worker';
import { sortDirectories } from './static-files';

/** A Require container being filled while its section is walked. */
export interface AuthzContainerDraft {
  readonly op: 'and' | 'or';
  readonly negate: boolean;
  /** `<RequireAll>` etc., for messages; `undefined` for a section's implicit container. */
  readonly name?: string;
  readonly children: AuthzNode[];
  readonly source: SourceRef;
}

/** What one section said, mutable while it is walked. */
export interface AccessDraft {
  scope: AccessLayer['scope'];
  require?: AuthzContainerDraft;
  merging?: 'off' | 'and' | 'or';
  forbiddenOnFailure?: boolean;
  compat?: {
    order?: AccessCompat['order'];
    allow: HostMatch[];
    deny: HostMatch[];
    satisfyAny?: boolean;
    /** Host names in Allow/Deny lines: refused in layer() unless the section's decision cannot depend on them. */
    hostNames?: { readonly line: 'Allow' | 'Deny'; readonly name: string; readonly source: SourceRef }[];
  };
  basic?: boolean;
  realm?: string;
  userFile?: UserFile;
  groupFile?: GroupFile;
  readonly envRules: EnvRule[];
  /** SetEnv/UnsetEnv (mod_env runs after access control: these never reach Require env). */
  readonly setEnv: { readonly name: string; readonly value?: string }[];
  readonly source: SourceRef;
}

/** A server's access drafts: its own (top level or <VirtualHost>), its <Proxy>s and its <Location>s in config order. */
export interface ServerAccessDraft {
  own?: AccessDraft;
  readonly proxies: AccessDraft[];
  readonly locations: AccessDraft[];
  /** <Directory>/<DirectoryMatch> sections (read only where files are served: static-files.ts). */
  readonly directories: AccessDraft[];
}

export function newServerAccessDraft(): ServerAccessDraft {
  return { proxies: [], locations: [], directories: [] };
}

// The sections a draft belongs to, found again by the object the section's Ctx carries.
const drafts = new WeakMap<object, AccessDraft>();

function draftOf(ctx: Ctx, where: SourceRef): AccessDraft {
  const key: object = ctx.location ?? ctx.directory ?? ctx.proxy ?? ctx.server;
  let d = drafts.get(key);
  if (d !== undefined) return d;
  let scope: AccessLayer['scope'];
  if (ctx.location !== undefined) {
    const m = ctx.location.match;
    // A wildcard <Location> is an fnmatch over the whole path (wildcards stop at '/').
    scope = {
      kind: 'location',
      match: m.kind === 'prefix' && hasWildcard(m.prefix) ? { kind: 'regex', regex: fnmatchRegExp(m.prefix), pattern: m.prefix } : m,
    };
  } else if (ctx.directory !== undefined) {
    scope = { kind: 'directory', match: ctx.directory.match };
  } else if (ctx.proxy !== undefined) {
    const p = ctx.proxy;
    scope = { kind: 'proxy', describe: p.describe, matches: p.balancer !== undefined ? proxyUrlMatcher(p.describe) : p.matches };
  } else scope = { kind: 'server' };
  d = { scope, envRules: [], setEnv: [], source: ctx.location?.source ?? ctx.directory?.source ?? where };
  drafts.set(key, d);
  const sa = ctx.server.access;
  if (ctx.location !== undefined) sa.locations.push(d);
  else if (ctx.directory !== undefined) sa.directories.push(d);
  else if (ctx.proxy !== undefined) sa.proxies.push(d);
  else sa.own = d;
  return d;
}

const DIR_ONLY =
  'is allowed only in <Location>, <LocationMatch>, <Proxy>, <ProxyMatch> and <Directory> (as Apache: a per-directory directive)';

function dirDraft(node: DirectiveNode, ctx: Ctx): AccessDraft {
  if (ctx.kind === 'server' || ctx.kind === 'vhost') {
    throw ConfigError.at(node.source, `${node.name} ${DIR_ONLY}`);
  }
  return draftOf(ctx, node.source);
}

// ---- mod_authz_core ----

const REFUSED_PROVIDERS: Record<string, string> = {
  host: 'needs DNS lookups, which wsgate does not do: use Require ip with the addresses',
  'forward-dns': 'needs DNS lookups, which wsgate does not do: use Require ip with the addresses',
  expr: 'expressions are not supported: use Require ip, method, env, user, valid-user or group, combined with <RequireAll>/<RequireAny>/<RequireNone>',
  'file-owner': 'is not supported (file ownership is not checked)',
  'file-group': 'is not supported (file ownership is not checked)',
  'dbm-group': 'DBM group files are not supported: use AuthGroupFile and Require group',
};

/** `Require [not] provider args…`. */
export function requireDirective(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  const d = dirDraft(node, ctx);
  const args = [...node.args];
  let negate = false;
  if (args[0]!.toLowerCase() === 'not') {
    negate = true;
    args.shift();
  }
  const providerWord = args.shift();
  if (providerWord === undefined) throw ConfigError.at(where, 'Require not needs a provider: Require not ip|env|method|user|group …');
  const provider = providerWord.toLowerCase();
  const test = parseTest(provider, providerWord, args, where);
  const container = ctx.authz ?? (d.require ??= { op: 'or', negate: false, children: [], source: where });
  if (negate && container.op === 'or') {
    throw ConfigError.at(
      where,
      `negative Require directive has no effect in ${container.name ?? '<RequireAny>'} directive (as Apache: put "Require not" inside <RequireAll> with a positive Require)`,
    );
  }
  container.children.push({ test, negate, source: where });
}

function parseTest(provider: string, word: string, args: string[], where: SourceRef): AuthzTest {
  const none = (what: string) => {
    if (args.length === 0) throw ConfigError.at(where, `Require ${word} needs at least one ${what}`);
  };
  switch (provider) {
    case 'all': {
      const v = (args[0] ?? '').toLowerCase();
      if (args.length !== 1 || (v !== 'granted' && v !== 'denied')) {
        throw ConfigError.at(where, "Argument for 'Require all' must be 'granted' or 'denied'");
      }
      return { kind: 'all', granted: v === 'granted' };
    }
    case 'ip': {
      none('address or network');
      return {
        kind: 'ip',
        nets: args.map((a) => {
          const n = parseIpNet(a);
          if (typeof n === 'string') throw ConfigError.at(where, `Require ip: ${n}`);
          return n;
        }),
      };
    }
    case 'local':
      if (args.length > 0) throw ConfigError.at(where, 'Require local takes no arguments');
      return { kind: 'local' };
    case 'method':
      none('method');
      for (const m of args) if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(m)) throw ConfigError.at(where, `Require method: bad method "${m}"`);
      return { kind: 'method', methods: args.map((m) => m.toUpperCase()) };
    case 'env':
      none('variable name');
      return { kind: 'env', names: args };
    case 'user':
      none('user name');
      return { kind: 'user', users: args };
    case 'valid-user':
      if (args.length > 0) throw ConfigError.at(where, 'Require valid-user takes no arguments');
      return { kind: 'valid-user' };
    case 'group':
      none('group name');
      return { kind: 'group', groups: args };
  }
  const refused = REFUSED_PROVIDERS[provider];
  if (refused !== undefined) throw ConfigError.at(where, `Require ${word} ${refused}`);
  if (provider.startsWith('ldap-'))
    throw ConfigError.at(
      where,
      `Require ${word}: LDAP is not supported (use AuthUserFile/AuthGroupFile with Require user|valid-user|group)`,
    );
  throw ConfigError.at(
    where,
    `Require: unknown authorization provider "${word}" (wsgate supports all, ip, local, method, env, user, valid-user and group; OpenID Connect, SAML and other modules are not supported)`,
  );
}

/** `<RequireAll>`, `<RequireAny>`, `<RequireNone>`. */
export function openRequireSection(
  node: SectionNode,
  ctx: Ctx,
  walk: (nodes: SectionNode['children'], ctx: Ctx) => void,
  kind: 'all' | 'any' | 'none',
): void {
  const where = node.source;
  const name = kind === 'all' ? '<RequireAll>' : kind === 'any' ? '<RequireAny>' : '<RequireNone>';
  if (ctx.kind === 'server' || ctx.kind === 'vhost') throw ConfigError.at(where, `${name} ${DIR_ONLY}`);
  if (node.args.length > 0) throw ConfigError.at(where, `${name} takes no arguments`);
  const d = draftOf(ctx, where);
  const parent = ctx.authz ?? (d.require ??= { op: 'or', negate: false, children: [], source: where });
  const section: AuthzContainerDraft = { op: kind === 'all' ? 'and' : 'or', negate: kind === 'none', name, children: [], source: where };
  if (section.negate && parent.op === 'or') {
    throw ConfigError.at(
      where,
      `negative ${name} directive has no effect in ${parent.name ?? '<RequireAny>'} directive (as Apache: put it inside <RequireAll>)`,
    );
  }
  walk(node.children, { ...ctx, authz: section });
  if (section.children.length === 0) throw ConfigError.at(where, `${name} directive contains no authorization directives`);
  parent.children.push({ op: section.op, negate: section.negate, children: section.children, source: where });
}

/**
 * Apache refuses at startup a container whose requirements are all negative (after folding a
 * negated container of the other kind into its parent by De Morgan): it could only deny.
 */
function checkPositive(node: AuthzNode, top: boolean): void {
  const kids: { negate: boolean }[] = [];
  for (const c of node.children ?? []) {
    if (c.children !== undefined) {
      checkPositive(c, false);
      if (c.negate && c.op !== node.op) {
        for (const g of c.children) kids.push({ negate: !g.negate });
        continue;
      }
    }
    kids.push(c);
  }
  if (!kids.some((k) => !k.negate)) {
    const what = top ? 'This section' : node.op === 'and' ? '<RequireAll>' : node.negate ? '<RequireNone>' : '<RequireAny>';
    throw ConfigError.at(node.source, `${what} contains only negative authorization directives (add a positive Require)`);
  }
}

export function authMerging(node: DirectiveNode, ctx: Ctx): void {
  const v = (node.args[0] as string).toLowerCase();
  if (v !== 'off' && v !== 'and' && v !== 'or') throw ConfigError.at(node.source, 'AuthMerging must be one of: Off | And | Or');
  dirDraft(node, ctx).merging = v;
}

export function authzSendForbiddenOnFailure(node: DirectiveNode, ctx: Ctx): void {
  dirDraft(node, ctx).forbiddenOnFailure = parseOnOff(node.args[0] as string, 'AuthzSendForbiddenOnFailure', node.source);
}

// ---- mod_access_compat ----

function compatOf(node: DirectiveNode, ctx: Ctx): NonNullable<AccessDraft['compat']> {
  return (dirDraft(node, ctx).compat ??= { allow: [], deny: [] });
}

export function orderDirective(node: DirectiveNode, ctx: Ctx): void {
  const v = (node.args[0] as string).toLowerCase();
  if (v !== 'deny,allow' && v !== 'allow,deny' && v !== 'mutual-failure') {
    throw ConfigError.at(node.source, 'unknown order: Order takes Deny,Allow, Allow,Deny or Mutual-failure (one word, no spaces)');
  }
  compatOf(node, ctx).order = v;
}

export function allowDeny(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  const [from, ...hosts] = node.args;
  if (from!.toLowerCase() !== 'from') throw ConfigError.at(where, `${node.name} must be followed by 'from'`);
  if (hosts.length === 0) throw ConfigError.at(where, `${node.name} from needs all, env=[!]VAR, or addresses`);
  const list = node.name.toLowerCase() === 'allow' ? compatOf(node, ctx).allow : compatOf(node, ctx).deny;
  for (const h of hosts) {
    if (h.toLowerCase() === 'all') {
      list.push({ kind: 'all' });
      continue;
    }
    const env = /^env=(!?)(.+)$/i.exec(h);
    if (env !== null) {
      list.push({ kind: 'env', name: env[2] as string, negate: env[1] === '!' });
      continue;
    }
    const n = parseIpNet(h);
    if (typeof n === 'string') {
      (compatOf(node, ctx).hostNames ??= []).push({ line: list === compatOf(node, ctx).allow ? 'Allow' : 'Deny', name: h, source: where });
      continue;
    }
    list.push({ kind: 'ip', net: n });
  }
}

export function satisfy(node: DirectiveNode, ctx: Ctx): void {
  const v = (node.args[0] as string).toLowerCase();
  if (v !== 'any' && v !== 'all') throw ConfigError.at(node.source, "Satisfy either 'any' or 'all'");
  compatOf(node, ctx).satisfyAny = v === 'any';
}

// ---- authentication ----

export function authType(node: DirectiveNode, ctx: Ctx): void {
  const v = (node.args[0] as string).toLowerCase();
  const d = dirDraft(node, ctx);
  if (v === 'basic') d.basic = true;
  else if (v === 'none') d.basic = false;
  else if (v === 'digest')
    throw ConfigError.at(node.source, 'AuthType Digest is not supported: use AuthType Basic (over TLS) with AuthUserFile');
  else
    throw ConfigError.at(
      node.source,
      `AuthType ${node.args[0]} is not supported (Basic or None; form, OpenID Connect, Kerberos and others are not)`,
    );
}

export function authName(node: DirectiveNode, ctx: Ctx): void {
  const realm = node.args[0] as string;
  if (realm.includes('%{')) throw ConfigError.at(node.source, 'AuthName: expressions are not supported; give the realm as plain text');
  if (/[\x00-\x1f\x7f]/.test(realm)) throw ConfigError.at(node.source, 'AuthName: the realm holds control characters');
  dirDraft(node, ctx).realm = realm;
}

export function authBasicProvider(node: DirectiveNode, ctx: Ctx): void {
  dirDraft(node, ctx);
  for (const p of node.args) {
    if (p.toLowerCase() !== 'file') {
      throw ConfigError.at(
        node.source,
        `AuthBasicProvider ${p} is not supported: wsgate checks passwords with the file provider (AuthUserFile) only`,
      );
    }
  }
}

function resolvePath(p: string, ctx: Ctx): string {
  const base = ctx.state.serverRoot ?? path.dirname(path.resolve(ctx.state.main.source.file));
  return path.resolve(base, p);
}

function readText(file: string, directive: string, where: SourceRef): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw ConfigError.at(where, `${directive}: cannot read "${file}": ${e.code ?? e.message}`);
  }
}

/** `AuthUserFile path`: read now; every entry must be in a format Apache checks. */
export function authUserFile(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  const d = dirDraft(node, ctx);
  const file = resolvePath(node.args[0] as string, ctx);
  const users = new Map<string, { hash: string; format: import('../access/passwords').PasswordFormat }>();
  readText(file, 'AuthUserFile', where)
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0) throw ConfigError.at(where, `AuthUserFile ${file}: line ${i + 1} is not "user:hash"`);
      const user = line.slice(0, colon);
      // Apache's authn_file reads the hash up to the next ':' (later fields are comments).
      const rest = line.slice(colon + 1);
      const hash = rest.split(':')[0] as string;
      const format = passwordFormat(hash);
      if (typeof format !== 'string')
        throw ConfigError.at(where, `AuthUserFile ${file}: line ${i + 1} (user "${user}"): ${format.refused}`);
      // As Apache's file provider: the first line for a user is the one used.
      if (!users.has(user)) users.set(user, { hash, format });
    });
  d.userFile = { path: file, users };
}

/** `AuthGroupFile path`: lines `group: user user …`. */
export function authGroupFile(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  const d = dirDraft(node, ctx);
  const file = resolvePath(node.args[0] as string, ctx);
  const groupsOf = new Map<string, Set<string>>();
  readText(file, 'AuthGroupFile', where)
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0) throw ConfigError.at(where, `AuthGroupFile ${file}: line ${i + 1} is not "group: user user …"`);
      const group = line.slice(0, colon).trim();
      for (const user of line.slice(colon + 1).split(/[ \t]+/)) {
        if (user === '') continue;
        let set = groupsOf.get(user);
        if (set === undefined) groupsOf.set(user, (set = new Set()));
        set.add(group);
      }
    });
  d.groupFile = { path: file, groupsOf };
}

// ---- mod_setenvif and mod_env ----

const SPECIAL: Record<string, 'remote-addr' | 'server-addr' | 'request-method' | 'request-protocol' | 'request-uri'> = {
  remote_addr: 'remote-addr',
  remote_host: 'remote-addr', // HostnameLookups is Off: Apache gives the address
  server_addr: 'server-addr',
  request_method: 'request-method',
  request_protocol: 'request-protocol',
  request_uri: 'request-uri',
};

/**
 * Variables that change what mod_proxy sends or how it connects. wsgate does not implement them,
 * so setting one is an error rather than a silent difference.
 */
const PROXY_ENV = new Set([
  'proxy-nokeepalive',
  'force-proxy-request-1.0',
  'proxy-sendchunked',
  'proxy-sendchunks',
  'proxy-sendcl',
  'proxy-interim-response',
  'proxy-initial-not-pooled',
  'proxy-sendextracrlf',
  'proxy-source-address',
  'proxy-chain-auth',
  'proxy-fcgi-pathinfo',
  'proxy-scgi-pathinfo',
  'no-proxy',
  'proxy-error-override',
  'nokeepalive',
  'downgrade-1.0',
  'force-response-1.0',
  'redirect-carefully',
  'ssl-unclean-shutdown',
]);

function checkEnvName(name: string, directive: string, where: SourceRef): void {
  if (name === '') throw ConfigError.at(where, `${directive}: empty variable name`);
  if (PROXY_ENV.has(name.toLowerCase())) {
    throw ConfigError.at(
      where,
      `${directive}: the "${name}" variable changes how Apache talks to clients or backends, which wsgate does not implement; remove it`,
    );
  }
}

/** SetEnvIf / SetEnvIfNoCase / BrowserMatch / BrowserMatchNoCase. */
export function setEnvIf(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  const name = node.name.toLowerCase();
  const icase = name.endsWith('nocase');
  const browser = name.startsWith('browsermatch');
  const args = [...node.args];
  const attr = browser ? 'User-Agent' : (args.shift() as string);
  const pattern = args.shift();
  if (pattern === undefined || args.length === 0) {
    throw ConfigError.at(where, `${node.name} needs ${browser ? '' : 'an attribute, '}a regular expression and at least one variable`);
  }
  let regex = parseRegex(pattern, node.name, where);
  if (icase && !regex.flags.includes('i')) regex = new RegExp(regex.source, regex.flags + 'i');
  const special = SPECIAL[attr.toLowerCase()];
  let attribute: EnvRule['attribute'];
  if (special !== undefined) attribute = { kind: special };
  else if (/^[-A-Za-z0-9_]*$/.test(attr)) attribute = { kind: 'header', name: attr.toLowerCase() };
  else attribute = { kind: 'header-regex', regex: new RegExp(parseRegex(attr, node.name, where).source, icase ? 'i' : '') };
  const actions: { name: string; value?: string }[] = [];
  for (const word of args) {
    const eq = word.indexOf('=');
    if (eq !== -1) {
      checkEnvName(word.slice(0, eq), node.name, where);
      actions.push({ name: word.slice(0, eq), value: word.slice(eq + 1) });
    } else if (word.startsWith('!')) {
      checkEnvName(word.slice(1), node.name, where);
      actions.push({ name: word.slice(1) });
    } else if (word === '--early') {
      throw ConfigError.at(where, `${node.name}: --early is not supported (every SetEnvIf runs before access control anyway)`);
    } else {
      checkEnvName(word, node.name, where);
      actions.push({ name: word, value: '1' });
    }
  }
  draftOf(ctx, where).envRules.push({ attribute, regex, actions, source: where });
}

export function setEnv(node: DirectiveNode, ctx: Ctx): void {
  const [name, value] = node.args as [string, string | undefined];
  checkEnvName(name, node.name, node.source);
  draftOf(ctx, node.source).setEnv.push({ name, value: value ?? '' });
}

export function unsetEnv(node: DirectiveNode, ctx: Ctx): void {
  const d = draftOf(ctx, node.source);
  for (const name of node.args) d.setEnv.push({ name });
}

// ---- building ----

/**
 * `Allow from localhost` (RStudio's published `<Proxy *>`) needs a DNS lookup of the client, which
 * wsgate does not do. Under `Order Deny,Allow` with no Deny line every client is allowed whatever
 * the lookup says, so the names are dropped there, as they change nothing; anywhere else the
 * decision depends on them and the line is refused.
 */
function checkHostNames(c: NonNullable<AccessDraft['compat']>): void {
  const names = c.hostNames ?? [];
  if (names.length === 0) return;
  const order = c.order ?? 'deny,allow';
  const first = names.find((n) => n.line === 'Deny') ?? names[0]!;
  if (order === 'deny,allow' && c.deny.length === 0 && first.line === 'Allow') return;
  throw ConfigError.at(
    first.source,
    `${first.line} from ${first.name}: host names and domains need DNS lookups, which wsgate does not do; use IP addresses or networks`,
  );
}

function layer(d: AccessDraft): AccessLayer {
  let require: AuthzNode | undefined;
  if (d.require !== undefined) {
    require = { op: 'or', negate: false, children: d.require.children, source: d.source };
    checkPositive(require, true);
  }
  const c = d.compat;
  if (c !== undefined) checkHostNames(c);
  return {
    scope: d.scope,
    ...(require !== undefined ? { require } : {}),
    ...(d.merging !== undefined ? { merging: d.merging } : {}),
    ...(d.forbiddenOnFailure !== undefined ? { forbiddenOnFailure: d.forbiddenOnFailure } : {}),
    ...(c !== undefined
      ? { compat: { order: c.order ?? 'deny,allow', allow: c.allow, deny: c.deny, satisfyAny: c.satisfyAny ?? false } }
      : {}),
    ...(d.basic !== undefined ? { basic: d.basic } : {}),
    ...(d.realm !== undefined ? { realm: d.realm } : {}),
    ...(d.userFile !== undefined ? { userFile: d.userFile } : {}),
    ...(d.groupFile !== undefined ? { groupFile: d.groupFile } : {}),
    envRules: d.envRules,
    setEnv: d.setEnv,
    source: d.source,
  };
}

/**
 * The layers of a server in Apache's merge order: the main server's top level, then the virtual
 * host's, then the <Proxy> sections (the main server's first), then the <Location> sections (the
 * main server's first). Undefined when none says anything.
 */
export function buildAccess(main: ServerAccessDraft, vhost: ServerAccessDraft | undefined): AccessConfig | undefined {
  const ds: AccessDraft[] = [];
  if (main.own !== undefined) ds.push(main.own);
  if (vhost?.own !== undefined) ds.push(vhost.own);
  // Apache walks directories before locations: <Directory> sections merge first, by depth.
  const dirs = sortDirectories(
    [...main.directories, ...(vhost?.directories ?? [])].map((d) => ({ d, match: (d.scope as { match: DirectoryMatch }).match })),
  ).map((x) => x.d);
  ds.push(...dirs, ...main.proxies, ...(vhost?.proxies ?? []), ...main.locations, ...(vhost?.locations ?? []));
  if (ds.length === 0) return undefined;
  return { layers: ds.map(layer) };
}

/** Whether a <Location>/<LocationMatch> layer applies to `path` (decoded, slashes merged), as Apache's location walk. */
export function locationApplies(match: RouteMatch, path: string): boolean {
  if (match.kind === 'regex') return match.regex.test(path);
  const p = match.prefix;
  if (!path.startsWith(p)) return false;
  return p.endsWith('/') || path.length === p.length || path.charCodeAt(p.length) === 0x2f;
}

// The access decision for one request, made before any backend is contacted, as Apache 2.4's
// request processing makes it (server/request.c ap_process_request_internal with
// mod_access_compat, mod_authz_core, mod_auth_basic and mod_authn_file):
//
//  1. the layers that apply (server, <Proxy>, <Location>) are merged in order;
//  2. SetEnvIf rules set the request's variables;
//  3. `Satisfy All` (default): Order/Allow/Deny must allow, then the Require tree decides;
//     `Satisfy Any`: Order/Allow/Deny allowing is enough, else the Require tree decides;
//  4. the Require tree is evaluated without a user: granted → in; denied → 403; "needs a user"
//     → Basic credentials are checked (none or wrong → 401), and the tree is evaluated again
//     with the user (denied → 401, or 403 with AuthzSendForbiddenOnFailure On).

import type {
  AccessCompat,
  AccessConfig,
  AccessLayer,
  AuthzNode,
  DirectoryMatch,
  EnvRule,
  GroupFile,
  HostMatch,
  UserFile,
} from '../config/model';
import { locationApplies } from '../config/access';
import { inNet, ipBytes } from './ip';
import { VerifyCache } from './passwords';

export interface AccessRequest {
  readonly method: string;
  /** Decoded, normalised path (what <Location> matches). */
  readonly path: string;
  /** The file a request for a static file maps to (absolute), for <Directory> sections; absent for others. */
  readonly filePath?: string;
  /** `scheme://authority/path?query` of the backend the request goes to, for <Proxy> sections. */
  readonly backendUrl?: string;
  /** The client's address, IPv4 plain (not IPv4-mapped). */
  readonly clientIp: string;
  readonly localAddress: () => string;
  /** `HTTP/1.1`, `HTTP/1.0`, `HTTP/2.0` (SetEnvIf Request_Protocol). */
  readonly protocol: string;
  /** Header fields [name, value, …] as received. */
  readonly headers: readonly string[];
}

export type AccessResult =
  /** `env`: the request's variables (names as first written; Apache's tables ignore case, so lookups here do too). */
  | { readonly allowed: true; readonly env: Map<string, string>; readonly user?: string }
  | {
      readonly allowed: false;
      readonly status: 401 | 403 | 500;
      /** For the log: never holds a password or the Authorization value. */
      readonly reason: string;
      /** For a 401: the realm of the `WWW-Authenticate: Basic` challenge. */
      readonly realm?: string;
    };

/** The merged settings that apply to one request. */
interface Effective {
  require?: AuthzNode;
  forbiddenOnFailure: boolean;
  compat?: AccessCompat;
  basic: boolean;
  realm?: string;
  userFile?: UserFile;
  groupFile?: GroupFile;
  envRules: EnvRule[];
  setEnv: { readonly name: string; readonly value?: string }[];
}

const cache = new VerifyCache();

/** Whether a layer applies to the request. */
function applies(l: AccessLayer, req: AccessRequest): boolean {
  switch (l.scope.kind) {
    case 'server':
      return true;
    case 'location':
      return locationApplies(l.scope.match, req.path);
    case 'proxy':
      return req.backendUrl !== undefined && l.scope.matches(req.backendUrl);
    case 'directory':
      return req.filePath !== undefined && directoryApplies(l.scope.match, req.filePath);
  }
}

function merge(e: Effective, l: AccessLayer): void {
  // mod_authz_core's merge: a section with Require lines replaces the parent's unless AuthMerging
  // And/Or combines them; a section without any keeps the parent's (AuthMerging Off alone clears it).
  if (l.require !== undefined || l.merging !== undefined) {
    const op = l.merging ?? 'off';
    if (op === 'off') e.require = l.require;
    else if (l.require !== undefined) {
      e.require = e.require === undefined ? l.require : { op, negate: false, children: [e.require, l.require], source: l.source };
    }
  }
  if (l.forbiddenOnFailure !== undefined) e.forbiddenOnFailure = l.forbiddenOnFailure;
  // mod_access_compat has no merge: a section that uses it replaces the whole set.
  if (l.compat !== undefined) e.compat = l.compat;
  if (l.basic !== undefined) e.basic = l.basic;
  if (l.realm !== undefined) e.realm = l.realm;
  if (l.userFile !== undefined) e.userFile = l.userFile;
  if (l.groupFile !== undefined) e.groupFile = l.groupFile;
  if (l.envRules.length > 0) e.envRules.push(...l.envRules);
  if (l.setEnv.length > 0) e.setEnv.push(...l.setEnv);
}

export function checkAccess(access: AccessConfig, req: AccessRequest): AccessResult {
  const e: Effective = { forbiddenOnFailure: false, basic: false, envRules: [], setEnv: [] };
  for (const l of access.layers) if (applies(l, req)) merge(e, l);
  const env = new Map<string, string>();
  for (const rule of e.envRules) applyEnvRule(rule, req, env);
  const result = decide(e, req, env);
  if (result.allowed) {
    for (const s of e.setEnv) {
      if (s.value === undefined) envDelete(env, s.name);
      else envSet(env, s.name, s.value);
    }
  }
  return result;
}

type Authz = 'granted' | 'denied' | 'neutral' | 'no-user';

function decide(e: Effective, req: AccessRequest, env: Map<string, string>): AccessResult {
  const compat = e.compat;
  const hostOk = compat === undefined || compatAllows(compat, req, env);
  if (compat?.satisfyAny === true) {
    if (hostOk) return { allowed: true, env };
  } else if (!hostOk) {
    return { allowed: false, status: 403, reason: 'client denied by server configuration (Order/Allow/Deny)' };
  }
  if (e.require === undefined) {
    // Apache: AuthType without any Require that applies is a configuration error at run time (AH01627).
    if (e.basic) return { allowed: false, status: 500, reason: 'AuthType configured with no corresponding authorization directives' };
    return { allowed: true, env };
  }
  const first = evaluate(e.require, req, env, undefined, e.groupFile);
  if (first === 'granted') return { allowed: true, env };
  if (first !== 'no-user') return { allowed: false, status: 403, reason: 'client denied by server configuration' };

  // A user is needed: mod_auth_basic.
  if (!e.basic) return { allowed: false, status: 500, reason: 'Require needs a user, but no AuthType Basic applies' };
  if (e.realm === undefined) return { allowed: false, status: 500, reason: 'AuthType Basic needs an AuthName' };
  if (e.userFile === undefined) return { allowed: false, status: 500, reason: 'AuthType Basic needs an AuthUserFile' };
  const realm = e.realm;
  const creds = basicCredentials(req.headers);
  if (creds === undefined) return { allowed: false, status: 401, reason: 'no Basic credentials', realm };
  const entry = e.userFile.users.get(creds.user);
  if (entry === undefined) return { allowed: false, status: 401, reason: `user "${creds.user}" not found`, realm };
  if (!cache.check(creds.user, creds.password, entry.hash, entry.format)) {
    return { allowed: false, status: 401, reason: `user "${creds.user}": password mismatch`, realm };
  }
  const second = evaluate(e.require, req, env, creds.user, e.groupFile);
  if (second === 'granted') return { allowed: true, env, user: creds.user };
  const status = second !== 'no-user' && e.forbiddenOnFailure ? 403 : 401;
  return { allowed: false, status, reason: `user "${creds.user}": authorization failure`, ...(status === 401 ? { realm } : {}) };
}

/** mod_authz_core's apply_authz_sections: three-valued logic plus "needs a user". */
function evaluate(
  node: AuthzNode,
  req: AccessRequest,
  env: Map<string, string>,
  user: string | undefined,
  groups: GroupFile | undefined,
): Authz {
  let result: Authz;
  if (node.test !== undefined) {
    result = test(node, req, env, user, groups);
  } else {
    result = 'neutral';
    for (const child of node.children ?? []) {
      const r = evaluate(child, req, env, user, groups);
      if (r === 'neutral') continue;
      if (node.op === 'and') {
        if (r === 'denied') {
          result = r;
          break;
        }
        if ((r === 'no-user' && result !== 'denied') || result === 'neutral') result = r;
      } else {
        if (r === 'granted') {
          result = r;
          break;
        }
        if ((r === 'no-user' && result === 'denied') || result === 'neutral') result = r;
      }
    }
  }
  if (node.negate) {
    // Not being refused is no reason to let in: a negated "denied" is neutral.
    if (result === 'granted') result = 'denied';
    else if (result === 'denied' || result === 'no-user') result = 'neutral';
  }
  return result;
}

function test(
  node: AuthzNode,
  req: AccessRequest,
  env: Map<string, string>,
  user: string | undefined,
  groups: GroupFile | undefined,
): Authz {
  const t = node.test!;
  switch (t.kind) {
    case 'all':
      return t.granted ? 'granted' : 'denied';
    case 'ip': {
      const bytes = ipBytes(req.clientIp);
      return t.nets.some((n) => inNet(n, bytes)) ? 'granted' : 'denied';
    }
    case 'local':
      return isLocal(req) ? 'granted' : 'denied';
    case 'method':
      return t.methods.includes(req.method.toUpperCase()) ? 'granted' : 'denied';
    case 'env':
      return t.names.some((n) => envHas(env, n)) ? 'granted' : 'denied';
    case 'user':
      if (user === undefined) return 'no-user';
      return t.users.includes(user) ? 'granted' : 'denied';
    case 'valid-user':
      return user === undefined ? 'no-user' : 'granted';
    case 'group': {
      if (user === undefined) return 'no-user';
      const mine = groups?.groupsOf.get(user);
      return mine !== undefined && t.groups.some((g) => mine.has(g)) ? 'granted' : 'denied';
    }
  }
}

/** `Require local`: 127.0.0.0/8, ::1, or the client's address is the server's own. */
function isLocal(req: AccessRequest): boolean {
  const ip = req.clientIp;
  if (ip === '::1' || /^127\./.test(ip)) return true;
  const local = req.localAddress();
  return local !== '' && (local === ip || local === `::ffff:${ip}`);
}

/** mod_access_compat's check_dir_access. */
function compatAllows(c: AccessCompat, req: AccessRequest, env: Map<string, string>): boolean {
  const allowed = () => c.allow.some((h) => hostMatches(h, req, env));
  const denied = () => c.deny.some((h) => hostMatches(h, req, env));
  switch (c.order) {
    case 'allow,deny':
      return allowed() && !denied();
    case 'deny,allow':
      return !denied() || allowed();
    case 'mutual-failure':
      return allowed() && !denied();
  }
}

function hostMatches(h: HostMatch, req: AccessRequest, env: Map<string, string>): boolean {
  switch (h.kind) {
    case 'all':
      return true;
    case 'env':
      return envHas(env, h.name) !== h.negate;
    case 'ip':
      return inNet(h.net, ipBytes(req.clientIp));
  }
}

/** The user and password of an `Authorization: Basic …` header (the first one), or undefined. */
export function basicCredentials(headers: readonly string[]): { user: string; password: string } | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].toLowerCase() !== 'authorization') continue;
    const m = /^\s*basic\s+([A-Za-z0-9+/=_-]*)\s*$/i.exec(headers[i + 1]);
    if (m === null) return undefined;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) return undefined;
    return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/** mod_setenvif: a missing attribute is the empty string (so `^$` matches it). */
function applyEnvRule(rule: EnvRule, req: AccessRequest, env: Map<string, string>): void {
  const a = rule.attribute;
  let value: string | undefined;
  switch (a.kind) {
    case 'remote-addr':
      value = req.clientIp;
      break;
    case 'server-addr':
      value = plain(req.localAddress());
      break;
    case 'request-method':
      value = req.method;
      break;
    case 'request-protocol':
      value = req.protocol;
      break;
    case 'request-uri':
      value = req.path;
      break;
    case 'header':
      value = header(req.headers, a.name) ?? envGet(env, a.name);
      break;
    case 'header-regex':
      // The last header whose name matches, as Apache.
      for (let i = 0; i < req.headers.length; i += 2) if (a.regex.test(req.headers[i])) value = req.headers[i + 1];
      break;
  }
  const m = rule.regex.exec(value ?? '');
  if (m === null) return;
  for (const act of rule.actions) {
    if (act.value === undefined) envDelete(env, act.name);
    else
      envSet(
        env,
        act.name,
        act.value.replace(/\$(\d)/g, (_, d: string) => m[Number(d)] ?? ''),
      );
  }
}

function header(headers: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === lower) return headers[i + 1];
  return undefined;
}

function plain(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

// Apache keeps the environment in a table whose keys ignore case; the map keeps the spelling a
// variable was first set with (what `Header … env=` and `%{VAR}e` then see).
function envKey(env: Map<string, string>, name: string): string | undefined {
  if (env.has(name)) return name;
  const lower = name.toLowerCase();
  for (const k of env.keys()) if (k.toLowerCase() === lower) return k;
  return undefined;
}
function envHas(env: Map<string, string>, name: string): boolean {
  return envKey(env, name) !== undefined;
}
function envGet(env: Map<string, string>, name: string): string | undefined {
  const k = envKey(env, name);
  return k === undefined ? undefined : env.get(k);
}
function envSet(env: Map<string, string>, name: string, value: string): void {
  env.set(envKey(env, name) ?? name, value);
}
function envDelete(env: Map<string, string>, name: string): void {
  const k = envKey(env, name);
  if (k !== undefined) env.delete(k);
}

/**
 * Whether a <Directory> path covers `file` (the directory itself or anything below it), or a
 * <DirectoryMatch> regex matches one of the directories on the way to it, as Apache's directory walk.
 */
export function directoryApplies(match: DirectoryMatch, file: string): boolean {
  if (match.kind === 'prefix') {
    const d = match.dir;
    if (d === '/') return true;
    return file === d || (file.startsWith(d) && file.charCodeAt(d.length) === 0x2f);
  }
  for (let i = file.indexOf('/', 1); ; i = file.indexOf('/', i + 1)) {
    const dir = i === -1 ? file : file.slice(0, i);
    if (match.regex.test(dir)) return true;
    if (i === -1) return false;
  }
}

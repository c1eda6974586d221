// The directive table: name (case-insensitive) → where it may appear, how many arguments it
// takes, and what it does to the drafts. Sections are in a second table. docs/directives.md
// documents every entry.

import {
  newServerDraft,
  type ContextKind,
  type Ctx,
  type LocationDraft,
  type MemberParams,
  type ServerDraft,
  type SettingsDraft,
  type WorkerParams,
} from './drafts';
import * as path from 'node:path';
import { ConfigError } from './errors';
import type { ConfigNode, DirectiveNode, SectionNode } from './parser';
import { http2Specs } from './http2';
import { tlsSpecs } from './tls';
import {
  parseDuration,
  parseListenAddress,
  parseOnOff,
  parseRegex,
  parseServerName,
  parseVhostAddress,
} from './values';
import { applyBalancerParam, applyMemberParam, ensureBalancer, openBalancerSection, parseBalancerUrl } from './balancer';
import { headerDirective } from './headers';
import { requestReadTimeout } from './reqtimeout';
import { rewriteCond, rewriteEngine, rewriteOptions, rewriteRule } from './rewrite';
import { applyWorkerParam, isBalancerUrl, parseProxyPass, parseTarget, proxyUrlMatcher } from './worker';

export interface DirectiveSpec {
  /** Canonical spelling, for messages. */
  readonly name: string;
  /** `any`: accepted everywhere (the ignored directives). */
  readonly contexts: readonly ContextKind[] | 'any';
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

export type Walk = (nodes: readonly ConfigNode[], ctx: Ctx) => void;

export interface SectionSpec {
  readonly name: string;
  readonly contexts: readonly ContextKind[] | 'any';
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly open: (node: SectionNode, ctx: Ctx, walk: Walk) => void;
}

const SERVER: readonly ContextKind[] = ['server'];
const SERVER_VHOST: readonly ContextKind[] = ['server', 'vhost'];
const VHOST: readonly ContextKind[] = ['vhost'];
const WITH_LOCATION: readonly ContextKind[] = ['server', 'vhost', 'location', 'locationmatch'];
const WITH_PROXY: readonly ContextKind[] = ['server', 'vhost', 'proxy'];

export const CONTEXT_NAMES: Record<ContextKind, string> = {
  server: 'server config',
  vhost: '<VirtualHost>',
  location: '<Location>',
  locationmatch: '<LocationMatch>',
  proxy: '<Proxy>',
};

const arg0 = (node: DirectiveNode): string => node.args[0] as string;

/** A server setting: `parse` turns the one argument into the draft field's value. */
function setting<K extends keyof SettingsDraft>(
  name: string,
  field: K,
  parse: (value: string, node: DirectiveNode) => NonNullable<SettingsDraft[K]>,
): DirectiveSpec {
  return {
    name,
    contexts: SERVER_VHOST,
    minArgs: 1,
    maxArgs: 1,
    handle: (node, ctx) => {
      ctx.server.settings[field] = parse(arg0(node), node);
    },
  };
}

const onOff = (name: string) => (v: string, node: DirectiveNode) => parseOnOff(v, name, node.source);
const duration = (name: string, allowZero: boolean) => (v: string, node: DirectiveNode) =>
  parseDuration(v, name, node.source, allowZero);

/** Accepted, no effect; one notice per directive name per load. */
function ignored(name: string, why = 'it does not concern proxying'): DirectiveSpec {
  return {
    name,
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    handle: (node, ctx) => {
      ctx.state.notices.once(`ignored:${name.toLowerCase()}`, node.source, `${name} is ignored: ${why}`);
    },
  };
}

/** Known, but an error with `reason`. */
function refused(name: string, reason: string): DirectiveSpec {
  return {
    name,
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    handle: (node) => {
      throw ConfigError.at(node.source, `${node.name}: ${reason}`);
    },
  };
}

/** mod_http2 directives that tune Apache's own HTTP/2 engine (workers, buffers, push): accepted, no effect. */
const H2_TUNING = [
  'H2CopyFiles', 'H2EarlyHints', 'H2MaxDataFrameLen', 'H2MaxSessionStreams', 'H2MaxWorkerIdleSeconds', 'H2MaxWorkers',
  'H2MinWorkers', 'H2ModernTLSOnly', 'H2OutputBuffering', 'H2Padding', 'H2Push', 'H2PushDiarySize', 'H2PushPriority',
  'H2PushResource', 'H2SerializeHeaders', 'H2StreamMaxMemSize', 'H2StreamTimeout', 'H2TLSCoolDownSecs', 'H2TLSWarmUpSize',
  'H2WindowSize',
];

const IGNORED_NAMES = [
  // core and MPM
  'ServerAdmin', 'User', 'Group', 'PidFile', 'DefaultRuntimeDir', 'Mutex', 'ScoreBoardFile', 'CoreDumpDirectory',
  'StartServers', 'MinSpareServers', 'MaxSpareServers', 'MinSpareThreads', 'MaxSpareThreads', 'ThreadsPerChild',
  'MaxRequestWorkers', 'MaxClients', 'MaxConnectionsPerChild', 'MaxRequestsPerChild', 'ThreadLimit', 'ServerLimit',
  'ThreadStackSize', 'AsyncRequestWorkerFactor', 'ListenBacklog', 'GracefulShutdownTimeout', 'EnableSendfile',
  'EnableMMAP', 'HostnameLookups', 'UseCanonicalName', 'ServerTokens', 'ServerSignature', 'TraceEnable',
  'KeepAlive', 'KeepAliveTimeout', 'MaxKeepAliveRequests', 'LimitRequestBody', 'LimitRequestFields',
  'LimitRequestFieldSize', 'LimitRequestLine',
  'FileETag', 'ContentDigest', 'AcceptFilter', 'AcceptPathInfo',
  // modules and logs
  'LoadModule', 'LoadFile', 'ErrorLog', 'ErrorLogFormat', 'CustomLog', 'LogLevel', 'LogFormat', 'TransferLog',
  // files, types, indexes
  'DocumentRoot', 'DirectoryIndex', 'DirectorySlash', 'Options', 'AllowOverride', 'AllowOverrideList',
  'AccessFileName', 'AddType', 'AddDefaultCharset', 'AddCharset', 'AddEncoding', 'AddLanguage', 'AddHandler',
  'AddOutputFilter', 'AddOutputFilterByType', 'DefaultType', 'TypesConfig', 'MIMEMagicFile', 'LanguagePriority',
  'ForceLanguagePriority', 'IndexOptions', 'IndexIgnore', 'IndexOrderDefault', 'AddIcon', 'AddIconByType',
  'AddIconByEncoding', 'AddAlt', 'AddAltByType', 'AddAltByEncoding', 'AddDescription', 'DefaultIcon', 'ReadmeName',
  'HeaderName', 'ErrorDocument', 'Alias', 'AliasMatch', 'ScriptAlias', 'ScriptAliasMatch', 'SetHandler',
  'RemoveHandler', 'RemoveType', 'SetOutputFilter', 'SetInputFilter', 'AddInputFilter',
  // access control and auth
  'Require', 'Order', 'Allow', 'Deny', 'Satisfy', 'AuthType', 'AuthName', 'AuthUserFile', 'AuthGroupFile',
  'AuthBasicProvider',
  // headers, env, misc modules
  'RequestHeader', 'SetEnv', 'UnsetEnv', 'PassEnv', 'SetEnvIf', 'SetEnvIfNoCase', 'BrowserMatch',
  'BrowserMatchNoCase', 'ExtendedStatus', 'ExpiresActive', 'ExpiresDefault', 'ExpiresByType',
  'DeflateCompressionLevel',
  // mod_proxy tuning and status pages that change nothing observable here
  'ProxyStatus', 'ProxyIOBufferSize', 'ProxyReceiveBufferSize',
];

function serverSpecs(): DirectiveSpec[] {
  return [
    {
      name: 'Listen',
      contexts: SERVER,
      minArgs: 1,
      maxArgs: 2,
      handle: (node, ctx) => {
        const where = node.source;
        const addr = parseListenAddress(arg0(node), where);
        const protocol = (node.args[1] ?? 'http').toLowerCase();
        if (protocol !== 'http' && protocol !== 'https') {
          throw ConfigError.at(where, `Listen: unsupported protocol "${node.args[1]}" (http or https)`);
        }
        for (const other of ctx.state.listens) {
          const overlap = other.host === undefined || addr.host === undefined || other.host === addr.host;
          if (addr.port !== 0 && other.port === addr.port && overlap) {
            throw ConfigError.at(
              where,
              `Listen ${arg0(node)}: port ${addr.port} is already listened on (${other.source.file}:${other.source.line})`,
            );
          }
        }
        ctx.state.listens.push({ ...addr, protocol: protocol as 'http' | 'https', source: where });
      },
    },
    {
      name: 'ServerName',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.serverName = parseServerName(arg0(node), node.source);
      },
    },
    {
      name: 'ServerAlias',
      contexts: VHOST,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => {
        for (const alias of node.args) {
          if (!/^[A-Za-z0-9._*?:[\]-]+$/.test(alias)) throw ConfigError.at(node.source, `ServerAlias: bad name "${alias}"`);
          ctx.server.serverAliases.push(alias.toLowerCase());
        }
      },
    },
    {
      // Read while parsing (it moves Include's base); here it only sets the base of certificate paths (tls.ts).
      name: 'ServerRoot',
      contexts: SERVER,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.state.serverRoot = path.resolve(path.dirname(path.resolve(ctx.state.main.source.file)), arg0(node));
      },
    },
    setting('Timeout', 'timeoutMs', duration('Timeout', false)),
    setting('ProxyTimeout', 'proxyTimeoutMs', duration('ProxyTimeout', false)),
    { name: 'RequestReadTimeout', contexts: SERVER_VHOST, minArgs: 1, maxArgs: 3, handle: requestReadTimeout },
    setting('ProxyPreserveHost', 'preserveHost', onOff('ProxyPreserveHost')),
    setting('ProxyAddHeaders', 'addHeaders', onOff('ProxyAddHeaders')),
    setting('ProxyWebsocketIdleTimeout', 'websocketIdleTimeoutMs', duration('ProxyWebsocketIdleTimeout', true)),
    setting('ProxyWebsocketFallbackToProxyHttp', 'websocketFallbackToProxyHttp', onOff('ProxyWebsocketFallbackToProxyHttp')),
    setting('ProxyWebsocketAsync', 'websocketAsync', onOff('ProxyWebsocketAsync')),
    setting('ProxyWebsocketAsyncDelay', 'websocketAsyncDelayMs', duration('ProxyWebsocketAsyncDelay', true)),
    setting('ProxyPassInherit', 'passInherit', onOff('ProxyPassInherit')),
    {
      name: 'ProxyRequests',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node) => {
        if (parseOnOff(arg0(node), 'ProxyRequests', node.source)) {
          throw ConfigError.at(node.source, 'ProxyRequests On: forward proxying is not supported (wsgate is a reverse proxy)');
        }
      },
    },
    {
      name: 'ProxyVia',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        const v = arg0(node).toLowerCase();
        if (!['off', 'on', 'full', 'block'].includes(v)) {
          throw ConfigError.at(node.source, `ProxyVia must be Off, On, Full or Block, got "${arg0(node)}"`);
        }
        if (v !== 'off') {
          ctx.state.notices.once('ignored:proxyvia', node.source, `ProxyVia ${arg0(node)} is not implemented: Via headers are relayed unchanged`);
        }
      },
    },
    ...['ProxyPassReverse', 'ProxyPassReverseCookieDomain', 'ProxyPassReverseCookiePath'].map(
      (name): DirectiveSpec => ({
        name,
        contexts: WITH_LOCATION,
        minArgs: 1,
        maxArgs: 3,
        handle: (node, ctx) => {
          ctx.state.notices.once(
            `ignored:${name.toLowerCase()}`,
            node.source,
            `${name} is not implemented: response headers are relayed unchanged`,
          );
        },
      }),
    ),
    {
      name: 'ProxyPass',
      contexts: WITH_LOCATION,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => fileRoute(parseProxyPass(node.args, false, ctx, node.source), ctx),
    },
    {
      name: 'ProxyPassMatch',
      contexts: WITH_LOCATION,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => fileRoute(parseProxyPass(node.args, true, ctx, node.source), ctx),
    },
    {
      name: 'ProxySet',
      contexts: WITH_PROXY,
      minArgs: 1,
      maxArgs: Infinity,
      handle: proxySet,
    },
    {
      name: 'BalancerMember',
      contexts: WITH_PROXY,
      minArgs: 1,
      maxArgs: Infinity,
      handle: balancerMember,
    },
    // mod_rewrite's proxying subset and mod_headers' Header (rewrite.ts, headers.ts check their own contexts).
    { name: 'RewriteEngine', contexts: 'any', minArgs: 1, maxArgs: 1, handle: rewriteEngine },
    { name: 'RewriteOptions', contexts: 'any', minArgs: 1, maxArgs: Infinity, handle: rewriteOptions },
    { name: 'RewriteCond', contexts: 'any', minArgs: 2, maxArgs: 3, handle: rewriteCond },
    { name: 'RewriteRule', contexts: 'any', minArgs: 2, maxArgs: 3, handle: rewriteRule },
    refused('RewriteMap', 'rewrite maps are not supported (wsgate supports RewriteCond and RewriteRule [P])'),
    refused('RewriteBase', 'per-directory rewriting is not supported (wsgate supports RewriteRule [P] at the top level or in a <VirtualHost>)'),
    { name: 'Header', contexts: 'any', minArgs: 2, maxArgs: 5, handle: headerDirective },
    refused('ProxyHCExpr', 'health-check expressions are not supported: a check passes on a 2xx or 3xx status'),
    refused('ProxyHCTemplate', 'health-check templates are not supported: put the hc* keys on each BalancerMember'),
    refused('ProxyHCTPsize', 'not supported: wsgate needs no thread pool for health checks'),
    ...tlsSpecs(),
    ...http2Specs(),
    ignored('H2Direct', 'HTTP/2 with prior knowledge on a plain port follows `Protocols h2c`'),
    ignored('H2Upgrade', 'wsgate does not take `Upgrade: h2c` (h2c is by prior knowledge only)'),
    ...H2_TUNING.map((name) => ignored(name, "mod_http2's tuning has no counterpart in wsgate (Node's http2 module)")),
    ...IGNORED_NAMES.map((name) => ignored(name)),
  ];
}

function fileRoute(route: ReturnType<typeof parseProxyPass>, ctx: Ctx): void {
  if (ctx.location) ctx.location.route = route;
  else ctx.server.serverRoutes.push(route);
}

/** `BalancerMember url [key=value…]` inside `<Proxy balancer://name>`, or `BalancerMember balancer://name url …` outside. */
function balancerMember(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  let balancer = ctx.proxy?.balancer;
  let args = node.args;
  if (isBalancerUrl(arg0(node))) {
    const url = parseBalancerUrl(arg0(node), where);
    if (balancer !== undefined && balancer.name !== url.name) {
      throw ConfigError.at(where, `BalancerMember balancer://${url.name} inside <Proxy balancer://${balancer.name}>: name one balancer`);
    }
    balancer = ensureBalancer(ctx.server, url.name, where);
    args = args.slice(1);
  } else if (balancer === undefined) {
    throw ConfigError.at(where, 'BalancerMember is only valid inside <Proxy "balancer://name"> (or as BalancerMember balancer://name url …)');
  }
  const raw = args[0];
  if (raw === undefined) throw ConfigError.at(where, 'BalancerMember needs a member URL: BalancerMember url [key=value…]');
  const member: MemberParams = {};
  const target = parseTarget(raw, args.slice(1), 'BalancerMember', false, undefined, where, ctx.state.notices, (word) =>
    applyMemberParam(member, word, where),
  );
  if (target.nocanon) throw ConfigError.at(where, 'BalancerMember: nocanon goes on the ProxyPass line, not on a member');
  for (const other of balancer.members) {
    if (other.target.raw.toLowerCase() === raw.toLowerCase()) {
      throw ConfigError.at(where, `BalancerMember ${raw} is already a member of balancer://${balancer.name} (${other.source.file}:${other.source.line})`);
    }
  }
  balancer.members.push({ target, member, source: where });
}

function proxySet(node: DirectiveNode, ctx: Ctx): void {
  const where = node.source;
  let describe: string;
  let matches: (url: string) => boolean;
  let words: readonly string[];
  if (ctx.proxy?.balancer) {
    for (const word of node.args) applyBalancerParam(ctx.proxy.balancer.params, word, 'ProxySet', where, ctx.state.notices);
    return;
  }
  if (ctx.proxy) {
    ({ describe, matches } = ctx.proxy);
    words = node.args;
    if (words.some((w) => !w.includes('='))) {
      throw ConfigError.at(where, 'ProxySet inside <Proxy> takes only key=value parameters (the URL is the <Proxy>\'s)');
    }
  } else {
    const url = arg0(node);
    if (isBalancerUrl(url)) {
      const name = parseBalancerUrl(url, where).name;
      if (node.args.length < 2) throw ConfigError.at(where, 'ProxySet needs at least one key=value parameter');
      const b = ensureBalancer(ctx.server, name, where);
      for (const word of node.args.slice(1)) applyBalancerParam(b.params, word, 'ProxySet', where, ctx.state.notices);
      return;
    }
    if (url.includes('=')) throw ConfigError.at(where, 'ProxySet outside <Proxy> needs a URL first: ProxySet url key=value…');
    words = node.args.slice(1);
    if (words.length === 0) throw ConfigError.at(where, 'ProxySet needs at least one key=value parameter');
    describe = url;
    matches = proxyUrlMatcher(url);
  }
  const params: WorkerParams = {};
  for (const word of words) applyWorkerParam(params, word, 'ProxySet', where, ctx.state.notices);
  ctx.server.proxySets.push({ describe, matches, params, source: where, used: false });
}

function sectionSpecs(): SectionSpec[] {
  const location = (name: string, regexOnly: boolean): SectionSpec => ({
    name,
    contexts: SERVER_VHOST,
    minArgs: 1,
    maxArgs: regexOnly ? 1 : 2,
    open: (node, ctx, walk) => {
      const where = node.source;
      let regex = regexOnly;
      let pattern = node.args[0] as string;
      if (!regexOnly && node.args.length === 2) {
        if (pattern !== '~') throw ConfigError.at(where, `<${name}> takes 1 argument (or "~ regex"), got ${node.args.length}`);
        regex = true;
        pattern = node.args[1] as string;
      }
      const loc: LocationDraft = {
        match: regex
          ? { kind: 'regex', regex: parseRegex(pattern, `<${name}>`, where), pattern }
          : { kind: 'prefix', prefix: pattern },
        source: where,
      };
      if (!regex && !pattern.startsWith('/')) throw ConfigError.at(where, `<${name}> path "${pattern}" must start with "/"`);
      walk(node.children, { ...ctx, kind: regex ? 'locationmatch' : 'location', location: loc });
      if (loc.route) ctx.server.locationRoutes.push(loc.route);
    },
  });
  const proxy = (name: string, regex: boolean): SectionSpec => ({
    name,
    contexts: SERVER_VHOST,
    minArgs: 1,
    maxArgs: 1,
    open: (node, ctx, walk) => {
      const pattern = node.args[0] as string;
      if (isBalancerUrl(pattern)) {
        if (regex) throw ConfigError.at(node.source, `<${name} ${pattern}>: a balancer is defined with <Proxy "balancer://name">`);
        const balancer = openBalancerSection(pattern, ctx, node.source);
        walk(node.children, { ...ctx, kind: 'proxy', proxy: { describe: pattern, matches: () => false, balancer } });
        return;
      }
      let matches: (url: string) => boolean;
      if (regex) {
        const re = parseRegex(pattern, `<${name}>`, node.source);
        matches = (url) => re.test(url);
      } else {
        matches = proxyUrlMatcher(pattern);
      }
      walk(node.children, { ...ctx, kind: 'proxy', proxy: { describe: pattern, matches } });
    },
  });
  return [
    {
      name: 'VirtualHost',
      contexts: SERVER,
      minArgs: 1,
      maxArgs: Infinity,
      open: (node, ctx, walk) => {
        const addresses = node.args.map((a) => parseVhostAddress(a, node.source));
        const server: ServerDraft = newServerDraft(false, addresses, node.source);
        ctx.state.vhosts.push(server);
        walk(node.children, { kind: 'vhost', server, state: ctx.state });
      },
    },
    location('Location', false),
    location('LocationMatch', true),
    proxy('Proxy', false),
    proxy('ProxyMatch', true),
  ];
}

export const DIRECTIVES: ReadonlyMap<string, DirectiveSpec> = new Map(
  serverSpecs().map((s) => [s.name.toLowerCase(), s] as const),
);

export const SECTIONS: ReadonlyMap<string, SectionSpec> = new Map(
  sectionSpecs().map((s) => [s.name.toLowerCase(), s] as const),
);

/** Families refused by prefix, checked before "unknown directive". */
export function refusedFamily(key: string): string | undefined {
  if (key.startsWith('ssl')) return 'this mod_ssl directive is not supported (see docs/directives.md for the supported SSL* directives)';
  return undefined;
}


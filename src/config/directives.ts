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
import { CONDITIONAL_SECTIONS, READ_DIRECTIVES, SKIPPED_SECTIONS, type ConfigNode, type DirectiveNode, type SectionNode } from './parser';
import { http2Specs } from './http2';
import { websocketLimitSpecs } from './websocket-limits';
import { tlsSpecs } from './tls';
import { processSpecs } from './process';
import { isHostName } from './resolve';
import type { VirtualHostAddress } from './model';
import { parseDuration, parseListenAddress, parseCount, parseOnOff, parseRegex, parseServerName, parseVhostAddress } from './values';
import { applyBalancerParam, applyMemberParam, ensureBalancer, openBalancerSection, parseBalancerUrl } from './balancer';
import { headerDirective, requestHeaderDirective } from './headers';
import { accessSections, accessSpecs } from './access-directives';
import { directorySections, staticFileSpecs, fileDetail } from './static-files';
import { redirectDirective } from './redirect';
import { proxyPassReverse, reverseCookie, serverNamePort, useCanonicalName } from './reverse';
import { requestReadTimeout } from './reqtimeout';
import { rewriteCond, rewriteEngine, rewriteOptions, rewriteRule } from './rewrite';
import { applyWorkerParam, isBalancerUrl, parseProxyPass, parseTarget, proxyUrlMatcher } from './worker';
import { notice, refused } from './groups';
import { HANDLER_NAMES, setHandlerSpec } from './handlers';
import { logSpecs } from './logs';

export interface DirectiveSpec {
  /** Canonical spelling, for messages. */
  readonly name: string;
  /** Honoured, noticed or refused (DirectiveGroup); unset means honoured. */
  readonly group?: DirectiveGroup;
  /** `any`: accepted everywhere (the noticed and refused directives). */
  readonly contexts: readonly ContextKind[] | 'any';
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

export type Walk = (nodes: readonly ConfigNode[], ctx: Ctx) => void;

export interface SectionSpec {
  readonly name: string;
  /** Unset means honoured. */
  readonly group?: DirectiveGroup;
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
  directory: '<Directory>',
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

/** Most a request line or a header field line may be set to: a head is held in memory while it is read. */
const MAX_LINE_LIMIT = 1024 * 1024;

/** LimitRequestLine / LimitRequestFieldSize: bytes, 1 to MAX_LINE_LIMIT (Apache's 0 would refuse every request). */
const lineLimit =
  (name: string) =>
  (v: string, node: DirectiveNode): number => {
    const n = parseCount(v, name, node.source);
    if (n < 1 || n > MAX_LINE_LIMIT) throw ConfigError.at(node.source, `${name} must be between 1 and ${MAX_LINE_LIMIT} bytes, got ${v}`);
    return n;
  };

const onOff = (name: string) => (v: string, node: DirectiveNode) => parseOnOff(v, name, node.source);
const duration = (name: string, allowZero: boolean) => (v: string, node: DirectiveNode) => parseDuration(v, name, node.source, allowZero);

/**
 * How wsgate treats a directive, by the rule that a directive which decides who gets in, whether a
 * port speaks TLS, or what is sent to a backend or a client is honoured as Apache does or refused:
 * - `honoured`: does what Apache does (some only with the value that is wsgate's own behaviour,
 *   e.g. `KeepAlive On`; other values are refused at their line);
 * - `notice`: accepted with one notice per name, because it changes nothing a client or a backend
 *   can observe here (process tuning, logs, details of files Apache would serve itself);
 * - `refused`: a `FILE:LINE` error that says what to do instead.
 * test/config/directive-groups.test.ts holds the expected group of every name.
 */
export type DirectiveGroup = 'honoured' | 'notice' | 'refused';

/**
 * Honoured with the one value that is wsgate's behaviour (Apache's default, or what wsgate always
 * does); any other value is refused with `otherwise`.
 */
function onlyValue(name: string, value: string, otherwise: string): DirectiveSpec {
  return {
    name,
    group: 'honoured',
    contexts: 'any',
    minArgs: 1,
    maxArgs: Infinity,
    handle: (node) => {
      if (node.args.length !== 1 || (node.args[0] as string).toLowerCase() !== value.toLowerCase()) {
        throw ConfigError.at(node.source, `${node.name} ${node.args.join(' ')}: ${otherwise} (only "${node.name} ${value}" is accepted)`);
      }
    },
  };
}

/**
 * Accepted with a notice where it changes nothing — every path of its server is proxied, so Apache
 * would never serve a file or run a handler there — and an error otherwise (build.ts checks it once
 * the routes are known: `localContent`).
 */
function onlyWhereProxied(name: string, what: string): DirectiveSpec {
  return {
    name,
    group: 'notice',
    contexts: 'any',
    minArgs: 1,
    maxArgs: Infinity,
    handle: (node, ctx) => {
      if (name === 'SetHandler' && /^proxy:/i.test(node.args[0] as string)) {
        throw ConfigError.at(node.source, 'SetHandler proxy:…: not supported: proxy the path with ProxyPass');
      }
      ctx.server.localContent.push({ name, what, source: node.source, location: ctx.location?.match });
      ctx.state.notices.once(
        `ignored:${name.toLowerCase()}`,
        node.source,
        `${name} is ignored: every path it could apply to is proxied (wsgate serves no files)`,
      );
    },
  };
}

/** mod_http2 directives that tune Apache's own HTTP/2 engine (workers, buffers, push): accepted, no effect. */
const H2_TUNING = [
  'H2CopyFiles',
  'H2EarlyHints',
  'H2MaxDataFrameLen',
  'H2MaxWorkerIdleSeconds',
  'H2MaxWorkers',
  'H2MinWorkers',
  'H2ModernTLSOnly',
  'H2OutputBuffering',
  'H2Padding',
  'H2Push',
  'H2PushDiarySize',
  'H2PushPriority',
  'H2PushResource',
  'H2SerializeHeaders',
  'H2StreamMaxMemSize',
  'H2StreamTimeout',
  'H2TLSCoolDownSecs',
  'H2TLSWarmUpSize',
  'H2WindowSize',
];

const PROCESS = "Apache's process and MPM tuning; wsgate runs one event loop per worker (-w N)";
const LOGS = 'wsgate writes its error log lines in its own format (docs/behaviour.md, Logs)';
const FILES =
  'it applies only to what wsgate does not do with files (directory listings, content negotiation, .htaccess files, input filters), and proxied requests never use it';
const STATUS_PAGE = "it only details Apache's server-status page, which wsgate does not serve";

/** The directives that are noticed or refused, one line each; see DirectiveGroup. */
function groupedSpecs(): DirectiveSpec[] {
  return [
    // core and MPM
    notice('NameVirtualHost', 'it has no effect since Apache 2.4 (every address is name-based; Apache warns too)'),
    notice(
      'SSLSessionCache',
      "it sizes Apache's session-ID cache; wsgate keeps none, clients resume with session tickets (SSLSessionTickets)",
    ),
    notice('SSLRandomSeed', 'OpenSSL seeds its generator from the operating system'),
    notice('SSLPassPhraseDialog', 'it only matters for encrypted private keys, which wsgate refuses'),
    onlyValue('SSLCryptoDevice', 'builtin', 'hardware crypto engines are not supported'),
    notice('ServerAdmin', "it only appears in Apache's own error pages; wsgate's carry no signature"),
    notice('User', PROCESS),
    notice('Group', PROCESS),
    notice('DefaultRuntimeDir', PROCESS),
    notice('Mutex', PROCESS),
    notice('ScoreBoardFile', PROCESS),
    notice('CoreDumpDirectory', PROCESS),
    notice('StartServers', PROCESS),
    notice('MinSpareServers', PROCESS),
    notice('MaxSpareServers', PROCESS),
    notice('MinSpareThreads', PROCESS),
    notice('MaxSpareThreads', PROCESS),
    notice('ThreadsPerChild', PROCESS),
    notice('MaxRequestWorkers', PROCESS),
    notice('MaxClients', PROCESS),
    notice('MaxConnectionsPerChild', PROCESS),
    notice('MaxRequestsPerChild', PROCESS),
    notice('ThreadLimit', PROCESS),
    notice('ServerLimit', PROCESS),
    notice('ThreadStackSize', PROCESS),
    notice('AsyncRequestWorkerFactor', PROCESS),
    notice('ListenBacklog', PROCESS),
    notice('AcceptFilter', PROCESS),
    notice('EnableSendfile', PROCESS),
    notice('EnableMMAP', PROCESS),
    notice('HostnameLookups', 'it only changes what Apache logs'),
    notice('ServerTokens', "wsgate sends no Server header of its own (relayed answers keep the backend's)"),
    notice('ServerSignature', 'wsgate adds no signature to the answers it makes'),
    onlyValue('KeepAlive', 'On', 'wsgate keeps client connections alive'),
    notice('KeepAliveTimeout', "wsgate closes an idle client connection after 5 s, Apache's default"),
    notice('MaxKeepAliveRequests', 'wsgate does not count the requests of a connection'),
    onlyValue('AllowEncodedSlashes', 'Off', 'wsgate answers 404 to a path with an encoded slash (%2F), as Apache by default'),
    fileDetail('FileETag'),
    fileDetail('ContentDigest'),
    fileDetail('AcceptPathInfo'),
    // modules and logs
    notice('LoadModule', 'wsgate has its modules built in'),
    notice('LoadFile', 'wsgate has its modules built in'),
    notice('ErrorLogFormat', LOGS),
    // files, types, indexes
    ...staticFileSpecs(),
    notice('AllowOverride', FILES),
    notice('AllowOverrideList', FILES),
    notice('AccessFileName', FILES),
    fileDetail('AddType'),
    onlyValue('AddDefaultCharset', 'Off', 'adding a charset to relayed answers is not supported; let the backend set Content-Type'),
    fileDetail('AddCharset'),
    fileDetail('AddEncoding'),
    fileDetail('AddLanguage'),
    fileDetail('AddHandler'),
    fileDetail('AddOutputFilter'),
    notice('AddInputFilter', FILES),
    refused(
      'AddOutputFilterByType',
      'output filters (compression, substitution) are not supported: answers are relayed as the backend sends them',
    ),
    refused(
      'SetOutputFilter',
      'output filters (compression, substitution) are not supported: answers are relayed as the backend sends them',
    ),
    refused('SetInputFilter', 'input filters are not supported: request bodies are relayed as the client sends them'),
    notice('DefaultType', FILES),
    fileDetail('TypesConfig'),
    fileDetail('MIMEMagicFile'),
    notice('LanguagePriority', FILES),
    notice('ForceLanguagePriority', FILES),
    notice('IndexOptions', FILES),
    notice('IndexIgnore', FILES),
    notice('IndexOrderDefault', FILES),
    notice('AddIcon', FILES),
    notice('AddIconByType', FILES),
    notice('AddIconByEncoding', FILES),
    notice('AddAlt', FILES),
    notice('AddAltByType', FILES),
    notice('AddAltByEncoding', FILES),
    notice('AddDescription', FILES),
    notice('DefaultIcon', FILES),
    notice('ReadmeName', FILES),
    notice('HeaderName', FILES),
    notice('RemoveHandler', FILES),
    fileDetail('RemoveType'),
    setHandlerSpec(onlyWhereProxied('SetHandler', `wsgate runs no such handler (it runs: ${HANDLER_NAMES.join(', ')})`)),
    refused('ErrorDocument', 'custom error documents are not supported: wsgate answers its own errors with a short text body'),
    refused('ScriptAlias', 'wsgate runs no CGI scripts: proxy the path with ProxyPass to a server that runs them'),
    refused('ScriptAliasMatch', 'wsgate runs no CGI scripts: proxy the path with ProxyPassMatch to a server that runs them'),
    // env, misc modules
    refused('PassEnv', 'not supported: set the variable with SetEnv'),
    notice('ExtendedStatus', STATUS_PAGE),
    onlyValue('ExpiresActive', 'Off', 'mod_expires is not supported: set Cache-Control or Expires with Header'),
    notice('ExpiresDefault', 'it has no effect without ExpiresActive On, which wsgate refuses'),
    notice('ExpiresByType', 'it has no effect without ExpiresActive On, which wsgate refuses'),
    notice('DeflateCompressionLevel', 'it has no effect without a DEFLATE output filter, which wsgate refuses'),
    // mod_proxy tuning and status pages that change nothing observable here
    notice('ProxyStatus', STATUS_PAGE),
    notice('ProxyIOBufferSize', 'buffer tuning: wsgate sizes its own buffers'),
    notice('ProxyReceiveBufferSize', 'buffer tuning: wsgate sizes its own buffers'),
  ];
}

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
        // Apache's default: https on port 443, http elsewhere. SSLEngine has the last word (tls.ts decideListenProtocols).
        const protocol = (node.args[1] ?? (addr.port === 443 ? 'https' : 'http')).toLowerCase();
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
        ctx.state.listens.push({ ...addr, protocol: protocol as 'http' | 'https', source: where, written: node.args[1] !== undefined });
      },
    },
    {
      name: 'ServerName',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.serverName = parseServerName(arg0(node), node.source);
        ctx.server.serverPort = serverNamePort(arg0(node));
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
    {
      // In a <Location> it applies to the requests in the section (Apache's per-directory setting).
      name: 'ProxyPreserveHost',
      contexts: WITH_LOCATION,
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        const value = parseOnOff(arg0(node), 'ProxyPreserveHost', node.source);
        if (ctx.location !== undefined) ctx.server.sectionPreserveHost.push({ section: ctx.location.match, preserveHost: value });
        else ctx.server.settings.preserveHost = value;
      },
    },
    setting('ProxyAddHeaders', 'addHeaders', onOff('ProxyAddHeaders')),
    setting('ProxyWebsocketIdleTimeout', 'websocketIdleTimeoutMs', duration('ProxyWebsocketIdleTimeout', true)),
    setting('ProxyWebsocketStrict', 'websocketStrict', onOff('ProxyWebsocketStrict')),
    setting('ProxyWebsocketPingInterval', 'websocketPingIntervalMs', duration('ProxyWebsocketPingInterval', true)),
    setting('ProxyWebsocketFallbackToProxyHttp', 'websocketFallbackToProxyHttp', onOff('ProxyWebsocketFallbackToProxyHttp')),
    setting('ProxyWebsocketAsync', 'websocketAsync', onOff('ProxyWebsocketAsync')),
    setting('ProxyWebsocketAsyncDelay', 'websocketAsyncDelayMs', duration('ProxyWebsocketAsyncDelay', true)),
    setting('ProxyPassInherit', 'passInherit', onOff('ProxyPassInherit')),
    setting('TraceEnable', 'traceEnable', (v, node) => {
      const t = v.toLowerCase();
      if (t !== 'on' && t !== 'off' && t !== 'extended')
        throw ConfigError.at(node.source, `TraceEnable must be On, Off or extended, got "${v}"`);
      return t;
    }),
    setting('LimitRequestLine', 'limitRequestLine', lineLimit('LimitRequestLine')),
    setting('LimitRequestFieldSize', 'limitRequestFieldSize', lineLimit('LimitRequestFieldSize')),
    setting('LimitRequestFields', 'limitRequestFields', (v, node) => parseCount(v, 'LimitRequestFields', node.source)),
    {
      // Apache also takes it per directory (<Location>, <Directory>, .htaccess); wsgate has no
      // per-directory settings, and a limit it would not apply must not look applied.
      name: 'LimitRequestBody',
      contexts: 'any',
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        if (ctx.kind !== 'server' && ctx.kind !== 'vhost') {
          throw ConfigError.at(
            node.source,
            `LimitRequestBody inside ${CONTEXT_NAMES[ctx.kind]} is not supported (no per-directory limits): set it at the top level or in the <VirtualHost>`,
          );
        }
        ctx.server.settings.limitRequestBody = parseCount(arg0(node), 'LimitRequestBody', node.source);
      },
    },
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
        ctx.server.settings.via = v as NonNullable<SettingsDraft['via']>;
      },
    },
    { name: 'ProxyPassReverse', contexts: WITH_LOCATION, minArgs: 1, maxArgs: 3, handle: proxyPassReverse },
    { name: 'ProxyPassReverseCookieDomain', contexts: WITH_LOCATION, minArgs: 2, maxArgs: 3, handle: reverseCookie('cookieDomain') },
    { name: 'ProxyPassReverseCookiePath', contexts: WITH_LOCATION, minArgs: 2, maxArgs: 3, handle: reverseCookie('cookiePath') },
    { name: 'Redirect', contexts: WITH_LOCATION, minArgs: 1, maxArgs: 3, handle: redirectDirective(false) },
    { name: 'RedirectMatch', contexts: WITH_LOCATION, minArgs: 2, maxArgs: 3, handle: redirectDirective(true) },
    { name: 'RedirectPermanent', contexts: WITH_LOCATION, minArgs: 2, maxArgs: 2, handle: redirectDirective(false, 301) },
    { name: 'RedirectTemp', contexts: WITH_LOCATION, minArgs: 2, maxArgs: 2, handle: redirectDirective(false, 302) },
    { name: 'UseCanonicalName', contexts: SERVER_VHOST, minArgs: 1, maxArgs: 1, handle: useCanonicalName },
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
    refused(
      'RewriteBase',
      'per-directory rewriting is not supported (wsgate supports RewriteRule [P] at the top level or in a <VirtualHost>)',
    ),
    { name: 'Header', contexts: 'any', minArgs: 2, maxArgs: 6, handle: headerDirective },
    { name: 'RequestHeader', contexts: 'any', minArgs: 2, maxArgs: 5, handle: requestHeaderDirective },
    refused('ProxyHCExpr', 'health-check expressions are not supported: a check passes on a 2xx or 3xx status'),
    refused('ProxyHCTemplate', 'health-check templates are not supported: put the hc* keys on each BalancerMember'),
    refused('ProxyHCTPsize', 'not supported: wsgate needs no thread pool for health checks'),
    ...tlsSpecs(),
    ...http2Specs(),
    ...websocketLimitSpecs(),
    ...processSpecs(),
    ...accessSpecs(),
    ...logSpecs(),
    notice('H2Direct', 'HTTP/2 with prior knowledge on a plain port follows `Protocols h2c`'),
    notice('H2Upgrade', 'wsgate does not take `Upgrade: h2c` (h2c is by prior knowledge only)'),
    ...H2_TUNING.map((name) => notice(name, "mod_http2's tuning has no counterpart in wsgate (Node's http2 module)")),
    ...groupedSpecs(),
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
    throw ConfigError.at(
      where,
      'BalancerMember is only valid inside <Proxy "balancer://name"> (or as BalancerMember balancer://name url …)',
    );
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
      throw ConfigError.at(
        where,
        `BalancerMember ${raw} is already a member of balancer://${balancer.name} (${other.source.file}:${other.source.line})`,
      );
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
      throw ConfigError.at(where, "ProxySet inside <Proxy> takes only key=value parameters (the URL is the <Proxy>'s)");
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

/**
 * One <VirtualHost> argument as addresses. A host name stands for every address the resolver gave
 * for it, as in Apache; a name that does not resolve is an error (Apache logs it and drops the
 * address, which leaves a virtual host that no request can reach).
 */
function vhostAddresses(arg: string, node: SectionNode, ctx: Ctx): VirtualHostAddress[] {
  const addr = parseVhostAddress(arg, node.source);
  if (!isHostName(addr.host)) return [addr];
  const r = ctx.state.resolved.get(addr.host);
  if (r === undefined || 'error' in r) {
    const port = addr.port === '*' ? '*' : String(addr.port);
    throw ConfigError.at(
      node.source,
      `<VirtualHost ${node.args.join(' ')}>: cannot resolve "${addr.host}" (${r === undefined ? 'not looked up' : r.error}); ` +
        `a name here is resolved at load to the addresses the virtual host listens on: write the server's IP address, ` +
        `or *:${port} with "ServerName ${addr.host}" inside`,
    );
  }
  return r.addresses.map((host) => ({ host, port: addr.port }));
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
        match: regex ? { kind: 'regex', regex: parseRegex(pattern, `<${name}>`, where), pattern } : { kind: 'prefix', prefix: pattern },
        source: where,
        headerRules: [],
        requestHeaderRules: [],
      };
      if (!regex && !pattern.startsWith('/')) throw ConfigError.at(where, `<${name}> path "${pattern}" must start with "/"`);
      walk(node.children, { ...ctx, kind: regex ? 'locationmatch' : 'location', location: loc });
      if (loc.route) ctx.server.locationRoutes.push(loc.route);
      if (loc.headerRules.length + loc.requestHeaderRules.length > 0) {
        ctx.server.headerSections.push({ match: loc.match, request: loc.requestHeaderRules, response: loc.headerRules });
      }
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
        const addresses = node.args.flatMap((a) => vhostAddresses(a, node, ctx));
        const server: ServerDraft = newServerDraft(false, addresses, node.source);
        ctx.state.vhosts.push(server);
        walk(node.children, { kind: 'vhost', server, state: ctx.state });
      },
    },
    location('Location', false),
    location('LocationMatch', true),
    proxy('Proxy', false),
    proxy('ProxyMatch', true),
    ...accessSections(),
    ...directorySections(),
  ];
}

export const DIRECTIVES: ReadonlyMap<string, DirectiveSpec> = new Map(serverSpecs().map((s) => [s.name.toLowerCase(), s] as const));

export const SECTIONS: ReadonlyMap<string, SectionSpec> = new Map(sectionSpecs().map((s) => [s.name.toLowerCase(), s] as const));

/** Families refused by prefix, checked before "unknown directive". */
export function refusedFamily(key: string): string | undefined {
  if (key.startsWith('ssl')) return 'this mod_ssl directive is not supported (see docs/directives.md for the supported SSL* directives)';
  return undefined;
}

/**
 * The group of every directive and section name wsgate knows (sections as `<Name>`), including
 * those read by the parser; for docs/directives.md and the test that pins each decision.
 */
export function directiveGroups(): Map<string, DirectiveGroup> {
  const groups = new Map<string, DirectiveGroup>();
  for (const name of READ_DIRECTIVES) groups.set(name, 'honoured');
  for (const spec of DIRECTIVES.values()) groups.set(spec.name, spec.group ?? 'honoured');
  for (const name of CONDITIONAL_SECTIONS) groups.set(`<${name}>`, 'honoured');
  for (const key of SKIPPED_SECTIONS) groups.set(`<${SKIPPED_NAMES[key] ?? key}>`, 'notice');
  for (const spec of SECTIONS.values()) groups.set(`<${spec.name}>`, spec.group ?? 'honoured');
  return groups;
}

const SKIPPED_NAMES: Record<string, string> = {
  directory: 'Directory',
  directorymatch: 'DirectoryMatch',
  files: 'Files',
  filesmatch: 'FilesMatch',
};

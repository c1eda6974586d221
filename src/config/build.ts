// Validation and building: the parsed tree → the immutable model (model.ts).
//
// Pass 1 walks the tree with the directive table, checking context and arity and filling the
// drafts. Pass 2 resolves defaults (main server → each <VirtualHost>), worker parameters
// (ProxyPass key=value > ProxySet > server settings) and assembles each server's routes.

import { CONTEXT_NAMES, DIRECTIVES, SECTIONS, refusedFamily, type Walk } from './directives';
import {
  newServerDraft,
  type BuildState,
  type ContextKind,
  type Ctx,
  type BalancerDraft,
  type LocalContentDraft,
  type MemberDraft,
  type ProxySetDraft,
  type RouteDraft,
  type ServerDraft,
  type SettingsDraft,
  type WorkerParams,
} from './drafts';
import { ConfigError, Notices } from './errors';
import { isHostName, resolveNames } from './resolve';
import { parseVhostAddress } from './values';
import { DEFAULT_REQUEST_READ_TIMEOUTS } from './reqtimeout';
import { DEFAULT_H2_MAX_SESSION_STREAMS } from './http2';
import {
  DEFAULT_PROTOCOLS,
  DEFAULT_RETRY_MS,
  DEFAULT_LIMIT_REQUEST_BODY,
  DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
  DEFAULT_LIMIT_REQUEST_FIELDS,
  DEFAULT_LIMIT_REQUEST_LINE,
  DEFAULT_TIMEOUT_MS,
  type Backend,
  type BackendTls,
  type Config,
  type Origin,
  type Route,
  type ServerSettings,
  type SourceRef,
  type UpgradePolicy,
  type VirtualHost,
  type HandlerSection,
} from './model';
import type { ConfigNode, ParseResult } from './parser';
import { buildAccess } from './access';
import { balancerRoute } from './balancer';
import { assembleRedirects } from './redirect';
import { assembleLogs } from './logs';
import { assembleReverse, frontName } from './reverse';
import { assembleRewrite, assembleSectionRewrites, effectiveRules, noteDanglingConditions } from './rewrite';
import { assembleFiles, readDirectories, servesFiles } from './static-files';
import { decideListenProtocols, DEFAULT_BACKEND_TLS_PROFILE, FileCache, resolveBackendTls, resolveFrontTls } from './tls';
import { processSettings } from './process';

function checkPlace(
  name: string,
  contexts: readonly ContextKind[] | 'any',
  min: number,
  max: number,
  args: readonly string[],
  ctx: Ctx,
  where: SourceRef,
): void {
  if (contexts !== 'any' && !contexts.includes(ctx.kind)) {
    const allowed = contexts.map((c) => CONTEXT_NAMES[c]).join(', ');
    const here = ctx.kind === 'server' ? 'at the top level (server config)' : `inside ${CONTEXT_NAMES[ctx.kind]}`;
    throw ConfigError.at(where, `${name} is not allowed ${here}; allowed in: ${allowed}`);
  }
  if (args.length < min || args.length > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    const plural = min === max && min === 1 ? '' : max === Infinity && min === 1 ? '' : 's';
    throw ConfigError.at(where, `${name} takes ${want} argument${plural}, got ${args.length}`);
  }
}

const walk: Walk = (nodes: readonly ConfigNode[], ctx: Ctx): void => {
  for (const node of nodes) {
    if (node.kind === 'section') {
      if (node.skipped) {
        ctx.state.skippedFiles.push(node);
        ctx.state.notices.once(
          `skipped:${node.key}`,
          node.source,
          `<${node.name}> sections are skipped: they apply to files Apache serves itself, and proxied requests never enter them`,
        );
        continue;
      }
      const spec = SECTIONS.get(node.key);
      if (!spec) throw ConfigError.at(node.source, `unknown directive "<${node.name}>"`);
      checkPlace(`<${spec.name}>`, spec.contexts, spec.minArgs, spec.maxArgs, node.args, ctx, node.source);
      spec.open(node, ctx, walk);
      continue;
    }
    const spec = DIRECTIVES.get(node.key);
    if (!spec) {
      const refused = refusedFamily(node.key);
      if (refused) throw ConfigError.at(node.source, `${node.name}: ${refused}`);
      throw ConfigError.at(node.source, `unknown directive "${node.name}"`);
    }
    checkPlace(spec.name, spec.contexts, spec.minArgs, spec.maxArgs, node.args, ctx, node.source);
    spec.handle(node, ctx);
  }
};

function resolveSettings(own: SettingsDraft, base: SettingsDraft | undefined): ServerSettings {
  const pick = <K extends keyof SettingsDraft>(k: K): SettingsDraft[K] => own[k] ?? base?.[k];
  const timeoutMs = pick('timeoutMs') ?? DEFAULT_TIMEOUT_MS;
  const via = pick('via');
  return {
    timeoutMs,
    proxyTimeoutMs: pick('proxyTimeoutMs') ?? timeoutMs,
    preserveHost: pick('preserveHost') ?? false,
    addHeaders: pick('addHeaders') ?? true,
    websocketIdleTimeoutMs: pick('websocketIdleTimeoutMs') ?? 0,
    websocketStrict: pick('websocketStrict') ?? false,
    websocketPingIntervalMs: pick('websocketPingIntervalMs') ?? 0,
    websocketDrainRate: pick('websocketDrainRate') ?? 0,
    websocketFallbackToProxyHttp: pick('websocketFallbackToProxyHttp') ?? true,
    websocketAsync: pick('websocketAsync') ?? false,
    websocketAsyncDelayMs: pick('websocketAsyncDelayMs') ?? 0,
    protocols: pick('protocols') ?? DEFAULT_PROTOCOLS,
    protocolsHonorOrder: pick('protocolsHonorOrder') ?? true,
    h2WebSockets: pick('h2WebSockets') ?? false,
    h2MaxSessionStreams: pick('h2MaxSessionStreams') ?? DEFAULT_H2_MAX_SESSION_STREAMS,
    traceEnable: pick('traceEnable') ?? 'on',
    ...(via !== undefined && via !== 'off' ? { via } : {}),
    limitRequestLine: pick('limitRequestLine') ?? DEFAULT_LIMIT_REQUEST_LINE,
    limitRequestFieldSize: pick('limitRequestFieldSize') ?? DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
    limitRequestFields: pick('limitRequestFields') ?? DEFAULT_LIMIT_REQUEST_FIELDS,
    limitRequestBody: pick('limitRequestBody') ?? DEFAULT_LIMIT_REQUEST_BODY,
    requestReadTimeouts: pick('requestReadTimeouts') ?? DEFAULT_REQUEST_READ_TIMEOUTS,
    websocketMaxTunnels: pick('websocketMaxTunnels') ?? 0,
    websocketMaxTunnelsPerClient: pick('websocketMaxTunnelsPerClient') ?? 0,
    websocketRate: pick('websocketRate') ?? 0,
    ...optional('websocketAllowedOrigins', pick('websocketAllowedOrigins')),
  };
}

const DEFAULT_UPGRADE: Record<Backend['scheme'], UpgradePolicy> = {
  ws: { kind: 'tokens', tokens: ['websocket'] },
  wss: { kind: 'tokens', tokens: ['websocket'] },
  http: { kind: 'tokens', tokens: [] },
  https: { kind: 'tokens', tokens: [] },
};

class Assembler {
  private readonly origins = new Map<string, Origin>();

  originList(): Origin[] {
    return [...this.origins.values()];
  }

  private origin(draft: NonNullable<RouteDraft['target']>, tlsClient: BackendTls | undefined, where: SourceRef): Origin {
    const { url } = draft;
    if (url.tls && tlsClient === undefined) {
      throw ConfigError.at(
        where,
        `"${draft.raw}": TLS to backends needs "SSLProxyEngine on" in this server (or the main server); wsgate, as Apache, does not speak TLS to backends without it`,
      );
    }
    const key = url.tls && tlsClient!.profile !== DEFAULT_BACKEND_TLS_PROFILE ? `${url.originKey}#${tlsClient!.profile}` : url.originKey;
    let o = this.origins.get(key);
    if (!o) {
      o = { tls: url.tls, host: url.host, port: url.port, hostHeader: url.hostHeader, key, ...(url.tls ? { tlsClient } : {}) };
      this.origins.set(key, o);
    }
    return o;
  }

  route(
    r: RouteDraft,
    settings: ServerSettings,
    proxySets: readonly ProxySetDraft[],
    tlsClient?: BackendTls,
    balancers?: (name: string) => BalancerDraft | undefined,
  ): Route {
    if (r.balancer) {
      // Each member is assembled as a ProxyPass backend of its own (ProxySet, defaults, origins).
      const memberBackend = (m: MemberDraft): Backend =>
        this.route(
          { match: r.match, exclude: false, target: m.target, regex: false, fromLocation: false, source: m.source },
          settings,
          proxySets,
          tlsClient,
        ).backend!;
      return balancerRoute(r, r.balancer, balancers?.(r.balancer.name), memberBackend);
    }
    const t = r.target;
    if (!t) return { match: r.match, exclude: true, fromLocation: r.fromLocation, source: r.source };
    const p: WorkerParams = {};
    for (const set of proxySets) {
      if (!set.matches(t.raw)) continue;
      set.used = true;
      Object.assign(p, set.params);
    }
    Object.assign(p, t.params);
    const backend: Backend = {
      url: t.raw,
      scheme: t.url.scheme,
      origin: this.origin(t, tlsClient, r.source),
      path: t.url.path,
      pathWasEmpty: t.url.pathWasEmpty,
      upgrade: p.upgrade ?? DEFAULT_UPGRADE[t.url.scheme],
      connectTimeoutMs: p.connectTimeoutMs ?? p.timeoutMs ?? settings.proxyTimeoutMs,
      responseTimeoutMs: p.timeoutMs ?? settings.proxyTimeoutMs,
      keepalive: p.keepalive ?? false,
      retryMs: p.retryMs ?? DEFAULT_RETRY_MS,
      max: p.max ?? 0,
      nocanon: t.nocanon,
      source: r.source,
    };
    return {
      match: r.match,
      exclude: false,
      backend,
      ...(r.regex ? { regexTarget: t.raw } : {}),
      fromLocation: r.fromLocation,
      ...optional('maxTunnels', r.maxTunnels),
      ...optional('pingIntervalMs', r.pingIntervalMs),
      source: r.source,
    };
  }
}

function portCovered(port: number | '*', state: BuildState): boolean {
  return port === '*' || state.listens.some((l) => l.port === port);
}

function nonEmpty<T>(list: T[]): T[] | undefined {
  return list.length > 0 ? list : undefined;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * A SetHandler for a handler wsgate does not run makes Apache serve that handler's page for the
 * paths no ProxyPass takes; wsgate would answer those 404. It is accepted only where that cannot
 * happen: the server proxies every path (a ProxyPass for "/") and excludes none (`ProxyPass … !`).
 * (DocumentRoot and Alias are served: static-files.ts.)
 */
function checkLocalContent(state: BuildState, mainServer: VirtualHost, virtualHosts: readonly VirtualHost[]): void {
  const check = (items: readonly LocalContentDraft[], server: VirtualHost): void => {
    if (items.length === 0) return;
    const all = server.routes.some((r) => !r.exclude && r.match.kind === 'prefix' && r.match.prefix === '/');
    const excluded = server.routes.find((r) => r.exclude);
    if (all && excluded === undefined) return;
    const item = items[0]!;
    const why =
      excluded !== undefined
        ? `ProxyPass ! at ${excluded.source.file}:${excluded.source.line} leaves paths to be served locally`
        : 'paths no ProxyPass takes would be served locally by Apache, and wsgate answers them 404';
    throw ConfigError.at(item.source, `${item.name}: ${item.what}, and ${why}; proxy every path (ProxyPass / …) or remove the line`);
  };
  const mainReachable = state.listens.some(
    (l) => !virtualHosts.some((vh) => vh.addresses.some((a) => a.port === '*' || a.port === l.port)),
  );
  if (mainReachable) check(state.main.localContent, mainServer);
  state.vhosts.forEach((vh, i) => {
    check([...vh.localContent, ...state.main.localContent], virtualHosts[i]!);
  });
}

/** SetHandler lines in Apache's merge order: the server-level ones (main server's first), then the sections'. */
function mergeHandlers(lists: readonly (readonly HandlerSection[])[]): HandlerSection[] {
  const all = lists.flat();
  return [...all.filter((h) => h.section === undefined), ...all.filter((h) => h.section !== undefined)];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof RegExp) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** The host names written as <VirtualHost> addresses (sections are only valid at the top level). */
function vhostNames(nodes: readonly ConfigNode[]): string[] {
  const names: string[] = [];
  for (const node of nodes) {
    if (node.kind !== 'section' || node.key !== 'virtualhost') continue;
    for (const arg of node.args) {
      let host: string;
      try {
        host = parseVhostAddress(arg, node.source).host;
      } catch {
        continue; // reported at its line by the walk
      }
      if (isHostName(host)) names.push(host);
    }
  }
  return names;
}

export function buildConfig(parsed: ParseResult, mainFile: string): Config {
  const notices = new Notices();
  for (const w of parsed.warnings) notices.add(w.where, w.text);
  const main = newServerDraft(true, [], { file: mainFile, line: 1 });
  const state: BuildState = {
    notices,
    listens: [],
    main,
    vhosts: [],
    resolved: resolveNames(vhostNames(parsed.nodes)),
    skippedFiles: [],
    fileDetails: [],
    process: {},
    errorLog: {},
  };
  walk(parsed.nodes, { kind: 'server', server: main, state });

  if (state.listens.length === 0) {
    throw new ConfigError(mainFile, 1, 'no Listen directive: wsgate needs at least one "Listen [address:]port"');
  }

  // Static files: which servers serve some path from files decides whether <Directory> lines matter.
  const inheritsRoutes = (vh: ServerDraft): boolean => vh.settings.passInherit ?? main.settings.passInherit ?? true;
  const mainServes = servesFiles(main, main, true);
  const vhostServes = state.vhosts.map((vh) => servesFiles(vh, main, inheritsRoutes(vh)));
  readDirectories(state, mainServes || vhostServes.some((s) => s), walk, SECTIONS);
  for (const [server, serves] of [[main, mainServes] as const, ...state.vhosts.map((vh, i) => [vh, vhostServes[i]!] as const)]) {
    const f = server.files;
    const line = f.documentRoot?.source ?? f.aliases[0]?.source;
    if (!serves && line !== undefined) {
      const name = f.documentRoot !== undefined ? 'DocumentRoot' : 'Alias';
      notices.once(
        `ignored:${name.toLowerCase()}`,
        line,
        `${name} is ignored: every path it could apply to is proxied (wsgate serves no files there)`,
      );
    }
  }

  const asm = new Assembler();
  const files = new FileCache();
  const mainSettings = resolveSettings(main.settings, undefined);
  const mainBackendTls = resolveBackendTls(main.tls, undefined, files);
  const mainFrontTls = resolveFrontTls(main.tls, undefined, files, main.source, notices);
  const mainRoutes = [...main.locationRoutes, ...main.serverRoutes].map((r) =>
    asm.route(r, mainSettings, main.proxySets, mainBackendTls, (name) => main.balancers.get(name)),
  );
  noteDanglingConditions(main.rewrite, notices);
  for (const e of main.sectionRewrites) noteDanglingConditions(e.draft, notices);
  const mainRewrite = assembleRewrite(effectiveRules(main.rewrite, undefined), (r) =>
    asm.route(r, mainSettings, main.proxySets, mainBackendTls, (name) => main.balancers.get(name)),
  );
  const mainLogs = assembleLogs(main, undefined, []);
  const mainServer: VirtualHost = {
    addresses: [],
    ...optional('logs', nonEmpty(mainLogs)),
    ...(main.serverName !== undefined ? { serverName: main.serverName } : {}),
    serverAliases: [],
    routes: mainRoutes,
    settings: mainSettings,
    ...(mainFrontTls !== undefined ? { tls: mainFrontTls } : {}),
    ...(mainRewrite !== undefined ? { rewrite: mainRewrite } : {}),
    ...(main.headerRules.length > 0 ? { headerRules: main.headerRules } : {}),
    ...optional('access', buildAccess(main.access, undefined)),
    ...(main.requestHeaderRules.length > 0 ? { requestHeaderRules: main.requestHeaderRules } : {}),
    ...(main.headerSections.length > 0 ? { headerSections: main.headerSections } : {}),
    ...optional(
      'reverse',
      assembleReverse(main, undefined, (name) => main.balancers.get(name)),
    ),
    ...optional('redirects', assembleRedirects(main, undefined)),
    frontName: frontName(main, undefined),
    ...optional('sectionPreserveHost', nonEmpty(main.sectionPreserveHost)),
    ...optional('sectionOrigins', nonEmpty(main.sectionOrigins)),
    ...optional('handlers', nonEmpty(mergeHandlers([main.handlers]))),
    ...optional('files', assembleFiles(main, main, mainServes)),
    ...optional(
      'sectionRewrites',
      assembleSectionRewrites(main.sectionRewrites, main.rewrite.engine ?? false, (r) =>
        asm.route(r, mainSettings, main.proxySets, mainBackendTls, (name) => main.balancers.get(name)),
      ),
    ),
    source: main.source,
  };

  const virtualHosts = state.vhosts.map((vh: ServerDraft, vhIndex: number): VirtualHost => {
    const settings = resolveSettings(vh.settings, main.settings);
    const backendTls = resolveBackendTls(vh.tls, main.tls, files);
    const frontTls = resolveFrontTls(vh.tls, main.tls, files, vh.source, notices);
    const inherit = vh.settings.passInherit ?? main.settings.passInherit ?? true;
    const drafts = [...main.locationRoutes, ...vh.locationRoutes, ...(inherit ? main.serverRoutes : []), ...vh.serverRoutes];
    const sets = [...main.proxySets, ...vh.proxySets];
    for (const a of vh.addresses) {
      if (!portCovered(a.port, state)) {
        notices.add(vh.source, `<VirtualHost> port ${a.port} matches no Listen directive: nothing will reach this address`);
      }
    }
    const balancers = (name: string) => vh.balancers.get(name) ?? main.balancers.get(name);
    noteDanglingConditions(vh.rewrite, notices);
    for (const e of vh.sectionRewrites) noteDanglingConditions(e.draft, notices);
    const rewrite = assembleRewrite(effectiveRules(vh.rewrite, main.rewrite), (r) => asm.route(r, settings, sets, backendTls, balancers));
    return {
      addresses: vh.addresses,
      ...(vh.serverName !== undefined ? { serverName: vh.serverName } : {}),
      serverAliases: vh.serverAliases,
      routes: drafts.map((r) => asm.route(r, settings, sets, backendTls, balancers)),
      settings,
      ...(frontTls !== undefined ? { tls: frontTls } : {}),
      ...(rewrite !== undefined ? { rewrite } : {}),
      ...(main.headerRules.length + vh.headerRules.length > 0 ? { headerRules: [...main.headerRules, ...vh.headerRules] } : {}),
      ...optional('access', buildAccess(main.access, vh.access)),
      ...(main.requestHeaderRules.length + vh.requestHeaderRules.length > 0
        ? { requestHeaderRules: [...main.requestHeaderRules, ...vh.requestHeaderRules] }
        : {}),
      ...(main.headerSections.length + vh.headerSections.length > 0
        ? { headerSections: [...main.headerSections, ...vh.headerSections] }
        : {}),
      ...optional('reverse', assembleReverse(vh, main, balancers)),
      ...optional('redirects', assembleRedirects(vh, main)),
      frontName: frontName(vh, main),
      ...optional('logs', nonEmpty(assembleLogs(vh, main, mainLogs))),
      ...optional('sectionPreserveHost', nonEmpty([...main.sectionPreserveHost, ...vh.sectionPreserveHost])),
      ...optional('sectionOrigins', nonEmpty([...main.sectionOrigins, ...vh.sectionOrigins])),
      ...optional('handlers', nonEmpty(mergeHandlers([main.handlers, vh.handlers]))),
      ...optional('files', assembleFiles(vh, main, vhostServes[vhIndex]!)),
      ...optional(
        'sectionRewrites',
        assembleSectionRewrites([...main.sectionRewrites, ...vh.sectionRewrites], vh.rewrite.engine ?? main.rewrite.engine ?? false, (r) =>
          asm.route(r, settings, sets, backendTls, balancers),
        ),
      ),
      source: vh.source,
    };
  });

  for (const server of [main, ...state.vhosts]) {
    for (const set of server.proxySets) {
      if (!set.used) notices.add(set.source, `ProxySet for "${set.describe}" matches no ProxyPass backend`);
    }
  }

  const listen = decideListenProtocols(state.listens, mainServer, virtualHosts);
  checkLocalContent(state, mainServer, virtualHosts);

  return deepFreeze({
    files: parsed.files,
    listen,
    mainServer,
    virtualHosts,
    origins: asm.originList(),
    notices: notices.list,
    process: processSettings(state.process),
    ...optional('errorLog', state.errorLog.target),
    ...optional('logLevel', state.errorLog.level),
  });
}

// Hand-built config model objects for the routing tests (the loader is tested on its own).

import assert from 'node:assert/strict';
import { DEFAULT_REQUEST_READ_TIMEOUTS } from '../../src/config/reqtimeout';
import type {
  Backend,
  BackendScheme,
  Config,
  ListenAddress,
  Origin,
  Route,
  ServerSettings,
  UpgradePolicy,
  VirtualHost,
  VirtualHostAddress,
} from '../../src/config/model';
import { routeRequest, type RouteResult } from '../../src/routing/router';

const source = { file: 'test.conf', line: 1 };

export interface BackendOptions {
  /** As written after `upgrade=`: `websocket`, `foo`, `a,b`, `ANY`, `NONE`; default per scheme. */
  upgrade?: string;
  nocanon?: boolean;
}

/** A Backend for `url` (`ws://h:1/p`), parsed the way the loader documents its fields. */
export function backend(url: string, opts: BackendOptions = {}): Backend {
  const m = /^(wss?|https?):\/\/(\[[^\]]+\]|[^/:]+)(?::(\d+))?(.*)$/.exec(url);
  if (!m) throw new Error(`bad backend url ${url}`);
  const scheme = m[1] as BackendScheme;
  const tls = scheme === 'wss' || scheme === 'https';
  const host = m[2].startsWith('[') ? m[2].slice(1, -1) : m[2];
  const port = m[3] ? Number(m[3]) : tls ? 443 : 80;
  const origin: Origin = {
    tls,
    host,
    port,
    hostHeader: m[2] + (port === (tls ? 443 : 80) ? '' : `:${port}`),
    key: `${tls ? 'https' : 'http'}://${host}:${port}`,
  };
  return {
    url,
    scheme,
    origin,
    path: m[4] === '' ? '/' : m[4],
    pathWasEmpty: m[4] === '',
    upgrade: upgradePolicy(scheme, opts.upgrade),
    connectTimeoutMs: 60_000,
    responseTimeoutMs: 60_000,
    keepalive: false,
    retryMs: 60_000,
    max: 0,
    nocanon: opts.nocanon ?? false,
    source,
  };
}

function upgradePolicy(scheme: BackendScheme, value: string | undefined): UpgradePolicy {
  if (value === undefined) return { kind: 'tokens', tokens: scheme.startsWith('ws') ? ['websocket'] : [] };
  if (value === 'ANY' || value === '*') return { kind: 'any' };
  if (value === 'NONE') return { kind: 'none' };
  return { kind: 'tokens', tokens: value.toLowerCase().split(',') };
}

export interface RouteOptions extends BackendOptions {
  /** From a <Location> section (the caller lists those first, as the loader does). */
  location?: boolean;
}

/** `ProxyPass prefix url|!` (or `<Location prefix> ProxyPass url`). */
export function pass(prefix: string, url: string, opts: RouteOptions = {}): Route {
  return makeRoute({ kind: 'prefix', prefix }, url, opts);
}

/** `ProxyPassMatch regex url|!` (or `<LocationMatch regex> ProxyPass url`). */
export function passMatch(pattern: string, url: string, opts: RouteOptions = {}): Route {
  return makeRoute({ kind: 'regex', regex: new RegExp(pattern), pattern }, url, opts);
}

function makeRoute(match: Route['match'], url: string, opts: RouteOptions): Route {
  const exclude = url === '!';
  return {
    match,
    exclude,
    backend: exclude ? undefined : backend(url, opts),
    regexTarget: match.kind === 'regex' && url.includes('$') ? url : undefined,
    fromLocation: opts.location ?? false,
    source,
  };
}

export const defaultSettings: ServerSettings = {
  timeoutMs: 60_000,
  proxyTimeoutMs: 60_000,
  preserveHost: false,
  addHeaders: true,
  websocketIdleTimeoutMs: 0,
  websocketStrict: false,
  websocketPingIntervalMs: 0,
  websocketDrainRate: 0,
  websocketFallbackToProxyHttp: true,
  websocketAsync: false,
  websocketAsyncDelayMs: 0,
  requestReadTimeouts: DEFAULT_REQUEST_READ_TIMEOUTS,
  protocols: ['http/1.1'],
  protocolsHonorOrder: true,
  h2WebSockets: false,
  h2MaxSessionStreams: 100,
  traceEnable: 'on',
  limitRequestLine: 8190,
  limitRequestFieldSize: 8190,
  limitRequestFields: 100,
  limitRequestBody: 1073741824,
  websocketMaxTunnels: 0,
  websocketMaxTunnelsPerClient: 0,
  websocketRate: 0,
};

export interface VhostOptions {
  addresses?: string[]; // `host:port`, `*:80`, `[::1]:80`, `*:*`
  serverName?: string;
  aliases?: string[];
  fallback?: boolean; // ProxyWebsocketFallbackToProxyHttp
}

export function vhost(routes: Route[], opts: VhostOptions = {}): VirtualHost {
  return {
    addresses: (opts.addresses ?? []).map(address),
    serverName: opts.serverName,
    serverAliases: (opts.aliases ?? []).map((a) => a.toLowerCase()),
    routes,
    settings: { ...defaultSettings, websocketFallbackToProxyHttp: opts.fallback ?? true },
    source,
  };
}

function address(spec: string): VirtualHostAddress {
  const colon = spec.lastIndexOf(':');
  const port = spec.slice(colon + 1);
  return { host: spec.slice(0, colon), port: port === '*' ? '*' : Number(port) };
}

export function config(mainServer: VirtualHost, virtualHosts: VirtualHost[]): Config {
  return {
    files: ['test.conf'],
    listen: [],
    mainServer,
    virtualHosts,
    origins: [],
    notices: [],
    process: { gracefulShutdownTimeoutMs: 30_000 },
  };
}

export function listen(port: number): ListenAddress {
  return { port, protocol: 'http', source };
}

/** Routes a request; `upgrade` is the first Upgrade header's value. */
export function go(vh: VirtualHost, target: string, upgrade?: string, method = 'GET'): RouteResult {
  return routeRequest(vh, { method, target, upgrade, headers: upgrade === undefined ? [] : ['Upgrade', upgrade] });
}

type Proxied = Extract<RouteResult, { kind: 'proxy' }>;

/** Asserts a proxied result with this backend request-target (and mode, when given). */
export function assertProxy(r: RouteResult, path: string, mode?: 'upgrade' | 'http'): Proxied {
  assert.equal(r.kind, 'proxy', `expected proxy, got ${JSON.stringify(r)}`);
  const p = r as Proxied;
  assert.equal(p.path, path);
  if (mode !== undefined) assert.equal(p.mode, mode);
  return p;
}

export function assertLocal(r: RouteResult, status: number): void {
  assert.equal(r.kind, 'local', `expected local ${status}, got ${JSON.stringify(r, (k, v) => (k === 'route' ? undefined : v))}`);
  assert.equal((r as Extract<RouteResult, { kind: 'local' }>).status, status);
}

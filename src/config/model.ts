// The typed configuration model: what the rest of wsgate reads.
//
// A config file is lexed, parsed and validated once (src/config/load.ts) into a `Config`.
// Nothing downstream re-parses directive strings. A `Config` is immutable after loading, so a
// reload can build a new one and swap it atomically while live tunnels keep the objects they
// were started with.

import type { HeaderRule } from './headers';
import type { Level } from '../observe/log';
import type { CompiledFormat } from '../observe/log-format';
import type { RewriteConfig, SectionRewrite } from './rewrite';

/** Where a directive came from, for `file:line: message` errors and log lines. */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
}

/** Durations are always milliseconds in the model; 0 means "no limit" where documented. */
export type Millis = number;

/**
 * Which `Upgrade` values a route lets through (the `upgrade=` key, REFERENCE §2 and §3).
 * - `tokens`: allowed protocol tokens, lower-cased. ws:// and wss:// default to ["websocket"];
 *   http:// and https:// default to [] (no upgrade: `Upgrade` is removed as hop-by-hop).
 * - `any`: `upgrade=ANY` (or `*`): whatever the client asks for.
 * - `none`: `upgrade=NONE`: the header check is skipped; every request is forwarded as a
 *   WebSocket upgrade and tunnelled (the documented behaviour).
 */
export type UpgradePolicy =
  | { readonly kind: 'tokens'; readonly tokens: readonly string[] }
  | { readonly kind: 'any' }
  | { readonly kind: 'none' };

export type BackendScheme = 'ws' | 'wss' | 'http' | 'https';

/**
 * The network endpoint behind one or more routes: scheme, host and port. Counters and the
 * keep-alive pool live per origin at run time (src/upstream), so two ProxyPass lines to the
 * same backend share them.
 */
export interface Origin {
  /** `http:` for ws:// and http://, `https:` for wss:// and https://. */
  readonly tls: boolean;
  /** Host name or IP literal as written (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** `host[:port]` as sent in `Host` when ProxyPreserveHost is Off: port omitted when it is the scheme's default; IPv6 bracketed. */
  readonly hostHeader: string;
  /** Stable key: `http://host:port` or `https://host:port` (plus `#` and the TLS profile when it is not the default one). */
  readonly key: string;
  /** For wss:// and https:// origins: the TLS client settings (SSLProxy*) of the server the route is in. */
  readonly tlsClient?: BackendTls;
}

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** TLS to a backend (`SSLProxy*`), resolved per server. Certificate files are read at load time. */
export interface BackendTls {
  /** `SSLProxyVerify require` (default) or `none`. The system CAs plus `ca` are trusted. */
  readonly verify: boolean;
  /** `SSLProxyCheckPeerName` (default On): the certificate must name the backend host. */
  readonly checkPeerName: boolean;
  /** `SSLProxyCheckPeerExpire` (default On): an expired or not yet valid certificate fails. */
  readonly checkPeerExpire: boolean;
  /** PEM of `SSLProxyCACertificateFile`. */
  readonly ca?: string;
  /** PEM of `SSLProxyMachineCertificateFile` (client certificate for mTLS, and its key). */
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** Identity of these settings (`verify=require,name=on,…`): origins differing in it have their own pools. */
  readonly profile: string;
}

/** TLS on the front (`SSLEngine on` and friends) of one server. */
export interface FrontTls {
  /** PEM: the certificate, then `SSLCertificateChainFile`'s. */
  readonly cert: string;
  readonly key: string;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** `SSLCipherSuite` as given (OpenSSL syntax), or Node's default. */
  readonly ciphers?: string;
  readonly honorCipherOrder: boolean;
  /** `SSLSessionTickets` (default on): off sets OpenSSL's SSL_OP_NO_TICKET, so no session can be resumed. */
  readonly sessionTickets: boolean;
  /** `SSLSessionCacheTimeout` in seconds (default 300): how long a session stays resumable. */
  readonly sessionTimeoutS: number;
  /** `SSLOpenSSLConfCmd Curves|Groups|ECDHParameters`: Node's ecdhCurve. */
  readonly ecdhCurve?: string;
  /** `SSLOpenSSLConfCmd SignatureAlgorithms`. */
  readonly sigalgs?: string;
  /** `SSLOpenSSLConfCmd DHParameters`: the PEM of the file. */
  readonly dhparam?: string;
  /** `SSLUseStapling on` with a certificate that can be stapled (config/ocsp.ts). */
  readonly stapling?: OcspStapling;
  /** The `SSLEngine on` line. */
  readonly source: SourceRef;
}

/** OCSP stapling of one certificate: what to ask, where, and how long answers are kept (listeners/ocsp.ts). */
export interface OcspStapling {
  /** The responder: SSLStaplingForceURL, else the certificate's Authority Information Access. Always http://. */
  readonly url: string;
  /** The DER OCSPRequest sent (POST) for the certificate, hex (the config is frozen; a Buffer cannot be). */
  readonly request: string;
  /** The certificate's serialNumber element (DER, hex): how its answer is found in a response. */
  readonly serial: string;
  /** SHA-256 of the certificate (DER), hex: matches Node's OCSPRequest event to this certificate. */
  readonly fingerprint: string;
  /** SSLStaplingResponderTimeout (default 10 s). */
  readonly timeoutMs: Millis;
  /** SSLStaplingReturnResponderErrors (default on): staple answers that are not "good" too. */
  readonly returnErrors: boolean;
  /** SSLStaplingFakeTryLater (default on): a failed query staples a tryLater answer (with returnErrors). */
  readonly fakeTryLater: boolean;
  /** SSLStaplingStandardCacheTimeout (default 3600 s): how long a good answer is kept (never past its nextUpdate). */
  readonly cacheMs: Millis;
  /** SSLStaplingErrorCacheTimeout (default 600 s): how long a bad answer or a fake tryLater is kept. */
  readonly errorCacheMs: Millis;
  /** SSLStaplingResponseTimeSkew (default 300 s) and SSLStaplingResponseMaxAge (default -1: no limit). */
  readonly skewMs: Millis;
  readonly maxAgeMs: Millis;
  /** The `SSLUseStapling on` line. */
  readonly source: SourceRef;
}

/** One ProxyPass target with its key=value parameters resolved against the server defaults. */
export interface Backend {
  /** The URL exactly as configured (for logs), e.g. `ws://127.0.0.1:9000/chat/`. */
  readonly url: string;
  readonly scheme: BackendScheme;
  readonly origin: Origin;
  /** The target URL's path (`/` when the URL had none... see `pathWasEmpty`). Never includes a query. */
  readonly path: string;
  /** True when the URL had no path at all (`ws://h:1`), so Apache would glue the rest straight onto the authority. */
  readonly pathWasEmpty: boolean;
  readonly upgrade: UpgradePolicy;
  /** Bounds the TCP (and later TLS) connect: `connectiontimeout=`, else `timeout=`, else ProxyTimeout, else Timeout. */
  readonly connectTimeoutMs: Millis;
  /** Bounds the wait for the backend's answer head: `timeout=`, else ProxyTimeout, else Timeout. */
  readonly responseTimeoutMs: Millis;
  /** `keepalive=On`: SO_KEEPALIVE on the backend socket. wsgate turns TCP keepalive on for tunnels anyway; this also applies it to pooled HTTP connections. */
  readonly keepalive: boolean;
  /** `retry=` in ms (only meaningful for balancer members; kept for them). Default 60 s. */
  readonly retryMs: Millis;
  /** `max=`: most concurrent connections (tunnels + in-flight requests) to this backend; 0 = no limit. */
  readonly max: number;
  /** `nocanon`: forward the raw path and query instead of the normalised one. */
  readonly nocanon: boolean;
  readonly source: SourceRef;
}

export type RouteMatch =
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly pattern: string };

/** One ProxyPass / ProxyPassMatch line (server level or inside a <Location>/<LocationMatch>). */
export interface Route {
  readonly match: RouteMatch;
  /** `ProxyPass path !`: a match means "do not proxy". */
  readonly exclude: boolean;
  /** A plain ProxyPass target. For ProxyPassMatch the backend's url/path may hold `$1`…`$9`. */
  readonly backend?: Backend;
  /** A `balancer://name/…` target. Exactly one of `backend` and `balancer` is set unless `exclude`. */
  readonly balancer?: BalancerTarget;
  /** The raw target URL for ProxyPassMatch substitution (contains `$N`), else undefined. */
  readonly regexTarget?: string;
  /** True when it came from a <Location>/<LocationMatch> section (tried before server-level rules). */
  readonly fromLocation: boolean;
  /** The line's `maxtunnels=` (wsgate's own key): most tunnels this route may have open (503); absent = none. */
  readonly maxTunnels?: number;
  /** The line's `wspinginterval=` (wsgate's own key): overrides ProxyWebsocketPingInterval for this route (0: off). */
  readonly pingIntervalMs?: Millis;
  readonly source: SourceRef;
}

/** Per-server settings: the main server's values, overridden per <VirtualHost>. */
export interface ServerSettings {
  /** `Timeout` (default 60 s). */
  readonly timeoutMs: Millis;
  /** `ProxyTimeout` (default: Timeout). */
  readonly proxyTimeoutMs: Millis;
  readonly preserveHost: boolean;
  readonly addHeaders: boolean;
  /** `ProxyWebsocketIdleTimeout` (default 0: no limit). */
  readonly websocketIdleTimeoutMs: Millis;
  /** `ProxyWebsocketStrict` (default Off): a WebSocket protocol violation closes the tunnel with 1002. */
  readonly websocketStrict: boolean;
  /** `ProxyWebsocketPingInterval` (default 0: off): a silent side of a WebSocket tunnel is pinged; no answer within it, it is dead. */
  readonly websocketPingIntervalMs: Millis;
  /** `ProxyWebsocketDrainRate` (top level only, default 0: all at once): WebSocket tunnels closed per second by a stop or reload. */
  readonly websocketDrainRate: number;
  /** `ProxyWebsocketFallbackToProxyHttp` (default On). */
  readonly websocketFallbackToProxyHttp: boolean;
  /** `ProxyWebsocketAsync` / `ProxyWebsocketAsyncDelay`: accepted and validated; no effect (wsgate is always event-driven). */
  readonly websocketAsync: boolean;
  readonly websocketAsyncDelayMs: Millis;
  /** `Protocols` (default `http/1.1`, as Apache): what the front speaks, in the server's order of preference. */
  readonly protocols: readonly FrontProtocol[];
  /** `ProtocolsHonorOrder` (default On): ALPN picks by the server's order, else by the client's. */
  readonly protocolsHonorOrder: boolean;
  /** `H2WebSockets` (default Off, as Apache): HTTP/2 connections offer RFC 8441 extended CONNECT for WebSockets. */
  readonly h2WebSockets: boolean;
  /**
   * `H2MaxSessionStreams` (default 100, as Apache): streams a client may have open at once on one
   * HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS), from the server the connection was opened
   * for (SNI, else its address).
   */
  readonly h2MaxSessionStreams: number;
  /** `TraceEnable` (default On): with Off, a TRACE request is answered 501 and never proxied, as mod_proxy does. */
  readonly traceEnable: 'on' | 'off' | 'extended';
  /** `ProxyVia` On, Full or Block; absent for Off (the default: Via headers pass unchanged). */
  readonly via?: 'on' | 'full' | 'block';
  /**
   * `LimitRequestLine` (default 8190): longest request line (414). As in Apache, the request
   * limits of a connection are those of the server its address selects (the first <VirtualHost>
   * for it), not of the name-based one.
   */
  readonly limitRequestLine: number;
  /** `LimitRequestFieldSize` (default 8190): longest header field line (400; 431 over HTTP/2). */
  readonly limitRequestFieldSize: number;
  /** `LimitRequestFields` (default 100, 0 = none): most header fields (400; 431 over HTTP/2). */
  readonly limitRequestFields: number;
  /** `LimitRequestBody` (default 1 GiB as Apache 2.4.54+, 0 = none): largest request body (413); the request's own server applies. */
  readonly limitRequestBody: number;
  /** `RequestReadTimeout` (main server only; Apache's defaults, see config/reqtimeout.ts). */
  readonly requestReadTimeouts: RequestReadTimeouts;
  /** `ProxyWebsocketMaxTunnels` (top level only, default 0 = none): most tunnels open in the gateway (503). */
  readonly websocketMaxTunnels: number;
  /** `ProxyWebsocketMaxTunnelsPerClient` (top level only, default 0 = none): most tunnels open per client address (503). */
  readonly websocketMaxTunnelsPerClient: number;
  /** `ProxyWebsocketRate` (top level only, default 0 = none): most upgrade handshakes per second per client address (429). */
  readonly websocketRate: number;
  /** `ProxyWebsocketAllowedOrigins` (default absent: any Origin): the lower-case origins an upgrade may come from (403), or `*`. */
  readonly websocketAllowedOrigins?: readonly string[];
}

/** One stage of `RequestReadTimeout`: `timeoutMs` 0 turns it off, `maxTimeoutMs` 0 is no cap, `minRate` 0 no extension. */
export interface ReadStage {
  readonly timeoutMs: Millis;
  readonly maxTimeoutMs: Millis;
  /** Bytes per second: each MinRate bytes received add 1 s, up to the maximum. */
  readonly minRate: number;
}

export interface RequestReadTimeouts {
  /** The TLS handshake of a front connection. */
  readonly handshake: ReadStage;
  /** A request head (the first HEADERS of an HTTP/2 connection). */
  readonly header: ReadStage;
  /** A request body. */
  readonly body: ReadStage;
}

export const DEFAULT_LIMIT_REQUEST_LINE = 8190;
export const DEFAULT_LIMIT_REQUEST_FIELD_SIZE = 8190;
export const DEFAULT_LIMIT_REQUEST_FIELDS = 100;
export const DEFAULT_LIMIT_REQUEST_BODY = 1024 * 1024 * 1024;

/** A protocol the front may speak (`Protocols`): `h2` is HTTP/2 over TLS (ALPN), `h2c` HTTP/2 with prior knowledge on plain ports. */
export type FrontProtocol = 'h2' | 'h2c' | 'http/1.1';

export const DEFAULT_PROTOCOLS: readonly FrontProtocol[] = ['http/1.1'];

export interface ListenAddress {
  /** Undefined means every address. */
  readonly host?: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  readonly source: SourceRef;
}

/** `<VirtualHost addr:port …>` address; host `*` matches any local address, port `*` any port. */
export interface VirtualHostAddress {
  readonly host: string;
  readonly port: number | '*';
}

export interface VirtualHost {
  /** Empty for the main server (the top level of the config). */
  readonly addresses: readonly VirtualHostAddress[];
  readonly serverName?: string;
  /** Lower-cased names; may contain `*` and `?` wildcards as Apache's ServerAlias. */
  readonly serverAliases: readonly string[];
  /** All routes in the order they are tried: <Location> routes first (config order), then server-level ones (the main server's inherited ones first, as Apache's merge does). */
  readonly routes: readonly Route[];
  readonly settings: ServerSettings;
  /** Present when `SSLEngine on` applies to this server (its own or the main server's). */
  readonly tls?: FrontTls;
  /** RewriteRule [P] rules tried before the routes (RewriteEngine On); absent when there are none. */
  readonly rewrite?: RewriteConfig;
  /** RewriteRule lines of `<Location>`/`<LocationMatch>` sections, tried after the routes; absent when there are none. */
  readonly sectionRewrites?: readonly SectionRewrite[];
  /** `Header` rules for responses: the main server's, then this server's own; absent when there are none. */
  readonly headerRules?: readonly HeaderRule[];
  /** Access control (Require, Auth*, Order/Allow/Deny, SetEnvIf…); absent when nothing in reach of this server has any. */
  readonly access?: AccessConfig;
  /** `RequestHeader` rules for the backend request: the main server's, then this server's own; absent when there are none. */
  readonly requestHeaderRules?: readonly HeaderRule[];
  /**
   * The Header/RequestHeader rules of <Location>/<LocationMatch> sections: the main server's, then
   * this server's, in config order; each matching one applies after the server's rules, as Apache
   * merges sections. Absent when there are none.
   */
  readonly headerSections?: readonly HeaderSection[];
  /** ProxyPassReverse* rules and how the front's own URL is built; absent when the server has none. */
  readonly reverse?: ReverseMap;
  /** `ProxyPreserveHost` in sections (the main server's first), overriding `settings.preserveHost` for requests in them; absent when none. */
  readonly sectionPreserveHost?: readonly SectionPreserveHost[];
  /** `ProxyWebsocketAllowedOrigins` in sections (the main server's first), overriding the server's list; absent when none. */
  readonly sectionOrigins?: readonly SectionOrigins[];
  /**
   * SetHandler lines for wsgate's own handlers, in the order Apache merges them (server level, the
   * main server's first, then the sections in config order); absent when there are none.
   */
  readonly handlers?: readonly HandlerSection[];
  /** DocumentRoot/Alias/AliasMatch serving files for paths no ProxyPass takes; absent when the server serves none. */
  readonly files?: FileServing;
  /** mod_alias redirects; absent when the server has none. */
  readonly redirects?: Redirects;
  /** Where its requests are logged (CustomLog/TransferLog: its own, else the main server's); absent when nowhere. */
  readonly logs?: readonly AccessLogSpec[];
  /** How the server names itself in URLs it writes (absent: from Host, else the machine's name). */
  readonly frontName?: FrontName;
  readonly source: SourceRef;
}

/** Where a rule written in a `<Location>`/`<LocationMatch>` applies (Apache's location walk). */
export type SectionMatch = RouteMatch;

/** One ProxyPassReverse, ProxyPassReverseCookiePath or ProxyPassReverseCookieDomain line. */
export interface ReverseAlias {
  /** The section it was written in; undefined at server level (applies to every request of the server). */
  readonly section?: SectionMatch;
  /** What the client is shown (Apache's "fake": the front path, the public cookie path or domain). */
  readonly front: string;
  /** What the backend writes (Apache's "real": its URL, its cookie path or domain). */
  readonly backend: string;
  /** ProxyPassReverse to a defined `balancer://name/path`: each member's URL, as Apache names its workers. */
  readonly members?: readonly string[];
  /** With `members`: the balancer URL's path when it is more than `/`. */
  readonly balancerPath?: string;
}

/** The reverse mapping of a server's answers (`ProxyPassReverse*`), rules in the order Apache merges them. */
export interface ReverseMap {
  readonly location: readonly ReverseAlias[];
  readonly cookiePath: readonly ReverseAlias[];
  readonly cookieDomain: readonly ReverseAlias[];
}

/** A handler wsgate runs itself (config/handlers.ts, src/handlers/). */
export type HandlerName = 'health' | 'metrics' | 'status' | 'server-status' | 'balancer-manager';

/** A `SetHandler` line for one of wsgate's handlers (or `none`): at server level, or in a section. */
export interface HandlerSection {
  /** The section it was written in; undefined at server level. */
  readonly section?: SectionMatch;
  /** undefined: `SetHandler none` (what an earlier line set no longer applies here). */
  readonly handler: HandlerName | undefined;
  readonly source: SourceRef;
}

/** A `ProxyPreserveHost` written in a `<Location>`/`<LocationMatch>`. */
/** A `ProxyWebsocketAllowedOrigins` line inside a <Location>/<LocationMatch>. */
export interface SectionOrigins {
  readonly section: SectionMatch;
  readonly origins: readonly string[];
}

export interface SectionPreserveHost {
  readonly section: SectionMatch;
  readonly preserveHost: boolean;
}

/** How the server names itself in a URL it writes (a mapped or redirect Location). */
export interface FrontName {
  /** `UseCanonicalName On`: the ServerName instead of the request's Host. */
  readonly canonicalName: boolean;
  /** ServerName's host and port (the server's, else the main server's): used when Host says nothing. */
  readonly serverName?: string;
  readonly serverPort?: number;
}

/** A `Redirect`, `RedirectMatch`, `RedirectPermanent` or `RedirectTemp` line (mod_alias). */
export interface RedirectRule {
  /** `prefix`: URL-path matched as mod_alias does; `regex`: RedirectMatch; `all`: the one-URL form in a section. */
  readonly match:
    | { readonly kind: 'prefix'; readonly prefix: string }
    | { readonly kind: 'regex'; readonly regex: RegExp }
    | { readonly kind: 'all' };
  /** 3xx with `url`, or another status (410 `gone`, …) without one. */
  readonly status: number;
  readonly url?: string;
  readonly source: SourceRef;
}

/** The redirect lines of a `<Location>`/`<LocationMatch>` (mod_alias's per-directory ones). */
export interface RedirectSection {
  readonly section: SectionMatch;
  /** The one-URL (or status-only) form: `Redirect [status] [URL]` in the section. */
  readonly whole?: RedirectRule;
  readonly rules: readonly RedirectRule[];
}

/** A server's mod_alias redirects. */
export interface Redirects {
  /** Server-level lines: the virtual host's, then the main server's (mod_alias's merge order). */
  readonly server: readonly RedirectRule[];
  /** Sections in config order (the main server's first). */
  readonly sections: readonly RedirectSection[];
}

/** The Header/RequestHeader rules of one <Location> or <LocationMatch>. */
export interface HeaderSection {
  readonly match: RouteMatch;
  readonly request: readonly HeaderRule[];
  readonly response: readonly HeaderRule[];
}

export interface Config {
  /** The files read, in order (the main file first, then includes). */
  readonly files: readonly string[];
  readonly listen: readonly ListenAddress[];
  /** The top-level server: serves requests on a Listen that no <VirtualHost> covers. */
  readonly mainServer: VirtualHost;
  readonly virtualHosts: readonly VirtualHost[];
  /** Every distinct backend origin, for counters and pools. */
  readonly origins: readonly Origin[];
  /** Notices produced while loading (ignored directives, testing-only options), each `file:line: text`. */
  readonly notices: readonly string[];
  /** PidFile and GracefulShutdownTimeout. */
  readonly process: ProcessSettings;
  /** `ErrorLog` of the main server; absent: stderr. */
  readonly errorLog?: ErrorLogTarget;
  /** `LogLevel`, mapped onto wsgate's levels (config/logs.ts); absent when not set. */
  readonly logLevel?: Level;
}

/** Process-wide settings (server config only): config/process.ts. */
export interface ProcessSettings {
  /**
   * `GracefulShutdownTimeout` (wsgate's default 30 s; Apache's 0 = for ever is not kept): how long a
   * stop lets tunnels and requests finish, and how long a reload lets the tunnels of removed routes
   * run. 0 = no grace: they are closed at once.
   */
  readonly gracefulShutdownTimeoutMs: Millis;
  /** `PidFile`, absolute. Undefined (wsgate's default): no pid file is written, and `wsgate -k` cannot find the process. */
  readonly pidFile?: string;
}

/** Where the error log goes. */
export type ErrorLogTarget = { readonly kind: 'stderr' } | { readonly kind: 'file'; readonly file: string; readonly source: SourceRef };

/** `CustomLog … env=[!]VAR`: the line is written only when the variable is set (or, with `!`, not set). */
export interface EnvCondition {
  readonly name: string;
  readonly negate: boolean;
}

/** One CustomLog or TransferLog: Apache lines with a compiled format, or the JSON tunnel records (`CustomLog FILE tunnel`). */
export type AccessLogSpec =
  | {
      readonly kind: 'access';
      /** Absolute path. */
      readonly file: string;
      readonly format: CompiledFormat;
      readonly condition?: EnvCondition;
      readonly source: SourceRef;
    }
  | { readonly kind: 'tunnel'; readonly file: string; readonly condition?: EnvCondition; readonly source: SourceRef };

export type LbMethod = 'byrequests' | 'bytraffic' | 'bybusyness';

/** A BalancerMember's `status=` flags (Apache's D, S, H, N, I, E). */
export interface MemberStatus {
  /** `D`: takes no new requests. */
  readonly disabled: boolean;
  /** `S`: stopped by the administrator; takes nothing. */
  readonly stopped: boolean;
  /** `H`: hot standby, used only when no other member of its lbset is usable. */
  readonly hotStandby: boolean;
  /** `N`: draining; takes no new requests (stickiness to it is a later issue step). */
  readonly drain: boolean;
  /** `I`: a failure never puts it in error state. */
  readonly ignoreErrors: boolean;
  /** `E`: starts in error state (for `retry=` after the config is loaded). */
  readonly inError: boolean;
  /** `R`: hot spare, stands in for an unusable normal member of its lbset (Apache 2.4.41+). */
  readonly spare: boolean;
}

/** One `BalancerMember url [key=value…]`. */
export interface BalancerMember {
  /** The member URL with its worker parameters (timeouts, `upgrade=`, `retry=`, `max=`, …). */
  readonly backend: Backend;
  /** `loadfactor=` (1–100, decimals allowed), default 1. */
  readonly loadFactor: number;
  /** `lbset=` (0–99), default 0: lower sets are used first. */
  readonly lbset: number;
  readonly route?: string;
  readonly redirect?: string;
  readonly status: MemberStatus;
  /** `hcmethod=` and its companions (mod_proxy_hcheck); undefined when the member is not checked. */
  readonly health?: HealthCheck;
  /** Run-time state key (`balancer://name|member url`): survives a reload. */
  readonly key: string;
}

export type HealthMethod = 'TCP' | 'GET' | 'HEAD' | 'OPTIONS' | 'GET11' | 'HEAD11' | 'OPTIONS11' | 'WS';

/** A member's health check (`hcmethod=`, `hcinterval=`, `hcpasses=`, `hcfails=`, `hcuri=`). */
export interface HealthCheck {
  readonly method: HealthMethod;
  /** `hcinterval=` (default 30 s). */
  readonly intervalMs: Millis;
  /** `hcpasses=`: consecutive passes that clear the check-failed state (default 1). */
  readonly passes: number;
  /** `hcfails=`: consecutive failures that set it (default 1). */
  readonly fails: number;
  /** `hcuri=`, appended to the member's path (default empty). */
  readonly uri: string;
}

/** Stickiness settings (`stickysession=COOKIE[|URLPARAM]`); stored, applied by a later step. */
export interface StickySession {
  readonly cookie: string;
  readonly urlParam?: string;
}

/** A `<Proxy balancer://name>` with its members and balancer parameters. */
export interface Balancer {
  /** Lower-cased name (the host part of `balancer://name`). */
  readonly name: string;
  /** `balancer://name`, for logs. */
  readonly url: string;
  readonly members: readonly BalancerMember[];
  readonly method: LbMethod;
  /** `maxattempts=`: failover attempts after the first; default members − 1. */
  readonly maxAttempts: number;
  /** `forcerecovery=` (default On): when every member is in error, clear the errors and try anyway. */
  readonly forceRecovery: boolean;
  readonly noFailover: boolean;
  readonly stickySession?: StickySession;
  /** `stickysessionsep=`: the separator before the route (default `.`); undefined for Off. */
  readonly stickySessionSep?: string;
  /** `failonstatus=`: a final status from a member that puts it in error state (the response is still relayed). */
  readonly failOnStatus: readonly number[];
  /** `failontimeout=On`: no answer within the member's timeout puts it in error state. */
  readonly failOnTimeout: boolean;
  /** `timeout=`: how long a request waits for a usable member when none is (all busy at max=, or in error) before its 503; 0 = no wait. */
  readonly timeoutMs: Millis;
  readonly source: SourceRef;
}

/** A route's `balancer://name/path` target. */
export interface BalancerTarget {
  readonly balancer: Balancer;
  /** The URL exactly as configured, e.g. `balancer://pool/`. */
  readonly url: string;
  /** The URL's path (`/` when none; see `pathWasEmpty`). The member's path is put in front of it. */
  readonly path: string;
  readonly pathWasEmpty: boolean;
  readonly nocanon: boolean;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRY_MS = 60_000;

// ---- Access control (mod_authz_core, mod_authz_host, mod_access_compat, mod_auth_basic,
// mod_authn_file, mod_authz_user, mod_authz_groupfile, mod_setenvif). See src/access/.

/** An IP network: `bytes` already masked, 4 or 16 bytes (plain arrays: the model is deep-frozen). */
export interface IpNet {
  readonly family: 4 | 6;
  readonly bytes: readonly number[];
  readonly mask: readonly number[];
}

/** One `Require [not] provider args…` test. */
export type AuthzTest =
  | { readonly kind: 'all'; readonly granted: boolean }
  | { readonly kind: 'ip'; readonly nets: readonly IpNet[] }
  | { readonly kind: 'local' }
  /** Upper-case method names, as sent. */
  | { readonly kind: 'method'; readonly methods: readonly string[] }
  | { readonly kind: 'env'; readonly names: readonly string[] }
  | { readonly kind: 'user'; readonly users: readonly string[] }
  | { readonly kind: 'valid-user' }
  | { readonly kind: 'group'; readonly groups: readonly string[] };

/**
 * A node of mod_authz_core's tree: a `Require` line (`test`) or a container (`<RequireAll>` is
 * `and`, `<RequireAny>` and the implicit container of a section's Require lines are `or`,
 * `<RequireNone>` is a negated `or`).
 */
export interface AuthzNode {
  readonly test?: AuthzTest;
  readonly op?: 'and' | 'or';
  readonly children?: readonly AuthzNode[];
  /** `Require not …` and `<RequireNone>`. */
  readonly negate: boolean;
  readonly source: SourceRef;
}

/** `Allow from` / `Deny from` entries. */
export type HostMatch =
  | { readonly kind: 'all' }
  | { readonly kind: 'ip'; readonly net: IpNet }
  | { readonly kind: 'env'; readonly name: string; readonly negate: boolean };

/** mod_access_compat's settings of one section: a section that has any replaces its parents' whole set. */
export interface AccessCompat {
  /** `Order` (default `deny,allow`). */
  readonly order: 'deny,allow' | 'allow,deny' | 'mutual-failure';
  readonly allow: readonly HostMatch[];
  readonly deny: readonly HostMatch[];
  /** `Satisfy` (default all). */
  readonly satisfyAny: boolean;
}

/** A password file (`AuthUserFile`) read at load time: user → stored hash and its format. */
export interface UserFile {
  readonly path: string;
  readonly users: ReadonlyMap<string, { readonly hash: string; readonly format: import('../access/passwords').PasswordFormat }>;
}

/** A group file (`AuthGroupFile`): user → the groups that list it. */
export interface GroupFile {
  readonly path: string;
  readonly groupsOf: ReadonlyMap<string, ReadonlySet<string>>;
}

/** `SetEnvIf`, `SetEnvIfNoCase`, `BrowserMatch`, `BrowserMatchNoCase`. */
export interface EnvRule {
  /** What is matched: a special attribute, one header (then an env variable of that name), or header names matching a regex. */
  readonly attribute:
    | { readonly kind: 'remote-addr' | 'server-addr' | 'request-method' | 'request-protocol' | 'request-uri' }
    | { readonly kind: 'header'; readonly name: string }
    | { readonly kind: 'header-regex'; readonly regex: RegExp };
  readonly regex: RegExp;
  /** In order: set (value may hold $0…$9) or unset (`!var`). */
  readonly actions: readonly { readonly name: string; readonly value?: string }[];
  readonly source: SourceRef;
}

/** What one section (server, `<VirtualHost>`, `<Proxy>`, `<Location>`) says about access; unset fields inherit. */
export interface AccessLayer {
  /** Which requests the layer applies to (the server layer: all). */
  readonly scope:
    | { readonly kind: 'server' }
    | { readonly kind: 'location'; readonly match: RouteMatch }
    /** `<Directory>`/`<DirectoryMatch>`: applies by the file a request maps to (static files only). */
    | { readonly kind: 'directory'; readonly match: DirectoryMatch }
    | { readonly kind: 'proxy'; readonly describe: string; readonly matches: (backendUrl: string) => boolean };
  /** The section's Require lines (an implicit `or` container). */
  readonly require?: AuthzNode;
  /** `AuthMerging` (default off: `require` replaces the parent's). */
  readonly merging?: 'off' | 'and' | 'or';
  readonly forbiddenOnFailure?: boolean;
  readonly compat?: AccessCompat;
  /** `AuthType Basic` (true) or `AuthType None` (false). */
  readonly basic?: boolean;
  readonly realm?: string;
  readonly userFile?: UserFile;
  readonly groupFile?: GroupFile;
  /** Appended to the parent's, in order. */
  readonly envRules: readonly EnvRule[];
  /** `SetEnv` (value) and `UnsetEnv` (no value), appended to the parent's; applied after the access decision, as mod_env's fixups. */
  readonly setEnv: readonly { readonly name: string; readonly value?: string }[];
  readonly source: SourceRef;
}

/** A server's access layers in the order Apache merges them: the main server, this server, its <Proxy>s, its <Location>s. */
export interface AccessConfig {
  readonly layers: readonly AccessLayer[];
}

/** A `<Directory>` path (absolute, no trailing slash but for `/`) or a `<DirectoryMatch>` regex. */
export type DirectoryMatch =
  | { readonly kind: 'prefix'; readonly dir: string }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly pattern: string };

/** What mod_dir and Options say for a directory; unset fields inherit. */
export interface DirSettings {
  /** `DirectoryIndex` names (empty: `DirectoryIndex disabled`). */
  readonly index?: readonly string[];
  /** `DirectorySlash`. */
  readonly slash?: boolean;
  /** `Options FollowSymLinks` (symbolic links are followed only while they stay inside the root). */
  readonly followSymlinks?: boolean;
}

export interface DirectorySection {
  readonly match: DirectoryMatch;
  readonly settings: DirSettings;
  readonly source: SourceRef;
}

/** `Alias URL-path file-path` (prefix) or `AliasMatch regex file-path` (`$N` substituted). */
export type FileAlias =
  | { readonly kind: 'prefix'; readonly prefix: string; readonly dest: string; readonly source: SourceRef }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly dest: string; readonly source: SourceRef };

/** Static files of one server (config/static-files.ts; served by handlers/static.ts). */
export interface FileServing {
  /** Absolute, without a trailing slash (`/` stays `/`). */
  readonly documentRoot?: string;
  /** The server's own aliases first, then the main server's (Apache's merge), each tried in order. */
  readonly aliases: readonly FileAlias[];
  /** Server-level settings with the defaults filled in. */
  readonly base: Required<DirSettings>;
  /** In Apache's merge order: paths by depth (shorter first), then regex sections in config order. */
  readonly directories: readonly DirectorySection[];
}

// Intermediate, mutable records filled in while walking the parsed tree (directives.ts), and
// turned into the immutable model by build.ts once the whole file has been seen — because, as in
// Apache, a main-server setting written after a <VirtualHost> still applies to it.

import type { DirectiveNode, SectionNode } from './parser';
import type { Resolution } from './resolve';
import type { Notices } from './errors';
import type {
  FrontProtocol,
  HeaderSection,
  HealthCheck,
  LbMethod,
  MemberStatus,
  RequestReadTimeouts,
  Millis,
  RouteMatch,
  SectionOrigins,
  SectionPreserveHost,
  SourceRef,
  StickySession,
  UpgradePolicy,
  VirtualHostAddress,
  HandlerSection,
} from './model';
import type { HeaderRule } from './headers';
import { newServerAccessDraft, type AuthzContainerDraft, type ServerAccessDraft } from './access';
import { newRewriteDraft, type RewriteDraft, type SectionRewriteDraft } from './rewrite';
import type { RedirectDraft } from './redirect';
import type { ReverseDraft } from './reverse';
import type { ListenDraft, TlsDraft } from './tls';
import type { ProcessDraft } from './process';
import type { BackendUrl } from './values';
import { newLogsDraft, type ErrorLogDraft, type LogsDraft } from './logs';
import { type DirectoryCtx, type FilesDraft, newFilesDraft } from './static-files';

/** Worker parameters as written on one line; unset fields fall back (see build.ts). */
export interface WorkerParams {
  timeoutMs?: Millis;
  connectTimeoutMs?: Millis;
  upgrade?: UpgradePolicy;
  keepalive?: boolean;
  retryMs?: Millis;
  max?: number;
}

export interface TargetDraft {
  readonly raw: string;
  readonly url: BackendUrl;
  readonly params: WorkerParams;
  readonly nocanon: boolean;
}

export interface RouteDraft {
  readonly match: RouteMatch;
  readonly exclude: boolean;
  readonly target?: TargetDraft;
  readonly balancer?: BalancerRefDraft;
  readonly regex: boolean;
  readonly fromLocation: boolean;
  /** `maxtunnels=`: a key of the ProxyPass line itself (not of the worker, so ProxySet does not take it). */
  readonly maxTunnels?: number;
  /** `wspinginterval=`: the line's own ProxyWebsocketPingInterval (0: off for this route). */
  readonly pingIntervalMs?: Millis;
  readonly source: SourceRef;
}

/** A `ProxySet` (server level, or inside `<Proxy>`/`<ProxyMatch>`): params for matching backends. */
export interface ProxySetDraft {
  readonly describe: string;
  readonly matches: (backendUrl: string) => boolean;
  readonly params: WorkerParams;
  readonly source: SourceRef;
  used: boolean;
}

/** Balancer parameters as written (ProxySet in/for a balancer, or a balancer ProxyPass line). */
export interface BalancerParams {
  method?: LbMethod;
  maxAttempts?: number;
  forceRecovery?: boolean;
  noFailover?: boolean;
  stickySession?: StickySession;
  stickySessionSep?: string | null;
  failOnStatus?: number[];
  failOnTimeout?: boolean;
  timeoutMs?: Millis;
}

/** Member-only parameters of a BalancerMember line. */
export interface MemberParams {
  loadFactor?: number;
  lbset?: number;
  route?: string;
  redirect?: string;
  status?: Partial<Record<keyof MemberStatus, boolean>>;
  health?: { -readonly [K in keyof HealthCheck]?: HealthCheck[K] };
}

export interface MemberDraft {
  readonly target: TargetDraft;
  readonly member: MemberParams;
  readonly source: SourceRef;
}

export interface BalancerDraft {
  readonly name: string;
  readonly source: SourceRef;
  readonly members: MemberDraft[];
  readonly params: BalancerParams;
}

/** A route's `balancer://name/path` as written. */
export interface BalancerRefDraft {
  readonly raw: string;
  readonly name: string;
  readonly path: string;
  readonly pathWasEmpty: boolean;
  readonly params: BalancerParams;
  readonly nocanon: boolean;
}

export interface SettingsDraft {
  timeoutMs?: Millis;
  proxyTimeoutMs?: Millis;
  preserveHost?: boolean;
  addHeaders?: boolean;
  websocketIdleTimeoutMs?: Millis;
  websocketStrict?: boolean;
  websocketPingIntervalMs?: Millis;
  websocketDrainRate?: number;
  websocketFallbackToProxyHttp?: boolean;
  websocketAsync?: boolean;
  websocketAsyncDelayMs?: Millis;
  passInherit?: boolean;
  protocols?: FrontProtocol[];
  protocolsHonorOrder?: boolean;
  h2WebSockets?: boolean;
  h2MaxSessionStreams?: number;
  traceEnable?: 'on' | 'off' | 'extended';
  via?: 'off' | 'on' | 'full' | 'block';
  limitRequestLine?: number;
  limitRequestFieldSize?: number;
  limitRequestFields?: number;
  limitRequestBody?: number;
  requestReadTimeouts?: RequestReadTimeouts;
  websocketMaxTunnels?: number;
  websocketMaxTunnelsPerClient?: number;
  websocketRate?: number;
  websocketAllowedOrigins?: readonly string[];
}

export interface ServerDraft {
  readonly isMain: boolean;
  readonly addresses: readonly VirtualHostAddress[];
  readonly source: SourceRef;
  serverName?: string;
  readonly serverAliases: string[];
  readonly settings: SettingsDraft;
  readonly locationRoutes: RouteDraft[];
  readonly serverRoutes: RouteDraft[];
  readonly proxySets: ProxySetDraft[];
  /** SSL* and SSLProxy* directives (tls.ts). */
  readonly tls: TlsDraft;
  /** `<Proxy balancer://name>` definitions of this server, by lower-cased name. */
  readonly balancers: Map<string, BalancerDraft>;
  /** RewriteEngine/RewriteCond/RewriteRule (rewrite.ts). */
  readonly rewrite: RewriteDraft;
  /** The same, written in `<Location>`/`<LocationMatch>` sections, in config order. */
  readonly sectionRewrites: SectionRewriteDraft[];
  /** `Header` lines (headers.ts), in config order. */
  readonly headerRules: HeaderRule[];
  /** Access control, SetEnvIf and SetEnv of this server and its sections (access.ts). */
  readonly access: ServerAccessDraft;
  /** `RequestHeader` lines (headers.ts), in config order. */
  readonly requestHeaderRules: HeaderRule[];
  /** The Header/RequestHeader lines of this server's <Location>/<LocationMatch> sections, in config order. */
  readonly headerSections: HeaderSection[];
  /** DocumentRoot and SetHandler lines: accepted only where every path is proxied (build.ts). */
  readonly localContent: LocalContentDraft[];
  /** DocumentRoot, Alias*, DirectoryIndex, DirectorySlash, Options, <Directory> (static-files.ts). */
  readonly files: FilesDraft;
  /** ProxyPassReverse* lines (reverse.ts), in config order. */
  readonly reverse: ReverseDraft[];
  /** Redirect* lines (redirect.ts), in config order. */
  readonly redirects: RedirectDraft[];
  /** `ProxyPreserveHost` lines in sections, in config order. */
  readonly sectionPreserveHost: SectionPreserveHost[];
  /** `ProxyWebsocketAllowedOrigins` lines in sections, in config order. */
  readonly sectionOrigins: SectionOrigins[];
  readonly handlers: HandlerSection[];
  /** LogFormat, CustomLog and TransferLog lines (logs.ts). */
  readonly logs: LogsDraft;
  /** The port of `ServerName host:port`. */
  serverPort?: number;
  /** `UseCanonicalName`. */
  canonicalName?: boolean;
}

/** A directive that would make Apache serve something itself (a file, a handler's page). */
export interface LocalContentDraft {
  readonly name: string;
  /** What wsgate does not do, for the error. */
  readonly what: string;
  readonly source: SourceRef;
  /** The <Location> it sits in, if any. */
  readonly location?: RouteMatch;
}

export interface LocationDraft {
  readonly match: RouteMatch;
  readonly source: SourceRef;
  route?: RouteDraft;
  readonly headerRules: HeaderRule[];
  readonly requestHeaderRules: HeaderRule[];
}

export interface BuildState {
  readonly notices: Notices;
  readonly listens: ListenDraft[];
  readonly main: ServerDraft;
  readonly vhosts: ServerDraft[];
  /** Set by ServerRoot: relative certificate paths resolve against it. */
  serverRoot?: string;
  /** PidFile and GracefulShutdownTimeout (process.ts). */
  readonly process: ProcessDraft;
  /** Host names written as <VirtualHost> addresses, looked up before the walk (resolve.ts). */
  readonly resolved: ReadonlyMap<string, Resolution>;
  /** <Files>/<FilesMatch> sections met by the walk (skipped; checked once it is known whether files are served). */
  readonly skippedFiles: SectionNode[];
  /** Lines that shape the files Apache serves (AddType, FileETag…): errors once this config serves files (static-files.ts). */
  readonly fileDetails: DirectiveNode[];
  /** ErrorLog and LogLevel of the main server (logs.ts). */
  readonly errorLog: ErrorLogDraft;
}

/** Where a directive sits: Apache's "server config", "virtual host", "directory" (split by kind). */
export type ContextKind = 'server' | 'vhost' | 'location' | 'locationmatch' | 'proxy' | 'directory';

export interface Ctx {
  readonly kind: ContextKind;
  readonly server: ServerDraft;
  readonly state: BuildState;
  readonly location?: LocationDraft;
  /** Inside `<Proxy>`/`<ProxyMatch>`: which backend URLs its ProxySet lines apply to. */
  readonly proxy?: {
    readonly describe: string;
    readonly matches: (backendUrl: string) => boolean;
    /** Set inside `<Proxy balancer://name>`. */
    readonly balancer?: BalancerDraft;
  };
  /** Inside `<Directory>`/`<DirectoryMatch>` (static-files.ts readDirectories). */
  readonly directory?: DirectoryCtx;
  /** Inside `<RequireAll>`/`<RequireAny>`/`<RequireNone>`: the container Require lines go to. */
  readonly authz?: AuthzContainerDraft;
}

export function newServerDraft(isMain: boolean, addresses: readonly VirtualHostAddress[], source: SourceRef): ServerDraft {
  return {
    isMain,
    addresses,
    source,
    serverAliases: [],
    settings: {},
    locationRoutes: [],
    serverRoutes: [],
    proxySets: [],
    tls: {},
    balancers: new Map(),
    rewrite: newRewriteDraft(),
    sectionRewrites: [],
    headerRules: [],
    access: newServerAccessDraft(),
    requestHeaderRules: [],
    headerSections: [],
    localContent: [],
    files: newFilesDraft(),
    reverse: [],
    redirects: [],
    sectionPreserveHost: [],
    sectionOrigins: [],
    handlers: [],
    logs: newLogsDraft(),
  };
}

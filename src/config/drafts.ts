// Intermediate, mutable records filled in while walking the parsed tree (directives.ts), and
// turned into the immutable model by build.ts once the whole file has been seen — because, as in
// Apache, a main-server setting written after a <VirtualHost> still applies to it.

import type { Notices } from './errors';
import type {
  FrontProtocol,
  HealthCheck,
  LbMethod,
  ListenAddress,
  MemberStatus,
  RequestReadTimeouts,
  Millis,
  RouteMatch,
  SourceRef,
  StickySession,
  UpgradePolicy,
  VirtualHostAddress,
} from './model';
import type { HeaderRule } from './headers';
import { newRewriteDraft, type RewriteDraft } from './rewrite';
import type { TlsDraft } from './tls';
import type { BackendUrl } from './values';

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
  websocketFallbackToProxyHttp?: boolean;
  websocketAsync?: boolean;
  websocketAsyncDelayMs?: Millis;
  passInherit?: boolean;
  protocols?: FrontProtocol[];
  protocolsHonorOrder?: boolean;
  h2WebSockets?: boolean;
  requestReadTimeouts?: RequestReadTimeouts;
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
  /** `Header` lines (headers.ts), in config order. */
  readonly headerRules: HeaderRule[];
}

export interface LocationDraft {
  readonly match: RouteMatch;
  readonly source: SourceRef;
  route?: RouteDraft;
}

export interface BuildState {
  readonly notices: Notices;
  readonly listens: ListenAddress[];
  readonly main: ServerDraft;
  readonly vhosts: ServerDraft[];
  /** Set by ServerRoot: relative certificate paths resolve against it. */
  serverRoot?: string;
}

/** Where a directive sits: Apache's "server config", "virtual host", "directory" (split by kind). */
export type ContextKind = 'server' | 'vhost' | 'location' | 'locationmatch' | 'proxy';

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
    headerRules: [],
  };
}

// mod_proxy_balancer configuration: `<Proxy balancer://name>`, `BalancerMember`, balancer
// parameters (ProxySet, or a balancer ProxyPass line) and member parameters
// (research/apache-httpd.md §1c, §1d, §5).

import type { BalancerDraft, BalancerParams, BalancerRefDraft, Ctx, MemberDraft, MemberParams, RouteDraft, ServerDraft } from './drafts';
import { ConfigError, type Notices } from './errors';
import type { Backend, Balancer, BalancerMember, HealthMethod, LbMethod, MemberStatus, Route, SourceRef } from './model';
import { parseCount, parseDuration, parseOnOff } from './values';

export interface BalancerUrl {
  /** Lower-cased. */
  readonly name: string;
  readonly path: string;
  readonly pathWasEmpty: boolean;
}

/** `balancer://name[/path]` → its parts. */
export function parseBalancerUrl(raw: string, where: SourceRef): BalancerUrl {
  const m = /^balancer:\/\/([A-Za-z0-9._~-]+)(\/[^?#]*)?$/i.exec(raw);
  if (!m) throw ConfigError.at(where, `bad balancer URL "${raw}": expected balancer://name[/path]`);
  const path = m[2];
  return { name: (m[1] as string).toLowerCase(), path: path ?? '/', pathWasEmpty: path === undefined };
}

/** The server's balancer `name`, created empty if it is not defined yet (as Apache does). */
export function ensureBalancer(server: ServerDraft, name: string, where: SourceRef): BalancerDraft {
  let b = server.balancers.get(name);
  if (b === undefined) {
    b = { name, source: where, members: [], params: {} };
    server.balancers.set(name, b);
  }
  return b;
}

/** Bound of the balancer `timeout=` wait: a request parked longer than this is better answered 503. */
const MAX_BALANCER_WAIT_MS = 300_000;

const METHODS: readonly LbMethod[] = ['byrequests', 'bytraffic', 'bybusyness'];

/** Member keys, to say where they belong when written on a balancer. */
const MEMBER_KEYS = new Set(['loadfactor', 'lbset', 'route', 'redirect', 'status']);

/** Applies one balancer `key=value` (ProxySet on a balancer, or a `ProxyPass … balancer://…` line). */
export function applyBalancerParam(params: BalancerParams, word: string, directive: string, where: SourceRef, notices: Notices): void {
  const eq = word.indexOf('=');
  if (eq <= 0) throw ConfigError.at(where, `${directive}: bad parameter "${word}": expected key=value`);
  const key = word.slice(0, eq).toLowerCase();
  const value = word.slice(eq + 1);
  switch (key) {
    case 'lbmethod': {
      const v = value.toLowerCase();
      if (v === 'heartbeat')
        throw ConfigError.at(
          where,
          `${directive} lbmethod=heartbeat is not supported (it needs mod_heartmonitor); use byrequests, bytraffic or bybusyness`,
        );
      if (!(METHODS as readonly string[]).includes(v)) {
        throw ConfigError.at(where, `${directive}: unknown lbmethod "${value}" (byrequests, bytraffic or bybusyness)`);
      }
      params.method = v as LbMethod;
      return;
    }
    case 'maxattempts':
      params.maxAttempts = parseCount(value, `${directive} maxattempts=`, where);
      return;
    case 'forcerecovery':
      params.forceRecovery = parseOnOff(value, `${directive} forcerecovery=`, where);
      return;
    case 'nofailover':
      params.noFailover = parseOnOff(value, `${directive} nofailover=`, where);
      return;
    case 'stickysession': {
      const [cookie, urlParam, extra] = value.split('|');
      if (!cookie || extra !== undefined || urlParam === '') {
        throw ConfigError.at(where, `${directive} stickysession= takes COOKIE or COOKIE|URLPARAM, got "${value}"`);
      }
      params.stickySession = urlParam === undefined ? { cookie } : { cookie, urlParam };
      return;
    }
    case 'stickysessionsep':
      if (value.toLowerCase() === 'off') params.stickySessionSep = null;
      else if (value.length === 1) params.stickySessionSep = value;
      else throw ConfigError.at(where, `${directive} stickysessionsep= takes one character or Off, got "${value}"`);
      return;
    case 'failonstatus': {
      const codes = value.split(/[,\s]+/).filter((c) => c !== '');
      if (codes.length === 0 || codes.some((c) => !/^[1-5]\d\d$/.test(c))) {
        throw ConfigError.at(where, `${directive} failonstatus= takes HTTP status codes separated by commas, got "${value}"`);
      }
      params.failOnStatus = codes.map(Number);
      return;
    }
    case 'timeout':
      params.timeoutMs = parseDuration(value, `${directive} timeout=`, where, true);
      if (params.timeoutMs > MAX_BALANCER_WAIT_MS) {
        throw ConfigError.at(
          where,
          `${directive} timeout= is how long a request waits for a free member: at most ${MAX_BALANCER_WAIT_MS / 1000} s, got "${value}"`,
        );
      }
      return;
    case 'failontimeout':
      params.failOnTimeout = parseOnOff(value, `${directive} failontimeout=`, where);
      return;
    case 'scolonpathdelim':
      throw ConfigError.at(where, `${directive} ${key}= is not supported yet`);
    case 'growth':
    case 'nonce':
      notices.once(`balancer-manager:${key}`, where, `${directive} ${key}= is ignored: it only concerns Apache's balancer-manager`);
      return;
    case 'upgrade':
      throw ConfigError.at(
        where,
        `${directive}: upgrade= is not a balancer parameter (Apache rejects it too): put upgrade= on each BalancerMember`,
      );
    default:
      if (MEMBER_KEYS.has(key))
        throw ConfigError.at(where, `${directive}: ${key}= is a member parameter: put it on the BalancerMember line`);
      throw ConfigError.at(
        where,
        `${directive}: unknown balancer parameter "${key}" (worker parameters such as retry= or connectiontimeout= go on each BalancerMember)`,
      );
  }
}

const STATUS_FLAGS: Record<string, keyof MemberStatus> = {
  D: 'disabled',
  S: 'stopped',
  H: 'hotStandby',
  N: 'drain',
  I: 'ignoreErrors',
  E: 'inError',
  R: 'spare',
};

/**
 * Applies one member-only `key=value` of a BalancerMember line; returns false when the key is
 * not one (then it is a worker parameter).
 */
export function applyMemberParam(params: MemberParams, word: string, where: SourceRef): boolean {
  const eq = word.indexOf('=');
  if (eq <= 0) return false;
  const key = word.slice(0, eq).toLowerCase();
  const value = word.slice(eq + 1);
  switch (key) {
    case 'loadfactor': {
      const n = /^\d+(\.\d{1,2})?$/.test(value) ? Number(value) : NaN;
      if (!(n >= 1 && n <= 100))
        throw ConfigError.at(where, `BalancerMember loadfactor= must be a number from 1 to 100 (up to 2 decimals), got "${value}"`);
      params.loadFactor = n;
      return true;
    }
    case 'lbset': {
      const n = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!(n >= 0 && n <= 99)) throw ConfigError.at(where, `BalancerMember lbset= must be a whole number from 0 to 99, got "${value}"`);
      params.lbset = n;
      return true;
    }
    case 'route':
    case 'redirect':
      if (!/^[\x21-\x7e]{1,64}$/.test(value))
        throw ConfigError.at(where, `BalancerMember ${key}= must be 1 to 64 visible characters, got "${value}"`);
      params[key] = value;
      return true;
    case 'status': {
      const status = (params.status ??= {});
      let set = true;
      if (value === '') throw ConfigError.at(where, 'BalancerMember status= needs flags, e.g. status=+H');
      for (const c of value) {
        if (c === '+') set = true;
        else if (c === '-') set = false;
        else {
          const flag = STATUS_FLAGS[c.toUpperCase()];
          if (flag === undefined) {
            const why = c.toUpperCase() === 'C' ? 'C is set by health checks only' : 'known flags: D S H R N I E';
            throw ConfigError.at(where, `BalancerMember status=${value}: flag "${c}": ${why}`);
          }
          status[flag] = set;
        }
      }
      return true;
    }
    case 'hcmethod': {
      const m = value.toUpperCase();
      if (m === 'NONE') return true;
      if (!(HEALTH_METHODS as readonly string[]).includes(m)) {
        throw ConfigError.at(where, `BalancerMember hcmethod=${value}: unknown method (${HEALTH_METHODS.join(', ')})`);
      }
      (params.health ??= {}).method = m as HealthMethod;
      return true;
    }
    case 'hcinterval':
      (params.health ??= {}).intervalMs = parseDuration(value, 'BalancerMember hcinterval=', where, false);
      return true;
    case 'hcpasses':
    case 'hcfails': {
      const n = parseCount(value, `BalancerMember ${key}=`, where);
      if (n < 1) throw ConfigError.at(where, `BalancerMember ${key}= must be at least 1, got "${value}"`);
      (params.health ??= {})[key === 'hcpasses' ? 'passes' : 'fails'] = n;
      return true;
    }
    case 'hcuri':
      if (!/^[\x21-\x7e]*$/.test(value)) throw ConfigError.at(where, `BalancerMember hcuri= must be visible characters, got "${value}"`);
      (params.health ??= {}).uri = value;
      return true;
    case 'hcexpr':
    case 'hctemplate':
      throw ConfigError.at(where, `BalancerMember ${key}= is not supported (no ProxyHCExpr/ProxyHCTemplate): a check passes on 2xx/3xx`);
    default:
      return false;
  }
}

const HEALTH_METHODS: readonly HealthMethod[] = ['TCP', 'GET', 'HEAD', 'OPTIONS', 'GET11', 'HEAD11', 'OPTIONS11', 'WS'];

/** `<Proxy balancer://name>`: its ProxySet lines set balancer parameters, its BalancerMember lines add members. */
export function openBalancerSection(pattern: string, ctx: Ctx, where: SourceRef): BalancerDraft {
  const url = parseBalancerUrl(pattern, where);
  if (!url.pathWasEmpty && url.path !== '/') {
    throw ConfigError.at(where, `<Proxy ${pattern}>: a balancer section names the balancer only (balancer://${url.name})`);
  }
  return ensureBalancer(ctx.server, url.name, where);
}

/** The route for `ProxyPass … balancer://name/…`; `draft` is the balancer the server knows by that name. */
export function balancerRoute(
  r: RouteDraft,
  ref: BalancerRefDraft,
  draft: BalancerDraft | undefined,
  memberBackend: (m: MemberDraft) => Backend,
): Route {
  const directive = r.regex && !r.fromLocation ? 'ProxyPassMatch' : 'ProxyPass';
  if (draft === undefined) {
    throw ConfigError.at(
      r.source,
      `${directive}: no balancer "balancer://${ref.name}" is defined (define it with <Proxy "balancer://${ref.name}"> and BalancerMember lines)`,
    );
  }
  if (draft.members.length === 0) throw ConfigError.at(r.source, `${directive}: balancer://${ref.name} has no BalancerMember`);
  const balancer = assembleBalancer(draft, ref.params, memberBackend);
  return {
    match: r.match,
    exclude: false,
    balancer: { balancer, url: ref.raw, path: ref.path, pathWasEmpty: ref.pathWasEmpty, nocanon: ref.nocanon },
    ...(r.regex ? { regexTarget: ref.raw } : {}),
    fromLocation: r.fromLocation,
    ...(r.maxTunnels !== undefined ? { maxTunnels: r.maxTunnels } : {}),
    ...(r.pingIntervalMs !== undefined ? { pingIntervalMs: r.pingIntervalMs } : {}),
    source: r.source,
  };
}

/** A balancer as one route sees it: the definition's parameters, then the ProxyPass line's. */
function assembleBalancer(draft: BalancerDraft, lineParams: BalancerParams, memberBackend: (m: MemberDraft) => Backend): Balancer {
  const p: BalancerParams = { ...draft.params, ...lineParams };
  const url = `balancer://${draft.name}`;
  const members = draft.members.map((m): BalancerMember => {
    const s = m.member.status ?? {};
    return {
      backend: memberBackend(m),
      loadFactor: m.member.loadFactor ?? 1,
      lbset: m.member.lbset ?? 0,
      ...(m.member.route !== undefined ? { route: m.member.route } : {}),
      ...(m.member.redirect !== undefined ? { redirect: m.member.redirect } : {}),
      status: {
        disabled: s.disabled ?? false,
        stopped: s.stopped ?? false,
        hotStandby: s.hotStandby ?? false,
        drain: s.drain ?? false,
        ignoreErrors: s.ignoreErrors ?? false,
        inError: s.inError ?? false,
        spare: s.spare ?? false,
      },
      ...(m.member.health?.method !== undefined
        ? {
            health: {
              method: m.member.health.method,
              intervalMs: m.member.health.intervalMs ?? 30_000,
              passes: m.member.health.passes ?? 1,
              fails: m.member.health.fails ?? 1,
              uri: m.member.health.uri ?? '',
            },
          }
        : {}),
      key: `${url}|${m.target.raw}`,
    };
  });
  return {
    name: draft.name,
    url,
    members,
    method: p.method ?? 'byrequests',
    maxAttempts: p.maxAttempts ?? members.length - 1,
    forceRecovery: p.forceRecovery ?? true,
    noFailover: p.noFailover ?? false,
    ...(p.stickySession !== undefined ? { stickySession: p.stickySession } : {}),
    ...(p.stickySessionSep !== null ? { stickySessionSep: p.stickySessionSep ?? '.' } : {}),
    failOnStatus: p.failOnStatus ?? [],
    failOnTimeout: p.failOnTimeout ?? false,
    timeoutMs: p.timeoutMs ?? 0,
    source: draft.source,
  };
}

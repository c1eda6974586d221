// Health checks of balancer members (mod_proxy_hcheck; research/apache-httpd.md §5.6): every
// member with `hcmethod=` is probed each `hcinterval=`; after `hcfails=` failures in a row it is
// marked check-failed (Apache's C flag: MemberState.hcFailed) and elections skip it; after
// `hcpasses=` passes in a row the mark is cleared, and its error state with it (as Apache).
//
// Checks are kept by member key (as MemberState), so a reloaded config keeps their counters.
// One member never has two checks at once: the next one is scheduled when the last has ended.

import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import type { Balancer, BalancerMember, Config, HealthCheck } from '../../config/model';
import { findHeadEnd, HeadError, headerValue, MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from '../../http/head';
import { newWebSocketKey, webSocketAccept } from '../../http/websocket-key';
import type { Logger } from '../../observe/log';
import { connectOrigin } from '../origins';
import { configMembers, type BalancerRegistry } from './state';

interface Check {
  balancer: Balancer;
  member: BalancerMember;
  health: HealthCheck;
  timer?: NodeJS.Timeout;
  /** The socket of the check under way, if any. */
  socket?: net.Socket;
  passes: number;
  fails: number;
}

export class HealthChecker {
  private readonly checks = new Map<string, Check>();
  private stopped = false;

  constructor(
    private readonly registry: BalancerRegistry,
    private readonly log?: Logger,
  ) {}

  /** Starts checks for the members of `config` with `hcmethod=`, stops those no longer there. */
  sync(config: Config): void {
    if (this.stopped) return;
    const wanted = new Map<string, { balancer: Balancer; member: BalancerMember; health: HealthCheck }>();
    for (const [key, { balancer, member }] of configMembers(config)) {
      // As Apache, stopped members are not checked.
      if (member.health !== undefined && !member.status.stopped) wanted.set(key, { balancer, member, health: member.health });
    }
    for (const [key, check] of this.checks) {
      if (wanted.has(key)) continue;
      this.end(check);
      this.checks.delete(key);
      // Nothing would ever clear the mark now.
      this.registry.state(check.member, Date.now()).hcFailed = false;
    }
    for (const [key, w] of wanted) {
      const check = this.checks.get(key);
      if (check !== undefined) {
        check.balancer = w.balancer;
        check.member = w.member;
        check.health = w.health;
        continue;
      }
      const c: Check = { ...w, passes: 0, fails: 0 };
      this.checks.set(key, c);
      this.schedule(c, 0);
    }
  }

  /** Stops every check (timers and sockets under way). */
  stop(): void {
    this.stopped = true;
    for (const check of this.checks.values()) this.end(check);
    this.checks.clear();
  }

  private end(check: Check): void {
    if (check.timer !== undefined) clearTimeout(check.timer);
    check.timer = undefined;
    check.socket?.destroy();
    check.socket = undefined;
  }

  private schedule(check: Check, delayMs: number): void {
    check.timer = setTimeout(() => {
      check.timer = undefined;
      this.run(check);
    }, delayMs);
    check.timer.unref();
  }

  private run(check: Check): void {
    if (this.stopped || this.checks.get(check.member.key) !== check) return;
    probe(check, (why) => {
      if (this.stopped || this.checks.get(check.member.key) !== check) return;
      this.result(check, why);
      this.schedule(check, check.health.intervalMs);
    });
  }

  /** `why` is undefined for a pass, else the reason of the failure. */
  private result(check: Check, why: string | undefined): void {
    const state = this.registry.state(check.member, Date.now());
    const fields = { balancer: check.balancer.url, member: check.member.backend.url, method: check.health.method };
    state.hcLastAt = Date.now();
    state.hcLastError = why;
    if (why === undefined) {
      check.fails = 0;
      check.passes++;
      if (state.hcFailed && check.passes >= check.health.passes) {
        state.hcFailed = false;
        state.errorUntil = 0;
        this.log?.info('balancer member passes its health checks again', { ...fields, passes: check.passes });
      }
    } else {
      check.passes = 0;
      check.fails++;
      if (!state.hcFailed && check.fails >= check.health.fails) {
        state.hcFailed = true;
        this.log?.warn('balancer member fails its health checks', { ...fields, fails: check.fails, reason: why });
      }
    }
  }
}

/** The request path: the member's path with `hcuri=` appended. */
export function checkPath(member: BalancerMember, uri: string): string {
  const base = member.backend.path;
  if (uri === '') return base;
  return base.endsWith('/') && uri.startsWith('/') ? base + uri.slice(1) : base + uri;
}

/**
 * Runs one check of `check.member`; `done` gets undefined for a pass, else why it failed. Called
 * once, when the check's socket has closed (so the next check cannot overlap this one).
 */
function probe(check: Check, done: (why: string | undefined) => void): void {
  const { member, health } = check;
  const backend = member.backend;
  let decided = false;
  let verdict: string | undefined;
  const finish = (why: string | undefined): void => {
    if (decided) return;
    decided = true;
    verdict = why;
  };
  const socket = connectOrigin(backend.origin, backend.connectTimeoutMs, false, (err, s) => {
    if (err !== undefined) {
      finish(`connect: ${err.message}`);
      return;
    }
    if (health.method === 'TCP') {
      finish(undefined);
      s.destroy();
      return;
    }
    converse(s, check, finish);
  });
  check.socket = socket;
  socket.on('close', () => {
    if (check.socket === socket) check.socket = undefined;
    finish('connection closed before an answer');
    done(verdict);
  });
}

function converse(s: net.Socket, check: Check, finish: (why: string | undefined) => void): void {
  const { member, health } = check;
  const origin = member.backend.origin;
  const path = checkPath(member, health.uri);
  // As Apache: always host:port.
  const host = `${origin.host.includes(':') ? `[${origin.host}]` : origin.host}:${origin.port}`;
  let key = '';
  let head: string;
  if (health.method === 'WS') {
    key = newWebSocketKey();
    head =
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  } else {
    const http11 = health.method.endsWith('11');
    const method = http11 ? health.method.slice(0, -2) : health.method;
    head = http11
      ? `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
      : `${method} ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`;
  }
  const timeoutMs = member.backend.responseTimeoutMs;
  if (timeoutMs > 0) {
    s.setTimeout(timeoutMs);
    s.once('timeout', () => {
      finish(`no answer within ${timeoutMs} ms`);
      s.destroy();
    });
  }
  let received = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    const from = received.length;
    received = Buffer.concat([received, chunk]);
    // The answer head is read as the proxy reads one: same limit, same parser.
    const end = findHeadEnd(received, from);
    if (end === -1) {
      if (received.length > MAX_HEAD_BYTES) {
        finish('answer head too large');
        s.destroy();
      }
      return;
    }
    s.removeListener('data', onData);
    s.setTimeout(0);
    let res: ResponseHead;
    try {
      res = parseResponseHead(received, end);
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      finish(`not an HTTP answer: ${e.reason}`);
      s.destroy();
      return;
    }
    const code = res.status;
    if (health.method !== 'WS') {
      finish(code >= 200 && code < 400 ? undefined : `status ${code}`);
      s.destroy();
      return;
    }
    if (code !== 101) finish(`status ${code}, not 101`);
    else if (headerValue(res.headers, 'sec-websocket-accept') !== webSocketAccept(key)) finish('bad Sec-WebSocket-Accept');
    else finish(undefined);
    if (code !== 101) {
      s.destroy();
      return;
    }
    // A masked close frame (1000), then close our side; the backend's close ends the socket.
    const mask = randomBytes(4);
    const payload = Buffer.from([0x03 ^ (mask[0] as number), 0xe8 ^ (mask[1] as number)]);
    s.end(Buffer.concat([Buffer.from([0x88, 0x82]), mask, payload]));
    const t = setTimeout(() => s.destroy(), Math.max(timeoutMs, 1000));
    t.unref();
    s.resume();
    s.once('close', () => clearTimeout(t));
  };
  s.on('data', onData);
  // The socket is half-open capable (connectOrigin): the backend's FIN ends the check at once.
  s.once('end', () => {
    finish('connection closed before an answer');
    s.destroy();
  });
  s.write(head);
}

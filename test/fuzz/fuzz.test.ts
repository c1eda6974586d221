// Seeded mutation fuzzing, bounded in time (about 3 s per target): request and response heads,
// chunked bodies in both directions, and config files. Properties: no exception other than the
// module's own error type; every call returns quickly; a head that parses has nothing in it a
// backend could read differently; and a body read in any split of the same bytes gives the same
// verdict, the same forwarded length and the same payload. Deterministic: WSGATE_FUZZ_SEED picks
// the seed (default below); WSGATE_FUZZ_MS the time per target.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { BodyError, BodyFramer, type BodyLimits, DEFAULT_BODY_LIMITS, Framing } from '../../src/http/body';
import {
  DEFAULT_LIMITS,
  findHeadEnd,
  HeadError,
  leadingEmptyLines,
  PartialHeadCheck,
  parseRequestHead,
  parseResponseHead,
  type RequestLimits,
} from '../../src/http/head';
import { ConfigError, loadConfigText } from '../../src/config/load';

const SEED = Number(process.env.WSGATE_FUZZ_SEED ?? 0x5eed);
const MS = Number(process.env.WSGATE_FUZZ_MS ?? 3000);
/** The longest one call may take: far above any real parse, far below a stuck loop. */
const CALL_MS = 250;

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes that sit on parser boundaries. */
const INTERESTING = Buffer.from('\r\n\0 \t:;,"\\=-+0179aAfFgxX\x0b\x0c\x7f\x80\xa0\xff', 'latin1');

class Mutator {
  constructor(readonly next: () => number) {}

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** One to four random edits of `input` (flip, insert, delete, duplicate, splice, truncate). */
  mutate(input: Buffer, corpus: readonly Buffer[]): Buffer {
    let b = Buffer.from(input);
    const edits = 1 + this.int(4);
    for (let e = 0; e < edits; e++) {
      const at = this.int(b.length + 1);
      switch (this.int(7)) {
        case 0:
          if (b.length > 0) b[Math.min(at, b.length - 1)] = this.int(256);
          break;
        case 1:
          b = Buffer.concat([b.subarray(0, at), Buffer.of(this.pick([...INTERESTING])), b.subarray(at)]);
          break;
        case 2:
          b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + this.int(8)))]);
          break;
        case 3: {
          const end = Math.min(b.length, at + 1 + this.int(16));
          b = Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
          break;
        }
        case 4: {
          const other = this.pick(corpus);
          const from = this.int(other.length + 1);
          b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + this.int(24)), b.subarray(at)]);
          break;
        }
        case 5:
          b = b.subarray(0, at);
          break;
        case 6:
          // A CRLF, a bare CR or a bare LF: line ends are where parsers disagree.
          b = Buffer.concat([b.subarray(0, at), Buffer.from(this.pick(['\r\n', '\r', '\n', '\r\n\r\n']), 'latin1'), b.subarray(at)]);
          break;
      }
    }
    return b;
  }
}

/** Runs `body` with fresh mutations until the time is up; returns how many ran. */
function fuzz(name: string, corpus: readonly Buffer[], body: (input: Buffer, m: Mutator) => void, callMs = CALL_MS): number {
  const m = new Mutator(rng(SEED ^ hash(name)));
  const stop = Date.now() + MS;
  let n = 0;
  while (Date.now() < stop) {
    const input = m.next() < 0.1 ? m.pick(corpus) : m.mutate(m.pick(corpus), corpus);
    const t0 = performance.now();
    try {
      body(input, m);
    } catch (e) {
      (e as Error).message += `\ninput (seed ${SEED}, run ${n}): ${JSON.stringify(input.toString('latin1'))}`;
      throw e;
    }
    let took = performance.now() - t0;
    if (took >= callMs) {
      // A GC pause or a busy machine also makes one call slow: a slow input is slow again. (Its
      // own mutator, so that the run's sequence stays the seed's.)
      const t1 = performance.now();
      try {
        body(input, new Mutator(rng(n)));
      } catch {
        // Already judged by the first call.
      }
      took = performance.now() - t1;
    }
    assert.ok(took < callMs, `${name}: one call took ${took.toFixed(0)} ms on ${JSON.stringify(input.toString('latin1').slice(0, 200))}`);
    n++;
  }
  return n;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const bufs = (xs: readonly string[]): Buffer[] => xs.map((x) => Buffer.from(x, 'latin1'));

const REQUESTS = bufs([
  'GET /p HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 5\r\n\r\nhello',
  'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: [::1]:80\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET http://a/x HTTP/1.0\r\nX-A: \t v \t\r\nCookie: a=b\r\n\r\n',
  '\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n',
]);

const SMALL: RequestLimits = { line: 40, fieldSize: 30, fields: 4 };

/** What a head that parsed must never hold: a line end, a NUL or another control, in any part. */
function assertClean(where: string, s: string): void {
  assert.ok(!/[\x00-\x08\x0a-\x1f\x7f]/.test(s), `${where} holds a control character: ${JSON.stringify(s)}`);
}

test('request heads: only HeadError, and a head that parses is clean', { timeout: 60_000 }, () => {
  let parsed = 0;
  const runs = fuzz('request', REQUESTS, (input, m) => {
    const skip = leadingEmptyLines(input);
    assert.ok(skip <= 20 && skip % 2 === 0);
    const buf = input.subarray(skip);
    const end = findHeadEnd(buf, m.int(buf.length + 1) > buf.length / 2 ? 0 : 0);
    assert.ok(end === -1 || (end >= 4 && end <= buf.length && buf.toString('latin1', end - 4, end) === '\r\n\r\n'));
    // The partial check, as the HTTP/1 path calls it on a growing head.
    const partial = new PartialHeadCheck();
    for (const cut of [Math.floor(buf.length / 3), Math.floor((2 * buf.length) / 3), buf.length]) {
      try {
        partial.check(buf.subarray(0, cut), m.next() < 0.5 ? DEFAULT_LIMITS : SMALL);
      } catch (e) {
        if (!(e instanceof HeadError)) throw e;
        break;
      }
    }
    if (end === -1) return;
    for (const limits of [DEFAULT_LIMITS, SMALL]) {
      try {
        const h = parseRequestHead(buf, end, limits);
        parsed++;
        assertClean('method', h.method);
        assert.ok(!/[\s\x80-\xff]/.test(h.target), `target ${JSON.stringify(h.target)}`);
        for (const f of h.headers) assertClean('a header', f);
        assert.ok(!(h.chunked && h.contentLength !== -1), 'both framings');
        assert.ok(h.contentLength >= -1 && Number.isSafeInteger(h.contentLength));
        if (h.versionMinor === 1) assert.notEqual(h.host, undefined);
      } catch (e) {
        if (!(e instanceof HeadError)) throw e;
        assert.ok([400, 414, 431, 505].includes(e.status), `status ${e.status}`);
      }
    }
  });
  assert.ok(runs > 100 && parsed > 0, `${runs} runs, ${parsed} parsed`);
});

const RESPONSES = bufs([
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
  'HTTP/1.0 204 \r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n\r\n',
  'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n',
]);

test('response heads: only HeadError(502), and a head that parses is clean', { timeout: 60_000 }, () => {
  let parsed = 0;
  const runs = fuzz('response', RESPONSES, (input) => {
    const end = findHeadEnd(input);
    if (end === -1) return;
    try {
      const h = parseResponseHead(input, end);
      parsed++;
      assert.ok(h.status >= 0 && h.status <= 999);
      assertClean('reason', h.reason);
      for (const f of h.headers) assertClean('a header', f);
      assert.ok(!(h.chunked && h.contentLength !== -1), 'both framings');
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      assert.ok(e.status === 502 || e.status === 505, `status ${e.status}`);
    }
  });
  assert.ok(runs > 100 && parsed > 0, `${runs} runs, ${parsed} parsed`);
});

const CHUNKED = bufs([
  '5\r\nhello\r\n0\r\n\r\n',
  '5;a=b;c="d;\\"e"\r\nhello\r\n00A\r\n0123456789\r\n0\r\nX-T: v\r\nY: \r\n\r\n',
  '1  \r\nx\r\n0 ;z\r\nT: 1\r\nU: 2\r\nV: 3\r\n\r\n',
  'ff\r\n' + 'y'.repeat(255) + '\r\n0\r\n\r\n',
]);

interface Verdict {
  /** 'done', 'more' (incomplete) or the error message. */
  outcome: string;
  /** Bytes forwarded (the sum of what consume returned) before the body ended or failed. */
  forwarded: number;
  /** Payload bytes delivered through onChunkData. */
  payload: number;
}

/** Feeds `input` to a fresh framer in the given pieces, as a connection would. */
function feed(input: Buffer, cuts: number[], limits: BodyLimits): Verdict {
  const f = new BodyFramer(Framing.Chunked, 0, limits);
  let payload = 0;
  f.onChunkData = (_b, s, e) => {
    payload += e - s;
  };
  let forwarded = 0;
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    if (cut <= at) continue;
    try {
      forwarded += f.consume(input, at, cut);
    } catch (e) {
      if (!(e instanceof BodyError)) throw e;
      return { outcome: e.message, forwarded, payload };
    }
    at = cut;
    if (f.done) break;
  }
  return { outcome: f.done ? 'done' : 'more', forwarded, payload };
}

const TIGHT: BodyLimits = { lineSize: 12, trailerFields: 2, maxBody: 300 };

test('chunked bodies, both directions: only BodyError, and every split of the bytes gives the same verdict', { timeout: 60_000 }, () => {
  const outcomes = new Set<string>();
  const runs = fuzz('chunked', CHUNKED, (input, m) => {
    for (const limits of [DEFAULT_BODY_LIMITS, TIGHT]) {
      // The reference: one byte at a time, so an error's `forwarded` is exactly where the bad byte is.
      const bytewise = feed(
        input,
        Array.from({ length: input.length }, (_, i) => i),
        limits,
      );
      outcomes.add(bytewise.outcome.replace(/\(\d+\)/, ''));
      const whole = feed(input, [], limits);
      const cuts = Array.from({ length: m.int(6) }, () => m.int(input.length + 1)).sort((a, b) => a - b);
      const split = feed(input, cuts, limits);
      for (const [name, v] of [
        ['whole', whole],
        ['split', split],
      ] as const) {
        assert.equal(v.outcome, bytewise.outcome, `${name}: ${JSON.stringify(cuts)}`);
        if (bytewise.outcome === 'done' || bytewise.outcome === 'more') {
          assert.equal(v.forwarded, bytewise.forwarded, `${name}: forwarded ${JSON.stringify(cuts)}`);
          assert.equal(v.payload, bytewise.payload, `${name}: payload ${JSON.stringify(cuts)}`);
        } else {
          // Nothing at or after the bad byte is ever forwarded.
          assert.ok(v.forwarded <= bytewise.forwarded, `${name}: forwarded ${v.forwarded} past the bad byte at ${bytewise.forwarded}`);
        }
      }
      if (bytewise.outcome === 'done') {
        // What was forwarded ends with the last chunk's CRLF: the next message starts right after.
        assert.equal(input.toString('latin1', bytewise.forwarded - 2, bytewise.forwarded), '\r\n');
      }
    }
  });
  assert.ok(outcomes.has('done') && outcomes.size > 5, `${runs} runs, outcomes: ${[...outcomes].join(' | ')}`);
});

test('length-framed bodies: every split forwards exactly the length', { timeout: 60_000 }, () => {
  const r = new Mutator(rng(SEED));
  const stop = Date.now() + Math.min(MS, 500);
  while (Date.now() < stop) {
    const len = r.int(64);
    const data = Buffer.alloc(len + r.int(64), 0x61);
    const f = new BodyFramer(Framing.Length, len);
    let forwarded = 0;
    let at = 0;
    while (at < data.length && !f.done) {
      const to = Math.min(data.length, at + 1 + r.int(16));
      forwarded += f.consume(data, at, to);
      at = to;
    }
    assert.equal(forwarded, len);
    assert.equal(f.done, true);
  }
});

const CONFIG_DIR = mkdtempSync(path.join(tmpdir(), 'wsgate-fuzz-'));
const CONFIGS = bufs([
  readFileSync(path.join(__dirname, '..', '..', '..', 'examples', 'wsgate.conf'), 'latin1'),
  'Listen 127.0.0.1:8080\nTimeout 30\n<VirtualHost *:8080>\n  ServerName a.example\n  ProxyPass "/ws" "ws://127.0.0.1:9000/ws" max=4 timeout=5\n  ProxyPassReverse "/" "http://127.0.0.1:9000/"\n  <Location "/admin">\n    Require ip 127.0.0.1\n  </Location>\n</VirtualHost>\n',
  'Define B 127.0.0.1:9\nListen 8081\nRewriteEngine On\nRewriteCond %{HTTP:Upgrade} websocket [NC]\nRewriteRule ^/?(.*) "ws://${B}/$1" [P,L]\nHeader always set X-A "b"\nRequestHeader unset Cookie\nLimitRequestBody 10\nRequestReadTimeout header=20-40,MinRate=500\n',
  '<Proxy "balancer://c">\n  BalancerMember "ws://127.0.0.1:1" loadfactor=2\n  BalancerMember "ws://127.0.0.1:2" status=+H\n</Proxy>\nListen 8082\nProxyPass "/" "balancer://c/" lbmethod=bybusyness\n<IfModule mod_proxy.c>\nProxyTimeout 9\n</IfModule>\n',
]);

test('config files: only ConfigError with FILE:LINE, in bounded time', { timeout: 60_000 }, () => {
  let loaded = 0;
  const file = path.join(CONFIG_DIR, 'wsgate.conf');
  const runs = fuzz(
    'config',
    CONFIGS,
    (input) => {
      try {
        loadConfigText(input.toString('latin1'), file, { env: {} });
        loaded++;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        assert.ok(e.message.startsWith(`${e.file}:${e.line}: `), e.message);
        assert.ok(e.line >= 0, e.message);
      }
      // A mutation can turn a <VirtualHost> address into a host name, which a load resolves in a
      // child process (config/resolve.ts): a few hundred ms, bounded by the resolver's own timeout.
    },
    5000,
  );
  assert.ok(runs > 50 && loaded > 0, `${runs} runs, ${loaded} loaded`);
});

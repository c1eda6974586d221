// `SetHandler metrics` on the wire: a real HTTP client scrapes it, a strict exposition-format
// parser (below) reads every line, and the values move as ten WebSocket tunnels open, echo
// (hash-checked) and close. Access control answers 403 before any of wsgate's pages.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { load } from '../config/helpers';
import { startGateway } from '../helpers/harness';
import { echoServer, get } from '../helpers/observe';

const BOUND = { timeout: 60_000 };
/** The repository, from dist/test/e2e. */
const ROOT = path.join(__dirname, '..', '..', '..');

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/**
 * A strict reader of the Prometheus text format (0.0.4): HELP and TYPE once per family and before
 * its samples, a family's samples together, names and labels well formed, label values escaped
 * only with \\ \" \n, values that are numbers, no series twice, suffixes that fit the type.
 * Throws on the first thing wrong, naming the line.
 */
export function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  const samples: Sample[] = [];
  let current: string | undefined;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m === null) {
        assert.match(line, /^#( |$)/, where);
        return;
      }
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      assert.match(name, NAME, where);
      if (current !== name) {
        assert.ok(!closed.has(name), `family ${name} appears twice: ${where}`);
        if (current !== undefined) closed.add(current);
        current = name;
      }
      if (kind === 'TYPE') {
        assert.ok(!types.has(name), `TYPE twice: ${where}`);
        assert.ok(TYPES.has(rest), where);
        types.set(name, rest);
      } else {
        assert.ok(!helps.has(name), `HELP twice: ${where}`);
        helps.add(name);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    assert.ok(m !== null, `not a sample: ${where}`);
    const [, name, , body, raw] = m as unknown as [string, string, string | undefined, string | undefined, string];
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, '')].find((f) => types.has(f));
    assert.ok(family !== undefined, `a sample before its TYPE: ${where}`);
    assert.equal(family, current, `a sample outside its family's block: ${where}`);
    const type = types.get(family)!;
    const suffix = name.slice(family.length);
    const allowed: Record<string, string[]> = {
      counter: ['', '_total', '_created'],
      gauge: [''],
      untyped: [''],
      histogram: ['_bucket', '_sum', '_count', '_created'],
      summary: ['', '_sum', '_count', '_created'],
    };
    assert.ok(allowed[type]!.includes(suffix), `suffix ${JSON.stringify(suffix)} on a ${type}: ${where}`);
    if (type === 'histogram' && suffix === '_bucket') assert.ok(body?.includes('le="'), `a bucket without le: ${where}`);
    const labels: Record<string, string> = {};
    if (body !== undefined && body !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < body.length) {
        re.lastIndex = at;
        const lm = re.exec(body);
        assert.ok(lm !== null, `bad labels at ${at}: ${where}`);
        assert.match(lm[1]!, LABEL, where);
        assert.ok(!(lm[1]! in labels), `label twice: ${where}`);
        labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        at = re.lastIndex;
      }
    }
    // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case
    // (prom-client writes `Nan` for an event-loop mean with no sample yet).
    const nan = /^nan$/i.test(raw);
    const value = /^\+?inf$/i.test(raw) ? Infinity : /^-inf$/i.test(raw) ? -Infinity : nan ? NaN : Number(raw);
    assert.ok(nan || !Number.isNaN(value), `not a number: ${where}`);
    assert.match(raw, /^([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf|nan)$/i, where);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `series twice: ${where}`);
    seen.add(key);
    // Prometheus naming: a counter's samples end in _total.
    if (type === 'counter') assert.ok(name.endsWith('_total'), `a counter sample without _total: ${where}`);
    samples.push({ name, labels, value });
  });
  return { types, samples };
}

function sum(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  let n = 0;
  for (const s of samples) if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) n += s.value;
  return n;
}

async function scrape(port: number): Promise<Sample[]> {
  const res = await get(port, '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.type, /^text\/plain; version=0\.0\.4/);
  const { types, samples } = parseExposition(res.body);
  for (const name of types.keys()) {
    if (name.startsWith('wsgate_')) continue;
    // prom-client's process metrics keep their usual names (dashboards expect them).
    assert.match(name, /^(process|nodejs)_/, name);
  }
  for (const s of samples)
    for (const [k, v] of Object.entries(s.labels))
      assert.ok(!/^\d+\.\d+\.\d+\.\d+:\d+$/.test(`${v}`) || k === 'backend', `no client address as a label: ${k}=${v}`);
  return samples;
}

test('a scrape parses as the Prometheus text format, and its values follow 10 tunnels as they open, echo and close', BOUND, async () => {
  const backend = await echoServer();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/`,
      '<Location "/metrics">',
      '  SetHandler metrics',
      '  Require ip 127.0.0.1',
      '</Location>',
      '',
    ].join('\n'),
  );
  const clients: WebSocket[] = [];
  try {
    const before = await scrape(g.port);
    assert.equal(sum(before, 'wsgate_tunnels_open'), 0);
    assert.ok(sum(before, 'process_cpu_user_seconds_total') > 0, 'process metrics are in the same registry');
    assert.ok(before.some((s) => s.name === 'nodejs_heap_size_used_bytes'));

    const payloads: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/echo${i}`);
      clients.push(ws);
      await once(ws, 'open');
      const p = randomBytes(10_000 + i * 1000);
      payloads.push(p);
      ws.send(p);
      const [data] = (await once(ws, 'message')) as [Buffer];
      assert.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(p).digest('hex'), `echo ${i}`);
    }
    const sent = payloads.reduce((n, p) => n + p.length, 0);
    const origin = `http://127.0.0.1:${backend.port}`;

    const open = await scrape(g.port);
    assert.equal(sum(open, 'wsgate_tunnels_open'), 10);
    assert.equal(sum(open, 'wsgate_tunnels_open', { backend: origin, balancer: '' }), 10);
    const route = open.find((s) => s.name === 'wsgate_tunnels_open')!.labels.route!;
    assert.match(route, /wsgate\.conf:2$/, 'route as file:line');
    assert.equal(sum(open, 'wsgate_handshakes_total', { outcome: 'tunnel', status: '101' }), 10);
    assert.equal(sum(open, 'wsgate_handshake_duration_seconds_count'), 10);
    // Live bytes of open tunnels: every payload went up and came back (plus frame headers).
    assert.ok(sum(open, 'wsgate_tunnel_bytes_total', { direction: 'up', backend: origin }) >= sent, 'bytes up, read live');
    assert.ok(sum(open, 'wsgate_tunnel_bytes_total', { direction: 'down', backend: origin }) >= sent, 'bytes down, read live');
    assert.ok(sum(open, 'wsgate_backend_bytes_total', { direction: 'up', backend: origin }) >= sent);
    assert.equal(sum(open, 'wsgate_backend_busy', { backend: origin }), 10);
    assert.equal(sum(open, 'wsgate_tunnels_closed_total'), 0);
    assert.equal(sum(open, 'wsgate_http_requests_total', { code: '200', class: '2xx' }), 1, 'the first scrape is a plain request');

    for (const ws of clients) ws.close(1000);
    await Promise.all(clients.map((ws) => once(ws, 'close')));
    for (let i = 0; i < 600 && g.gateway.tunnels.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(g.gateway.tunnels.size, 0, 'every tunnel closed');

    const after = await scrape(g.port);
    assert.equal(sum(after, 'wsgate_tunnels_open'), 0);
    assert.equal(sum(after, 'wsgate_tunnels_closed_total'), 10);
    assert.equal(sum(after, 'wsgate_tunnels_closed_total', { reason: 'closed' }), 10);
    assert.equal(sum(after, 'wsgate_tunnel_duration_seconds_count'), 10);
    assert.equal(sum(after, 'wsgate_tunnel_duration_seconds_bucket', { le: '+Inf' }), 10);
    const upAfter = sum(after, 'wsgate_tunnel_bytes_total', { direction: 'up' });
    assert.ok(upAfter >= sum(open, 'wsgate_tunnel_bytes_total', { direction: 'up' }), 'a counter does not go back when tunnels close');
    assert.equal(sum(after, 'wsgate_http_requests_total', { code: '200' }), 2);

    // A failed handshake: a path no route takes answers 404, counted by outcome and status.
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/nowhere`);
    await new Promise<void>((r) => ws.on('error', () => r()));
    const failed = await scrape(g.port);
    assert.equal(sum(failed, 'wsgate_handshakes_total', { outcome: 'answered', status: '404' }), 1);
  } finally {
    for (const ws of clients) ws.terminate();
    await g.stop();
    await backend.close();
  }
});

test('the parser in this file refuses what is not the exposition format', () => {
  assert.throws(() => parseExposition('x_total 1\n'), /before its TYPE/);
  assert.throws(() => parseExposition('# TYPE x counter\nx_total{a="b} 1\n'), /bad labels|not a sample/);
  assert.throws(() => parseExposition('# TYPE x counter\nx 1\n'), /without _total/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx 1\nx 2\n'), /series twice/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx one\n'), /not a sample|not a number/);
  assert.throws(() => parseExposition('# TYPE x gauge\nx_bucket 1\n'), /before its TYPE|suffix/);
  assert.doesNotThrow(() => parseExposition('# HELP x a\n# TYPE x histogram\nx_bucket{le="+Inf"} 1\nx_sum 0.5\nx_count 1\n'));
});

test('Require decides before metrics, status and balancer-manager: 403 for an address the section does not allow', BOUND, async () => {
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      ...['metrics', 'status', 'server-status', 'balancer-manager'].flatMap((h) => [
        `<Location "/${h}-page">`,
        `  SetHandler ${h}`,
        '  Require ip 127.0.0.2',
        '</Location>',
      ]),
      '<Location "/open-status">',
      '  SetHandler status',
      '  Require ip 127.0.0.1',
      '</Location>',
      '',
    ].join('\n'),
  );
  try {
    for (const h of ['metrics', 'status', 'server-status', 'balancer-manager']) {
      for (const q of ['', '?json', '?events', '?auto']) {
        const res = await get(g.port, `/${h}-page${q}`);
        assert.equal(res.status, 403, `${h}${q}`);
        assert.ok(!res.body.includes('wsgate_') && !res.body.includes('nonce'), `${h}${q}: nothing of the page`);
      }
    }
    const allowed = await get(g.port, '/open-status?json');
    assert.equal(allowed.status, 200, 'the same client is let in where the config allows it');
    const snap = JSON.parse(allowed.body) as { nonce: string };
    assert.match(snap.nonce, /^[0-9a-f]{32}$/);
    // A POST to a refused page is refused too, before any change is looked at.
    const body = `b=x&w=y&w_status_D=1&nonce=${snap.nonce}`;
    const post = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: g.port,
          path: '/balancer-manager-page',
          method: 'POST',
          agent: false,
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(post, 403);
  } finally {
    await g.stop();
  }
});

test('the sample Grafana dashboard names only metrics a scrape has; the example config serves both pages on 127.0.0.1', BOUND, async () => {
  process.env.WSGATE_DEMO_PORT = '0';
  process.env.DEMO_BACKEND_PORT = '9';
  const g = await startGateway(readFileSync(path.join(ROOT, 'examples', 'wsgate.conf'), 'utf8'));
  try {
    const res = await get(g.port, '/metrics');
    assert.equal(res.status, 200);
    const { types } = parseExposition(res.body);
    const dashboard = readFileSync(path.join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8');
    JSON.parse(dashboard);
    const names = new Set([...dashboard.matchAll(/\b((?:wsgate|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!));
    assert.ok(names.size >= 10);
    for (const n of names) assert.ok(types.has(n) || types.has(n.replace(/_(bucket|sum|count)$/, '')), `${n} is in the scrape`);
    const page = await get(g.port, '/wsgate-status');
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.ok(!/(src|href)="(https?:)?\/\//.test(page.body), 'no external asset');
  } finally {
    await g.stop();
  }
});

test('metrics count from the first config that serves them: none before, then a reload that adds SetHandler metrics', BOUND, async () => {
  const backend = await echoServer();
  const route = `ProxyPass /ws/ ws://127.0.0.1:${backend.port}/`;
  const g = await startGateway(['Listen 127.0.0.1:0', route, ''].join('\n'));
  const tunnel = async (name: string): Promise<void> => {
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/${name}`);
    await once(ws, 'open');
    const p = randomBytes(5_000);
    ws.send(p);
    const [data] = (await once(ws, 'message')) as [Buffer];
    assert.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(p).digest('hex'));
    ws.close();
    await once(ws, 'close');
  };
  try {
    await tunnel('before');
    const { config } = load({
      'wsgate.conf': ['Listen 127.0.0.1:' + g.port, route, '<Location "/metrics">', '  SetHandler metrics', '</Location>', ''].join('\n'),
    });
    await g.gateway.reload(config);
    await tunnel('after');
    const samples = await scrape(g.port);
    assert.equal(sum(samples, 'wsgate_handshakes_total'), 1, 'the tunnel made before the reload is not counted, the one after is');
    // Another reload that still serves them: the counts go on from there.
    await g.gateway.reload(
      load({
        'wsgate.conf': ['Listen 127.0.0.1:' + g.port, route, '<Location "/metrics">', '  SetHandler metrics', '</Location>', ''].join('\n'),
      }).config,
    );
    await tunnel('later');
    assert.equal(sum(await scrape(g.port), 'wsgate_handshakes_total'), 2, 'counting goes on across reloads');
  } finally {
    await g.stop();
    await backend.close();
  }
});

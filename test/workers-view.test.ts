// `wsgate -w 2`: /metrics and the status page show every worker, whichever answers (the workers'
// registries added up through the primary, the snapshots merged, tunnels marked with the pid that
// holds them), and a member disabled by a POST to one worker is avoided by new connections through
// both, and through a worker started after the change (a replacement of a killed one).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type WebSocket from 'ws';
import type { StatusSnapshot } from '../src/observe/status';
import { echo, eventually, openWs, randomBytes, sha256, startEchoBackend } from './helpers/harness';
import { startWorkers } from './helpers/cli';
import { childrenOf, holders } from './helpers/procfs';
import { nativeUnavailableReason } from '../src/tunnel/native';

const nativeSpreads = nativeUnavailableReason() === undefined && process.env.WSGATE_NATIVE_FRONT !== '0';

/** One request on a connection of its own (so that either worker may answer it). */
function request(
  port: number,
  method: string,
  target: string,
  body?: string,
  timeoutMs = 20_000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { Connection: 'close' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = Buffer.byteLength(body);
      headers.Accept = 'application/json';
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error('no answer')));
    req.end(body);
  });
}

/** Sum of a metric's samples whose labels contain `match`, from exposition text. */
function sample(text: string, name: string, match = ''): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!line.includes(match)) continue;
    found = true;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  assert.ok(found, `${name} ${match} in the scrape`);
  return sum;
}

/** Opens tunnels in batches until each of `workers` holds some (at most 200). */
async function tunnelsOnAll(
  port: number,
  workers: number[],
  prefix: string,
  all: WebSocket[],
): Promise<{ clients: WebSocket[]; held: number[] }> {
  const clients: WebSocket[] = [];
  for (let batch = 0; batch < 10; batch++) {
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => openWs(`ws://127.0.0.1:${port}/ws/${prefix}${batch}-${i}`)));
    all.push(...more);
    clients.push(...more);
    await Promise.all(
      more.map(async (ws) => {
        const data = randomBytes(1024);
        assert.equal(sha256((await echo(ws, data)).data), sha256(data));
      }),
    );
    const held = holders(clients, workers, port);
    if (workers.every((pid) => held.includes(pid))) return { clients, held };
  }
  assert.fail(`${clients.length} connections did not reach every worker`);
}

test('wsgate -w 2: one /metrics scrape and one status page for both workers; a member disabled on one is disabled in all', {
  timeout: 90_000,
}, async () => {
  const a = await startEchoBackend('a');
  const b = await startEchoBackend('b');
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-workers-view-'));
  const file = path.join(dir, 'wsgate.conf');
  writeFileSync(
    file,
    [
      'Listen 127.0.0.1:0',
      '<Proxy "balancer://pool">',
      `  BalancerMember ws://127.0.0.1:${a.port}`,
      `  BalancerMember ws://127.0.0.1:${b.port}`,
      '</Proxy>',
      'ProxyPass /ws/ balancer://pool/',
      '<Location "/metrics">',
      '  SetHandler metrics',
      '</Location>',
      '<Location "/wsgate-status">',
      '  SetHandler status',
      '</Location>',
      '',
    ].join('\n'),
  );
  const run = startWorkers(file);
  const all: WebSocket[] = [];
  try {
    const { port, primary, workers } = await run.ready();

    // Tunnels on both workers; every scrape counts them all, whichever worker answers it.
    const { clients, held } = await tunnelsOnAll(port, workers, 'm', all);
    const open = clients.length;
    const answered = new Set<number>();
    for (let i = 0; i < 40 && (i < 6 || answered.size < 2); i++) {
      const m = await request(port, 'GET', '/metrics');
      assert.equal(m.status, 200);
      assert.equal(sample(m.body, 'wsgate_tunnels_open'), open, 'open tunnels of both workers in one scrape');
      assert.equal(sample(m.body, 'wsgate_workers_reporting'), 2);
      assert.equal(sample(m.body, 'wsgate_workers'), 2);
      for (const pid of workers) {
        const mine = held.filter((p) => p === pid).length;
        assert.equal(sample(m.body, 'wsgate_worker_tunnels_open', `worker="${pid}"`), mine, `tunnels of ${pid}`);
        assert.ok(sample(m.body, 'process_resident_memory_bytes', `worker="${pid}"`) > 0, `process metrics of ${pid}`);
      }
      // The member counters are each worker's added up: every tunnel went to one of the two members.
      assert.equal(sample(m.body, 'wsgate_backend_busy', 'balancer="pool"'), open);
      assert.equal(sample(m.body, 'wsgate_balancer_member_state', 'state="ok"'), 2, 'each member once, not once per worker');

      const s = JSON.parse((await request(port, 'GET', '/wsgate-status?json')).body) as StatusSnapshot;
      answered.add(s.pid);
      assert.equal(s.openTunnels, open);
      assert.equal(s.tunnels.length, open);
      assert.deepEqual(new Set(s.tunnels.map((t) => t.worker)), new Set(workers), 'tunnels of both workers, marked with their pid');
      for (const pid of workers)
        assert.equal(s.tunnels.filter((t) => t.worker === pid).length, held.filter((p) => p === pid).length, `tunnels listed for ${pid}`);
      assert.deepEqual(new Set(s.workers?.map((w) => w.pid)), new Set(workers));
      assert.equal(s.workersRunning, 2);
      assert.equal(s.listeners.length, 1, 'the shared port once');
      const members = s.balancers[0]!.members;
      assert.equal(
        members.reduce((n, m) => n + m.openTunnels, 0),
        open,
      );
      for (const m of members) assert.equal(m.byWorker?.length, 2);
    }
    for (const pid of answered) assert.ok(workers.includes(pid));
    // With the native front the kernel spreads connections by a hash of their ports: both workers answered some.
    if (nativeSpreads) assert.equal(answered.size, 2, 'both workers answered scrapes');

    // A worker that does not answer (stopped) is left out after the bound, and the scrape says so.
    const [stuck, other] = workers as [number, number];
    process.kill(stuck, 'SIGSTOP');
    try {
      let partial: { status: number; body: string } | undefined;
      // A connection the kernel gives the stopped worker waits in its queue: another is tried.
      for (let i = 0; i < 20 && partial === undefined; i++)
        partial = await request(port, 'GET', '/metrics', undefined, 4000).catch(() => undefined);
      assert.ok(partial !== undefined, 'the running worker answered');
      assert.equal(partial.status, 200);
      assert.equal(sample(partial.body, 'wsgate_workers_reporting'), 1);
      assert.equal(sample(partial.body, 'wsgate_workers'), 2);
      assert.equal(sample(partial.body, 'wsgate_tunnels_open'), held.filter((p) => p === other).length, "the running worker's tunnels");
    } finally {
      process.kill(stuck, 'SIGCONT');
    }

    // Disabled by a POST that one worker answers: new connections through both avoid it.
    const s = JSON.parse((await request(port, 'GET', '/wsgate-status?json')).body) as StatusSnapshot;
    const memberA = s.balancers[0]!.members.find((m) => m.url.includes(`:${a.port}`))!.url;
    const posted = await request(port, 'POST', '/wsgate-status', `b=pool&w=${encodeURIComponent(memberA)}&w_status_D=1&nonce=${s.nonce}`);
    assert.equal(posted.status, 200, posted.body);
    for (const ws of clients) ws.close();
    const before = a.upgrades.length;
    const next = await tunnelsOnAll(port, workers, 'd', all);
    assert.equal(a.upgrades.length, before, 'no new tunnel to the disabled member, through either worker');
    const after = JSON.parse((await request(port, 'GET', '/wsgate-status?json')).body) as StatusSnapshot;
    const shown = after.balancers[0]!.members.find((m) => m.url === memberA)!;
    assert.equal(shown.state, 'disabled');
    assert.deepEqual(
      shown.byWorker?.map((w) => w.state),
      ['disabled', 'disabled'],
    );
    // The nonce is the same in every worker: a second change, posted on a new connection, is taken too.
    for (let i = 0; i < 4; i++) {
      const again = await request(port, 'POST', '/wsgate-status', `b=pool&w=${encodeURIComponent(memberA)}&w_status_D=1&nonce=${s.nonce}`);
      assert.equal(again.status, 200, again.body);
    }

    // A worker started after the change (the replacement of a killed one) has it from the start.
    const [victim, survivor] = workers as [number, number];
    const lost = next.clients.filter((_, i) => next.held[i] === victim).map((ws) => once(ws, 'close'));
    process.kill(victim, 'SIGKILL');
    await Promise.all(lost);
    await eventually(() => / info worker restarted /.test(run.stderr()), 30_000, 'a worker in the place of the killed one');
    const now = childrenOf(primary);
    assert.ok(now.includes(survivor));
    assert.equal(now.length, 2);
    const third = await tunnelsOnAll(port, now, 'r', all);
    assert.equal(a.upgrades.length, before, 'the new worker avoids the disabled member too');
    assert.ok(third.clients.length > 0);

    // Clients gone first: a graceful stop would otherwise wait for their tunnels.
    for (const ws of all) ws.terminate();
    process.kill(primary, 'SIGTERM');
    const [code, signal] = await run.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, run.stderr());
  } finally {
    for (const ws of all) ws.terminate();
    run.kill();
    await a.close();
    await b.close();
  }
});

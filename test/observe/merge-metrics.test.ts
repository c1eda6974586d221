// The -w N scrape (observe/merge-metrics.ts): worker registries added up by label set, gauges by
// their declared aggregator, process metrics kept per worker, and the count of workers reporting.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { mergeMetrics } from '../../src/observe/merge-metrics';

/** One worker's registry as GatewayMetrics declares these metrics. */
async function worker(opened: number, busy: number, state: 0 | 1, healthy: 0 | 1, rss: number, seconds: number[]) {
  const registry = new Registry();
  new Counter({ name: 'wsgate_handshakes_total', help: 'h', labelNames: ['outcome'], registers: [registry] }).inc(
    { outcome: 'tunnel' },
    opened,
  );
  new Gauge({ name: 'wsgate_tunnels_open', help: 'h', labelNames: ['route'], registers: [registry] }).set({ route: 'f:1' }, busy);
  new Gauge({ name: 'wsgate_balancer_member_state', help: 'h', labelNames: ['state'], aggregator: 'max', registers: [registry] }).set(
    { state: 'error' },
    state,
  );
  new Gauge({ name: 'wsgate_balancer_member_healthy', help: 'h', aggregator: 'min', registers: [registry] }).set(healthy);
  new Gauge({ name: 'process_resident_memory_bytes', help: 'h', registers: [registry] }).set(rss);
  new Gauge({ name: 'process_start_time_seconds', help: 'h', aggregator: 'omit', registers: [registry] }).set(rss / 1000);
  const h = new Histogram({ name: 'wsgate_tunnel_duration_seconds', help: 'h', buckets: [1, 10], registers: [registry] });
  for (const s of seconds) h.observe(s);
  return registry.getMetricsAsJSON();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line !== undefined, `${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

test('two workers: counters, histograms and summed gauges add up; max/min gauges; process metrics per worker', async () => {
  const { text, contentType } = await mergeMetrics(
    [
      { pid: 101, data: await worker(5, 3, 0, 1, 1000, [0.5, 5]) },
      { pid: 202, data: await worker(7, 4, 1, 0, 2000, [20]) },
    ],
    2,
  );
  assert.match(contentType, /^text\/plain/);
  assert.equal(value(text, 'wsgate_handshakes_total{outcome="tunnel"}'), 12);
  assert.equal(value(text, 'wsgate_tunnels_open{route="f:1"}'), 7);
  assert.equal(value(text, 'wsgate_balancer_member_state{state="error"}'), 1, 'some worker sees it in error');
  assert.equal(value(text, 'wsgate_balancer_member_healthy'), 0, 'healthy only if every worker says so');
  assert.equal(value(text, 'process_resident_memory_bytes{worker="101"}'), 1000);
  assert.equal(value(text, 'process_resident_memory_bytes{worker="202"}'), 2000);
  assert.equal(value(text, 'process_start_time_seconds{worker="202"}'), 2, 'kept per worker rather than omitted');
  assert.equal(value(text, 'wsgate_tunnel_duration_seconds_bucket{le="1"}'), 1);
  assert.equal(value(text, 'wsgate_tunnel_duration_seconds_bucket{le="10"}'), 2);
  assert.equal(value(text, 'wsgate_tunnel_duration_seconds_count'), 3);
  assert.equal(value(text, 'wsgate_worker_tunnels_open{worker="101"}'), 3);
  assert.equal(value(text, 'wsgate_worker_tunnels_open{worker="202"}'), 4);
  assert.equal(value(text, 'wsgate_workers_reporting'), 2);
  assert.equal(value(text, 'wsgate_workers'), 2);
  assert.doesNotMatch(text, /wsgate_handshakes_total\{[^}]*worker=/, "wsgate's own metrics are not split by worker");
});

test('a worker that did not answer: reporting 1 of 2', async () => {
  const { text } = await mergeMetrics([{ pid: 101, data: await worker(5, 3, 0, 1, 1000, []) }], 2);
  assert.equal(value(text, 'wsgate_handshakes_total{outcome="tunnel"}'), 5);
  assert.equal(value(text, 'wsgate_workers_reporting'), 1);
  assert.equal(value(text, 'wsgate_workers'), 2);
});

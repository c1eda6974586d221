// One scrape for all `-w N` workers: each worker's registry as `getMetricsAsJSON()` gives it,
// added up by prom-client's AggregatorRegistry.aggregate (counters and histograms summed by label
// set; each gauge by the `aggregator` it was declared with, observe/metrics.ts). What belongs to
// one process — prom-client's process and Node metrics, whose sum or mean would mean nothing
// (memory, event loop lag, start time) — keeps a series per worker, labelled `worker` (its pid).
// The scrape also says how many workers it covers: `wsgate_workers_reporting` of `wsgate_workers`.

import { AggregatorRegistry, Gauge, type Registry } from 'prom-client';
import type { Piece } from '../lifecycle/worker-messages';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type MetricJson = MetricsJson[number];

/** wsgate's own metrics are summed across workers; the others are per worker. */
const OWN_PREFIX = 'wsgate_';

/** A process metric of worker `pid`: each of its series labelled with the pid, so none adds up with another worker's. */
function perWorker(m: MetricJson, pid: number): MetricJson {
  const worker = String(pid);
  // 'first' rather than the metric's own (e.g. 'omit' for process_start_time_seconds): each label set now has one value.
  return { ...m, aggregator: 'first', values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })) };
}

/** Open tunnels of each worker, from its `wsgate_tunnels_open`: which worker holds how many. */
function workerTunnels(pieces: readonly { pid: number; metrics: MetricsJson }[]): MetricJson {
  const values = pieces.map(({ pid, metrics }) => {
    const open = metrics.find((m) => m.name === 'wsgate_tunnels_open');
    let n = 0;
    for (const v of open?.values ?? []) n += v.value;
    return { labels: { worker: String(pid) }, value: n };
  });
  const m = {
    name: 'wsgate_worker_tunnels_open',
    help: 'Tunnels open now in each worker process (worker: its pid); wsgate -w N only',
    type: 'gauge',
    aggregator: 'sum',
    values,
  };
  return m as unknown as MetricJson;
}

/** The exposition text of every worker's metrics in `pieces`; `running`: how many workers there are. */
export async function mergeMetrics(pieces: readonly Piece[], running: number): Promise<{ contentType: string; text: string }> {
  const parts = pieces.map((p) => ({ pid: p.pid, metrics: p.data as MetricsJson }));
  const inputs: MetricsJson[] = parts.map(({ pid, metrics }) =>
    metrics.map((m) => (m.name.startsWith(OWN_PREFIX) ? m : perWorker(m, pid))),
  );
  inputs.push([workerTunnels(parts)]);
  const registry = AggregatorRegistry.aggregate(inputs);
  const reporting = new Gauge({
    name: 'wsgate_workers_reporting',
    help: 'Worker processes whose metrics are in this scrape (one that did not answer within 1 s is left out)',
    registers: [registry],
  });
  reporting.set(parts.length);
  const workers = new Gauge({ name: 'wsgate_workers', help: 'Worker processes the primary runs (wsgate -w N)', registers: [registry] });
  workers.set(running);
  return { contentType: registry.contentType, text: await registry.metrics() };
}

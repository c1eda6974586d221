// `SetHandler metrics`: the gateway's Prometheus metrics (observe/metrics.ts) in the text
// exposition format, read fresh at each scrape; under `wsgate -w N`, all the workers' in one.
// GET and HEAD only.

import type { HandlerHost, LocalRequest, LocalResponse } from './handler';

export async function serveMetrics(host: HandlerHost, req: LocalRequest, res: LocalResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.send(405, ['Allow', 'GET, HEAD', 'Content-Type', 'text/plain; charset=utf-8'], 'Method Not Allowed\n');
    return;
  }
  // Under -w N: every worker's, added up (lifecycle/worker-link.ts, observe/merge-metrics.ts).
  const { contentType, text } = host.workers !== undefined ? await host.workers.metrics() : await host.metrics.render(host);
  res.send(200, ['Content-Type', contentType, 'Cache-Control', 'no-store'], text);
}

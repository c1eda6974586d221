// `SetHandler metrics`: the gateway's Prometheus metrics (observe/metrics.ts) in the text
// exposition format, read fresh at each scrape. GET and HEAD only.

import type { HandlerHost, LocalRequest, LocalResponse } from './handler';

export async function serveMetrics(host: HandlerHost, req: LocalRequest, res: LocalResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.send(405, ['Allow', 'GET, HEAD', 'Content-Type', 'text/plain; charset=utf-8'], 'Method Not Allowed\n');
    return;
  }
  const { contentType, text } = await host.metrics.render(host);
  res.send(200, ['Content-Type', contentType, 'Cache-Control', 'no-store'], text);
}

// `SetHandler health`: a readiness probe. 200 while the gateway serves, 503 from the moment a
// stop or drain begins, so that an orchestrator takes the instance out of rotation before its
// tunnels are closed. The body is one word, for people reading it with curl.

import type { HandlerHost, LocalRequest, LocalResponse } from './handler';

const FIELDS = ['Content-Type', 'text/plain; charset=utf-8', 'Cache-Control', 'no-store'];

export function serveHealth(host: HandlerHost, _req: LocalRequest, res: LocalResponse): void {
  if (host.state === 'serving') res.send(200, FIELDS, 'ok\n');
  else res.send(503, [...FIELDS, 'Retry-After', '5'], `${host.state}\n`);
}

// `SetHandler status` (also `server-status` and `balancer-manager`, Apache's names): the live
// status page. The path alone gives the HTML page (status-page.ts); `?json` the snapshot it draws
// (observe/status.ts); `?events` the same snapshot once a second as server-sent events, which the
// page listens to; `?auto` a few `Key: value` lines for scripts, as mod_status's `?auto`. A POST
// changes a balancer member (balancer-manager.ts); changes are refused on GET, so that a link or
// an image on another site cannot make them. Under `wsgate -w N` every answer is the view of all
// the workers (observe/merge-status.ts), and a change is made in every worker.

import type { HandlerHost, LocalRequest, LocalResponse, LocalStream } from './handler';
import { asksChange, changeMember } from './balancer-manager';
import { STATUS_PAGE } from './status-page';
import type { StatusSnapshot } from '../observe/status';

const NO_STORE = ['Cache-Control', 'no-store'];
const TEXT = ['Content-Type', 'text/plain; charset=utf-8', ...NO_STORE];
const JSON_TYPE = ['Content-Type', 'application/json', ...NO_STORE];
/** How often `?events` sends a snapshot. */
export const STATUS_EVENT_MS = 1000;
/** The most a member-change form may be. */
const FORM_MAX = 16 * 1024;

export async function serveStatus(host: HandlerHost, req: LocalRequest, res: LocalResponse): Promise<void> {
  const params = new URLSearchParams(req.query ?? '');
  if (req.method === 'POST') {
    await post(host, req, res, params);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.send(405, ['Allow', 'GET, HEAD, POST', ...TEXT], 'Method Not Allowed\n');
    return;
  }
  if (asksChange(params)) {
    res.send(405, ['Allow', 'POST', ...TEXT], 'Member changes are made with a POST (a form with b, w, w_status_* and nonce)\n');
    return;
  }
  if (params.has('events')) {
    const stream = res.open(200, ['Content-Type', 'text/event-stream', ...NO_STORE]);
    if (req.method === 'HEAD') return stream.end();
    sendEvents(host, stream);
    return;
  }
  if (params.has('json')) {
    res.send(200, JSON_TYPE, JSON.stringify(await snapshot(host)));
    return;
  }
  if (params.has('auto')) {
    res.send(200, TEXT, autoText(await snapshot(host)));
    return;
  }
  res.send(200, ['Content-Type', 'text/html; charset=utf-8', ...NO_STORE], STATUS_PAGE);
}

async function post(host: HandlerHost, req: LocalRequest, res: LocalResponse, query: URLSearchParams): Promise<void> {
  const body = await res.body(FORM_MAX);
  if (body === undefined) {
    res.send(413, TEXT, 'The form is too large, or has no Content-Length\n');
    return;
  }
  // As balancer-manager, the fields may come in the query as well as in the form.
  const params = new URLSearchParams(query);
  for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.append(k, v);
  const result = changeMember(host, params, Date.now());
  const wantsJson = params.has('json') || (headerOf(req, 'accept') ?? '').includes('application/json');
  if (wantsJson) {
    res.send(result.ok ? 200 : result.status, JSON_TYPE, JSON.stringify(result));
    return;
  }
  if (!result.ok) {
    res.send(result.status, TEXT, `${result.error}\n`);
    return;
  }
  // A plain form post (no script): back to the page.
  res.send(303, ['Location', req.path, ...TEXT], `${result.member}: ${result.state}\n`);
}

/** What the page shows: this process's snapshot, or under `-w N` every worker's merged (lifecycle/worker-link.ts). */
function snapshot(host: HandlerHost): Promise<StatusSnapshot> {
  return host.workers !== undefined ? host.workers.status() : Promise.resolve(host.status.snapshot(host, Date.now()));
}

/** One snapshot now, then one each STATUS_EVENT_MS until the client leaves. */
function sendEvents(host: HandlerHost, stream: LocalStream): void {
  let closed = false;
  // Under -w N a snapshot is gathered from the workers: a tick while one is under way is skipped.
  let busy = false;
  const push = (): void => {
    if (busy || closed) return;
    busy = true;
    void snapshot(host).then((s) => {
      busy = false;
      if (!closed) stream.write(`data: ${JSON.stringify(s)}\n\n`);
    });
  };
  push();
  const timer = setInterval(push, STATUS_EVENT_MS);
  stream.onClose(() => {
    closed = true;
    clearInterval(timer);
  });
}

function autoText(s: StatusSnapshot): string {
  const lines = [
    `ServerUptimeSeconds: ${Math.floor((s.now - s.startedAt) / 1000)}`,
    `State: ${s.state}`,
    `Connections: ${s.connections}`,
    `OpenTunnels: ${s.openTunnels}`,
    `HandshakesPerSecond: ${s.handshakesPerSecond}`,
    `Handshakes: ${s.totals.handshakes}`,
    `HandshakesNotUpgraded: ${s.totals.handshakesFailed}`,
    `Requests: ${s.totals.requests}`,
  ];
  // -w N: how many workers the numbers cover.
  if (s.workers !== undefined) lines.push(`Workers: ${s.workers.length}`, `WorkersRunning: ${s.workersRunning ?? 0}`);
  for (const b of s.balancers)
    for (const m of b.members)
      lines.push(`Member: ${b.name} ${m.url} ${m.state} tunnels=${m.openTunnels} busy=${m.busy} errors=${m.errors}`);
  return `${lines.join('\n')}\n`;
}

function headerOf(req: LocalRequest, name: string): string | undefined {
  for (let i = 0; i < req.headers.length; i += 2) if (req.headers[i]!.toLowerCase() === name) return req.headers[i + 1];
  return undefined;
}

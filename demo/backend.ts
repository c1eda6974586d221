// The demo backend that `npm start` puts behind wsgate: a plain HTTP page and a WebSocket echo.
//
//   GET /       demo/public/index.html (read from the source tree, so edits show on reload)
//   WS  /echo   echoes every message (text as text, binary as binary) and, every few seconds,
//               sends each client {"serverTime": "<ISO date>"} so you can see the tunnel stay up.
//
// Usage: node dist/demo/backend.js [port]     (else $DEMO_BACKEND_PORT, else 9080)
// It listens on 127.0.0.1 only and prints one "listening on" line when ready; demo/start.ts
// waits for that line.

import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer, type RawData } from 'ws';

const HOST = '127.0.0.1';
const TICK_MS = 5_000;
// dist/demo/backend.js → <repo>/demo/public/index.html
const INDEX_HTML = path.join(__dirname, '../../demo/public/index.html');

const port = parsePort(process.argv[2] ?? process.env.DEMO_BACKEND_PORT ?? '9080');

const server = http.createServer(serveHttp);
const wss = new WebSocketServer({ server, path: '/echo' });

wss.on('connection', (ws, req) => {
  const via = req.headers['x-forwarded-for'] ? ` (X-Forwarded-For: ${req.headers['x-forwarded-for']})` : '';
  console.log(`ws open  ${req.url} from ${req.socket.remoteAddress}${via}, ${wss.clients.size} open`);
  ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
  ws.on('close', (code: number) => console.log(`ws close ${code}, ${wss.clients.size} open`));
  ws.on('error', (err: Error) => console.log(`ws error ${err.message}`));
});

const ticker = setInterval(() => {
  const tick = JSON.stringify({ serverTime: new Date().toISOString() });
  for (const ws of wss.clients) ws.send(tick);
}, TICK_MS);

// ws re-emits the HTTP server's errors (such as EADDRINUSE from listen) on the WebSocketServer.
wss.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EADDRINUSE') {
    console.error(`port ${port} is already in use: pick another with DEMO_BACKEND_PORT=<port>`);
  } else {
    console.error(`cannot listen on ${HOST}:${port}: ${err.message}`);
  }
  process.exit(1);
});

server.listen(port, HOST, () => {
  const { port: actual } = server.address() as { port: number };
  console.log(`demo backend listening on http://${HOST}:${actual}/ (WebSocket echo at /echo)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    clearInterval(ticker);
    for (const ws of wss.clients) ws.close(1001, 'backend shutting down');
    server.close(() => process.exit(0));
    server.closeAllConnections();
    // A client that never answers the close handshake must not keep us alive.
    setTimeout(() => process.exit(0), 1_000).unref();
  });
}

function serveHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
  const pathname = (req.url ?? '/').split('?')[0];
  if ((req.method === 'GET' || req.method === 'HEAD') && (pathname === '/' || pathname === '/index.html')) {
    readFile(INDEX_HTML).then(
      (body) => {
        res.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Length': body.length,
          'Cache-Control': 'no-store',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: Error) => sendText(res, 500, `cannot read ${INDEX_HTML}: ${err.message}\n`),
    );
    return;
  }
  sendText(res, 404, `not found: ${pathname} (try / or a WebSocket to /echo)\n`);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`invalid port "${text}": expected an integer 0-65535`);
    process.exit(2);
  }
  return n;
}

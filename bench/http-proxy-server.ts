// npm http-proxy (1.18.1) as a WebSocket reverse proxy, the way its README sets it up.
// Usage: node dist/bench/http-proxy-server.js --listen PORT --target PORT [--host 127.0.0.1]
import * as http from 'node:http';
import type * as net from 'node:net';
import httpProxy from 'http-proxy';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) throw new Error(`missing ${name}`);
  return def;
}

const host = arg('--host', '127.0.0.1');
const listenPort = Number(arg('--listen'));
const targetPort = Number(arg('--target'));

const proxy = httpProxy.createProxyServer({ target: `http://${host}:${targetPort}`, ws: true });
proxy.on('error', (_err, _req, res) => {
  const r = res as http.ServerResponse | net.Socket;
  if (r instanceof http.ServerResponse) {
    if (!r.headersSent) r.writeHead(502);
    r.end();
  } else {
    r.destroy();
  }
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => proxy.ws(req, socket, head));
server.listen({ host, port: listenPort, backlog: 4096 }, () => {
  process.stdout.write(`listening ${listenPort}\n`);
});
process.on('SIGTERM', () => process.exit(0));

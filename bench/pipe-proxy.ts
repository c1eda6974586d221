// A bare TCP tunnel with Node's stream.pipe(): the floor for any Node-based proxy.
// Usage: node dist/bench/pipe-proxy.js --listen PORT --target PORT [--host 127.0.0.1]
// Every accepted connection gets its own connection to the target; bytes are piped both
// ways untouched (the WebSocket upgrade passes straight through to the backend).
import * as net from 'node:net';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) throw new Error(`missing ${name}`);
  return def;
}

const host = arg('--host', '127.0.0.1');
const listenPort = Number(arg('--listen'));
const targetPort = Number(arg('--target'));

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host, port: targetPort, noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  const kill = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', kill);
  upstream.on('error', kill);
  client.on('close', kill);
  upstream.on('close', kill);
});
server.listen({ host, port: listenPort, backlog: 4096 }, () => {
  process.stdout.write(`listening ${listenPort}\n`);
});
process.on('SIGTERM', () => process.exit(0));

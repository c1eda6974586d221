// The Apache configs WebSocket apps publish (test/apps/*.conf), each loaded unchanged but for its
// placeholders and run end to end against a local imitation of the app: a WebSocket echo and HTTP
// server on each port the config proxies to, whose redirects name the backend's own URL (so
// ProxyPassReverse has something to map), openssl-made certificates for the published host names,
// and a directory of static files where the config serves some.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { randomBytes, sha256, startGateway, type RunningGateway } from '../helpers/harness';

const APPS = path.resolve(__dirname, '../../../test/apps');
const BOUND = { timeout: 60_000 };
/** The published `*:80` and `*:443` virtual hosts get one loopback address each, so both can use port 0. */
const HTTP_ADDR = '127.0.0.1:0';
const HTTPS_ADDR = '127.0.0.2:0';

/** One imitation app: echoes WebSocket messages, answers HTTP, redirects `…/go-login` to its own URL. */
interface AppBackend {
  readonly port: number;
  readonly requests: string[];
  /** The headers of the last plain request. */
  readonly last: { headers: http.IncomingHttpHeaders };
  readonly upgrades: string[];
  close(): Promise<void>;
}

async function startApp(name: string, host: string): Promise<AppBackend> {
  const requests: string[] = [];
  const upgrades: string[] = [];
  const last: AppBackend['last'] = { headers: {} };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(url);
    last.headers = req.headers;
    if (url.endsWith('/go-login')) {
      // What an app behind a proxy does: its own absolute URL in Location, its own host in the cookie.
      res.writeHead(302, {
        Location: `http://${host}:${port}${url.replace(/go-login$/, 'login')}`,
        'Set-Cookie': `sid=1; Domain=${host}; Path=/`,
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    const body = `app:${name} ${req.method} ${url}`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  const wss = new WebSocketServer({ server });
  server.on('upgrade', (req: http.IncomingMessage) => upgrades.push(req.url ?? ''));
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    last,
    upgrades,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let certs: Certs;
let front: CertFiles;
let dhparam: string;

/** A GET on the published host name, over TLS when `secure`. */
function get(port: number, secure: boolean, host: string, urlPath: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const opts = { host: secure ? '127.0.0.2' : '127.0.0.1', port, path: urlPath, headers: { Host: host }, agent: false };
    const cb = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    };
    const req = secure ? https.get({ ...opts, servername: host, ca: certs.ca.pem }, cb) : http.get(opts, cb);
    req.on('error', reject);
  });
}

/** Opens a WebSocket on the published host name, sends 64 KiB and checks the echo's hash. */
async function wsEcho(port: number, secure: boolean, host: string, urlPath: string): Promise<void> {
  const url = `${secure ? 'wss' : 'ws'}://${secure ? '127.0.0.2' : '127.0.0.1'}:${port}${urlPath}`;
  const ws = new WebSocket(url, { headers: { Host: host }, ...(secure ? { servername: host, ca: certs.ca.pem } : {}) });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${urlPath}: upgrade answered ${res.statusCode}`)));
  });
  const data = randomBytes(64 * 1024);
  const [echoed] = (await Promise.all([once(ws, 'message'), ws.send(data)]))[0] as [Buffer];
  assert.equal(sha256(echoed), sha256(data), `${urlPath}: echoed bytes`);
  ws.close();
  await once(ws, 'close');
}

/** What one app's test checks; backend names are the `@NAME_PORT@` placeholders of its config. */
interface AppCase {
  readonly file: string;
  /** wsgate refuses the config: the line of the file it names, and why (docs/behaviour.md says why the refusal is right). */
  readonly refused?: { line: number; message: RegExp };
  readonly host: string;
  /** The backends, each with the host its URL names in the config (its redirects name the same). */
  readonly backends: Record<string, string>;
  /** Whether the app is served by the `@HTTPS_ADDR@` virtual host (else by `@HTTP_ADDR@`). */
  readonly secure: boolean;
  /** WebSocket paths, each with the backend that must see it and the URL it must see. */
  readonly ws: readonly { path: string; backend: string; seen: string | RegExp }[];
  readonly http: { path: string; backend: string; seen: string };
  /** A front path the backend redirects, and the Location the client must get ('unmapped': the backend's own). */
  readonly redirect: { path: string; backend: string; location: string | 'unmapped' };
  /** Cookie domain the client must get in the redirect's Set-Cookie, where the config maps it. */
  readonly cookieDomain?: string;
  /** The port-80 virtual host's answer to `/some/page?x=1`. */
  readonly toHttps?: { status: number; location: string };
  /** Files under DocumentRoot the config serves, by URL path. */
  readonly files?: Record<string, string>;
  /** Headers the backend must get with the plain request. */
  readonly requestHeaders?: Record<string, string>;
  /** Headers every answer on the app's virtual host carries. */
  readonly headers?: Record<string, string>;
}

const CASES: readonly AppCase[] = [
  {
    file: 'jupyterhub.conf',
    host: 'hub.example.org',
    backends: { HUB: '127.0.0.1' },
    secure: true,
    ws: [
      { path: '/user/ann/api/kernels/k1/channels?session_id=s', backend: 'HUB', seen: '/user/ann/api/kernels/k1/channels?session_id=s' },
    ],
    http: { path: '/hub/api', backend: 'HUB', seen: '/hub/api' },
    // RequestHeader set "X-Forwarded-Proto" expr=%{REQUEST_SCHEME}; ProxyPreserveHost on.
    requestHeaders: { 'x-forwarded-proto': 'https', host: 'hub.example.org' },
    redirect: { path: '/hub/go-login', backend: 'HUB', location: 'https://hub.example.org/hub/login' },
    toHttps: { status: 302, location: 'https://hub.example.org/some/page?x=1' },
  },
  {
    file: 'home-assistant.conf',
    host: 'homeassistant.example.com',
    backends: { HASS: 'localhost' },
    secure: true,
    ws: [{ path: '/api/websocket', backend: 'HASS', seen: '/api/websocket' }],
    http: { path: '/lovelace/0', backend: 'HASS', seen: '/lovelace/0' },
    redirect: { path: '/auth/go-login', backend: 'HASS', location: 'https://homeassistant.example.com/auth/login' },
    toHttps: { status: 301, location: 'https://homeassistant.example.com/some/page?x=1' },
  },
  {
    file: 'guacamole.conf',
    host: 'guacamole.example.net',
    backends: { GUAC: 'localhost' },
    secure: false,
    ws: [{ path: '/guacamole/websocket-tunnel?token=T', backend: 'GUAC', seen: '/guacamole/websocket-tunnel?token=T' }],
    http: { path: '/guacamole/api/session', backend: 'GUAC', seen: '/guacamole/api/session' },
    redirect: { path: '/guacamole/go-login', backend: 'GUAC', location: 'http://guacamole.example.net/guacamole/login' },
  },
  {
    file: 'mattermost.conf',
    host: 'mattermost.example.com',
    backends: { MM: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/api/v4/websocket?connection_id=c', backend: 'MM', seen: '/api/v4/websocket?connection_id=c' }],
    http: { path: '/api/v4/system/ping', backend: 'MM', seen: '/api/v4/system/ping' },
    redirect: { path: '/oauth/go-login', backend: 'MM', location: 'https://mattermost.example.com/oauth/login' },
    cookieDomain: 'mattermost.example.com',
    toHttps: { status: 301, location: 'https://mattermost.example.com/some/page?x=1' },
  },
  {
    file: 'code-server.conf',
    host: 'code.example.com',
    backends: { CODE: 'localhost' },
    secure: false,
    ws: [
      {
        path: '/stable-abc?reconnectionToken=r&skipWebSocketFrames=false',
        backend: 'CODE',
        seen: '/stable-abc?reconnectionToken=r&skipWebSocketFrames=false',
      },
    ],
    http: { path: '/static/out/vs/code.js', backend: 'CODE', seen: '/static/out/vs/code.js' },
    redirect: { path: '/go-login', backend: 'CODE', location: 'http://code.example.com/login' },
  },
  {
    file: 'rstudio.conf',
    host: 'rstudio.example.com',
    backends: { RSTUDIO: 'localhost' },
    secure: false,
    ws: [{ path: '/rstudio/p/58fab3e4/websocket/', backend: 'RSTUDIO', seen: '/p/58fab3e4/websocket/' }],
    http: { path: '/rstudio/rpc/client_init', backend: 'RSTUDIO', seen: '/rpc/client_init' },
    redirect: {
      path: '/rstudio/auth-sign-in/go-login',
      backend: 'RSTUDIO',
      location: 'http://rstudio.example.com/rstudio/auth-sign-in/login',
    },
  },
  {
    file: 'rocketchat.conf',
    host: 'chat.example.com',
    backends: { RC: 'localhost' },
    secure: true,
    ws: [{ path: '/websocket', backend: 'RC', seen: '/websocket' }],
    http: { path: '/api/info', backend: 'RC', seen: '/api/info' },
    redirect: { path: '/home/go-login', backend: 'RC', location: 'https://chat.example.com/home/login' },
  },
  {
    file: 'nextcloud.conf',
    // Nextcloud relies on its .htaccess files (AllowOverride All), which wsgate does not read; its next line,
    // Options MultiViews (content negotiation), is refused too.
    refused: { line: 28, message: /AllowOverride All: wsgate does not read \.htaccess files/ },
    host: 'cloud.example.com',
    backends: { PUSH: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/push/ws', backend: 'PUSH', seen: '/ws' }],
    http: { path: '/push/test/cookie', backend: 'PUSH', seen: '/test/cookie' },
    redirect: { path: '/push/go-login', backend: 'PUSH', location: 'https://cloud.example.com/push/login' },
    toHttps: { status: 301, location: 'https://cloud.example.com/some/page?x=1' },
    files: { '/core/img/logo.svg': 'core/img/logo.svg', '/dist/core-main.js': 'dist/core-main.js' },
    headers: { 'strict-transport-security': 'max-age=15552000; includeSubDomains' },
  },
  {
    file: 'zammad.conf',
    host: 'localhost',
    backends: { RAILS: '127.0.0.1', WS: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/ws', backend: 'WS', seen: '/' }],
    http: { path: '/api/v1/getting_started', backend: 'RAILS', seen: '/api/v1/getting_started' },
    // Zammad publishes no ProxyPassReverse.
    redirect: { path: '/go-login', backend: 'RAILS', location: 'unmapped' },
    toHttps: { status: 301, location: 'https://localhost/some/page?x=1' },
    files: { '/assets/application.js': 'assets/application.js', '/robots.txt': 'robots.txt' },
    headers: { 'strict-transport-security': 'max-age=63072000' },
  },
  {
    file: 'socketio.conf',
    host: 'example.com',
    backends: { SIO: 'localhost' },
    secure: false,
    ws: [{ path: '/socket.io/?EIO=4&transport=websocket', backend: 'SIO', seen: '/socket.io/?EIO=4&transport=websocket' }],
    http: { path: '/socket.io/?EIO=4&transport=polling', backend: 'SIO', seen: '/socket.io/?EIO=4&transport=polling' },
    redirect: { path: '/go-login', backend: 'SIO', location: 'unmapped' },
  },
  {
    file: 'etherpad.conf',
    host: 'etherpad.example.org',
    backends: { PAD: 'localhost' },
    secure: false,
    // As in Apache, the <Location /socket.io> rule's "/(.*)" is matched against the proxied request's
    // name "proxy:http://localhost:PORT/socket.io/", so the tunnel goes to the doubled path socket.io accepts.
    ws: [
      {
        path: '/socket.io/?EIO=4&transport=websocket&padId=p',
        backend: 'PAD',
        seen: /^\/socket\.io\/\/localhost:\d+\/socket\.io\/\?EIO=4&transport=websocket&padId=p$/,
      },
    ],
    // The rule's condition fails for the polling transport: the section's http:// ProxyPass serves it.
    http: { path: '/socket.io/?EIO=4&transport=polling', backend: 'PAD', seen: '/socket.io/?EIO=4&transport=polling' },
    redirect: { path: '/p/go-login', backend: 'PAD', location: 'http://etherpad.example.org/p/login' },
  },
  {
    file: 'uptime-kuma.conf',
    host: 'status.example.com',
    backends: { KUMA: 'localhost' },
    secure: true,
    ws: [{ path: '/socket.io/?EIO=4&transport=websocket', backend: 'KUMA', seen: '/socket.io/?EIO=4&transport=websocket' }],
    http: { path: '/dashboard', backend: 'KUMA', seen: '/dashboard' },
    redirect: { path: '/go-login', backend: 'KUMA', location: 'unmapped' },
  },
  {
    file: 'cockpit.conf',
    host: 'cockpit.example.com',
    backends: { COCKPIT: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/cockpit/socket', backend: 'COCKPIT', seen: '/cockpit/socket' }],
    http: { path: '/cockpit/login', backend: 'COCKPIT', seen: '/cockpit/login' },
    redirect: { path: '/system/go-login', backend: 'COCKPIT', location: 'https://cockpit.example.com/system/login' },
    toHttps: { status: 301, location: 'https://cockpit.example.com/some/page?x=1' },
  },
  {
    file: 'wekan.conf',
    host: 'wekan.example.com',
    backends: { WEKAN: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/sockjs/512/abcdefgh/websocket', backend: 'WEKAN', seen: '/sockjs/512/abcdefgh/websocket' }],
    http: { path: '/b/board1', backend: 'WEKAN', seen: '/b/board1' },
    redirect: { path: '/go-login', backend: 'WEKAN', location: 'https://wekan.example.com/login' },
    toHttps: { status: 301, location: 'https://wekan.example.com/some/page?x=1' },
  },
  {
    file: 'debian-default-ssl.conf',
    host: 'localhost',
    backends: { APP: '127.0.0.1' },
    secure: true,
    ws: [{ path: '/app/live', backend: 'APP', seen: '/live' }],
    http: { path: '/app/status', backend: 'APP', seen: '/status' },
    redirect: { path: '/app/go-login', backend: 'APP', location: 'https://localhost/app/login' },
    files: { '/': 'index.html', '/index.html': 'index.html' },
  },
];

before(() => {
  certs = makeCerts();
  const names = [...new Set(CASES.map((c) => c.host))];
  front = certs.issue('apps', [...names, '127.0.0.1', '127.0.0.2']);
  dhparam = path.join(certs.dir, 'dhparam.pem');
  fs.writeFileSync(dhparam, execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048']));
});

/** The config text with its placeholders filled in, and the Listen lines ports.conf would give. */
function fill(text: string, ports: Record<string, number>, docroot: string, logdir: string): string {
  let t = text
    .replaceAll('@HTTP_ADDR@', HTTP_ADDR)
    .replaceAll('@HTTPS_ADDR@', HTTPS_ADDR)
    .replaceAll('@CERT@', front.cert)
    .replaceAll('@KEY@', front.key)
    .replaceAll('@DHPARAM@', dhparam)
    .replaceAll('@DOCROOT@', docroot)
    .replaceAll('@LOGDIR@', logdir)
    .replaceAll('@CERTBOT@', path.join(APPS, 'certbot'));
  for (const [name, port] of Object.entries(ports)) t = t.replaceAll(`@${name}_PORT@`, String(port));
  assert.doesNotMatch(t, /@[A-Z_]+@/, 'every placeholder is filled');
  const listens = [HTTP_ADDR, HTTPS_ADDR].filter((a) => t.includes(a) && !t.includes(`Listen ${a}`)).map((a) => `Listen ${a}\n`);
  return listens.join('') + t;
}

describe('Apache configs published by WebSocket apps (test/apps)', () => {
  test('the directory holds at least ten apps, and each one is tested here', () => {
    const confs = fs.readdirSync(APPS).filter((f) => f.endsWith('.conf'));
    assert.ok(confs.length >= 10, `${confs.length} configs`);
    assert.deepEqual(confs.sort(), CASES.map((c) => c.file).sort());
  });

  for (const c of CASES) {
    test(c.file, BOUND, async () => {
      const text = fs.readFileSync(path.join(APPS, c.file), 'utf8');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-apps-'));
      const docroot = path.join(dir, 'www');
      const logdir = path.join(dir, 'logs');
      fs.mkdirSync(logdir);
      const files = new Map<string, Buffer>();
      for (const rel of new Set(Object.values(c.files ?? {}))) {
        const content = randomBytes(20_000);
        fs.mkdirSync(path.dirname(path.join(docroot, rel)), { recursive: true });
        fs.writeFileSync(path.join(docroot, rel), content);
        files.set(rel, content);
      }
      fs.mkdirSync(docroot, { recursive: true });
      const backends: Record<string, AppBackend> = {};
      for (const [name, host] of Object.entries(c.backends)) backends[name] = await startApp(name, host);
      const ports = Object.fromEntries(Object.entries(backends).map(([n, b]) => [n, b.port]));
      let g: RunningGateway | undefined;
      try {
        const filled = fill(text, ports, docroot, logdir);
        if (c.refused !== undefined) {
          const added = filled.split('\n').length - text.split('\n').length;
          const err = await startGateway(filled).then(
            () => assert.fail('the config loaded'),
            (e: unknown) => e as Error,
          );
          assert.match(err.message, new RegExp(`wsgate\\.conf:${c.refused.line + added}: `));
          assert.match(err.message, c.refused.message);
          return;
        }
        g = await startGateway(filled);
        const httpPort = filled.includes(`Listen ${HTTP_ADDR}`) ? g.ports[0] : undefined;
        const appPort = c.secure ? g.ports[g.ports.length - 1]! : g.ports[0]!;

        for (const w of c.ws) {
          await wsEcho(appPort, c.secure, c.host, w.path);
          const seen = backends[w.backend]!.upgrades.at(-1);
          if (typeof w.seen === 'string') assert.equal(seen, w.seen, `${w.path}: the URL the backend got`);
          else assert.match(seen ?? '', w.seen);
        }

        const plain = await get(appPort, c.secure, c.host, c.http.path);
        assert.equal(plain.status, 200, `${c.http.path}: ${plain.body.toString()}`);
        assert.equal(plain.body.toString(), `app:${c.http.backend} GET ${c.http.seen}`);
        for (const [name, value] of Object.entries(c.headers ?? {})) assert.equal(plain.headers[name], value, name);
        for (const [name, value] of Object.entries(c.requestHeaders ?? {})) {
          assert.equal(backends[c.http.backend]!.last.headers[name], value, `request header ${name}`);
        }

        const r = await get(appPort, c.secure, c.host, c.redirect.path);
        assert.equal(r.status, 302);
        const backend = backends[c.redirect.backend]!;
        const own = `http://${c.backends[c.redirect.backend]}:${backend.port}/`;
        if (c.redirect.location === 'unmapped') assert.ok(r.headers.location?.startsWith(own), r.headers.location);
        else assert.equal(r.headers.location, c.redirect.location);
        if (c.cookieDomain !== undefined) assert.equal(r.headers['set-cookie']?.[0], `sid=1; Domain=${c.cookieDomain}; Path=/`);

        if (c.toHttps !== undefined) {
          assert.ok(httpPort !== undefined, 'the config has a port-80 virtual host');
          const to = await get(httpPort, false, c.host, '/some/page?x=1');
          assert.equal(to.status, c.toHttps.status);
          assert.equal(to.headers.location, c.toHttps.location);
        }

        for (const [urlPath, rel] of Object.entries(c.files ?? {})) {
          const f = await get(appPort, c.secure, c.host, urlPath);
          assert.equal(f.status, 200, urlPath);
          assert.equal(sha256(f.body), sha256(files.get(rel)!), `${urlPath}: served file`);
          for (const b of Object.values(backends)) assert.ok(!b.requests.includes(urlPath), `${urlPath} is not proxied`);
        }
      } finally {
        await g?.stop();
        for (const b of Object.values(backends)) await b.close();
      }
    });
  }
});

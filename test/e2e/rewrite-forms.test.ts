// RewriteRule forms beyond [P,L], each with the line an app publishes: Mattermost's variable right
// after host:port with [P,QSA,L] and its [NC,OR] conditions, Nextcloud's `.well-known` [R=301,L]
// redirects, the http→https pair (`RewriteCond %{HTTPS} off`), `-` with [L], [QSA] on a proxy
// target, [NE], [F] and [G]; rules and conditions inside <Location> (per-directory: after
// ProxyPass; patterns see proxy:URL for a proxied request, else the path below the section).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { h2Connect, h2Request } from '../helpers/h2';
import { closeWs, echo, headerIn, openWs, randomBytes, rawExchange, sha256, startGateway } from '../helpers/harness';

const BOUND = { timeout: 30_000 };

/** An HTTP + WebSocket backend that records request URLs and echoes WebSocket messages. */
async function app(name: string): Promise<{ port: number; seen: string[]; stop(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const body = `${name} ${req.url}`;
    res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    seen.push(`WS ${req.url}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    stop: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const get = (path: string, host = 'example.com'): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
const bodyOf = (data: Buffer): string => data.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');

let certs: Certs;
let front: CertFiles;
before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

test(
  'Mattermost: "RewriteRule .* ws://127.0.0.1:8065%{REQUEST_URI} [P,QSA,L]" with its [NC,OR] conditions; the rest by <Location />',
  BOUND,
  async () => {
    const mm = await app('mm');
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        '<VirtualHost *:*>',
        '  ServerName mattermost.example.com',
        '  ProxyPreserveHost On',
        '  RewriteEngine On',
        '  RewriteCond %{REQUEST_URI} /api/v[0-9]+/(users/)?websocket [NC]',
        '  RewriteCond %{HTTP:UPGRADE} ^WebSocket$ [NC,OR]',
        '  RewriteCond %{HTTP:CONNECTION} ^Upgrade$ [NC]',
        `  RewriteRule .* ws://127.0.0.1:${mm.port}%{REQUEST_URI} [P,QSA,L]`,
        '  <Location />',
        `    ProxyPass http://127.0.0.1:${mm.port}/`,
        `    ProxyPassReverse http://127.0.0.1:${mm.port}/`,
        '    ProxyPassReverseCookieDomain 127.0.0.1 mattermost.example.com',
        '  </Location>',
        '</VirtualHost>',
        '',
      ].join('\n'),
    );
    try {
      const ws = await openWs(`ws://127.0.0.1:${g.port}/api/v4/websocket?connection_id=abc&sequence_number=0`);
      const payload = randomBytes(50_000);
      const back = await echo(ws, payload);
      assert.equal(sha256(back.data), sha256(payload), 'the tunnel carries the bytes unchanged');
      await closeWs(ws);
      assert.equal(mm.seen[0], 'WS /api/v4/websocket?connection_id=abc&sequence_number=0', 'path from %{REQUEST_URI}, query kept by [QSA]');

      const page = await rawExchange(g.port, get('/login?redirect_to=%2F', 'mattermost.example.com'));
      assert.equal(page.status, 200);
      assert.equal(bodyOf(page.data), 'mm /login?redirect_to=%2F', 'a plain request is not taken by the rule: <Location /> proxies it');
    } finally {
      await g.stop();
      await mm.stop();
    }
  },
);

test('Nextcloud ".well-known" [R=301,L], "-" with [L], [QSA] and [NE], [F] and [G]', BOUND, async () => {
  const b = await app('b');
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'RewriteEngine On',
      'RewriteRule ^/\\.well-known/carddav /remote.php/dav [R=301,L]',
      'RewriteRule ^/\\.well-known/caldav /remote.php/dav [R=301,L]',
      'RewriteRule ^/static - [L]',
      `RewriteRule ^/q/(.*) http://127.0.0.1:${b.port}/search?term=$1 [P,QSA]`,
      'RewriteRule ^/anchor$ /page#section [R,NE,L]',
      'RewriteRule ^/escaped$ /page#section [R,L]',
      'RewriteRule ^/secret - [F]',
      'RewriteRule ^/old-api - [G,NC]',
      `RewriteRule ^/(.*) http://127.0.0.1:${b.port}/app/$1 [P]`,
      `ProxyPass /static http://127.0.0.1:${b.port}/files`,
      '',
    ].join('\n'),
  );
  try {
    const dav = await rawExchange(g.port, get('/.well-known/carddav', 'cloud.example:8443'));
    assert.equal(dav.status, 301);
    assert.equal(headerIn(dav.head, 'location'), 'http://cloud.example:8443/remote.php/dav');
    const cal = await rawExchange(g.port, get('/.well-known/caldav?x=1', 'cloud.example'));
    assert.equal(headerIn(cal.head, 'location'), 'http://cloud.example/remote.php/dav?x=1', 'the request query goes along');

    const stat = await rawExchange(g.port, get('/static/a.css'));
    assert.equal(bodyOf(stat.data), 'b /files/a.css', '"-" [L] stops rewriting: ProxyPass decides');

    const q = await rawExchange(g.port, get('/q/cats?page=2'));
    assert.equal(bodyOf(q.data), 'b /search?term=cats&page=2', '[QSA]: the substitution query, then the request one');
    const q2 = await rawExchange(g.port, get('/q/dogs'));
    assert.equal(bodyOf(q2.data), 'b /search?term=dogs');

    const ne = await rawExchange(g.port, get('/anchor'));
    assert.equal(headerIn(ne.head, 'location'), 'http://example.com/page#section', '[NE]: not escaped');
    const esc = await rawExchange(g.port, get('/escaped'));
    assert.equal(headerIn(esc.head, 'location'), 'http://example.com/page%23section', 'without [NE] the # is escaped, as mod_rewrite');

    assert.equal((await rawExchange(g.port, get('/secret/x'))).status, 403);
    assert.equal((await rawExchange(g.port, get('/old-api/v1'))).status, 410);
    assert.equal((await rawExchange(g.port, get('/OLD-API/v1'))).status, 410, '[NC] on the rule');

    const rest = await rawExchange(g.port, get('/x/y?z=1'));
    assert.equal(bodyOf(rest.data), 'b /app/x/y?z=1', 'a rule without [L] is still final with [P]');
    assert.ok(
      !b.seen.some((l) => l.includes('secret') || l.includes('old-api') || l.includes('well-known')),
      'refused and redirected requests never reached the backend',
    );
  } finally {
    await g.stop();
    await b.stop();
  }
});

test(
  'http→https: "RewriteCond %{HTTPS} off" + "RewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]"; the TLS port is proxied',
  BOUND,
  async () => {
    const b = await app('b');
    // The same virtual host on a plain port and, with SSLEngine on, on a TLS one (a port speaks TLS
    // when its server has SSLEngine on, so each port gets its own gateway here: test ports are 0).
    const vhost = (tls: boolean): string[] => [
      '<VirtualHost 127.0.0.1:*>',
      '  RewriteEngine On',
      '  RewriteCond %{HTTPS} off',
      '  RewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]',
      ...(tls ? ['  SSLEngine on'] : []),
      `  ProxyPass / http://127.0.0.1:${b.port}/`,
      '</VirtualHost>',
      '',
    ];
    const plain = await startGateway(['Listen 127.0.0.1:0', ...vhost(false)].join('\n'));
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0 https',
        `SSLCertificateFile ${front.cert}`,
        `SSLCertificateKeyFile ${front.key}`,
        'Protocols h2 http/1.1',
        ...vhost(true),
      ].join('\n'),
    );
    try {
      const r = await rawExchange(plain.port, get('/a%20b/c?x=1&y=%2F', 'example.com'));
      assert.equal(r.status, 301);
      assert.equal(headerIn(r.head, 'location'), 'https://example.com/a%20b/c?x=1&y=%2F');
      assert.equal(b.seen.length, 0);

      const session = await h2Connect(g.port, certs.ca.pem);
      try {
        const res = await h2Request(session, { ':method': 'GET', ':path': '/a?b=c', ':authority': 'example.com' });
        assert.equal(res.headers[':status'], 200, '%{HTTPS} is on over TLS: no redirect');
        assert.equal(res.body.toString(), 'b /a?b=c');
      } finally {
        session.close();
      }
    } finally {
      await plain.stop();
      await g.stop();
      await b.stop();
    }
  },
);

test(
  'rules inside <Location> (per-directory, after ProxyPass): a proxied request is matched as proxy:URL, as Apache; another on the path below the section',
  BOUND,
  async () => {
    const b = await app('b');
    const w = await app('w');
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        `ProxyPass /files/ !`,
        `ProxyPass / http://127.0.0.1:${b.port}/`,
        '<Location /app/>',
        '  RewriteEngine On',
        '  RewriteCond %{HTTP:Upgrade} =websocket [NC]',
        `  RewriteRule ^proxy:http://127\\.0\\.0\\.1:\\d+/app/socket(.*) ws://127.0.0.1:${w.port}/ws$1 [P,L]`,
        '  RewriteRule ^socket - [F]',
        '  RewriteRule \\.php$ - [F]',
        '</Location>',
        // Etherpad's published form: the pattern finds the first "/" of "proxy:http://…".
        '<Location /pad>',
        `  ProxyPass http://127.0.0.1:${b.port}/pad`,
        '  RewriteEngine On',
        '  RewriteCond %{QUERY_STRING} transport=websocket [NC]',
        `  RewriteRule /(.*) ws://127.0.0.1:${w.port}/pad/$1 [P,L]`,
        '</Location>',
        '<Location /files/>',
        '  RewriteEngine On',
        '  RewriteRule ^old$ new [R=301,L]',
        '</Location>',
        '<Location /off/>',
        '  RewriteRule ^ https://elsewhere.test/ [R]',
        '</Location>',
        '',
      ].join('\n'),
    );
    try {
      const old = await rawExchange(g.port, get('/files/old?k=v', 'front.test:8080'));
      assert.equal(old.status, 301);
      assert.equal(headerIn(old.head, 'location'), 'http://front.test:8080/files/new?k=v', 'a relative target is below the section');
      assert.equal((await rawExchange(g.port, get('/app/x/index.php'))).status, 403);
      const page = await rawExchange(g.port, get('/app/socket/page'));
      assert.equal(bodyOf(page.data), 'b /app/socket/page', 'no rule decides ("^socket" never matches a proxy: name): ProxyPass does');

      const ws = await openWs(`ws://127.0.0.1:${g.port}/app/socket/room?id=7`);
      const payload = randomBytes(20_000);
      assert.equal(sha256((await echo(ws, payload)).data), sha256(payload));
      await closeWs(ws);
      assert.deepEqual(w.seen, ['WS /ws/room?id=7'], 'the section rule proxied the upgrade, not ProxyPass');

      const pad = await openWs(`ws://127.0.0.1:${g.port}/pad/?EIO=4&transport=websocket`);
      assert.equal(sha256((await echo(pad, payload)).data), sha256(payload));
      await closeWs(pad);
      assert.equal(w.seen[1], `WS /pad//127.0.0.1:${b.port}/pad/?EIO=4&transport=websocket`, '$1 holds the rest of proxy:http://…/pad/');
      const polling = await rawExchange(g.port, get('/pad/?EIO=4&transport=polling'));
      assert.equal(bodyOf(polling.data), 'b /pad/?EIO=4&transport=polling', 'its condition fails: the section ProxyPass serves it');
      assert.equal(w.seen.length, 2);

      const off = await rawExchange(g.port, get('/off/x'));
      assert.equal(bodyOf(off.data), 'b /off/x', 'no RewriteEngine On in the section or the server: its rules do nothing');
    } finally {
      await g.stop();
      await b.stop();
      await w.stop();
    }
  },
);

test(
  'certbot\'s redirect: "RewriteCond %{SERVER_NAME} =example.com" + "RewriteRule ^ https://%{SERVER_NAME}%{REQUEST_URI} [END,NE,R=permanent]"',
  BOUND,
  async () => {
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        '<VirtualHost *:*>',
        '  ServerName example.com',
        '  RewriteEngine on',
        '  RewriteCond %{SERVER_NAME} =example.com',
        '  RewriteRule ^ https://%{SERVER_NAME}%{REQUEST_URI} [END,NE,R=permanent]',
        '</VirtualHost>',
        '',
      ].join('\n'),
    );
    try {
      const r = await rawExchange(g.port, get('/account/?next=%2Fhome', 'example.com'));
      assert.equal(r.status, 301);
      assert.equal(headerIn(r.head, 'location'), 'https://example.com/account/?next=%2Fhome');
      const other = await rawExchange(g.port, get('/x', 'www.example.com'));
      assert.equal(other.status, 404, 'another name: the condition fails and nothing proxies /x');
      // [NE] leaves the decoded path as it is: a CR LF in it must not become a header.
      const evil = await rawExchange(g.port, get('/a%0d%0aSet-Cookie:%20x=1', 'example.com'));
      assert.equal(evil.status, 500, 'answered 500, as Apache refuses a header value with controls');
      assert.equal(headerIn(evil.head, 'set-cookie'), undefined);
    } finally {
      await g.stop();
    }
  },
);

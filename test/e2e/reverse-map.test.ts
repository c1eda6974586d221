// ProxyPassReverse, ProxyPassReverseCookiePath and ProxyPassReverseCookieDomain on the wire, with
// the lines apps publish (RStudio, code-server): a backend naming itself in Location,
// Content-Location, URI and Set-Cookie is seen by the client under the front's name, on HTTP/1.1
// (plain and TLS), HTTP/2, and a refused upgrade answered through the native front.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { before, test } from 'node:test';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { expectError, load } from '../config/helpers';
import { h2Connect, h2Request } from '../helpers/h2';
import { headComplete, headerIn, rawExchange, startGateway } from '../helpers/harness';
import { upgradeRequest } from '../helpers/edges';

const BOUND = { timeout: 30_000 };

/** A backend that answers `GET /go?to=X` with 302 Location X, and `/cookie?c=V` with Set-Cookie V; any answer carries Content-Location/URI from `cl`/`uri`. */
async function appBackend(): Promise<{ port: number; seen: string[]; stop(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const u = new URL(req.url ?? '/', 'http://x');
    const headers: http.OutgoingHttpHeaders = { 'Content-Length': 2 };
    const to = u.searchParams.get('to');
    const cookies = u.searchParams.getAll('c');
    if (cookies.length > 0) headers['Set-Cookie'] = cookies;
    if (u.searchParams.has('cl')) headers['Content-Location'] = u.searchParams.get('cl')!;
    if (u.searchParams.has('uri')) headers.URI = u.searchParams.get('uri')!;
    if (to !== null) headers.Location = to;
    res.writeHead(to !== null ? 302 : 200, headers);
    res.end('ok');
  });
  server.on('upgrade', (req, socket) => {
    // A WebSocket app that wants a login first: a redirect instead of a 101.
    seen.push(`upgrade ${req.url ?? ''}`);
    socket.end(
      `HTTP/1.1 302 Found\r\nLocation: http://localhost:${(server.address() as AddressInfo).port}/login\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function get(path: string, host: string | undefined = 'front.example:8080'): string {
  return `GET ${path} HTTP/1.1\r\n${host !== undefined ? `Host: ${host}\r\n` : ''}Connection: close\r\n\r\n`;
}

const q = (v: string): string => encodeURIComponent(v);

let certs: Certs;
let front: CertFiles;
before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

test('RStudio: "ProxyPassReverse /rstudio/ http://localhost:8787/" maps the login redirect to the front URL', BOUND, async () => {
  const b = await appBackend();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `ProxyPass /rstudio/ http://127.0.0.1:${b.port}/`,
      `ProxyPassReverse /rstudio/ http://localhost:${b.port}/`,
      '',
    ].join('\n'),
  );
  try {
    const loc = `http://localhost:${b.port}/login`;
    const r = await rawExchange(g.port, get(`/rstudio/auth?to=${q(loc)}`));
    assert.equal(r.status, 302);
    assert.equal(headerIn(r.head, 'location'), 'http://front.example:8080/rstudio/login');
    assert.equal(b.seen[0], `/auth?to=${q(loc)}`, 'the request went to the backend');

    // Host without a port: the scheme's default port is left out; the host is lower-cased.
    const r2 = await rawExchange(g.port, get(`/rstudio/x?to=${q(loc + '?next=%2F')}`, 'Front.Example'));
    assert.equal(headerIn(r2.head, 'location'), 'http://front.example/rstudio/login?next=%2F');

    // The backend URL compares without case; other hosts and schemes are left alone.
    const upper = `HTTP://LOCALHOST:${b.port}/Login`;
    assert.equal(
      headerIn((await rawExchange(g.port, get(`/rstudio/x?to=${q(upper)}`))).head, 'location'),
      'http://front.example:8080/rstudio/Login',
    );
    const other = 'http://elsewhere.test/login';
    assert.equal(headerIn((await rawExchange(g.port, get(`/rstudio/x?to=${q(other)}`))).head, 'location'), other);

    // Content-Location and URI are mapped too.
    const r3 = await rawExchange(
      g.port,
      get(`/rstudio/x?cl=${q(`http://localhost:${b.port}/doc/1`)}&uri=${q(`http://localhost:${b.port}/u`)}`),
    );
    assert.equal(r3.status, 200);
    assert.equal(headerIn(r3.head, 'content-location'), 'http://front.example:8080/rstudio/doc/1');
    assert.equal(headerIn(r3.head, 'uri'), 'http://front.example:8080/rstudio/u');
  } finally {
    await g.stop();
    await b.stop();
  }
});

test(
  'code-server: "ProxyPassReverse / http://localhost:8080/", a path rule, and the refused upgrade of the native front',
  BOUND,
  async () => {
    const b = await appBackend();
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        '<VirtualHost *:*>',
        '  ServerName mydomain.com',
        '  ProxyRequests off',
        `  ProxyPass /ws/ ws://127.0.0.1:${b.port}/ws/`,
        `  ProxyPass / http://127.0.0.1:${b.port}/ nocanon`,
        `  ProxyPassReverse / http://localhost:${b.port}/`,
        '  ProxyPassReverse /app/ /',
        '</VirtualHost>',
        '',
      ].join('\n'),
    );
    try {
      const r = await rawExchange(g.port, get(`/x?to=${q(`http://localhost:${b.port}/login/`)}`, 'mydomain.com'));
      assert.equal(headerIn(r.head, 'location'), 'http://mydomain.com/login/');

      // A relative Location is compared as a path by a path rule ("/" matches every path): prefixed with the front.
      const rel = await rawExchange(g.port, get(`/x?to=${q('/y?z=1')}`, 'mydomain.com'));
      assert.equal(headerIn(rel.head, 'location'), 'http://mydomain.com/app/y?z=1');

      // An upgrade the backend answers with a redirect: the non-101 answer is mapped as well.
      const up = await rawExchange(g.port, upgradeRequest('/ws/chat').replace('Host: gw.test', 'Host: mydomain.com:8443'), headComplete);
      up.socket.destroy();
      assert.equal(up.status, 302);
      assert.equal(headerIn(up.head, 'location'), 'http://mydomain.com:8443/login');
      assert.equal(b.seen.at(-1), 'upgrade /ws/chat');
    } finally {
      await g.stop();
      await b.stop();
    }
  },
);

test('cookies: ProxyPassReverseCookiePath and ProxyPassReverseCookieDomain replace path= and domain=', BOUND, async () => {
  const b = await appBackend();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `ProxyPass /rstudio/ http://127.0.0.1:${b.port}/`,
      `ProxyPassReverse /rstudio/ http://localhost:${b.port}/`,
      'ProxyPassReverseCookiePath / /rstudio',
      'ProxyPassReverseCookieDomain localhost front.example',
      '',
    ].join('\n'),
  );
  try {
    const r = await rawExchange(
      g.port,
      get(`/rstudio/s?c=${q('sid=abc; Path=/; Domain=localhost; HttpOnly')}&c=${q('csrf=1;path=/auth ;secure')}&c=${q('plain=1')}`),
    );
    assert.equal(r.status, 200);
    const cookies = r.head
      .split('\r\n')
      .filter((l) => l.toLowerCase().startsWith('set-cookie:'))
      .map((l) => l.slice(12));
    assert.deepEqual(cookies, ['sid=abc; Path=/rstudio; Domain=front.example; HttpOnly', 'csrf=1;path=/rstudio;secure', 'plain=1']);
  } finally {
    await g.stop();
    await b.stop();
  }
});

test("<Location> one-argument form, and a balancer: each member's URL maps to the front", BOUND, async () => {
  const a = await appBackend();
  const c = await appBackend();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Proxy balancer://x>',
      `  BalancerMember http://127.0.0.1:${a.port}`,
      `  BalancerMember http://127.0.0.1:${c.port}`,
      '</Proxy>',
      '<Location /app/>',
      `  ProxyPass http://127.0.0.1:${a.port}/`,
      `  ProxyPassReverse http://localhost:${a.port}/`,
      '</Location>',
      'ProxyPass / balancer://x/',
      'ProxyPassReverse / balancer://x/',
      '',
    ].join('\n'),
  );
  try {
    const inLoc = await rawExchange(g.port, get(`/app/p?to=${q(`http://localhost:${a.port}/next`)}`));
    assert.equal(headerIn(inLoc.head, 'location'), 'http://front.example:8080/app/next');
    // Server-level rules come first (Apache merges them before the sections): a member's own URL
    // under /app/ is mapped by the balancer rule.
    const member = await rawExchange(g.port, get(`/app/p?to=${q(`http://127.0.0.1:${a.port}/next`)}`));
    assert.equal(headerIn(member.head, 'location'), 'http://front.example:8080/next');
    for (const m of [a, c]) {
      const r = await rawExchange(g.port, get(`/b?to=${q(`http://127.0.0.1:${m.port}/dash/`)}`));
      assert.equal(r.status, 302);
      assert.equal(headerIn(r.head, 'location'), 'http://front.example:8080/dash/', `member ${m.port}`);
    }
    // Outside /app/ the <Location> rule does not apply.
    const out = await rawExchange(g.port, get(`/other?to=${q(`http://localhost:${a.port}/z`)}`));
    assert.equal(headerIn(out.head, 'location'), `http://localhost:${a.port}/z`);
    assert.ok(a.seen.length + c.seen.length >= 4);
  } finally {
    await g.stop();
    await a.stop();
    await c.stop();
  }
});

test('TLS and HTTP/2 fronts: the mapped Location is https; UseCanonicalName On names the ServerName', BOUND, async () => {
  const b = await appBackend();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0 https',
      'SSLEngine on',
      `SSLCertificateFile ${front.cert}`,
      `SSLCertificateKeyFile ${front.key}`,
      'Protocols h2 http/1.1',
      `ProxyPass / http://127.0.0.1:${b.port}/`,
      `ProxyPassReverse / http://localhost:${b.port}/`,
      '',
    ].join('\n'),
  );
  const canonical = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'ServerName canon.example:8443',
      'UseCanonicalName On',
      `ProxyPass / http://127.0.0.1:${b.port}/`,
      `ProxyPassReverse / http://localhost:${b.port}/`,
      '',
    ].join('\n'),
  );
  try {
    const loc = q(`http://localhost:${b.port}/in`);
    const s = tls.connect({ port: g.ports[0]!, host: '127.0.0.1', ca: certs.ca.pem, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    s.write(get(`/x?to=${loc}`, 'secure.example'));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    await once(s, 'end');
    s.destroy();
    assert.equal(headerIn(Buffer.concat(chunks).toString('latin1'), 'location'), 'https://secure.example/in');

    const session = await h2Connect(g.ports[0]!, certs.ca.pem);
    try {
      const r = await h2Request(session, { ':method': 'GET', ':path': `/x?to=${loc}`, ':authority': 'h2.example:9443' });
      assert.equal(r.headers[':status'], 302);
      assert.equal(r.headers.location, 'https://h2.example:9443/in');
    } finally {
      session.close();
    }

    const canon = await rawExchange(canonical.port, get(`/x?to=${loc}`, 'whatever.example'));
    assert.equal(headerIn(canon.head, 'location'), 'http://canon.example:8443/in');
  } finally {
    await g.stop();
    await canonical.stop();
    await b.stop();
  }
});

test('ProxyPassReverse forms Apache refuses, and interpolate, are FILE:LINE errors', () => {
  expectError(
    { 'wsgate.conf': 'Listen 0\nProxyPassReverse http://h/\n' },
    { line: 2, message: /ProxyPassReverse needs a path when not written in a <Location>/ },
  );
  expectError(
    { 'wsgate.conf': 'Listen 0\n<Location /a/>\nProxyPassReverse /a/ http://h/\n</Location>\n' },
    { line: 3, message: /ProxyPassReverse cannot have a path when written in a <Location>/ },
  );
  expectError(
    { 'wsgate.conf': 'Listen 0\nProxyPassReverse / http://h/ interpolate\n' },
    { line: 2, message: /interpolate.*not supported/ },
  );
  expectError(
    { 'wsgate.conf': 'Listen 0\nProxyPassReverseCookiePath /\n' },
    { line: 2, message: /ProxyPassReverseCookiePath takes 2 to 3 arguments/ },
  );
  expectError(
    { 'wsgate.conf': 'Listen 0\n<LocationMatch ^/a>\nProxyPassReverse http://h/\n</LocationMatch>\n' },
    { line: 3, message: /ProxyPassReverse inside <LocationMatch>/ },
  );
  expectError({ 'wsgate.conf': 'Listen 0\nUseCanonicalName DNS\n' }, { line: 2, message: /UseCanonicalName DNS is not supported/ });
  const { config } = load({ 'wsgate.conf': 'Listen 0\nProxyPassReverse / http://h/\nProxyPassReverseCookieDomain h front\n' });
  assert.equal(config.mainServer.reverse?.location[0]?.backend, 'http://h/');
  assert.equal(config.mainServer.reverse?.cookieDomain[0]?.front, 'front');
  assert.deepEqual(config.notices, []);
});

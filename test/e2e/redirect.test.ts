// mod_alias redirects on the wire: the port-80 virtual host of nearly every TLS config
// (`Redirect permanent / https://example.com/`), the order against ProxyPass (mod_proxy
// translates first; a <Location>'s Redirect applies in fixups, proxied or not), status names and
// numbers, RedirectMatch, RedirectPermanent/RedirectTemp, the query string, HTTP/2, and the forms
// Apache refuses.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as tls from 'node:tls';
import { before, test } from 'node:test';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { expectError } from '../config/helpers';
import { upgradeRequest } from '../helpers/edges';
import { h2Connect, h2Request } from '../helpers/h2';
import { headComplete, headerIn, rawExchange, startGateway, startPlainBackend } from '../helpers/harness';

const BOUND = { timeout: 30_000 };

const get = (path: string, host = 'example.com'): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;

let certs: Certs;
let front: CertFiles;
before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
});

test('the port-80 virtual host: "Redirect permanent / https://example.com/" (path and query kept, upgrades too)', BOUND, async () => {
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<VirtualHost *:*>',
      '    ServerName example.com',
      '    Redirect permanent / https://example.com/',
      '</VirtualHost>',
      '',
    ].join('\n'),
  );
  try {
    const r = await rawExchange(g.port, get('/some/page?x=1&y=%20'));
    assert.equal(r.status, 301);
    assert.equal(headerIn(r.head, 'location'), 'https://example.com/some/page?x=1&y=%20');
    const root = await rawExchange(g.port, get('/'));
    assert.equal(headerIn(root.head, 'location'), 'https://example.com/');
    // The path is escaped as mod_alias does; the request's decoded path is what matched.
    const spaced = await rawExchange(g.port, get('/a%20b/c'));
    assert.equal(headerIn(spaced.head, 'location'), 'https://example.com/a%20b/c');
    // A WebSocket handshake on the plain port is redirected too (the native front hands it over).
    const up = await rawExchange(g.port, upgradeRequest('/ws').replace('gw.test', 'example.com'), headComplete);
    up.socket.destroy();
    assert.equal(up.status, 301);
    assert.equal(headerIn(up.head, 'location'), 'https://example.com/ws');
    await g.waitForLog(/request not proxied.*301.*redirected by .*wsgate\.conf:4/);
    // `curl -I`: a HEAD gets the same head without a body, so the next request on the connection reads cleanly.
    const both = await rawExchange(
      g.port,
      'HEAD /h HTTP/1.1\r\nHost: example.com\r\n\r\nGET /g HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
    );
    const text = both.data.toString('latin1');
    const second = text.indexOf('HTTP/1.1 301', 1);
    assert.ok(second > 0, 'two answers');
    assert.ok(text.slice(0, second).endsWith('\r\n\r\n'), "nothing after the HEAD answer's head");
    assert.equal(headerIn(text.slice(0, second), 'location'), 'https://example.com/h');
    assert.equal(headerIn(text.slice(second), 'location'), 'https://example.com/g');
  } finally {
    await g.stop();
  }
});

test('the usual pair: a port-80 virtual host redirecting to https, the TLS one proxying', BOUND, async () => {
  const b = await startPlainBackend();
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      'Listen 127.0.0.2:0 https',
      '<VirtualHost 127.0.0.1:*>',
      '    ServerName example.com',
      '    Redirect permanent / https://example.com/',
      '</VirtualHost>',
      '<VirtualHost 127.0.0.2:*>',
      '    ServerName example.com',
      '    SSLEngine on',
      `    SSLCertificateFile ${front.cert}`,
      `    SSLCertificateKeyFile ${front.key}`,
      `    ProxyPass / http://127.0.0.1:${b.port}/`,
      `    ProxyPassReverse / http://127.0.0.1:${b.port}/`,
      '</VirtualHost>',
      '',
    ].join('\n'),
  );
  try {
    const r = await rawExchange(g.ports[0]!, get('/app/?tab=1'));
    assert.equal(r.status, 301);
    assert.equal(headerIn(r.head, 'location'), 'https://example.com/app/?tab=1');
    const s = tls.connect({ port: g.ports[1]!, host: '127.0.0.2', ca: certs.ca.pem, servername: 'localhost' });
    await once(s, 'secureConnect');
    s.write(get('/app/?tab=1'));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    await once(s, 'end');
    s.destroy();
    const text = Buffer.concat(chunks).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(text.endsWith('\r\n\r\nbackend'));
    assert.deepEqual(b.seen, ['/app/?tab=1']);
  } finally {
    await g.stop();
    await b.stop();
  }
});

test(
  'ProxyPass translates first: "ProxyPass /" wins over "Redirect /old /new"; "ProxyPass /old !" lets it apply; a <Location> Redirect applies anyway',
  BOUND,
  async () => {
    const b = await startPlainBackend();
    const g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        'ServerName named.example',
        'ProxyPass /kept !',
        `ProxyPass / http://127.0.0.1:${b.port}/`,
        'Redirect /old /new',
        'Redirect /kept http://elsewhere.test/kept',
        '<Location /moved>',
        '  Redirect permanent /moved-here',
        '</Location>',
        '<Location /gone>',
        '  Redirect gone',
        '</Location>',
        '',
      ].join('\n'),
    );
    try {
      const proxied = await rawExchange(g.port, get('/old/x'));
      assert.equal(proxied.status, 200);
      assert.deepEqual(b.seen, ['/old/x']);

      const kept = await rawExchange(g.port, get('/kept/a?q=1'));
      assert.equal(kept.status, 302);
      assert.equal(headerIn(kept.head, 'location'), 'http://elsewhere.test/kept/a?q=1');

      const moved = await rawExchange(g.port, get('/moved/deep?z', 'front.test:8080'));
      assert.equal(moved.status, 301);
      assert.equal(
        headerIn(moved.head, 'location'),
        'http://front.test:8080/moved-here?z',
        'a path target gets the front URL; only the query goes along',
      );
      // A Host that is not a host name never reaches a Location: the request is refused first (400, as Apache).
      const odd = await rawExchange(g.port, get('/moved', 'evil.example/phish'));
      assert.equal(odd.status, 400);
      assert.equal(headerIn(odd.head, 'location'), undefined);

      const gone = await rawExchange(g.port, get('/gone'));
      assert.equal(gone.status, 410);
      assert.equal(headerIn(gone.head, 'location'), undefined);
      assert.deepEqual(b.seen, ['/old/x'], 'nothing else reached the backend');
    } finally {
      await g.stop();
      await b.stop();
    }
  },
);

test('status names and numbers, RedirectMatch, RedirectPermanent, RedirectTemp; HTTP/2 front', BOUND, async () => {
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0 https',
      'SSLEngine on',
      `SSLCertificateFile ${front.cert}`,
      `SSLCertificateKeyFile ${front.key}`,
      'Protocols h2 http/1.1',
      'Redirect seeother /see https://other.test/see',
      'Redirect 307 /t307 https://other.test/t',
      'Redirect 308 "/t308" "https://other.test/p"',
      'Redirect temp /tmp /local/tmp',
      'Redirect 404 /nothing',
      'RedirectMatch "^/img/(.*)\\.jpg$" "https://img.example.com/$1.png"',
      'RedirectMatch permanent "^/docs/(.*)$" "/manual/$1?from=docs"',
      'RedirectPermanent /perm https://other.test/perm',
      'RedirectTemp /temp https://other.test/temp',
      '',
    ].join('\n'),
  );
  try {
    const session = await h2Connect(g.port, certs.ca.pem);
    try {
      const ask = async (path: string): Promise<[unknown, unknown]> => {
        const r = await h2Request(session, { ':method': 'GET', ':path': path, ':authority': 'front.example' });
        return [r.headers[':status'], r.headers.location];
      };
      assert.deepEqual(await ask('/see/x'), [303, 'https://other.test/see/x']);
      assert.deepEqual(await ask('/t307'), [307, 'https://other.test/t']);
      assert.deepEqual(await ask('/t308/a?b=c'), [308, 'https://other.test/p/a?b=c']);
      assert.deepEqual(await ask('/tmp/f'), [302, 'https://front.example/local/tmp/f']);
      assert.deepEqual(await ask('/nothing/here'), [404, undefined]);
      assert.deepEqual(await ask('/img/cat.jpg?v=2'), [302, 'https://img.example.com/cat.png?v=2']);
      assert.deepEqual(
        await ask('/docs/a%20b?ignored=1'),
        [301, 'https://front.example/manual/a%20b?from=docs'],
        'the target has its own query',
      );
      assert.deepEqual(await ask('/perm'), [301, 'https://other.test/perm']);
      assert.deepEqual(await ask('/temp'), [302, 'https://other.test/temp']);
      assert.deepEqual(await ask('/permanent'), [404, undefined], '/perm does not match /permanent');
    } finally {
      session.close();
    }
  } finally {
    await g.stop();
  }
});

test('Redirect forms Apache refuses are FILE:LINE errors', () => {
  expectError({ 'wsgate.conf': 'Listen 0\nRedirect /x\n' }, { line: 2, message: /Redirect: the URL to redirect to is missing/ });
  expectError({ 'wsgate.conf': 'Listen 0\nRedirect gone /x http://y/\n' }, { line: 2, message: /a URL is not valid with status 410/ });
  expectError({ 'wsgate.conf': 'Listen 0\nRedirect foo /a /b\n' }, { line: 2, message: /invalid first argument/ });
  expectError({ 'wsgate.conf': 'Listen 0\nRedirect /a relative/b\n' }, { line: 2, message: /not a URL or an absolute path/ });
  expectError(
    { 'wsgate.conf': 'Listen 0\n<Location /a>\nRedirect "https://%{HTTP_HOST}/"\n</Location>\n' },
    { line: 3, message: /expression target/ },
  );
  expectError({ 'wsgate.conf': 'Listen 0\nRedirectPermanent /a\n' }, { line: 2, message: /RedirectPermanent takes 2 arguments/ });
});

// Static files (DocumentRoot, Alias, <Directory>, DirectoryIndex, DirectorySlash) for the paths
// no ProxyPass takes, on the wire over HTTP/1.1 and HTTP/2: the configs WebSocket apps publish
// (a backend for the app and its socket, files for /static), HEAD, Range, conditional requests,
// access control by <Directory> and <Location>, and path traversal attempts.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { expectError, load } from '../config/helpers';
import { randomBytes, rawExchange, sha256, startGateway, startPlainBackend } from '../helpers/harness';

const BOUND = { timeout: 60_000 };
const SECRET = 'SECRET-OUTSIDE-THE-ROOT';

interface Tree {
  dir: string;
  root: string;
  app: Buffer;
}

/** A root with hashed content, an index, a private dir, a .htpasswd, and a secret beside the root with links to it. */
function makeTree(): Tree {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-static-'));
  const root = path.join(dir, 'www');
  fs.mkdirSync(path.join(root, 'static', 'docs'), { recursive: true });
  fs.mkdirSync(path.join(root, 'static', 'empty'), { recursive: true });
  fs.mkdirSync(path.join(root, 'private'), { recursive: true });
  const app = randomBytes(300_000);
  fs.writeFileSync(path.join(root, 'static', 'app.js'), app);
  fs.writeFileSync(path.join(root, 'static', 'docs', 'index.html'), '<h1>docs</h1>');
  fs.writeFileSync(path.join(root, 'private', 'p.txt'), 'private');
  fs.writeFileSync(path.join(root, 'static', '.htpasswd'), `user:${SECRET}`);
  fs.writeFileSync(path.join(root, 'static', 'inside.txt'), 'inside');
  fs.writeFileSync(path.join(dir, 'secret.txt'), SECRET);
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'static', 'out.txt'));
  fs.symlinkSync(dir, path.join(root, 'static', 'updir'));
  fs.symlinkSync(path.join(root, 'static', 'inside.txt'), path.join(root, 'static', 'in-link.txt'));
  return { dir, root, app };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, p: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET', agent?: http.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, ...(agent ? { agent } : {}) }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function h2(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): Promise<Answer & { h: http2.IncomingHttpHeaders }> {
  const stream = session.request(headers, { endStream: true });
  const [h] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  const parts: Buffer[] = [];
  stream.on('data', (c: Buffer) => parts.push(c));
  await once(stream, 'end');
  return { status: Number(h[':status']), headers: h as http.IncomingHttpHeaders, h, body: Buffer.concat(parts) };
}

function publishedConfig(t: Tree, backendPort: number, extra: string[] = []): string {
  // The shape Home Assistant / Jupyter / Nextcloud guides publish: the socket and the app
  // proxied, static assets from the DocumentRoot.
  return [
    'Listen 127.0.0.1:0',
    'Protocols h2c http/1.1',
    `DocumentRoot "${t.root}"`,
    ...extra,
    'ProxyPass /static !',
    `ProxyPass /api/websocket ws://127.0.0.1:${backendPort}/api/websocket`,
    `ProxyPass / http://127.0.0.1:${backendPort}/`,
    '',
  ].join('\n');
}

test('published shape: /static from DocumentRoot (hash, HEAD, Range, 304, keep-alive), the rest proxied', BOUND, async () => {
  const t = makeTree();
  const b = await startPlainBackend();
  const g = await startGateway(publishedConfig(t, b.port));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const whole = await get(g.port, '/static/app.js', {}, 'GET', agent);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), sha256(t.app));
    assert.equal(whole.headers['content-length'], String(t.app.length));
    assert.match(String(whole.headers['content-type']), /javascript/);
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    const etag = whole.headers.etag;
    assert.ok(etag !== undefined && whole.headers['last-modified'] !== undefined);

    // The same connection serves the next request (Content-Length framing, keep-alive).
    const again = await get(g.port, '/static/app.js', { 'If-None-Match': etag }, 'GET', agent);
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    const since = await get(g.port, '/static/app.js', { 'If-Modified-Since': String(whole.headers['last-modified']) }, 'GET', agent);
    assert.equal(since.status, 304);

    const head = await get(g.port, '/static/app.js', {}, 'HEAD', agent);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(t.app.length));
    assert.equal(head.body.length, 0);

    const range = await get(g.port, '/static/app.js', { Range: 'bytes=1000-1999' }, 'GET', agent);
    assert.equal(range.status, 206);
    assert.equal(range.headers['content-range'], `bytes 1000-1999/${t.app.length}`);
    assert.equal(sha256(range.body), sha256(t.app.subarray(1000, 2000)));
    const bad = await get(g.port, '/static/app.js', { Range: `bytes=${t.app.length + 10}-` }, 'GET', agent);
    assert.equal(bad.status, 416);
    const failed = await get(g.port, '/static/app.js', { 'If-Match': '"nope"' }, 'GET', agent);
    assert.equal(failed.status, 412);

    assert.equal((await get(g.port, '/static/missing.js', {}, 'GET', agent)).status, 404);
    const proxied = await get(g.port, '/app/page', {}, 'GET', agent);
    assert.equal(proxied.body.toString(), 'backend');
    assert.deepEqual(b.seen, ['/app/page'], 'only the proxied path reached the backend');
  } finally {
    agent.destroy();
    await g.stop();
    await b.stop();
  }
});

test('HTTP/2 (h2c): GET with hash, HEAD, Range, 304', BOUND, async () => {
  const t = makeTree();
  const b = await startPlainBackend();
  const g = await startGateway(publishedConfig(t, b.port));
  const session = http2.connect(`http://127.0.0.1:${g.port}`);
  session.on('error', () => {});
  try {
    const whole = await h2(session, { ':path': '/static/app.js' });
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), sha256(t.app));
    assert.equal(whole.h['content-length'], String(t.app.length));
    const etag = whole.h.etag as string;
    const nm = await h2(session, { ':path': '/static/app.js', 'if-none-match': etag });
    assert.equal(nm.status, 304);
    assert.equal(nm.body.length, 0);
    const head = await h2(session, { ':path': '/static/app.js', ':method': 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.h['content-length'], String(t.app.length));
    assert.equal(head.body.length, 0);
    const range = await h2(session, { ':path': '/static/app.js', range: 'bytes=-500' });
    assert.equal(range.status, 206);
    assert.equal(sha256(range.body), sha256(t.app.subarray(t.app.length - 500)));
    const dir = await h2(session, { ':path': '/static/docs' });
    assert.equal(dir.status, 301);
    assert.equal(dir.h.location, '/static/docs/');
  } finally {
    session.close();
    await g.stop();
    await b.stop();
  }
});

test('DirectoryIndex, DirectorySlash, no listing without an index, Alias', BOUND, async () => {
  const t = makeTree();
  const extra = path.join(t.dir, 'extra');
  fs.mkdirSync(extra);
  fs.writeFileSync(path.join(extra, 'start.htm'), 'alias index');
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `DocumentRoot ${t.root}`,
      `Alias /more ${extra}`,
      `<Directory ${extra}>`,
      '  DirectoryIndex start.htm',
      '  Options -Indexes',
      '</Directory>',
      '',
    ].join('\n'),
  );
  try {
    const slash = await get(g.port, '/static/docs?x=1');
    assert.equal(slash.status, 301);
    assert.equal(slash.headers.location, '/static/docs/?x=1');
    const index = await get(g.port, '/static/docs/');
    assert.equal(index.status, 200);
    assert.equal(index.body.toString(), '<h1>docs</h1>');
    assert.match(String(index.headers['content-type']), /text\/html/);
    assert.equal((await get(g.port, '/static/empty/')).status, 403, 'a directory without index: no listing');
    const aliased = await get(g.port, '/more/');
    assert.equal(aliased.body.toString(), 'alias index');
    assert.equal((await get(g.port, '/more/start.htm')).status, 200);
    assert.equal((await get(g.port, '/static/app.js', {}, 'POST')).status, 405);
  } finally {
    await g.stop();
  }
});

test('traversal: .., %2e%2e, %2f, backslashes, NUL, symlinks out of the root and .ht* never give the secret', BOUND, async () => {
  const t = makeTree();
  const g = await startGateway(['Listen 127.0.0.1:0', `DocumentRoot ${t.root}/static`, `Alias /a ${t.root}/static`, ''].join('\n'));
  try {
    const attempts = [
      '/../secret.txt',
      '/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/%2e%2e/secret.txt',
      '/%2e%2e%2fsecret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/..\\secret.txt',
      '/a/..%5c..%5csecret.txt',
      '/a/../../secret.txt',
      '/out.txt',
      '/updir/secret.txt',
      '/a/updir/secret.txt',
      '/.htpasswd',
      '/a/.htpasswd',
      '/%2ehtpasswd',
      '/inside.txt%00.js',
      '/%00',
    ];
    for (const p of attempts) {
      const res = await rawExchange(g.port, `GET ${p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      const text = res.data.toString('latin1');
      assert.ok(!text.includes(SECRET), `${p} leaked the secret`);
      assert.match(text, /^HTTP\/1\.1 (400|403|404) /, `${p}: ${text.slice(0, 40)}`);
    }
    // A link that stays inside the root is followed (FollowSymLinks, Apache's default).
    const inside = await get(g.port, '/in-link.txt');
    assert.equal(inside.body.toString(), 'inside');
  } finally {
    await g.stop();
  }
  // Without FollowSymLinks no link is followed, even one inside the root.
  const g2 = await startGateway(
    [
      'Listen 127.0.0.1:0',
      `DocumentRoot ${t.root}/static`,
      `<Directory ${t.root}/static>`,
      '  Options -FollowSymLinks',
      '</Directory>',
      '',
    ].join('\n'),
  );
  try {
    assert.equal((await get(g2.port, '/in-link.txt')).status, 403);
    assert.equal((await get(g2.port, '/inside.txt')).status, 200);
  } finally {
    await g2.stop();
  }
});

test('access control: Require in <Directory> (by file path) and in <Location>, on both fronts', BOUND, async () => {
  const t = makeTree();
  const b = await startPlainBackend();
  const g = await startGateway(
    publishedConfig(t, b.port, [
      `<Directory ${t.root}>`,
      '  Require all granted',
      '</Directory>',
      `<Directory ${t.root}/private>`,
      '  Require all denied',
      '</Directory>',
      `<DirectoryMatch "/docs$">`,
      '  Require ip 10.0.0.0/8',
      '</DirectoryMatch>',
      '<Location /static/inside.txt>',
      '  Require ip 192.0.2.1',
      '</Location>',
      'ProxyPass /private !',
      '',
    ]),
  );
  const session = http2.connect(`http://127.0.0.1:${g.port}`);
  session.on('error', () => {});
  try {
    assert.equal((await get(g.port, '/static/app.js')).status, 200);
    assert.equal((await get(g.port, '/private/p.txt')).status, 403);
    assert.equal((await get(g.port, '/static/docs/index.html')).status, 403);
    assert.equal((await get(g.port, '/static/inside.txt')).status, 403);
    assert.equal((await h2(session, { ':path': '/private/p.txt' })).status, 403);
    assert.equal((await h2(session, { ':path': '/static/inside.txt' })).status, 403);
    assert.equal((await h2(session, { ':path': '/static/app.js' })).status, 200);
  } finally {
    session.close();
    await g.stop();
    await b.stop();
  }
});

test('config: Options +Indexes, AllowOverride other than None and unsupported lines in <Directory> are FILE:LINE errors where files are served', () => {
  const t = makeTree();
  expectError(
    {
      'wsgate.conf': [
        'Listen 0',
        `DocumentRoot ${t.root}`,
        `<Directory ${t.root}>`,
        '  Options Indexes FollowSymLinks',
        '</Directory>',
        '',
      ].join('\n'),
    },
    { line: 4, message: /Options Indexes: wsgate lists no directories/ },
  );
  expectError(
    { 'wsgate.conf': ['Listen 0', `DocumentRoot ${t.root}`, `<Directory ${t.root}>`, '  Header set X y', '</Directory>', ''].join('\n') },
    { line: 4, message: /Header inside <Directory> is not supported/ },
  );
  // Apache would read .htaccess files there, and their lines can deny: refused unless None.
  for (const line of ['AllowOverride All', 'AllowOverride AuthConfig Limit', 'AllowOverrideList Redirect']) {
    expectError(
      { 'wsgate.conf': ['Listen 0', `DocumentRoot ${t.root}`, `<Directory ${t.root}>`, `  ${line}`, '</Directory>', ''].join('\n') },
      { line: 4, message: /wsgate does not read \.htaccess files; put their lines in the config and write "AllowOverride(List)? None"/ },
    );
  }
  const { config } = load({
    'wsgate.conf': ['Listen 0', `DocumentRoot ${t.root}`, `<Directory ${t.root}>`, '  AllowOverride None', '</Directory>', ''].join('\n'),
  });
  assert.ok(config.mainServer.files !== undefined, 'AllowOverride None is accepted where files are served');
});

test('config: <Files>/<FilesMatch> with access lines are refused where files are served; the stock .ht* denial and other lines are not', () => {
  const t = makeTree();
  expectError(
    {
      'wsgate.conf': [
        'Listen 0',
        `DocumentRoot ${t.root}`,
        '<FilesMatch "\\.(ini|log)$">',
        '  Require all denied',
        '</FilesMatch>',
        '',
      ].join('\n'),
    },
    { line: 3, message: /<FilesMatch \\\.\(ini\|log\)\$> holds Require \(line 4\).*<LocationMatch> or <DirectoryMatch>/ },
  );
  // Debian's apache2.conf and default-ssl.conf: loads as before.
  const { config } = load({
    'wsgate.conf': [
      'Listen 0',
      `DocumentRoot ${t.root}`,
      '<FilesMatch "^\\.ht">',
      '  Require all denied',
      '</FilesMatch>',
      '<FilesMatch "\\.(cgi|shtml|phtml|php)$">',
      '  SSLOptions +StdEnvVars',
      '</FilesMatch>',
      '',
    ].join('\n'),
  });
  assert.ok(config.mainServer !== undefined);
  // Where nothing is served, a <Files> section keeps being skipped as before.
  load({ 'wsgate.conf': ['Listen 0', 'ProxyPass / ws://h/', '<Files "secret.txt">', '  Require all denied', '</Files>', ''].join('\n') });
});

test('config: lines that shape served files (AddType, FileETag, …) are refused where files are served, noticed where everything is proxied', () => {
  const t = makeTree();
  for (const line of [
    'AddType text/x-special .txt',
    'AddHandler cgi-script .cgi',
    'FileETag None',
    'TypesConfig /etc/mime.types',
    'RemoveType .txt',
  ]) {
    expectError(
      { 'wsgate.conf': ['Listen 0', `DocumentRoot ${t.root}`, line, ''].join('\n') },
      { line: 3, message: /wsgate serves files here but not with this line.*remove it, or serve these files from a backend/ },
    );
    const { config } = load({ 'wsgate.conf': ['Listen 0', 'ProxyPass / ws://h/', line, ''].join('\n') });
    assert.ok(
      config.notices.some((n) => n.includes('is ignored')),
      line,
    );
  }
});

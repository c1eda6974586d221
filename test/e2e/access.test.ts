// Access control on the wire, on every front: HTTP/1.1 (the native front by default, Node's
// accept with WSGATE_NATIVE_FRONT=0) and HTTP/2 with RFC 8441 WebSockets. Password files are
// made by Apache's own `htpasswd` in every format it writes that Apache checks on Linux; clients
// connect from 127.0.0.1 and 127.0.0.2; a refused request must never open a backend connection.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WS_KEY, wsAccept } from '../helpers/edges';
import { makeCerts, type Certs } from '../helpers/certs';
import { h2Request, h2WebSocket, wsClose, wsEcho } from '../helpers/h2';
import {
  closeWs,
  echo,
  headerIn,
  openWs,
  randomBytes,
  sha256,
  startEchoBackend,
  startGateway,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';

const BOUND = { timeout: 60_000 };

/** user → [htpasswd flag, password]: one user per format. */
const USERS: Record<string, [string, string]> = {
  bcrypt: ['-B', 'b-secret'],
  md5: ['-m', 'm-secret'],
  sha1: ['-s', 's-secret'],
  sha256: ['-2', '2-secret'],
  sha512: ['-5', '5-secret'],
  // Traditional DES crypt reads 8 characters; the client sends all of them.
  des: ['-d', 'd-secret-and-more'],
};

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

let dir: string;
let certs: Certs;
let backend: EchoBackend & { connections: number };
let plain: RunningGateway;
let tls: RunningGateway;

function accessConfig(pw: string, groups: string): string {
  return [
    'SetEnvIf X-Pass "^letmein$" let_in',
    'Header set X-Mark "%{MARK}e" env=MARK',
    '<Location "/basic/">',
    '  AuthType Basic',
    '  AuthName "admin area"',
    `  AuthUserFile "${pw}"`,
    '  Require valid-user',
    '</Location>',
    '<Location "/group/">',
    '  AuthType Basic',
    '  AuthName "group area"',
    `  AuthUserFile "${pw}"`,
    `  AuthGroupFile "${groups}"`,
    '  Require group admins',
    '</Location>',
    '<Location "/ip/">',
    '  Require ip 127.0.0.1 10.0.0.0/8',
    '</Location>',
    '<Location "/notip/">',
    '  <RequireAll>',
    '    Require all granted',
    '    Require not ip 127.0.0.2',
    '  </RequireAll>',
    '</Location>',
    '<Location "/compat/">',
    '  Order deny,allow',
    '  Deny from all',
    '  Allow from 127.0.0.1',
    '</Location>',
    '<Location "/env/">',
    '  Require env let_in',
    '  SetEnv MARK from-setenv',
    '</Location>',
    `ProxyPass "/" "ws://127.0.0.1:${backend.port}/"`,
    '',
  ].join('\n');
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-access-'));
  const pw = path.join(dir, 'htpasswd');
  let first = true;
  for (const [user, [flag, password]] of Object.entries(USERS)) {
    execFileSync('htpasswd', [first ? '-cb' : '-b', flag, pw, user, password], { stdio: 'ignore' });
    first = false;
  }
  const groups = path.join(dir, 'groups');
  fs.writeFileSync(groups, 'admins: md5 sha1\nstaff: bcrypt\n');
  certs = makeCerts();
  const front = certs.issue('front', ['127.0.0.1', 'localhost']);
  const b = await startEchoBackend('access');
  backend = Object.assign(b, { connections: 0 });
  b.server.on('connection', () => backend.connections++);
  plain = await startGateway(`Listen 127.0.0.1:0\n${accessConfig(pw, groups)}`);
  tls = await startGateway(
    `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${front.cert}\nSSLCertificateKeyFile ${front.key}\nProtocols h2 http/1.1\nH2WebSockets on\n${accessConfig(pw, groups)}`,
  );
});

after(async () => {
  await plain?.stop();
  await tls?.stop();
  await backend?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  head: string;
}

/** One HTTP/1.1 request (an upgrade with `upgrade`) from `from`, on a fresh connection; resolves at the end of the head. */
async function ask(
  port: string | number,
  target: string,
  opts: { from?: string; auth?: string; upgrade?: boolean; extra?: string } = {},
): Promise<Answer> {
  const socket = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: opts.from ?? '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  let head = `GET ${target} HTTP/1.1\r\nHost: gw.test\r\n`;
  if (opts.upgrade) head += `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n`;
  if (opts.auth !== undefined) head += `Authorization: ${opts.auth}\r\n`;
  head += opts.extra ?? '';
  socket.write(head + '\r\n');
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.includes('\r\n\r\n')) resolve();
    });
    socket.on('close', () => resolve());
  });
  socket.destroy();
  const text = got.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), head: end === -1 ? text : text.slice(0, end) };
}

/** Asserts the backend saw no new connection while `during` ran. */
async function noBackend(during: () => Promise<void>): Promise<void> {
  const before = backend.connections;
  await during();
  assert.equal(backend.connections, before, 'a refused request must not reach the backend');
}

describe('HTTP/1.1 front (native front unless WSGATE_NATIVE_FRONT=0)', () => {
  test(
    'no credentials: 401 with the realm for an upgrade and a plain request; wrong ones: 401; one log line without the password',
    BOUND,
    async () => {
      await noBackend(async () => {
        for (const upgrade of [true, false]) {
          const r = await ask(plain.port, '/basic/x', { upgrade });
          assert.equal(r.status, 401, r.head);
          assert.equal(headerIn(r.head, 'www-authenticate'), 'Basic realm="admin area"');
          const wrong = await ask(plain.port, '/basic/x', { upgrade, auth: basic('bcrypt', 'nope-secret') });
          assert.equal(wrong.status, 401);
          const unknown = await ask(plain.port, '/basic/x', { upgrade, auth: basic('nobody', 'b-secret') });
          assert.equal(unknown.status, 401);
          const garbage = await ask(plain.port, '/basic/x', { upgrade, auth: 'Basic !!!' });
          assert.equal(garbage.status, 401);
        }
      });
      const line = await plain.waitForLog(/password mismatch/);
      assert.match(line, /"status":401|status=401/);
      for (const l of plain.logs) {
        assert.ok(
          !l.includes('nope-secret') && !l.includes(basic('bcrypt', 'nope-secret').slice(6)),
          'no password or Authorization value in the logs',
        );
      }
    },
  );

  test(
    'right credentials go through, for every htpasswd format: a WebSocket echoes (hash-checked) and a plain request is proxied',
    BOUND,
    async () => {
      for (const [user, [, password]] of Object.entries(USERS)) {
        const ws = await openWs(`ws://127.0.0.1:${plain.port}/basic/ws`, undefined, { headers: { Authorization: basic(user, password) } });
        const payload = randomBytes(64 * 1024);
        const back = await echo(ws, payload);
        assert.equal(sha256(back.data), sha256(payload), `${user}: echo`);
        await closeWs(ws);
        const r = await ask(plain.port, '/basic/page', { auth: basic(user, password) });
        assert.equal(r.status, 200, `${user}: ${r.head}`);
        const up = await ask(plain.port, '/basic/raw', { auth: basic(user, password), upgrade: true });
        assert.equal(up.status, 101);
        assert.equal(headerIn(up.head, 'sec-websocket-accept'), wsAccept(WS_KEY));
      }
      assert.ok(backend.upgrades.some((u) => u.url === '/basic/ws'));
    },
  );

  test('Require group: a member goes through, an authenticated non-member gets 401', BOUND, async () => {
    assert.equal((await ask(plain.port, '/group/', { auth: basic('md5', 'm-secret') })).status, 200);
    await noBackend(async () => {
      const r = await ask(plain.port, '/group/', { auth: basic('bcrypt', 'b-secret'), upgrade: true });
      assert.equal(r.status, 401);
      assert.equal(headerIn(r.head, 'www-authenticate'), 'Basic realm="group area"');
    });
  });

  test(
    'Require ip, <RequireAll> with Require not ip, and Order/Allow/Deny decide by the client address (127.0.0.1 in, 127.0.0.2 out)',
    BOUND,
    async () => {
      for (const where of ['/ip/', '/notip/', '/compat/']) {
        assert.equal((await ask(plain.port, where, { from: '127.0.0.1' })).status, 200, where);
        assert.equal((await ask(plain.port, where, { from: '127.0.0.1', upgrade: true })).status, 101, where);
        await noBackend(async () => {
          assert.equal((await ask(plain.port, where, { from: '127.0.0.2' })).status, 403, where);
          const up = await ask(plain.port, where, { from: '127.0.0.2', upgrade: true });
          assert.equal(up.status, 403, where);
          assert.equal(headerIn(up.head, 'www-authenticate'), undefined);
        });
      }
      // No rule: anyone.
      assert.equal((await ask(plain.port, '/open/', { from: '127.0.0.2' })).status, 200);
    },
  );

  test('Require env with SetEnvIf on a request header; SetEnv reaches Header env= on the answer', BOUND, async () => {
    await noBackend(async () => {
      assert.equal((await ask(plain.port, '/env/', {})).status, 403);
      assert.equal((await ask(plain.port, '/env/', { extra: 'X-Pass: letmeinX\r\n', upgrade: true })).status, 403);
    });
    const ok = await ask(plain.port, '/env/', { extra: 'X-Pass: letmein\r\n' });
    assert.equal(ok.status, 200);
    assert.equal(headerIn(ok.head, 'x-mark'), 'from-setenv', 'SetEnv is seen by Header env=');
    assert.equal(headerIn((await ask(plain.port, '/open/', {})).head, 'x-mark'), undefined);
    assert.equal((await ask(plain.port, '/env/', { extra: 'X-Pass: letmein\r\n', upgrade: true })).status, 101);
  });
});

describe('HTTP/2 front (TLS, ALPN h2, RFC 8441 WebSockets)', () => {
  async function session(from = '127.0.0.1'): Promise<http2.ClientHttp2Session> {
    const s = http2.connect(`https://127.0.0.1:${tls.port}`, {
      ca: certs.ca.pem,
      servername: 'localhost',
      localAddress: from,
    } as http2.SecureClientSessionOptions);
    s.on('error', () => {});
    await once(s, 'remoteSettings');
    return s;
  }

  test(
    'no or wrong credentials: 401 with the realm on a plain request and an extended CONNECT; the right ones echo for every format',
    BOUND,
    async () => {
      const s = await session();
      try {
        await noBackend(async () => {
          for (const auth of [undefined, basic('sha512', 'wrong')]) {
            const extra = auth === undefined ? {} : { authorization: auth };
            const r = await h2Request(s, { ':method': 'GET', ':path': '/basic/x', ...extra });
            assert.equal(r.status, 401);
            assert.equal(r.headers['www-authenticate'], 'Basic realm="admin area"');
            const w = await h2WebSocket(s, '/basic/ws', extra);
            assert.equal(w.status, 401);
            assert.equal(w.headers['www-authenticate'], 'Basic realm="admin area"');
          }
        });
        for (const [user, [, password]] of Object.entries(USERS)) {
          const r = await h2Request(s, { ':method': 'GET', ':path': '/basic/page', authorization: basic(user, password) });
          assert.equal(r.status, 200, user);
          const w = await h2WebSocket(s, '/basic/ws', { authorization: basic(user, password) });
          assert.equal(w.status, 200, user);
          const payload = randomBytes(32 * 1024);
          const back = await wsEcho(w.ws!, payload);
          assert.equal(sha256(back.data), sha256(payload));
          await wsClose(w.ws!);
        }
      } finally {
        s.close();
      }
    },
  );

  test('Require ip, <RequireAll> with Require not ip, Order/Allow/Deny and Require env by client address over h2', BOUND, async () => {
    const one = await session('127.0.0.1');
    const two = await session('127.0.0.2');
    try {
      for (const where of ['/ip/', '/notip/', '/compat/']) {
        assert.equal((await h2Request(one, { ':method': 'GET', ':path': where })).status, 200, where);
        await noBackend(async () => {
          assert.equal((await h2Request(two, { ':method': 'GET', ':path': where })).status, 403, where);
          assert.equal((await h2WebSocket(two, where + 'ws')).status, 403, where);
        });
      }
      await noBackend(async () => {
        assert.equal((await h2Request(one, { ':method': 'GET', ':path': '/env/' })).status, 403);
      });
      const ok = await h2Request(one, { ':method': 'GET', ':path': '/env/', 'x-pass': 'letmein' });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['x-mark'], 'from-setenv');
    } finally {
      one.close();
      two.close();
    }
  });
});

// End to end through real sockets: which backend gets a request, with which request line and
// which headers (REFERENCE §2, §3; research/apache-httpd.md §2.2, §2.7, §2.8). The routing
// logic itself is unit-tested in test/routing; here a raw backend records exactly what reached it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  openWs,
  randomBytes,
  sha256,
  startEchoBackend,
  startGateway,
  type EchoBackend,
  type RunningGateway,
} from '../helpers/harness';
import { header, RawClient, requestHead, startRecorder, type Recorded, type Recorder } from '../helpers/recorder';

/** Sends an upgrade request for `target`; returns the client after reading the response head. */
async function upgrade(
  port: number,
  target: string,
  lines: string[] = ['Host: front.example', 'Upgrade: websocket', 'Connection: Upgrade'],
) {
  const client = await RawClient.connect(port);
  client.write(requestHead([`GET ${target} HTTP/1.1`, ...lines]));
  const head = await client.readHead();
  return { client, head };
}

/** Sends random bytes through an open tunnel to an echo backend and checks they come back intact. */
async function assertEchoes(client: RawClient, size = 4096): Promise<void> {
  const data = randomBytes(size);
  client.write(data);
  const back = await client.take(size);
  assert.equal(sha256(back), sha256(data), 'tunnel echo differs from what was sent');
}

/** One plain GET on a fresh connection; returns status and body. */
async function get(port: number, target: string, host = 'front.example', extra: string[] = []) {
  const client = await RawClient.connect(port);
  client.write(requestHead([`GET ${target} HTTP/1.1`, `Host: ${host}`, ...extra, 'Connection: close']));
  const res = await client.readResponse();
  client.close();
  return res;
}

/** The request the backend received since `before` requests: exactly one. */
function onlyNew(r: Recorder, before: number): Recorded {
  assert.equal(r.requests.length, before + 1, `backend ${r.name} should have received exactly one new request`);
  return r.requests[before];
}

describe('§2.8 mapping table, end to end (ws:// rules; upgrade and plain GET)', () => {
  let R: Recorder;
  let g: RunningGateway;
  before(async () => {
    R = await startRecorder('R');
    const b = `127.0.0.1:${R.port}`;
    g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        `ProxyPass "/a1/" "ws://${b}/"`,
        `ProxyPass "/a2" "ws://${b}/"`,
        `ProxyPass "/a3/" "ws://${b}"`,
        `ProxyPass "/a4" "ws://${b}/base"`,
        `ProxyPass "/nc/" "ws://${b}/" nocanon`,
        `ProxyPassMatch "^/(myApp/ws)$" "ws://${b}/$1"`,
        `ProxyPassMatch "^/m2/" "ws://${b}/"`,
        '<Location "/loc/">',
        `  ProxyPass "ws://${b}/inner/"`,
        '</Location>',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await g.stop();
    await R.close();
  });

  // [request-target, what the backend must receive] — straight from the table.
  const proxied: [string, string][] = [
    ['/a1/x/y?q=1&r=2', '/x/y?q=1&r=2'],
    ['/a1/', '/'],
    ['/a2', '/'],
    ['/a2/x', '//x'],
    ['/a2//x', '//x'],
    ['/a4/x', '/base/x'],
    ['/a4', '/base'],
    ['/a1/a%20b', '/a%20b'],
    ['/a1/a%41b', '/aAb'],
    ['/a1/%7Euser', '/~user'],
    ['/a1/a;p=1', '/a;p=1'],
    ['/nc/a%41b;p=1?x=%41', '/a%41b;p=1?x=%41'],
    ['/myApp/ws?x=1', '/myApp/ws?x=1'],
    ['/m2/x?y=1', '//m2/x?y=1'],
    ['/a1/../a2/x', '//x'],
    ['/loc/z?k=v', '/inner/z?k=v'],
    // Not in the table: `ws://h:port` + an empty rest is still a valid URL (`/`).
    ['/a3/', '/'],
  ];
  for (const [target, expected] of proxied) {
    test(`upgrade ${target} → backend gets "GET ${expected} HTTP/1.1" and the tunnel echoes`, async () => {
      const n = R.requests.length;
      const { client, head } = await upgrade(g.port, target);
      try {
        assert.equal(head.status, 101, head.statusLine);
        assert.equal(onlyNew(R, n).requestLine, `GET ${expected} HTTP/1.1`);
        await assertEchoes(client);
      } finally {
        client.close();
      }
    });
    test(`plain GET ${target} → backend gets "GET ${expected} HTTP/1.1" (fallback to HTTP)`, async () => {
      const n = R.requests.length;
      const res = await get(g.port, target);
      assert.equal(res.status, 200);
      assert.equal(res.body.toString('latin1'), `R GET ${expected} HTTP/1.1`);
      const seen = onlyNew(R, n);
      assert.equal(header(seen.headerLines, 'upgrade'), undefined);
    });
  }

  // [request-target, status]: none of these reaches the backend.
  const refused: [string, number, string][] = [
    ['/a1', 404, 'the URI is shorter than the prefix'],
    ['/a2x', 404, 'segment boundary'],
    ['/a1/a%2fb', 404, 'encoded slash (AllowEncodedSlashes Off)'],
    ['/a1/a%2Fb', 404, 'encoded slash, upper case'],
    ['/myApp/ws/more', 404, 'regex does not match'],
    ['/nowhere', 404, 'no rule'],
    ['/a3/x', 500, 'ws://h:port + "x" has no "/" after the host'],
  ];
  for (const [target, status, why] of refused) {
    test(`${target} → ${status} (${why}), nothing reaches the backend`, async () => {
      const n = R.requests.length;
      const conns = R.connections();
      const { client, head } = await upgrade(g.port, target);
      try {
        assert.equal(head.status, status, head.statusLine);
        const res = await get(g.port, target);
        assert.equal(res.status, status);
        assert.equal(R.requests.length, n);
        assert.equal(R.connections(), conns);
      } finally {
        client.close();
      }
    });
  }

  test('no socket left open after the table', async () => {
    await assertNoOpenSockets(g);
  });
});

describe('same path for HTTP and WebSocket', () => {
  test('ProxyPass / ws://b/ then ProxyPass / http://b/ (one backend): upgrade tunnelled, GET plain HTTP', async () => {
    const b = await startEchoBackend('B');
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProxyPass "/" "ws://127.0.0.1:${b.port}/"\nProxyPass "/" "http://127.0.0.1:${b.port}/"\n`,
    );
    try {
      const ws = await openWs(`ws://127.0.0.1:${g.port}/chat?room=1`);
      const data = randomBytes(65536);
      const r = await echo(ws, data);
      assert.equal(sha256(r.data), sha256(data));
      assert.equal(r.isBinary, true);
      await closeWs(ws);
      assert.equal(b.upgrades.length, 1);
      assert.equal(b.upgrades[0].url, '/chat?room=1');

      const res = await get(g.port, '/page?q=2');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:B GET /page?q=2');
      assert.equal(b.requests.length, 1);
      assert.ok(!hasHeader(b.requests[0].rawHeaders, 'upgrade'), 'a plain GET reaches the backend without Upgrade');
      assert.equal(b.upgrades.length, 1, 'the GET was not turned into an upgrade');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await b.close();
    }
  });

  test('ws rule → backend A, http rule → backend B: each backend serves only its kind', async () => {
    const A = await startEchoBackend('A');
    const B = await startEchoBackend('B');
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProxyPass "/" "ws://127.0.0.1:${A.port}/"\nProxyPass "/" "http://127.0.0.1:${B.port}/"\n`,
    );
    try {
      const ws = await openWs(`ws://127.0.0.1:${g.port}/live`);
      const r = await echo(ws, 'through A');
      assert.equal(r.data.toString(), 'through A');
      await closeWs(ws);

      const res = await get(g.port, '/index.html');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:B GET /index.html');

      assert.deepEqual([A.upgrades.length, A.requests.length, B.upgrades.length, B.requests.length], [1, 0, 0, 1]);
      assert.equal(A.upgrades[0].url, '/live');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await A.close();
      await B.close();
    }
  });

  test('ProxyWebsocketFallbackToProxyHttp On (default), only a ws rule: a plain GET goes as HTTP to its backend', async () => {
    const A = await startEchoBackend('A');
    const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/ws/" "ws://127.0.0.1:${A.port}/sock/"\n`);
    try {
      const res = await get(g.port, '/ws/poll?t=1');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:A GET /sock/poll?t=1');
      assert.equal(A.upgrades.length, 0);
      const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/x`);
      assert.equal((await echo(ws, 'hi')).data.toString(), 'hi');
      await closeWs(ws);
      assert.equal(A.upgrades[0].url, '/sock/x');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await A.close();
    }
  });

  test('ProxyWebsocketFallbackToProxyHttp Off, only a ws rule: a plain GET gets 404; upgrades still work', async () => {
    const A = await startEchoBackend('A');
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProxyWebsocketFallbackToProxyHttp Off\nProxyPass "/ws/" "ws://127.0.0.1:${A.port}/"\n`,
    );
    try {
      const res = await get(g.port, '/ws/poll');
      assert.equal(res.status, 404);
      assert.equal(A.requests.length, 0);
      const ws = await openWs(`ws://127.0.0.1:${g.port}/ws/x`);
      assert.equal((await echo(ws, 'hi')).data.toString(), 'hi');
      await closeWs(ws);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await A.close();
    }
  });

  test('ProxyWebsocketFallbackToProxyHttp Off, ws rule then http rule: a plain GET takes the http rule', async () => {
    const A = await startEchoBackend('A');
    const B = await startEchoBackend('B');
    const g = await startGateway(
      `Listen 127.0.0.1:0\nProxyWebsocketFallbackToProxyHttp Off\nProxyPass "/" "ws://127.0.0.1:${A.port}/"\nProxyPass "/" "http://127.0.0.1:${B.port}/"\n`,
    );
    try {
      const res = await get(g.port, '/p');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'backend:B GET /p');
      assert.equal(A.requests.length, 0);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await A.close();
      await B.close();
    }
  });
});

function hasHeader(raw: string[], name: string): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) return true;
  return false;
}

describe('rule order: ! exclusions, first match wins, <Location> before server rules', () => {
  let A: Recorder;
  let B: Recorder;
  let g: RunningGateway;
  before(async () => {
    A = await startRecorder('A');
    B = await startRecorder('B');
    const a = `127.0.0.1:${A.port}`;
    const b = `127.0.0.1:${B.port}`;
    g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        'ProxyPass "/ex/private" "!"',
        `ProxyPass "/ex/" "http://${a}/"`,
        `ProxyPass "/p/" "http://${a}/"`,
        `ProxyPass "/p/sub/" "http://${b}/"`,
        `ProxyPass "/loc/" "http://${a}/server/"`,
        '<Location "/loc/">',
        `  ProxyPass "http://${b}/located/"`,
        '</Location>',
        'ProxyPass "/wsx/private" !',
        `ProxyPass "/wsx/" "ws://${a}/"`,
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await g.stop();
    await A.close();
    await B.close();
  });

  const cases: [string, 'A' | 'B' | number, string?][] = [
    ['/ex/private', 404],
    ['/ex/private/x', 404],
    ['/ex/privateX', 'A', '/privateX'],
    ['/ex/pub?z=1', 'A', '/pub?z=1'],
    ['/p/sub/x', 'A', '/sub/x'],
    ['/p/other', 'A', '/other'],
    ['/loc/z?k=v', 'B', '/located/z?k=v'],
    ['/wsx/private/y', 404],
  ];
  for (const [target, who, path] of cases) {
    test(`${target} → ${typeof who === 'number' ? who : `backend ${who} ${path}`}`, async () => {
      const na = A.requests.length;
      const nb = B.requests.length;
      const res = await get(g.port, target);
      if (typeof who === 'number') {
        assert.equal(res.status, who);
        assert.deepEqual([A.requests.length, B.requests.length], [na, nb]);
        return;
      }
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `${who} GET ${path} HTTP/1.1`);
      assert.deepEqual([A.requests.length - na, B.requests.length - nb], who === 'A' ? [1, 0] : [0, 1]);
    });
  }

  test('an upgrade on an excluded path gets 404 too; next to it, one is tunnelled', async () => {
    const n = A.requests.length;
    const x = await upgrade(g.port, '/wsx/private/y');
    assert.equal(x.head.status, 404);
    x.client.close();
    assert.equal(A.requests.length, n);
    const { client, head } = await upgrade(g.port, '/wsx/public');
    try {
      assert.equal(head.status, 101);
      assert.equal(onlyNew(A, n).requestLine, 'GET /public HTTP/1.1');
      await assertEchoes(client);
    } finally {
      client.close();
    }
    await assertNoOpenSockets(g);
  });
});

describe('name-based virtual hosts on two Listen ports', () => {
  let A: Recorder;
  let B: Recorder;
  let M: Recorder;
  let g: RunningGateway;
  before(async () => {
    A = await startRecorder('A');
    B = await startRecorder('B');
    M = await startRecorder('M');
    // vhosts match by the *configured* Listen port, so port 0 in both (src/routing/vhost.ts).
    g = await startGateway(
      [
        'Listen 127.0.0.1:0',
        'Listen 127.0.0.1:0',
        'ServerName main.test',
        `ProxyPass "/inherited/" "http://127.0.0.1:${M.port}/m/"`,
        '<VirtualHost 127.0.0.1:0>',
        '  ServerName one.example',
        `  ProxyPass "/" "http://127.0.0.1:${A.port}/"`,
        '</VirtualHost>',
        '<VirtualHost 127.0.0.1:0>',
        '  ServerName two.example',
        '  ServerAlias *.two.example alt.example',
        `  ProxyPass "/" "ws://127.0.0.1:${B.port}/"`,
        '</VirtualHost>',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await g.stop();
    await A.close();
    await B.close();
    await M.close();
  });

  test('two distinct ports are bound', () => {
    const ports = g.gateway.addresses().map((a) => a.port);
    assert.equal(ports.length, 2);
    assert.notEqual(ports[0], ports[1]);
  });

  const cases: [string, 'A' | 'B', string][] = [
    ['one.example', 'A', 'one.example'],
    ['ONE.example:8080', 'A', 'one.example'],
    ['two.example', 'B', 'two.example'],
    ['x.two.example', 'B', 'two.example'],
    ['Alt.Example.', 'B', 'two.example'],
    ['unknown.example', 'A', 'one.example'], // the first vhost of the address is its default
  ];
  for (const [host, who, serverName] of cases) {
    test(`Host: ${host} → backend ${who} on both ports (X-Forwarded-Server: ${serverName})`, async () => {
      for (const { port } of g.gateway.addresses()) {
        const rec = who === 'A' ? A : B;
        const n = rec.requests.length;
        const other = who === 'A' ? B : A;
        const no = other.requests.length;
        const res = await get(port, `/page?p=${port}`, host);
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), `${who} GET /page?p=${port} HTTP/1.1`);
        const seen = onlyNew(rec, n);
        assert.equal(other.requests.length, no);
        assert.equal(header(seen.headerLines, 'x-forwarded-server'), serverName);
        assert.equal(header(seen.headerLines, 'x-forwarded-host'), host);
      }
    });
  }

  test('main-server ProxyPass rules are inherited by both vhosts (ProxyPassInherit On)', async () => {
    for (const { port } of g.gateway.addresses()) {
      for (const host of ['one.example', 'two.example']) {
        const res = await get(port, '/inherited/q', host);
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'M GET /m/q HTTP/1.1');
      }
    }
  });

  test('an upgrade with Host: x.two.example is tunnelled to B on the second port', async () => {
    const port = g.gateway.addresses()[1].port;
    const n = B.requests.length;
    const { client, head } = await upgrade(port, '/chat', ['Host: x.two.example', 'Upgrade: websocket', 'Connection: Upgrade']);
    try {
      assert.equal(head.status, 101);
      assert.equal(onlyNew(B, n).requestLine, 'GET /chat HTTP/1.1');
      await assertEchoes(client, 100_000);
    } finally {
      client.close();
    }
    await assertNoOpenSockets(g);
  });
});

describe('the headers the backend sees, and the 101 the client sees', () => {
  // A client upgrade with every kind of header: hop-by-hop ones (some named by Connection),
  // WebSocket ones, cookies, an existing X-Forwarded-For, odd case.
  const clientLines = [
    'GET /h/chat?x=1 HTTP/1.1',
    'Host: front.example:8080',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    'X-Forwarded-For: 10.0.0.1',
    'Connection: keep-alive, Upgrade, X-Secret',
    'X-Secret: hidden',
    'Keep-Alive: timeout=5',
    'Proxy-Connection: keep-alive',
    'TE: trailers',
    'Trailer: X-Checksum',
    'Cookie: a=b; c=d',
    'Sec-WebSocket-Protocol: chat, superchat',
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
    'Upgrade: websocket',
    'connection: X-Other',
    'X-Other: also hidden',
    'x-MiXeD-cAsE: Kept As Is',
    'Origin: http://front.example:8080',
  ];
  const passedThrough = ['Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'];
  const passedThroughAfterXff = [
    'Cookie: a=b; c=d',
    'Sec-WebSocket-Protocol: chat, superchat',
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
    'x-MiXeD-cAsE: Kept As Is',
    'Origin: http://front.example:8080',
  ];

  async function through(settings: string[], lines = clientLines): Promise<{ seen: Recorded; backend: Recorder }> {
    const R = await startRecorder('R');
    const g = await startGateway(
      ['Listen 127.0.0.1:0', 'ServerName proxy.test', ...settings, `ProxyPass "/h/" "ws://127.0.0.1:${R.port}/"`, ''].join('\n'),
    );
    try {
      const client = await RawClient.connect(g.port);
      client.write(requestHead(lines));
      const head = await client.readHead();
      assert.equal(head.status, 101, head.statusLine);
      await assertEchoes(client);
      client.close();
      assert.equal(R.requests.length, 1);
      await assertNoOpenSockets(g);
      return { seen: R.requests[0], backend: R };
    } finally {
      await g.stop();
      await R.close();
    }
  }

  test('defaults: Host is the backend, X-Forwarded-* added, hop-by-hop removed, Connection/Upgrade last', async () => {
    const { seen, backend } = await through([]);
    assert.equal(seen.requestLine, 'GET /chat?x=1 HTTP/1.1');
    assert.deepEqual(seen.headerLines, [
      `Host: 127.0.0.1:${backend.port}`,
      ...passedThrough,
      'X-Forwarded-For: 10.0.0.1, 127.0.0.1',
      ...passedThroughAfterXff,
      'X-Forwarded-Host: front.example:8080',
      'X-Forwarded-Server: proxy.test',
      'Connection: Upgrade',
      'Upgrade: websocket',
    ]);
  });

  test('without a client X-Forwarded-For one is added after the client headers', async () => {
    const lines = clientLines.filter((l) => !l.startsWith('X-Forwarded-For'));
    const { seen, backend } = await through([], lines);
    assert.deepEqual(seen.headerLines, [
      `Host: 127.0.0.1:${backend.port}`,
      ...passedThrough,
      ...passedThroughAfterXff,
      'X-Forwarded-For: 127.0.0.1',
      'X-Forwarded-Host: front.example:8080',
      'X-Forwarded-Server: proxy.test',
      'Connection: Upgrade',
      'Upgrade: websocket',
    ]);
  });

  test('ProxyPreserveHost On: the client Host is sent', async () => {
    const { seen } = await through(['ProxyPreserveHost On']);
    assert.deepEqual(seen.headerLines, [
      'Host: front.example:8080',
      ...passedThrough,
      'X-Forwarded-For: 10.0.0.1, 127.0.0.1',
      ...passedThroughAfterXff,
      'X-Forwarded-Host: front.example:8080',
      'X-Forwarded-Server: proxy.test',
      'Connection: Upgrade',
      'Upgrade: websocket',
    ]);
  });

  test('ProxyAddHeaders Off: no X-Forwarded-* added, the client one untouched', async () => {
    const { seen, backend } = await through(['ProxyAddHeaders Off']);
    assert.deepEqual(seen.headerLines, [
      `Host: 127.0.0.1:${backend.port}`,
      ...passedThrough,
      'X-Forwarded-For: 10.0.0.1',
      ...passedThroughAfterXff,
      'Connection: Upgrade',
      'Upgrade: websocket',
    ]);
  });

  test('the 101 the client gets carries the backend headers in their order and case, hop-by-hop removed', async () => {
    const R = await startRecorder('R', (_req, socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'X-Backend-Case: Yes\r\n' +
          'upgrade: websocket\r\n' +
          'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
          'connection: upgrade, X-Hop\r\n' +
          'X-Hop: dropped\r\n' +
          'Keep-Alive: timeout=5\r\n' +
          'Sec-WebSocket-Protocol: chat\r\n' +
          'set-COOKIE: s=1; Path=/\r\n' +
          'x-lower: v\r\n' +
          '\r\n',
      );
      return 'tunnel';
    });
    const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/" "ws://127.0.0.1:${R.port}/"\n`);
    try {
      const client = await RawClient.connect(g.port);
      client.write(
        requestHead([
          'GET / HTTP/1.1',
          'Host: f',
          'Upgrade: websocket',
          'Connection: Upgrade',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Version: 13',
        ]),
      );
      const head = await client.readHead();
      assert.equal(head.statusLine, 'HTTP/1.1 101 Switching Protocols');
      assert.deepEqual(head.headerLines, [
        'X-Backend-Case: Yes',
        'upgrade: websocket',
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
        'connection: Upgrade',
        'Sec-WebSocket-Protocol: chat',
        'set-COOKIE: s=1; Path=/',
        'x-lower: v',
      ]);
      await assertEchoes(client);
      client.close();
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await R.close();
    }
  });

  test('a plain GET through an http:// rule: same header rules, no Connection/Upgrade added', async () => {
    const R = await startRecorder('R');
    const g = await startGateway(`Listen 127.0.0.1:0\nServerName proxy.test\nProxyPass "/" "http://127.0.0.1:${R.port}/"\n`);
    try {
      const client = await RawClient.connect(g.port);
      client.write(
        requestHead([
          'GET /doc HTTP/1.1',
          'Host: front.example',
          'Connection: keep-alive, X-Secret',
          'X-Secret: hidden',
          'Keep-Alive: timeout=5',
          'TE: trailers',
          'Accept: text/html',
          'Cookie: a=b',
        ]),
      );
      const res = await client.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'R GET /doc HTTP/1.1');
      client.close();
      assert.deepEqual(R.requests[0].headerLines, [
        `Host: 127.0.0.1:${R.port}`,
        'Accept: text/html',
        'Cookie: a=b',
        'X-Forwarded-For: 127.0.0.1',
        'X-Forwarded-Host: front.example',
        'X-Forwarded-Server: proxy.test',
      ]);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await R.close();
    }
  });

  test('keep-alive: two GETs on one client connection reuse one pooled backend connection', async () => {
    const R = await startRecorder('R');
    const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/" "http://127.0.0.1:${R.port}/"\n`);
    try {
      const client = await RawClient.connect(g.port);
      for (const p of ['/one', '/two', '/three']) {
        client.write(requestHead([`GET ${p} HTTP/1.1`, 'Host: f']));
        const res = await client.readResponse();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), `R GET ${p} HTTP/1.1`);
      }
      client.close();
      assert.deepEqual(
        R.requests.map((r) => [r.conn, r.requestLine]),
        [
          [0, 'GET /one HTTP/1.1'],
          [0, 'GET /two HTTP/1.1'],
          [0, 'GET /three HTTP/1.1'],
        ],
      );
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await R.close();
    }
  });

  test('a real ws client: subprotocol and permessage-deflate negotiated end to end', async () => {
    const E: EchoBackend = await startEchoBackend('E', {
      perMessageDeflate: true,
      handleProtocols: (p) => (p.has('superchat') ? 'superchat' : false),
    });
    const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/" "ws://127.0.0.1:${E.port}/"\n`);
    try {
      const ws = await openWs(`ws://127.0.0.1:${g.port}/x`, ['chat', 'superchat'], {
        perMessageDeflate: true,
        headers: { Cookie: 'sid=42' },
      });
      assert.equal(ws.protocol, 'superchat');
      assert.match(ws.extensions, /permessage-deflate/);
      const text = 'abc'.repeat(50_000);
      const r = await echo(ws, text);
      assert.equal(sha256(r.data), sha256(text));
      await closeWs(ws);
      const raw = E.upgrades[0].rawHeaders;
      const get = (n: string) => raw[raw.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === n) + 1];
      assert.equal(get('sec-websocket-protocol'), 'chat,superchat');
      assert.match(get('sec-websocket-extensions'), /^permessage-deflate/);
      assert.equal(get('cookie'), 'sid=42');
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await E.close();
    }
  });
});

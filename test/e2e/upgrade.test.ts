// End to end through real sockets: which requests are upgraded and tunnelled, for each `upgrade=`
// value, and what happens to every kind of backend answer (REFERENCE §1–§3;
// research/apache-httpd.md §2.4–§2.6, §3.1).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  assertNoOpenSockets,
  closeWs,
  echo,
  eventually,
  openWs,
  randomBytes,
  sha256,
  startEchoBackend,
  startGateway,
  type RunningGateway,
} from '../helpers/harness';
import { header, RawClient, requestHead, startRecorder, type Recorder, type Responder } from '../helpers/recorder';

/** Runs `body` with a recorder backend and a gateway whose only rule is `ProxyPass "/" "<scheme>://backend/" <params>`. */
async function withRoute(
  url: (port: number) => string,
  body: (g: RunningGateway, R: Recorder) => Promise<void>,
  respond?: Responder,
  settings: string[] = [],
): Promise<void> {
  const R = await startRecorder('R', respond);
  const g = await startGateway(['Listen 127.0.0.1:0', ...settings, `ProxyPass "/" ${url(R.port)}`, ''].join('\n'));
  try {
    await body(g, R);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
    await R.close();
  }
}

const ws =
  (params = '') =>
  (port: number) =>
    `"ws://127.0.0.1:${port}/"${params ? ' ' + params : ''}`;
const http =
  (params = '') =>
  (port: number) =>
    `"http://127.0.0.1:${port}/"${params ? ' ' + params : ''}`;

/** Sends `GET /t` with these header lines (Host added); returns the client and the response head. */
async function send(port: number, lines: string[], method = 'GET', extra?: Buffer) {
  const client = await RawClient.connect(port);
  const head = Buffer.from(requestHead([`${method} /t HTTP/1.1`, 'Host: front.example', ...lines]), 'latin1');
  client.write(extra === undefined ? head : Buffer.concat([head, extra]));
  return { client, head: await client.readHead() };
}

async function assertEchoes(client: RawClient, size = 8192): Promise<void> {
  const data = randomBytes(size);
  client.write(data);
  assert.equal(sha256(await client.take(size)), sha256(data), 'tunnel echo differs from what was sent');
}

/** Asserts an upgrade went through: 101, the backend saw `Upgrade: <forwarded>` last, and the tunnel echoes. */
async function assertTunnelled(g: RunningGateway, R: Recorder, lines: string[], forwarded: string): Promise<void> {
  const n = R.requests.length;
  const { client, head } = await send(g.port, lines);
  try {
    assert.equal(head.status, 101, head.statusLine);
    assert.equal(R.requests.length, n + 1);
    const seen = R.requests[n].headerLines;
    assert.deepEqual(seen.slice(-2), ['Connection: Upgrade', `Upgrade: ${forwarded}`]);
    assert.equal(seen.filter((l) => /^(upgrade|connection):/i.test(l)).length, 2, 'exactly one Connection and one Upgrade');
    await assertEchoes(client);
  } finally {
    client.close();
  }
}

/** Asserts the request went as plain HTTP: 200 from the backend, which saw no Upgrade and no Connection. */
async function assertPlain(g: RunningGateway, R: Recorder, lines: string[]): Promise<void> {
  const n = R.requests.length;
  const tunnels = R.tunnelBytes.size;
  const { client, head } = await send(g.port, lines);
  try {
    assert.equal(head.status, 200, head.statusLine);
    const body = await client.take(Number(header(head.headerLines, 'content-length')));
    assert.equal(body.toString(), 'R GET /t HTTP/1.1');
    assert.equal(R.requests.length, n + 1);
    const seen = R.requests[n].headerLines;
    assert.equal(header(seen, 'upgrade'), undefined, 'Upgrade must not reach the backend');
    assert.equal(header(seen, 'connection'), undefined, 'no Connection header to the backend');
    assert.equal(R.tunnelBytes.size, tunnels, 'the backend connection did not become a tunnel');
  } finally {
    client.close();
  }
}

const UPGRADE = (v: string) => [`Upgrade: ${v}`, 'Connection: Upgrade'];

describe('ws:// default (upgrade=websocket, any case)', () => {
  test('websocket in any case is tunnelled and forwarded with the client spelling', async () => {
    await withRoute(ws(), async (g, R) => {
      await assertTunnelled(g, R, UPGRADE('WEBSOCKET'), 'WEBSOCKET');
      await assertTunnelled(g, R, UPGRADE('WebSocket'), 'WebSocket');
      await assertTunnelled(g, R, UPGRADE('websocket'), 'websocket');
    });
  });

  test('a 101 whose Upgrade differs only in case is accepted', async () => {
    const respond: Responder = (_req, s) => {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      return 'tunnel';
    };
    await withRoute(
      ws(),
      async (g) => {
        const { client, head } = await send(g.port, UPGRADE('WEBSOCKET'));
        assert.equal(head.status, 101);
        assert.equal(header(head.headerLines, 'upgrade'), 'websocket');
        await assertEchoes(client);
        client.close();
      },
      respond,
    );
  });

  test('Upgrade: foo, websocket is not tunnelled (the client list is not tokenised): plain HTTP', async () => {
    await withRoute(ws(), async (g, R) => {
      await assertPlain(g, R, UPGRADE('foo, websocket'));
      await assertPlain(g, R, UPGRADE('h2c'));
    });
  });

  test('Sec-WebSocket-* headers pass through untouched on the default ws:// route', async () => {
    await withRoute(ws(), async (g, R) => {
      const n = R.requests.length;
      await assertTunnelled(
        g,
        R,
        ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='],
        'websocket',
      );
      assert.equal(header(R.requests[n].headerLines, 'sec-websocket-key'), 'dGhlIHNhbXBsZSBub25jZQ==');
    });
  });
});

describe('upgrade= on http:// routes', () => {
  test('upgrade=myproto: a custom protocol is tunnelled (greeting in the 101 packet, then echo)', async () => {
    const respond: Responder = (req, s) => {
      if (header(req.headerLines, 'upgrade') !== 'myproto') {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nR GET /t HTTP/1.1');
        return 'keep';
      }
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto\r\nConnection: Upgrade\r\n\r\nMYPROTO READY\n');
      return 'tunnel';
    };
    await withRoute(
      http('upgrade=myproto'),
      async (g, R) => {
        const { client, head } = await send(g.port, UPGRADE('myproto'));
        try {
          assert.equal(head.status, 101);
          assert.equal(header(head.headerLines, 'upgrade'), 'myproto');
          assert.equal((await client.take(14)).toString(), 'MYPROTO READY\n');
          await assertEchoes(client, 256 * 1024);
          assert.deepEqual(R.requests[0].headerLines.slice(-2), ['Connection: Upgrade', 'Upgrade: myproto']);
        } finally {
          client.close();
        }
        // Another protocol on the same route is not allowed: plain HTTP.
        await assertPlain(g, R, UPGRADE('websocket'));
      },
      respond,
    );
  });

  test('upgrade=a,b: each listed protocol (any case) is tunnelled, others are not', async () => {
    await withRoute(http('upgrade=a,b'), async (g, R) => {
      await assertTunnelled(g, R, UPGRADE('b'), 'b');
      await assertTunnelled(g, R, UPGRADE('A'), 'A');
      await assertPlain(g, R, UPGRADE('c'));
      await assertPlain(g, R, UPGRADE('a, b'));
    });
  });

  test('upgrade=websocket on http://: a real ws client is tunnelled', async () => {
    const E = await startEchoBackend('E');
    const g = await startGateway(`Listen 127.0.0.1:0\nProxyPass "/" "http://127.0.0.1:${E.port}/" upgrade=websocket\n`);
    try {
      const c = await openWs(`ws://127.0.0.1:${g.port}/x`);
      const data = randomBytes(100_000);
      assert.equal(sha256((await echo(c, data)).data), sha256(data));
      await closeWs(c);
      await assertNoOpenSockets(g);
    } finally {
      await g.stop();
      await E.close();
    }
  });

  test('upgrade=ANY: any protocol is tunnelled, forwarded verbatim; a request without Upgrade stays HTTP', async () => {
    await withRoute(http('upgrade=ANY'), async (g, R) => {
      assert.ok(
        g.gateway.config.notices.some((n) => /upgrade=ANY is for testing only/.test(n)),
        'a testing-only notice is given',
      );
      await assertTunnelled(g, R, UPGRADE('h2c-like-custom'), 'h2c-like-custom');
      await assertTunnelled(g, R, UPGRADE('WebSocket'), 'WebSocket');
      await assertPlain(g, R, []);
    });
  });

  test('upgrade=NONE: a plain GET without Upgrade is forwarded as Upgrade: websocket and tunnelled on 101', async () => {
    await withRoute(http('upgrade=NONE'), async (g, R) => {
      assert.ok(
        g.gateway.config.notices.some((n) => /upgrade=NONE is for testing only/.test(n)),
        'a testing-only notice is given',
      );
      await assertTunnelled(g, R, [], 'websocket');
      await assertTunnelled(g, R, UPGRADE('WebSocket'), 'WebSocket');
      // Whatever the client asked for, the backend is asked for a WebSocket.
      await assertTunnelled(g, R, UPGRADE('foo'), 'websocket');
    });
  });

  test('http:// without upgrade=: Upgrade is stripped, the backend answer relayed as HTTP', async () => {
    await withRoute(http(), async (g, R) => {
      await assertPlain(g, R, UPGRADE('websocket'));
      await assertPlain(g, R, ['Upgrade: websocket', 'Connection: keep-alive, Upgrade']);
    });
  });
});

describe('what counts as an upgrade request', () => {
  test('Upgrade without Connection: upgrade still upgrades (no Connection, or Connection: keep-alive)', async () => {
    await withRoute(ws(), async (g, R) => {
      await assertTunnelled(g, R, ['Upgrade: websocket'], 'websocket');
      await assertTunnelled(g, R, ['Upgrade: websocket', 'Connection: keep-alive'], 'websocket');
      await assertTunnelled(g, R, ['Connection: keep-alive, UPGRADE', 'Upgrade: websocket'], 'websocket');
    });
  });

  test('POST upgrade with a Content-Length body: the body reaches the backend before the tunnel bytes', async () => {
    const body = randomBytes(3000);
    const early = randomBytes(5000);
    // The recorder answers only once the whole Content-Length body is in, as a real server would.
    const respond: Responder = (_req, s) => {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      return 'tunnel';
    };
    await withRoute(
      ws(),
      async (g, R) => {
        const { client, head } = await send(
          g.port,
          [...UPGRADE('websocket'), `Content-Length: ${body.length}`],
          'POST',
          Buffer.concat([body, early]),
        );
        try {
          assert.equal(head.status, 101, head.statusLine);
          assert.equal(sha256(await client.take(early.length)), sha256(early), 'early tunnel bytes echoed, not the body');
          await assertEchoes(client);
          assert.equal(R.requests.length, 1);
          const seen = R.requests[0];
          assert.equal(seen.requestLine, 'POST /t HTTP/1.1');
          assert.equal(header(seen.headerLines, 'content-length'), String(body.length));
          assert.equal(sha256(seen.body), sha256(body));
          assert.equal(sha256(Buffer.concat(R.tunnelBytes.get(0)!).subarray(0, early.length)), sha256(early));
        } finally {
          client.close();
        }
      },
      respond,
    );
  });
});

describe('backend answers to an upgrade', () => {
  const cases: { status: number; reason: string; headers: string[]; chunked?: boolean; keepsUpgrade: boolean }[] = [
    { status: 400, reason: 'Bad Request', headers: ['Upgrade: foo', 'Connection: Upgrade'], keepsUpgrade: false },
    { status: 403, reason: 'Forbidden', headers: ['X-Deny: yes'], chunked: true, keepsUpgrade: false },
    { status: 426, reason: 'Upgrade Required', headers: ['Upgrade: websocket', 'Connection: Upgrade'], keepsUpgrade: true },
  ];
  for (const c of cases) {
    test(`a ${c.status} answer is relayed as HTTP with its body intact${c.chunked ? ' (chunked)' : ''}; Upgrade kept: ${c.keepsUpgrade}`, async () => {
      const payload = randomBytes(20_000);
      const respond: Responder = (_req, s) => {
        let head = `HTTP/1.1 ${c.status} ${c.reason}\r\nX-Backend-Case: Yes\r\n${c.headers.map((h) => h + '\r\n').join('')}`;
        if (c.chunked) {
          s.write(head + 'Transfer-Encoding: chunked\r\n\r\n');
          s.write(payload.length.toString(16) + '\r\n');
          s.write(payload);
          s.write('\r\n0\r\n\r\n');
        } else {
          head += `Content-Length: ${payload.length}\r\n\r\n`;
          s.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
        }
        return 'keep';
      };
      await withRoute(
        ws(),
        async (g, R) => {
          const { client, head } = await send(g.port, UPGRADE('websocket'));
          try {
            assert.equal(head.statusLine, `HTTP/1.1 ${c.status} ${c.reason}`);
            assert.equal(header(head.headerLines, 'x-backend-case'), 'Yes');
            assert.equal(header(head.headerLines, 'upgrade'), c.keepsUpgrade ? 'websocket' : undefined);
            assert.match(header(head.headerLines, 'connection') ?? '', c.keepsUpgrade ? /^Upgrade, close$/ : /^close$/);
            if (c.chunked) {
              const expected = Buffer.concat([Buffer.from(payload.length.toString(16) + '\r\n'), payload, Buffer.from('\r\n0\r\n\r\n')]);
              assert.equal(sha256(await client.take(expected.length)), sha256(expected));
            } else {
              assert.equal(header(head.headerLines, 'content-length'), String(payload.length));
              assert.equal(sha256(await client.take(payload.length)), sha256(payload));
            }
            // The upgrade was refused: the connection is closed, never turned into a tunnel.
            assert.equal((await client.readToEnd()).length, 0);
            assert.equal(g.gateway.tunnels.size, 0);
            assert.equal(R.tunnelBytes.size, 0);
          } finally {
            client.close();
          }
        },
        respond,
      );
    });
  }

  test('a 101 with a different Upgrade token → 502; so is a 101 without Upgrade', async () => {
    for (const answer of ['Upgrade: h2c\r\nConnection: Upgrade\r\n', 'Connection: Upgrade\r\n']) {
      const respond: Responder = (_req, s) => {
        s.write(`HTTP/1.1 101 Switching Protocols\r\n${answer}\r\nTUNNEL BYTES`);
        return 'tunnel';
      };
      await withRoute(
        ws(),
        async (g, R) => {
          const { client, head } = await send(g.port, UPGRADE('websocket'));
          try {
            assert.equal(head.status, 502, head.statusLine);
            const rest = await client.readToEnd();
            assert.ok(!rest.includes('TUNNEL BYTES'), 'nothing of the backend tunnel reaches the client');
            assert.equal(g.gateway.tunnels.size, 0);
            // The backend connection is dropped, not kept as a tunnel or pooled.
            assert.equal(R.requests.length, 1);
            await eventually(() => R.open() === 0, 5000, 'the backend connection to close');
          } finally {
            client.close();
          }
          await g.waitForLog(/proxy request failed/);
        },
        respond,
      );
    }
  });

  test('a 101 to a request that asked no upgrade → 502 (http:// route stripping Upgrade, and a plain GET)', async () => {
    const respond: Responder = (_req, s) => {
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      return 'tunnel';
    };
    for (const [kind, route] of [
      ['http', http()],
      ['ws', ws()],
    ] as const) {
      await withRoute(
        route,
        async (g, R) => {
          // An upgrade on an http:// route without upgrade= (Upgrade stripped), then a plain GET.
          for (const lines of [UPGRADE('websocket'), []]) {
            const n = R.requests.length;
            const { client, head } = await send(g.port, lines);
            try {
              if (kind === 'ws' && lines.length > 0) {
                // On the ws:// route the upgrade is legitimate: tunnelled.
                assert.equal(head.status, 101);
                await assertEchoes(client);
                client.close();
                await eventually(() => g.gateway.tunnels.size === 0, 5000, 'the tunnel to close');
                continue;
              }
              assert.equal(head.status, 502, head.statusLine);
              assert.equal(header(R.requests[n].headerLines, 'upgrade'), undefined);
              assert.equal((await client.readToEnd()).toString('latin1').startsWith('502 '), true);
              assert.equal(g.gateway.tunnels.size, 0);
            } finally {
              client.close();
            }
          }
        },
        respond,
      );
    }
  });
});

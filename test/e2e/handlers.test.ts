// wsgate's own handlers behind `SetHandler` (src/handlers/), on the wire: where they answer
// (paths no ProxyPass takes, as in Apache, where mod_proxy wins), access control before them,
// keep-alive after them, HTTP/2, `SetHandler none`, and the request record every answer ends.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { test } from 'node:test';
import { serveHealth } from '../../src/handlers/health';
import type { HandlerHost, LocalRequest, LocalResponse } from '../../src/handlers/handler';
import type { RequestRecord } from '../../src/proxy/record';
import { expectError } from '../config/helpers';
import { rawExchange, startGateway, startPlainBackend } from '../helpers/harness';

const BOUND = { timeout: 30_000 };

/** Sends raw requests on one connection and returns everything until the server closes it. */
async function exchange(port: number, requests: string): Promise<string> {
  const res = await rawExchange(port, requests);
  return res.data.toString('latin1');
}

test('SetHandler health answers 200 where nothing is proxied; keep-alive and HEAD as for any answer', BOUND, async () => {
  const g = await startGateway(['Listen 127.0.0.1:0', '<Location "/healthz">', '  SetHandler health', '</Location>', ''].join('\n'));
  try {
    const text = await exchange(
      g.port,
      'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 3, text);
    assert.match(answers[0]!, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(answers[0]!, /\r\nContent-Length: 3\r\n/i);
    assert.match(answers[0]!, /\r\n\r\nok\n$/);
    assert.match(answers[1]!, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/, 'HEAD: head only');
    assert.match(answers[2]!, /^HTTP\/1\.1 404 /, 'a path outside the section is not the handler’s');
  } finally {
    await g.stop();
  }
});

test('a ProxyPass that matches wins over SetHandler (as in Apache); "ProxyPass /healthz !" gives the path back', BOUND, async () => {
  const b = await startPlainBackend();
  const conf = (exclude: boolean) =>
    [
      'Listen 127.0.0.1:0',
      ...(exclude ? ['ProxyPass /healthz !'] : []),
      `ProxyPass / http://127.0.0.1:${b.port}/`,
      '<Location "/healthz">',
      '  SetHandler health',
      '</Location>',
      '',
    ].join('\n');
  try {
    for (const exclude of [false, true]) {
      const g = await startGateway(conf(exclude));
      try {
        const text = await exchange(g.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
        if (exclude) assert.match(text, /\r\n\r\nok\n$/);
        else assert.match(text, /\r\n\r\nbackend$/);
      } finally {
        await g.stop();
      }
    }
    assert.deepEqual(b.seen, ['/healthz'], 'the backend saw the proxied request only');
  } finally {
    await b.stop();
  }
});

test('Require decides before the handler runs: 403 for an address the section does not allow', BOUND, async () => {
  const g = await startGateway(
    ['Listen 127.0.0.1:0', '<Location "/healthz">', '  SetHandler health', '  Require ip 127.0.0.2', '</Location>', ''].join('\n'),
  );
  const ended: RequestRecord[] = [];
  g.gateway.observers.add({ requestEnded: (r) => ended.push(r) });
  try {
    const text = await exchange(g.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 403 /);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.status, 403);
    assert.equal(ended[0]!.outcome?.kind, 'answered');
  } finally {
    await g.stop();
  }
});

test('SetHandler none in a deeper section clears it; the record of a handler answer reaches the observers', BOUND, async () => {
  const g = await startGateway(
    [
      'Listen 127.0.0.1:0',
      '<Location "/probe">',
      '  SetHandler health',
      '</Location>',
      '<Location "/probe/off">',
      '  SetHandler none',
      '</Location>',
      '',
    ].join('\n'),
  );
  const ended: RequestRecord[] = [];
  g.gateway.observers.add({ requestEnded: (r) => ended.push(r) });
  try {
    assert.match(await exchange(g.port, 'GET /probe/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
    assert.match(await exchange(g.port, 'GET /probe/off HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 404 /);
    assert.deepEqual(
      ended.map((r) => [r.path, r.status, r.bytesOut]),
      [
        ['/probe/x', 200, 3],
        ['/probe/off', 404, 14],
      ],
    );
    assert.ok(ended[0]!.finishedAt >= ended[0]!.headAt);
  } finally {
    await g.stop();
  }
});

test('over HTTP/2 (h2c): the same answer on a stream', BOUND, async () => {
  const g = await startGateway(
    ['Listen 127.0.0.1:0', 'Protocols h2c http/1.1', '<Location "/healthz">', '  SetHandler health', '</Location>', ''].join('\n'),
  );
  const session = http2.connect(`http://127.0.0.1:${g.port}`);
  session.on('error', () => {});
  try {
    const stream = session.request({ ':path': '/healthz' });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    await once(stream, 'end');
    assert.equal(headers[':status'], 200);
    assert.equal(headers['cache-control'], 'no-store');
    assert.equal(Buffer.concat(parts).toString(), 'ok\n');
  } finally {
    session.close();
    await g.stop();
  }
});

test('health turns 503 once the gateway is no longer serving', () => {
  const sent: [number, string][] = [];
  const res: LocalResponse = {
    send: (status, _fields, body) => sent.push([status, String(body)]),
    open: () => {
      throw new Error('not streamed');
    },
    body: () => Promise.resolve(undefined),
  };
  for (const state of ['serving', 'draining', 'stopping'] as const) {
    serveHealth({ state } as HandlerHost, {} as LocalRequest, res);
  }
  assert.deepEqual(sent, [
    [200, 'ok\n'],
    [503, 'draining\n'],
    [503, 'stopping\n'],
  ]);
});

test('SetHandler for a handler wsgate does not run keeps the rule for local content', () => {
  expectError(
    { 'wsgate.conf': ['Listen 127.0.0.1:0', '<Location "/x">', '  SetHandler server-info', '</Location>', ''].join('\n') },
    { line: 3, message: /SetHandler: wsgate runs no such handler/ },
  );
});

// Plain HTTP proxying through http:// routes and the ws:// fallback (REFERENCE §2): bodies both
// ways in both framings (checked by SHA-256), chunked extensions and trailers byte for byte,
// streaming without buffering (50 MB up and down with flat memory), keep-alive and pipelining to
// clients, the keep-alive pool to backends, HTTP/1.0 clients, bodiless responses, and a pooled
// connection the backend closed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import type * as net from 'node:net';
import { test } from 'node:test';
import { arrayBufferGrowth, BlockStream, connectRaw, ResponseReader, type WireResponse } from '../helpers/edges';
import {
  assertNoOpenSockets,
  eventually,
  headerIn,
  randomBytes,
  sha256,
  startGateway,
  startRawBackend,
  type RunningGateway,
} from '../helpers/harness';

const MiB = 1024 * 1024;

interface BodyBackend {
  port: number;
  server: http.Server;
  /** TCP connections accepted so far. */
  connections: number;
  /** Every request: method, url, HTTP version, body SHA-256 and length. */
  seen: { method: string; url: string; version: string; sha: string; length: number; te?: string; cl?: string }[];
  close(): Promise<void>;
}

/**
 * A node:http backend:
 * - `/echo[?res=chunked]`: answers the request body back (Content-Length, or chunked in two
 *   writes), with X-Req-Sha256 / X-Req-Length / X-Req-Method; HEAD gets the headers only.
 * - `/status/204`, `/status/304`: bodiless answers (the 304 with a Content-Length of 1234).
 * - `/sink-slow`: reads the body slowly (10 ms pause every 256 KiB), answers `sha len`.
 * - `/big`: streams `download` (chunked), respecting backpressure.
 */
async function startBodyBackend(download?: BlockStream): Promise<BodyBackend> {
  const b: BodyBackend = {
    port: 0,
    server: undefined as unknown as http.Server,
    connections: 0,
    seen: [],
    close: async () => {},
  };
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const url = req.url ?? '';
    const hash = createHash('sha256');
    let length = 0;
    const chunks: Buffer[] = [];
    const slow = url.startsWith('/sink-slow');
    let sincePause = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
      if (!slow) chunks.push(c);
      else if ((sincePause += c.length) >= 256 * 1024) {
        sincePause = 0;
        req.pause();
        setTimeout(() => req.resume(), 10);
      }
    });
    req.on('end', () => {
      const sha = hash.digest('hex');
      b.seen.push({
        method: req.method ?? '',
        url,
        version: req.httpVersion,
        sha,
        length,
        te: req.headers['transfer-encoding'],
        cl: req.headers['content-length'],
      });
      if (url.startsWith('/status/204')) {
        res.writeHead(204, { 'X-Kind': 'no-content' });
        res.end();
      } else if (url.startsWith('/status/304')) {
        res.writeHead(304, { ETag: '"v1"', 'Content-Length': '1234' });
        res.end();
      } else if (slow) {
        const text = `${sha} ${length}`;
        res.writeHead(200, { 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      } else if (url.startsWith('/big') && download !== undefined) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        download.writeTo(res).then(
          () => res.end(),
          () => {},
        );
      } else {
        const body = Buffer.concat(chunks);
        const headers: http.OutgoingHttpHeaders = {
          'X-Req-Sha256': sha,
          'X-Req-Length': String(length),
          'X-Req-Method': req.method ?? '',
        };
        if (url.includes('res=chunked')) {
          res.writeHead(200, headers);
          if (req.method !== 'HEAD') {
            res.write(body.subarray(0, body.length >> 1));
            res.write(body.subarray(body.length >> 1));
          }
          res.end();
        } else {
          headers['Content-Length'] = String(body.length);
          res.writeHead(200, headers);
          res.end(req.method === 'HEAD' ? undefined : body);
        }
      }
    });
  });
  server.on('connection', () => b.connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  b.port = (server.address() as net.AddressInfo).port;
  b.server = server;
  b.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return b;
}

/** A gateway with `/h/` → http:// and `/w/` → ws:// (plain requests take the fallback). */
async function withHttpGateway(backend: { port: number }, body: (g: RunningGateway) => Promise<void>): Promise<void> {
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass "/h/" "http://127.0.0.1:${backend.port}/"\nProxyPass "/w/" "ws://127.0.0.1:${backend.port}/"\n`,
  );
  try {
    await body(g);
    await assertNoOpenSockets(g);
  } finally {
    await g.stop();
  }
}

/** Encodes `body` as chunked in pieces of the given sizes (the rest in one last chunk). */
function chunked(body: Buffer, sizes: number[] = [1, 7, 4096]): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (const s of sizes) {
    if (i >= body.length) break;
    const part = body.subarray(i, i + s);
    out.push(Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n'));
    i += part.length;
  }
  if (i < body.length) out.push(Buffer.from(`${(body.length - i).toString(16)}\r\n`), body.subarray(i), Buffer.from('\r\n'));
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

test('GET/HEAD/POST/PUT with Content-Length and chunked bodies both ways, on one keep-alive connection', { timeout: 60_000 }, async () => {
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      for (const prefix of ['/h/', '/w/']) {
        const client = await connectRaw(g.port);
        const reader = new ResponseReader(client);
        let n = 0;
        for (const method of ['GET', 'HEAD', 'POST', 'PUT']) {
          for (const reqFraming of method === 'GET' || method === 'HEAD' ? ['none'] : ['length', 'chunked']) {
            for (const resFraming of ['length', 'chunked']) {
              for (const size of reqFraming === 'none' ? [0] : [0, 1, 100_000]) {
                const payload = randomBytes(size);
                const url = `${prefix}echo?n=${n++}${resFraming === 'chunked' ? '&res=chunked' : ''}`;
                let head = `${method} ${url} HTTP/1.1\r\nHost: gw.test\r\n`;
                let body: Buffer = Buffer.alloc(0);
                if (reqFraming === 'length') {
                  head += `Content-Length: ${size}\r\n`;
                  body = payload;
                } else if (reqFraming === 'chunked') {
                  head += 'Transfer-Encoding: chunked\r\n';
                  body = chunked(payload);
                }
                client.write(Buffer.concat([Buffer.from(head + '\r\n'), body]));
                const res = await reader.next(method);
                const what = `${method} ${url} req=${reqFraming} size=${size}`;
                assert.equal(res.status, 200, what);
                assert.equal(headerIn(res.head, 'x-req-method'), method, what);
                assert.equal(headerIn(res.head, 'x-req-sha256'), sha256(payload), `${what}: the backend got the body`);
                assert.equal(headerIn(res.head, 'x-req-length'), String(size), what);
                assert.equal(headerIn(res.head, 'connection'), undefined, `${what}: keep-alive is the HTTP/1.1 default`);
                if (method === 'HEAD') {
                  assert.equal(res.rawBody.length, 0);
                } else {
                  assert.equal(sha256(res.body), sha256(payload), `${what}: the client got the body back`);
                  if (resFraming === 'chunked') assert.match(headerIn(res.head, 'transfer-encoding') ?? '', /chunked/, what);
                  else assert.equal(headerIn(res.head, 'content-length'), String(size), what);
                }
                const seen = backend.seen[backend.seen.length - 1];
                assert.equal(seen.url, url.slice(prefix.length - 1));
                if (reqFraming === 'chunked') assert.equal(seen.te, 'chunked', `${what}: chunked stays chunked`);
                if (reqFraming === 'length') assert.equal(seen.cl, String(size), what);
              }
            }
          }
        }
        client.end();
        await reader.expectClose();
      }
      // The whole matrix went over one backend connection per route (both reach the same origin).
      assert.equal(backend.connections, 1);
    });
  } finally {
    await backend.close();
  }
});

test('chunk extensions and trailers pass byte for byte in both directions', { timeout: 30_000 }, async () => {
  const reqBody = Buffer.from(
    '5;name=value;x="q"\r\nhello\r\n3 ; ext\r\n, w\r\nA\r\norld! 0123\r\n0;last=1\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n',
    'latin1',
  );
  const resBody = Buffer.from('4;ext=1\r\nback\r\n1;e\r\n!\r\n0\r\nX-Trailer-A: yes\r\nX-Trailer-B: 2\r\n\r\n', 'latin1');
  let received = Buffer.alloc(0);
  let seenHead = '';
  const backend = await startRawBackend((s) => {
    s.on('data', (c: Buffer) => {
      received = Buffer.concat([received, c]);
      const i = received.indexOf('\r\n\r\n');
      if (i !== -1 && received.length - (i + 4) === reqBody.length) {
        seenHead = received.subarray(0, i).toString('latin1');
        received = received.subarray(i + 4);
        s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), resBody]));
      }
    });
    s.once('end', () => s.end());
  });
  try {
    await withHttpGateway(backend, async (g) => {
      const client = await connectRaw(g.port);
      const reader = new ResponseReader(client);
      client.write(Buffer.concat([Buffer.from('POST /h/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'), reqBody]));
      const res = await reader.next();
      assert.equal(res.status, 200);
      assert.deepEqual(received, reqBody, 'the backend got the chunked body unchanged');
      assert.match(seenHead, /\r\nTransfer-Encoding: chunked(\r\n|$)/);
      assert.deepEqual(res.rawBody, resBody, 'the client got the chunked body unchanged');
      assert.deepEqual(res.trailers, ['X-Trailer-A: yes', 'X-Trailer-B: 2']);
      assert.equal(res.body.toString(), 'back!');
      client.end();
      await reader.expectClose();
    });
  } finally {
    await backend.close();
  }
});

test('a 50 MB streamed upload to a slow backend keeps memory flat and arrives intact', { timeout: 120_000 }, async (t) => {
  const upload = new BlockStream(50 * MiB);
  const expected = upload.sha256();
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      const { result, growth, samples } = await arrayBufferGrowth(async () => {
        const req = http.request({
          host: '127.0.0.1',
          port: g.port,
          method: 'PUT',
          path: '/h/sink-slow',
          agent: false,
          headers: { 'Content-Length': String(upload.total) },
        });
        const response = once(req, 'response') as Promise<[http.IncomingMessage]>;
        await upload.writeTo(req);
        req.end();
        const [res] = await response;
        let text = '';
        for await (const c of res) text += String(c);
        return { status: res.statusCode, text };
      });
      assert.equal(result.status, 200);
      assert.equal(result.text, `${expected} ${upload.total}`);
      assert.ok(samples >= 5, `only ${samples} memory samples`);
      t.diagnostic(`ArrayBuffer growth during the upload: ${(growth / MiB).toFixed(1)} MiB (${samples} samples)`);
      assert.ok(growth < 20 * MiB, `ArrayBuffer memory grew by ${(growth / MiB).toFixed(1)} MiB during the upload`);
    });
  } finally {
    await backend.close();
  }
});

test('a 50 MB download to a slow-reading client keeps memory flat and arrives intact', { timeout: 120_000 }, async (t) => {
  const download = new BlockStream(50 * MiB);
  const expected = download.sha256();
  const backend = await startBodyBackend(download);
  try {
    await withHttpGateway(backend, async (g) => {
      const { result, growth, samples } = await arrayBufferGrowth(async () => {
        const req = http.request({ host: '127.0.0.1', port: g.port, method: 'GET', path: '/w/big', agent: false });
        req.end();
        const [res] = (await once(req, 'response')) as [http.IncomingMessage];
        const hash = createHash('sha256');
        let length = 0;
        let sincePause = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          length += c.length;
          if ((sincePause += c.length) >= 256 * 1024) {
            sincePause = 0;
            res.pause();
            setTimeout(() => res.resume(), 10);
          }
        });
        await once(res, 'end');
        return { status: res.statusCode, te: res.headers['transfer-encoding'], sha: hash.digest('hex'), length };
      });
      assert.equal(result.status, 200);
      assert.equal(result.te, 'chunked');
      assert.equal(result.length, download.total);
      assert.equal(result.sha, expected);
      assert.ok(samples >= 5, `only ${samples} memory samples`);
      t.diagnostic(`ArrayBuffer growth during the download: ${(growth / MiB).toFixed(1)} MiB (${samples} samples)`);
      assert.ok(growth < 20 * MiB, `ArrayBuffer memory grew by ${(growth / MiB).toFixed(1)} MiB during the download`);
    });
  } finally {
    await backend.close();
  }
});

test('keep-alive to clients: sequential and pipelined requests on one connection, answered in order', { timeout: 30_000 }, async () => {
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      const client = await connectRaw(g.port);
      const reader = new ResponseReader(client);
      for (let i = 0; i < 5; i++) {
        const body = randomBytes(1000 + i);
        client.write(
          Buffer.concat([Buffer.from(`POST /h/echo?seq=${i} HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`), body]),
        );
        const res = await reader.next();
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, body);
      }
      // Four requests in one write: GET, POST (chunked), HEAD, POST (Content-Length), the last with Connection: close.
      const b1 = randomBytes(5000);
      const b3 = randomBytes(3000);
      const pipelined = Buffer.concat([
        Buffer.from('GET /h/echo?p=0 HTTP/1.1\r\nHost: a\r\n\r\n'),
        Buffer.from('POST /w/echo?p=1&res=chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'),
        chunked(b1),
        Buffer.from('HEAD /h/echo?p=2 HTTP/1.1\r\nHost: a\r\n\r\n'),
        Buffer.from(`POST /h/echo?p=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: ${b3.length}\r\n\r\n`),
        b3,
      ]);
      client.write(pipelined);
      const r0 = await reader.next('GET');
      const r1 = await reader.next('POST');
      const r2 = await reader.next('HEAD');
      const r3 = await reader.next('POST');
      assert.deepEqual([r0.status, r1.status, r2.status, r3.status], [200, 200, 200, 200]);
      assert.equal(headerIn(r0.head, 'x-req-method'), 'GET');
      assert.equal(r0.body.length, 0);
      assert.equal(headerIn(r1.head, 'x-req-sha256'), sha256(b1));
      assert.deepEqual(r1.body, b1);
      assert.equal(headerIn(r2.head, 'x-req-method'), 'HEAD');
      assert.deepEqual(r3.body, b3);
      assert.equal(headerIn(r3.head, 'connection'), 'close');
      await reader.expectClose();
      assert.deepEqual(
        backend.seen.slice(-4).map((s) => s.url),
        ['/echo?p=0', '/echo?p=1&res=chunked', '/echo?p=2', '/echo?p=3'],
      );
    });
  } finally {
    await backend.close();
  }
});

test('keep-alive pool to backends: sequential requests reuse one backend connection', { timeout: 30_000 }, async () => {
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      // Separate client connections, one after the other.
      for (let i = 0; i < 5; i++) {
        const client = await connectRaw(g.port);
        const reader = new ResponseReader(client);
        client.write(`GET /h/echo?c=${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
        const res = await reader.next();
        assert.equal(res.status, 200);
        await reader.expectClose();
      }
      assert.equal(backend.seen.length, 5);
      assert.equal(backend.connections, 1, 'one backend connection served all five');
    });
  } finally {
    await backend.close();
  }
});

test('HTTP/1.0 client: the response is readable and the connection closed', { timeout: 30_000 }, async () => {
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      const body = randomBytes(20_000);
      for (const req of [
        { text: 'GET /h/echo?v=10 HTTP/1.0\r\n\r\n', body: Buffer.alloc(0), method: 'GET' },
        { text: `POST /w/echo?v=10 HTTP/1.0\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`, body, method: 'POST' },
      ]) {
        const client = await connectRaw(g.port);
        const reader = new ResponseReader(client);
        client.write(Buffer.concat([Buffer.from(req.text), req.body]));
        const res = await reader.next();
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, req.body);
        assert.equal(headerIn(res.head, 'transfer-encoding'), undefined, 'no chunked to an HTTP/1.0 client');
        assert.equal(headerIn(res.head, 'connection'), 'close');
        await reader.expectClose();
        const seen = backend.seen[backend.seen.length - 1];
        assert.equal(seen.method, req.method);
        assert.equal(seen.version, '1.0');
      }
    });
  } finally {
    await backend.close();
  }
});

test('204, 304 and HEAD responses carry no body and keep the connection in sync', { timeout: 30_000 }, async () => {
  const backend = await startBodyBackend();
  try {
    await withHttpGateway(backend, async (g) => {
      const reqs: { text: string; method: string; check: (r: WireResponse) => void }[] = [
        {
          text: 'GET /h/status/204 HTTP/1.1\r\nHost: a\r\n\r\n',
          method: 'GET',
          check: (r) => {
            assert.equal(r.status, 204);
            assert.equal(headerIn(r.head, 'x-kind'), 'no-content');
          },
        },
        {
          text: 'GET /w/status/304 HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\n',
          method: 'GET',
          check: (r) => {
            assert.equal(r.status, 304);
            assert.equal(headerIn(r.head, 'etag'), '"v1"');
            assert.equal(headerIn(r.head, 'content-length'), '1234');
          },
        },
        {
          text: 'HEAD /h/echo?res=chunked HTTP/1.1\r\nHost: a\r\n\r\n',
          method: 'HEAD',
          check: (r) => {
            assert.equal(r.status, 200);
            assert.equal(headerIn(r.head, 'x-req-method'), 'HEAD');
          },
        },
        {
          text: 'POST /h/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\nin sync',
          method: 'POST',
          check: (r) => {
            assert.equal(r.status, 200);
            assert.equal(r.body.toString(), 'in sync');
          },
        },
      ];
      // One at a time…
      const c1 = await connectRaw(g.port);
      const r1 = new ResponseReader(c1);
      for (const r of reqs) {
        c1.write(r.text);
        r.check(await r1.next(r.method));
      }
      // …and all in one write.
      const c2 = await connectRaw(g.port);
      const r2 = new ResponseReader(c2);
      c2.write(reqs.map((r) => r.text).join(''));
      for (const r of reqs) r.check(await r2.next(r.method));
      c1.end();
      c2.end();
      await r1.expectClose();
      await r2.expectClose();
    });
  } finally {
    await backend.close();
  }
});

/**
 * A raw keep-alive backend: answers GETs with `conn=<id> req=<k>`. `onRequest` may return
 * 'drop' to close the connection instead of answering.
 */
async function startCountingBackend(onRequest: (conn: number, req: number, s: net.Socket) => 'answer' | 'drop') {
  let nextConn = 0;
  const raw = await startRawBackend((s) => {
    const conn = ++nextConn;
    let reqs = 0;
    let buf = Buffer.alloc(0);
    s.once('end', () => s.end());
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) !== -1) {
        buf = buf.subarray(i + 4);
        const k = ++reqs;
        if (onRequest(conn, k, s) === 'drop') {
          s.destroy();
          return;
        }
        const body = `conn=${conn} req=${k}`;
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  return { ...raw, accepted: () => nextConn };
}

test('a backend closing an idle pooled connection is not an error for the next request', { timeout: 30_000 }, async () => {
  const backend = await startCountingBackend((_conn, _req, s) => {
    // Answer, then close the idle connection shortly after (as a backend's keep-alive timeout does).
    setTimeout(() => s.end(), 50);
    return 'answer';
  });
  try {
    await withHttpGateway(backend, async (g) => {
      const client = await connectRaw(g.port);
      const reader = new ResponseReader(client);
      client.write('GET /h/a HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await reader.next()).body.toString(), 'conn=1 req=1');
      await eventually(() => backend.sockets.size === 0, 5000, 'the backend to close its connection');
      client.write('GET /h/b HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await reader.next();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'conn=2 req=1');
      client.end();
      await reader.expectClose();
    });
  } finally {
    await backend.close();
  }
});

test('a pooled connection the backend drops as the next request arrives is retried on a fresh one', { timeout: 30_000 }, async () => {
  // The keep-alive race: the backend closes a reused connection without answering the request.
  const backend = await startCountingBackend((conn, req) => (conn === 1 && req === 2 ? 'drop' : 'answer'));
  try {
    await withHttpGateway(backend, async (g) => {
      const client = await connectRaw(g.port);
      const reader = new ResponseReader(client);
      client.write('GET /h/a HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await reader.next()).body.toString(), 'conn=1 req=1');
      client.write('GET /h/b HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await reader.next();
      assert.equal(res.status, 200, res.head);
      assert.equal(res.body.toString(), 'conn=2 req=1', 'answered on a second connection');
      assert.equal(backend.accepted(), 2);
      client.write('GET /h/c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      assert.equal((await reader.next()).body.toString(), 'conn=2 req=2');
      await reader.expectClose();
      assert.ok(!g.logs.some((l) => /proxy request (failed|aborted)/.test(l)), 'no error was logged');
    });
  } finally {
    await backend.close();
  }
});

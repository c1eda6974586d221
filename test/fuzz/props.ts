// fast-check properties run against a live gateway and the config loader, shared by the short
// seeded runs of `npm test` (test/fuzz/properties.test.ts) and the longer ones of `npm run fuzz`
// (scripts/fuzz.ts). The seed and the run count come from WSGATE_FUZZ_SEED and WSGATE_FUZZ_RUNS
// (a multiplier of each property's own short count), so a failure prints what replays it.
//
// - Request heads, generated from parts and then mutated byte by byte, each on its own client
//   connection: the client gets answers from the backend (200, marked) or refusals (4xx, 501,
//   505) and then the close, never a 502/504; the backend, Node's strict HTTP parser, never finds
//   a request it cannot frame; and every request the backend read whole was answered to the client
//   (a request smuggled past the proxy would be one more at the backend than the client got).
// - Random byte streams after an upgrade (a raw protocol and a WebSocket, strict off), split at
//   random, with or without early bytes in the head's packet: the echo comes back byte for byte.
// - Config files built from every directive name wsgate knows with arguments from a pool of
//   good and bad values, sections opened and closed at random, sometimes split over an Include:
//   loading never throws anything but a ConfigError whose message starts FILE:LINE of a line
//   that exists.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { directiveGroups } from '../../src/config/directives';
import { ConfigError, loadConfigFile } from '../../src/config/load';
import { webSocketAccept } from '../../src/http/websocket-key';
import { headerIn, readRequestHead, startGateway, startRawBackend, type RunningGateway } from '../helpers/harness';

export const SEED = Number(process.env.WSGATE_FUZZ_SEED ?? 0x5eed);
/** Each property's short run count is multiplied by this (npm run fuzz raises it). */
export const SCALE = Number(process.env.WSGATE_FUZZ_RUNS ?? 1);

export function params(shortRuns: number): fc.Parameters<unknown> {
  return { seed: SEED, numRuns: Math.max(1, Math.round(shortRuns * SCALE)), includeErrorInReport: true };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// --- request heads against a gateway -----------------------------------------------------------

/** One request written by the generator: the line, its fields, a line ending, a body; mostly good parts, some bad. */
const GOOD_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const BAD_METHODS = ['get', 'G ET', 'CONNECT', 'TRACE', 'X-Y', ''];
const GOOD_TARGETS = ['/', '/a/b?c=d', '/x%20y', 'http://a.example/x', '/%41'];
const BAD_TARGETS = ['/%00', '/a b', '*', 'a.example:80', '//x', '/\x7f', '/é', ''];
const GOOD_VERSIONS = ['HTTP/1.1', 'HTTP/1.0'];
const BAD_VERSIONS = ['HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'http/1.1', 'HTTP/1.1 ', ''];
type Field = readonly [string, string];
const GOOD_FIELDS: readonly Field[] = [
  ['Host', 'a.example'],
  ['Content-Length', '5'],
  ['Content-Length', '0'],
  ['Transfer-Encoding', 'chunked'],
  ['Connection', 'close'],
  ['Connection', 'keep-alive'],
  ['Accept', '*/*'],
  ['Cookie', 'a=b; c=d'],
  ['X-Forwarded-For', '10.0.0.1'],
];
const BAD_FIELDS: readonly Field[] = [
  ['Host', ''],
  ['Host', 'a b'],
  ['Host', 'b'],
  ['Content-Length', '-1'],
  ['Content-Length', '5, 5'],
  ['Content-Length', '0x5'],
  ['Content-Length', ' 7'],
  ['Content-Length', '99999999999999999999'],
  ['Transfer-Encoding', 'gzip, chunked'],
  ['Transfer-Encoding', 'chunked, gzip'],
  ['Transfer-Encoding', 'identity'],
  ['Transfer-Encoding', ' chunked'],
  ['Connection', 'keep-alive, Upgrade'],
  ['Upgrade', 'websocket'],
  ['Expect', '100-continue'],
  ['X-A', 'v\x00v'],
  ['X-A', ' folded'],
  ['Bad Name', 'v'],
  ['X:Y', 'v'],
  ['', 'v'],
  ['X-Long', 'x'.repeat(300)],
];
const GOOD_BODIES = ['', 'hello', '5\r\nhello\r\n0\r\n\r\n', '3\r\nabc\r\n0\r\nT: 1\r\n\r\n'];
const BAD_BODIES = ['zz\r\n', 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', '5\r\nhel', '-1\r\n\r\n'];

/** Mostly one of `good`, sometimes one of `bad` (or anything). */
function mostly<T>(good: readonly T[], bad: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: bad });
}

const requestParts = fc.record({
  method: mostly(GOOD_METHODS, fc.oneof(fc.constantFrom(...BAD_METHODS), fc.string({ maxLength: 8 }))),
  target: mostly(
    GOOD_TARGETS,
    fc.oneof(
      fc.constantFrom(...BAD_TARGETS),
      fc.string({ maxLength: 12 }).map((s) => '/' + s),
    ),
  ),
  version: mostly(GOOD_VERSIONS, fc.constantFrom(...BAD_VERSIONS)),
  fields: fc.array(mostly(GOOD_FIELDS, fc.constantFrom(...BAD_FIELDS)), { maxLength: 5 }),
  eol: mostly(['\r\n'], fc.constantFrom('\n', '\r')),
  body: mostly(GOOD_BODIES, fc.oneof(fc.constantFrom(...BAD_BODIES), fc.string({ maxLength: 40 }))),
  /** A second, ordinary request pipelined behind. */
  pipelined: fc.boolean(),
});

/** Byte edits applied after assembly (none for half the cases): position (as a fraction of the length), kind, byte. */
const edits = fc.oneof(
  fc.constant([] as [number, number, number][]),
  fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })), {
    minLength: 1,
    maxLength: 3,
  }),
);

export interface RequestCase {
  bytes: Buffer;
  /** Where the bytes are split into separate writes (fractions of the length). */
  cuts: number[];
}

export const requestCase: fc.Arbitrary<RequestCase> = fc
  .tuple(requestParts, edits, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 2 }))
  .map(([p, ed, cuts]) => {
    // The generator starts from a well-formed request and lets the pools and edits break it.
    const fields = p.fields.some(([n]) => n === 'Host') ? p.fields : [['Host', 'a.example'] as const, ...p.fields];
    let text = `${p.method} ${p.target} ${p.version}${p.eol}`;
    for (const [n, v] of fields) text += `${n}: ${v}${p.eol}`;
    text += p.eol + p.body;
    if (p.pipelined) text += 'GET /second HTTP/1.1\r\nHost: a.example\r\n\r\n';
    let b = Buffer.from(text, 'latin1');
    for (const [at, kind, byte] of ed) {
      const i = Math.floor(at * b.length);
      if (kind === 0 && b.length > 0) b[Math.min(i, b.length - 1)] = byte;
      else if (kind === 1) b = Buffer.concat([b.subarray(0, i), Buffer.of(byte), b.subarray(i)]);
      else if (kind === 2) b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      else b = Buffer.concat([b.subarray(0, i), Buffer.from(['\r\n', '\r', '\n', '\0'][byte % 4], 'latin1'), b.subarray(i)]);
    }
    return { bytes: b, cuts: cuts.map((c) => Math.floor(c * b.length)).sort((x, y) => x - y) };
  });

export interface HeadsRig {
  g: RunningGateway;
  /** Requests the backend read to their end. */
  completed(): number;
  /** Connections the backend closed over a method or target Node's parser does not know (then a 502 is right). */
  benign(): number;
  /** Errors the backend's parser found in what the gateway sent (Node's strict llhttp). */
  readonly parseErrors: string[];
  stop(): Promise<void>;
}

const BENIGN = new Set(['HPE_INVALID_EOF_STATE', 'ECONNRESET', 'HPE_INVALID_METHOD', 'HPE_INVALID_URL']);

/** A gateway in front of a Node HTTP backend that marks every answer and hashes every body. */
export async function headsRig(frontConfig = 'Listen 127.0.0.1:0\n'): Promise<HeadsRig> {
  let completed = 0;
  let benign = 0;
  const parseErrors: string[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      completed++;
      const body = sha(Buffer.concat(parts));
      res.writeHead(200, { 'x-backend': '1', 'content-length': body.length });
      res.end(body);
    });
    req.on('error', () => {});
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // A connection the gateway closed mid-message (a client's body went wrong) ends the parse
    // early: that is the gateway refusing to send more, not a request read differently. Node's
    // parser also refuses methods and targets outside its own lists, which Apache (and wsgate)
    // pass on as any token: the content of the request line, not its framing.
    if (BENIGN.has(err.code ?? '')) benign++;
    else {
      parseErrors.push(`${err.code}: ${JSON.stringify((err as { rawPacket?: Buffer }).rawPacket?.toString('latin1').slice(0, 300))}`);
    }
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const g = await startGateway(`${frontConfig}Timeout 10\nProxyPass / http://127.0.0.1:${port}/\n`, { level: 'info' });
  return {
    g,
    completed: () => completed,
    benign: () => benign,
    parseErrors,
    async stop() {
      await g.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Statuses the gateway itself may answer a hostile head with. */
const REFUSALS = (s: number): boolean => (s >= 400 && s < 500) || s === 501 || s === 505;

/** Sends one case on a fresh connection, half-closes, and reads to the close; checks what came back. */
export async function checkRequestCase(rig: HeadsRig, port: number, c: RequestCase): Promise<{ backend: number }> {
  const benignBefore = rig.benign();
  const completedBefore = rig.completed();
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  let at = 0;
  for (const cut of [...c.cuts, c.bytes.length]) {
    if (cut > at) s.write(c.bytes.subarray(at, cut));
    at = Math.max(at, cut);
  }
  s.end();
  const timer = setTimeout(() => s.destroy(new Error('timeout')), 15_000);
  await closed;
  clearTimeout(timer);
  const got = Buffer.concat(chunks).toString('latin1');
  assert.ok(!s.errored || (s.errored as NodeJS.ErrnoException).code === 'ECONNRESET', `no close within 15 s: ${JSON.stringify(got)}`);
  let backend = 0;
  // Every status line (bodies are hex digests or short texts: no status line inside them).
  for (const m of got.matchAll(/(?:^|\n)HTTP\/1\.[01] (\d{3}) /g)) {
    const status = Number(m[1]);
    if (status === 100) continue; // the backend's interim answer to Expect: 100-continue, relayed
    if (status === 200) backend++;
    else if (!(status === 502 && rig.benign() > benignBefore))
      assert.ok(REFUSALS(status), `status ${status} in ${JSON.stringify(got.slice(0, 400))}`);
  }
  assert.equal((got.match(/\r\nx-backend: 1\r\n/gi) ?? []).length, backend, 'a 200 that did not come from the backend');
  assert.deepEqual(rig.parseErrors, [], 'the backend could not frame what the gateway sent');
  // Every request the backend read whole was answered to this client: none got past the proxy unseen.
  const start = Date.now();
  while (rig.completed() - completedBefore !== backend && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(rig.completed() - completedBefore, backend, 'the backend read a different number of requests than the client was answered');
  return { backend };
}

// --- byte streams after an upgrade --------------------------------------------------------------

export interface StreamsRig {
  g: RunningGateway;
  stop(): Promise<void>;
}

/** A gateway with an echo backend for a raw `echo` protocol and for WebSocket upgrades (bytes echoed as they come). */
export async function streamsRig(): Promise<StreamsRig> {
  const backend = await startRawBackend((s) => {
    void readRequestHead(s).then(
      ({ head, rest }) => {
        const key = headerIn(head, 'sec-websocket-key');
        s.write(
          key === undefined
            ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n'
            : `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`,
        );
        if (rest.length > 0) s.write(rest);
        s.on('data', (d: Buffer) => s.write(d));
        s.on('end', () => s.end());
        s.resume();
      },
      () => {},
    );
  });
  const g = await startGateway(
    `Listen 127.0.0.1:0\nProxyPass /e/ http://127.0.0.1:${backend.port}/ upgrade=echo\nProxyPass /ws/ ws://127.0.0.1:${backend.port}/\n`,
    { level: 'info' },
  );
  return {
    g,
    async stop() {
      await g.stop();
      await backend.close();
    },
  };
}

export interface StreamCase {
  websocket: boolean;
  early: boolean;
  chunks: Uint8Array[];
  halfClose: boolean;
}

export const streamCase: fc.Arbitrary<StreamCase> = fc.record({
  websocket: fc.boolean(),
  /** The first chunk goes in the same write as the head (early tunnel bytes). */
  early: fc.boolean(),
  chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 8192 }), { minLength: 1, maxLength: 12 }),
  /** The client half-closes at the end and waits for the backend's FIN to come through. */
  halfClose: fc.boolean(),
});

export async function checkStreamCase(port: number, c: StreamCase): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  s.on('error', () => {});
  await once(s, 'connect');
  const head = c.websocket
    ? 'GET /ws/f HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
    : 'GET /e/f HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n';
  const sent = Buffer.concat(c.chunks.map((u) => Buffer.from(u)));
  let received = Buffer.alloc(0);
  let headEnd = -1;
  let wanted: () => void = () => {};
  s.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    if (headEnd === -1) {
      const i = received.indexOf('\r\n\r\n');
      if (i !== -1) headEnd = i + 4;
    }
    wanted();
  });
  const ended = new Promise<void>((resolve) => s.once('end', () => resolve()));
  const upTo = (n: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`echo stalled at ${received.length - headEnd} of ${n} bytes`)), 15_000);
      wanted = () => {
        if (headEnd !== -1 && received.length - headEnd >= n) {
          clearTimeout(t);
          resolve();
        }
      };
      wanted();
    });
  const rest = c.early ? c.chunks.slice(1) : c.chunks;
  s.write(c.early ? Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(c.chunks[0])]) : Buffer.from(head, 'latin1'));
  await upTo(0);
  assert.match(received.toString('latin1', 0, headEnd), /^HTTP\/1\.1 101 /);
  for (const u of rest) s.write(Buffer.from(u));
  await upTo(sent.length);
  assert.equal(received.length - headEnd, sent.length, 'more bytes came back than were sent');
  assert.equal(sha(received.subarray(headEnd)), sha(sent));
  if (c.halfClose) {
    s.end();
    await ended;
  }
  s.destroy();
}

// --- config files --------------------------------------------------------------------------------

const ARGS = [
  'On',
  'Off',
  '0',
  '1',
  '60',
  '-1',
  '99999999999999999999',
  '127.0.0.1:8080',
  '8080',
  '[::1]:80',
  '*:80',
  '/',
  '/ws/',
  '"/a b"',
  'ws://127.0.0.1:9000/',
  'http://127.0.0.1:9/',
  'balancer://b/',
  'wss://10.0.0.1/',
  'https',
  'all',
  'granted',
  'ip 127.0.0.1',
  '^/(.*)$',
  '(',
  '[P,L]',
  '[NC]',
  '%{HTTP:Upgrade}',
  '${UNDEF}',
  'header=20-40,MinRate=500',
  'body=5',
  'max=4',
  'timeout=5',
  'route=a',
  'lbmethod=bybusyness',
  'set',
  'X-A',
  '"v"',
  'h2',
  'http/1.1',
  '/nonexistent/file.pem',
  '#',
  '\\',
  '"',
  '',
];

const SECTIONS = [
  'VirtualHost *:80',
  'VirtualHost 127.0.0.1:8080',
  'Location /x',
  'LocationMatch ^/y',
  'Proxy balancer://b',
  'IfModule mod_proxy.c',
  'IfDefine X',
  'Directory /',
  'Files x',
  'If "true"',
];

function configLines(names: readonly string[]): fc.Arbitrary<string[]> {
  const directive = fc
    .tuple(fc.constantFrom(...names), fc.array(fc.oneof(fc.constantFrom(...ARGS), fc.string({ maxLength: 10 })), { maxLength: 4 }))
    .map(([n, a]) => [n, ...a].join(' '));
  const open = fc.constantFrom(...SECTIONS).map((s) => `<${s}>`);
  const close = fc.constantFrom(...SECTIONS).map((s) => `</${s.split(' ')[0]}>`);
  const noise = fc.oneof(fc.constant(''), fc.constant('# comment'), fc.string({ maxLength: 30 }), fc.constant('ProxyPass / \\'));
  return fc.array(
    fc.oneof(
      { weight: 6, arbitrary: directive },
      { weight: 1, arbitrary: open },
      { weight: 1, arbitrary: close },
      { weight: 1, arbitrary: noise },
    ),
    {
      maxLength: 25,
    },
  );
}

/** A config split over a main file and, sometimes, an Included one; with the line counts of each. */
export function configCase(): fc.Arbitrary<{ main: string[]; included: string[] | undefined; listenFirst: boolean }> {
  // Include is written by the case itself: with a pool argument such as `/` it would read the disk.
  const names = [...directiveGroups().keys()].filter((n) => !n.startsWith('<') && !/^Include/i.test(n));
  return fc.record({
    main: configLines(names),
    included: fc.option(configLines(names), { nil: undefined }),
    listenFirst: fc.boolean(),
  });
}

const configDir = mkdtempSync(path.join(tmpdir(), 'wsgate-fuzz-config-'));
let configSeq = 0;

/** Loads the case from disk; only a ConfigError naming one of its files and an existing line may come out. */
export function checkConfigCase(c: { main: string[]; included: string[] | undefined; listenFirst: boolean }): 'loaded' | 'refused' {
  const dir = path.join(configDir, String(configSeq++));
  const main = path.join(dir, 'wsgate.conf');
  const inc = path.join(dir, 'extra.conf');
  const mainLines = [...(c.listenFirst ? ['Listen 127.0.0.1:0'] : []), ...c.main];
  if (c.included !== undefined) mainLines.splice(Math.floor(mainLines.length / 2), 0, `Include ${inc}`);
  mkdirSync(dir);
  writeFileSync(main, mainLines.join('\n') + '\n');
  if (c.included !== undefined) writeFileSync(inc, c.included.join('\n') + '\n');
  const lineCount = new Map([
    [main, mainLines.length],
    [inc, c.included?.length ?? 0],
  ]);
  try {
    loadConfigFile(main, { env: {} });
    return 'loaded';
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assert.ok(e.message.startsWith(`${e.file}:${e.line}: `), e.message);
    assert.ok(lineCount.has(e.file), `an error in a file that is not the config's: ${e.message}`);
    assert.ok(e.line >= 1 && e.line <= Math.max(1, lineCount.get(e.file)!), `line ${e.line} of ${lineCount.get(e.file)}: ${e.message}`);
    assert.ok(e.reason.length > 0);
    return 'refused';
  }
}

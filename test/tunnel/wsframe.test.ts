// The WebSocket frame trackers, TypeScript (src/tunnel/wsframe.ts) and C++ (native/wsframe.h,
// through the addon's test hooks), on the same vectors (ws-vectors.json) cut at every byte
// position, and on random valid frame sequences split at random places (fast-check): both must
// count the same frames and messages, know every frame boundary, and leave the bytes as they were.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { nativeEngine } from '../../src/tunnel/native';
import { closeFrame, rsvAllowed, WS_MASKED, WS_NO_STOP, WS_STRICT, WsTracker } from '../../src/tunnel/wsframe';

interface Vector {
  name: string;
  flags: number;
  hex: string;
  expect: { frames: number; messages: number; violations: number; firstViolation: number; atBoundary: boolean; inMessage: boolean };
  stopAt?: number;
}

const VECTORS: Vector[] = JSON.parse(
  readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'tunnel', 'ws-vectors.json'), 'utf8'),
).vectors;

interface State {
  frames: number;
  messages: number;
  violations: number;
  firstViolation: number;
  atBoundary: boolean;
  inMessage: boolean;
}

/** One tracker behind a common face: feed a chunk (stop offset or -1), read the state. */
interface Subject {
  feed(b: Buffer, stopAtBoundary?: boolean): number;
  state(): State;
  /** The status code of the first close frame seen (1005: none given), 0 before one. */
  closeCode(): number;
}

const engine = nativeEngine();
const out = new Float64Array(8);

const ENGINES: Array<[string, ((flags: number) => Subject) | undefined]> = [
  [
    'TypeScript',
    (flags) => {
      const w = new WsTracker(flags);
      return {
        feed: (b, stop = false) => {
          w.stopAtBoundary = stop;
          return w.feed(b, 0, b.length);
        },
        state: () => ({
          frames: w.frames,
          messages: w.messages,
          violations: w.violations,
          firstViolation: w.firstViolation,
          atBoundary: w.atBoundary,
          inMessage: w.open,
        }),
        closeCode: () => w.closeCode,
      };
    },
  ],
  [
    'C++',
    engine === undefined
      ? undefined
      : (flags) => {
          const w = engine.wsTestTracker(flags);
          return {
            feed: (b, stop = false) => engine.wsTestFeed(w, b, stop),
            state: () => {
              engine.wsTestState(w, out);
              return {
                frames: out[0],
                messages: out[1],
                violations: out[2],
                firstViolation: out[3],
                atBoundary: out[4] === 1,
                inMessage: out[5] === 1,
              };
            },
            closeCode: () => {
              engine.wsTestState(w, out);
              return out[7];
            },
          };
        },
  ],
];

/** Feeds `chunks` in order; returns the bytes forwarded (up to a stop) and the state. */
function run(make: (flags: number) => Subject, flags: number, chunks: Buffer[]): { forwarded: number; state: State } {
  const s = make(flags);
  let forwarded = 0;
  for (const c of chunks) {
    const stop = s.feed(c);
    if (stop !== WS_NO_STOP) {
      forwarded += stop;
      break;
    }
    forwarded += c.length;
  }
  return { forwarded, state: s.state() };
}

/** A vector's bytes: hex, where " 5a*65535 " stands for a run of one byte. */
function bytesOf(hex: string): Buffer {
  return Buffer.concat(
    hex.split(' ').map((seg) => {
      const [b, n] = seg.split('*');
      return n === undefined ? Buffer.from(b, 'hex') : Buffer.alloc(Number(n), Number.parseInt(b, 16));
    }),
  );
}

const hash = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

for (const [name, make] of ENGINES) {
  test(`${name} tracker: every vector, whole and cut at every byte position (and at two)`, {
    skip: make === undefined && 'no native engine',
  }, () => {
    for (const v of VECTORS) {
      const bytes = bytesOf(v.hex);
      const before = hash(bytes);
      const whole = run(make!, v.flags, [bytes]);
      assert.deepEqual(whole.state, v.expect, `${v.name}: whole`);
      assert.equal(whole.forwarded, v.stopAt ?? bytes.length, `${v.name}: forwarded whole`);
      const step = bytes.length > 4096 ? 97 : 1; // the 64 KiB payloads: every 97th cut
      for (let i = 0; i <= bytes.length; i += step) {
        const r = run(make!, v.flags, [bytes.subarray(0, i), bytes.subarray(i)]);
        if (v.stopAt === undefined) {
          assert.deepEqual(r.state, v.expect, `${v.name}: cut at ${i}`);
          assert.equal(r.forwarded, bytes.length);
        } else {
          // Stopped before the violating frame, or (its header began in the first chunk) just after that part.
          assert.deepEqual({ ...r.state, atBoundary: true }, { ...v.expect, atBoundary: true }, `${v.name}: cut at ${i}`);
          if (r.forwarded === v.stopAt) assert.equal(r.state.atBoundary, true);
          else assert.ok(r.forwarded === i && i > v.stopAt && !r.state.atBoundary, `${v.name}: cut at ${i} forwarded ${r.forwarded}`);
        }
      }
      if (bytes.length <= 400) {
        for (let i = 0; i <= bytes.length; i += 3) {
          for (let j = i; j <= bytes.length; j += 5) {
            const r = run(make!, v.flags, [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
            if (v.stopAt === undefined) assert.deepEqual(r.state, v.expect, `${v.name}: cut at ${i} and ${j}`);
          }
        }
      }
      assert.equal(hash(bytes), before, `${v.name}: the tracker changed a byte`);
    }
  });
}

interface GenFrame {
  fin: boolean;
  op: number;
  rsv1: boolean;
  len: number;
}

/** A frame's bytes (masked with a fixed key when `masked`). */
function encode(f: GenFrame, masked: boolean): Buffer {
  const b0 = (f.fin ? 0x80 : 0) | (f.rsv1 ? 0x40 : 0) | f.op;
  const m = masked ? 0x80 : 0;
  let head: Buffer;
  if (f.len < 126) head = Buffer.from([b0, m | f.len]);
  else if (f.len < 65536) {
    head = Buffer.from([b0, m | 126, 0, 0]);
    head.writeUInt16BE(f.len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(f.len), 2);
  }
  const payload = Buffer.alloc(f.len, f.len & 0xff);
  return Buffer.concat(masked ? [head, Buffer.from([1, 2, 3, 4]), payload] : [head, payload]);
}

const lengthArb = fc.oneof(
  fc.integer({ min: 0, max: 140 }),
  fc.constantFrom(125, 126, 127, 65535, 65536),
  fc.integer({ min: 0, max: 70_000 }),
);
const controlArb = fc.record({ op: fc.constantFrom(8, 9, 10), len: fc.integer({ min: 0, max: 125 }) });
/** A message: 1..4 data frames, each possibly followed by a control frame. */
const messageArb = fc.record({
  op: fc.constantFrom(1, 2),
  deflate: fc.boolean(),
  parts: fc.array(fc.record({ len: lengthArb, control: fc.option(controlArb, { nil: undefined }) }), { minLength: 1, maxLength: 4 }),
});

interface GenMessage {
  op: number;
  deflate: boolean;
  parts: Array<{ len: number; control: { op: number; len: number } | undefined }>;
}

function frames(messages: GenMessage[]): GenFrame[] {
  const out: GenFrame[] = [];
  for (const m of messages) {
    m.parts.forEach((p, i) => {
      out.push({ fin: i === m.parts.length - 1, op: i === 0 ? m.op : 0, rsv1: i === 0 && m.deflate, len: p.len });
      if (p.control !== undefined) out.push({ fin: true, op: p.control.op, rsv1: false, len: p.control.len });
    });
  }
  return out;
}

for (const [name, make] of ENGINES) {
  test(`${name} tracker: random valid frame sequences split anywhere are tracked and left byte-identical`, {
    skip: make === undefined && 'no native engine',
  }, () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.nat(),
        (messages, masked, cutSeeds, stopSeed) => {
          const fs = frames(messages);
          const encoded = fs.map((f) => encode(f, masked));
          const stream = Buffer.concat(encoded);
          const before = hash(stream);
          const ends = new Set<number>([0]);
          let at = 0;
          for (const e of encoded) ends.add((at += e.length));
          const cuts = [...new Set(cutSeeds.map((s) => s % (stream.length + 1)))].sort((a, b) => a - b);
          const flags = (masked ? WS_MASKED : 0) | rsvAllowed('permessage-deflate; client_max_window_bits');
          const s = make!(flags);
          let prev = 0;
          for (const c of [...cuts, stream.length]) {
            assert.equal(s.feed(stream.subarray(prev, c)), WS_NO_STOP);
            assert.equal(s.state().atBoundary, ends.has(c), `boundary at ${c}`);
            prev = c;
          }
          const st = s.state();
          assert.equal(st.frames, fs.length);
          assert.equal(st.messages, messages.length);
          assert.equal(st.violations, 0);
          assert.equal(st.inMessage, false);
          assert.equal(hash(stream), before);
          // Asked to stop at a boundary from some point on, it stops at the first frame end at or after it.
          const from = stopSeed % (stream.length + 1);
          const t = make!(flags);
          if (from > 0) assert.equal(t.feed(stream.subarray(0, from)), WS_NO_STOP);
          const stop = t.feed(stream.subarray(from), true);
          const next = [...ends].sort((a, b) => a - b).find((e) => e >= from)!;
          assert.equal(stop, next - from);
        },
      ),
      { numRuns: 150 },
    );
  });
}

test('close frames: unmasked toward the client, masked with a random key toward the backend', () => {
  const c = closeFrame(1001, 'going away', false);
  assert.deepEqual([...c.subarray(0, 4)], [0x88, 12, 0x03, 0xe9]);
  assert.equal(c.subarray(4).toString(), 'going away');
  const m = closeFrame(1011, 'x'.repeat(300), true);
  assert.equal(m[1] & 0x80, 0x80);
  const len = m[1] & 0x7f;
  assert.ok(len <= 125);
  const p = Buffer.from(m.subarray(6));
  for (let i = 0; i < p.length; i++) p[i] ^= m[2 + (i & 3)];
  assert.equal(p.readUInt16BE(0), 1011);
  const again = closeFrame(1011, 'x', true);
  const other = closeFrame(1011, 'x', true);
  assert.ok(!again.subarray(2, 6).equals(other.subarray(2, 6)) || !closeFrame(1011, 'x', true).subarray(2, 6).equals(again.subarray(2, 6)));
  // Both trackers read it as one valid control frame in its direction.
  for (const [, make] of ENGINES) {
    if (make === undefined) continue;
    const up = make(WS_MASKED | WS_STRICT);
    assert.equal(up.feed(m), WS_NO_STOP);
    assert.deepEqual([up.state().frames, up.state().violations], [1, 0]);
    const down = make(WS_STRICT);
    assert.equal(down.feed(c), WS_NO_STOP);
    assert.deepEqual([down.state().frames, down.state().violations], [1, 0]);
  }
});

for (const [name, make] of ENGINES) {
  test(`${name} tracker: the first close frame's status code, masked or not, cut at every byte position`, {
    skip: make === undefined && 'no native engine',
  }, () => {
    const text = Buffer.from([0x81, 0x03, 0x61, 0x62, 0x63]);
    const masked = Buffer.from([0x81, 0x83, 1, 2, 3, 4, 0x60, 0x60, 0x60]);
    const cases: Array<[number, Buffer, number]> = [
      [0, Buffer.concat([text, closeFrame(4001, 'bye', false), closeFrame(1000, 'later', false)]), 4001],
      [WS_MASKED, Buffer.concat([masked, closeFrame(1001, 'going', true)]), 1001],
      [0, Buffer.concat([text, Buffer.from([0x88, 0x00])]), 1005],
      [0, text, 0],
    ];
    for (const [flags, bytes, code] of cases) {
      for (let cut = 0; cut <= bytes.length; cut++) {
        const s = make!(flags);
        s.feed(bytes.subarray(0, cut));
        s.feed(bytes.subarray(cut));
        assert.equal(s.closeCode(), code, `flags ${flags}, cut at ${cut}`);
      }
    }
  });
}

// The fast-check properties of test/fuzz/props.ts, short and seeded (WSGATE_FUZZ_SEED,
// WSGATE_FUZZ_RUNS scales the run counts; `npm run fuzz` runs them longer). The stream property
// runs on the engine the process has: npm test's default run is the native one,
// `npm run test:js-engine` (WSGATE_NATIVE=0) the JavaScript pump.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkConfigCase,
  checkRequestCase,
  checkStreamCase,
  configCase,
  headsRig,
  params,
  requestCase,
  streamCase,
  streamsRig,
} from './props';
import { eventually } from '../helpers/harness';

const BOUND = { timeout: 600_000 };

test(
  'request heads, generated and mutated, against a running gateway: a refusal or the backend, then the close; nothing smuggled',
  BOUND,
  async () => {
    const rig = await headsRig();
    let backend = 0;
    try {
      await fc.assert(
        fc.asyncProperty(requestCase, async (c) => {
          backend += (await checkRequestCase(rig, rig.g.port, c)).backend;
        }),
        params(120),
      );
      assert.ok(backend > 0, 'no generated request ever reached the backend: the property tested nothing');
      // And the gateway still serves an ordinary client.
      const s = await checkRequestCase(rig, rig.g.port, { bytes: Buffer.from('GET /ok HTTP/1.1\r\nHost: a\r\n\r\n'), cuts: [] });
      assert.equal(s.backend, 1);
    } finally {
      await rig.stop();
    }
  },
);

test('random byte streams after an upgrade (raw protocol and WebSocket): echoed byte for byte', BOUND, async () => {
  const rig = await streamsRig();
  try {
    await fc.assert(
      fc.asyncProperty(streamCase, (c) => checkStreamCase(rig.g.port, c)),
      params(40),
    );
    // Every case closed its client: nothing of them stays open in the gateway.
    await eventually(() => rig.g.gateway.openConnections() === 0, 10_000, 'every connection to close');
  } finally {
    await rig.stop();
  }
});

test('config files built from every directive name: loaded, or a ConfigError at FILE:LINE of a line that exists', BOUND, () => {
  const seen = { loaded: 0, refused: 0 };
  fc.assert(
    fc.property(configCase(), (c) => {
      seen[checkConfigCase(c)]++;
    }),
    params(400),
  );
  assert.ok(seen.refused > 0, `${JSON.stringify(seen)}`);
});

// `npm run fuzz`: the fuzz suites of test/fuzz/ run longer than in `npm test`, on both tunnel
// engines and both HTTP/1 fronts. Seeded and bounded: the same seed and run count give the same
// cases; a failure prints the seed and the case that replays it.
//
//   npm run fuzz                          seed 0x5eed, 20x the short run counts, 20 s per mutation target
//   npm run fuzz -- --seed 7 --runs 100   or WSGATE_FUZZ_SEED=7 WSGATE_FUZZ_RUNS=100 npm run fuzz
//   npm run fuzz -- --ms 60000            time per target of the mutation fuzzers (test/fuzz/fuzz.test.ts)

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

function arg(name: string, env: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i !== -1 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  return process.env[env] ?? fallback;
}

const seed = arg('seed', 'WSGATE_FUZZ_SEED', String(0x5eed));
const runs = arg('runs', 'WSGATE_FUZZ_RUNS', '20');
const ms = arg('ms', 'WSGATE_FUZZ_MS', '20000');
for (const [what, value] of [
  ['seed', seed],
  ['runs', runs],
  ['ms', ms],
] as const) {
  if (!/^\d+$/.test(value)) {
    console.error(`fuzz: --${what} must be a whole number, got "${value}"`);
    process.exit(2);
  }
}

const dir = path.join(__dirname, '..', 'test', 'fuzz');
const variants: [string, NodeJS.ProcessEnv][] = [
  ['native engine, native front', {}],
  ['JavaScript engine', { WSGATE_NATIVE: '0' }],
  ["Node's HTTP/1 front", { WSGATE_NATIVE_FRONT: '0' }],
];
let failed = 0;
for (const [name, extra] of variants) {
  console.log(`fuzz: ${name} (seed ${seed}, runs x${runs}, ${ms} ms per mutation target)`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=dot', dir], {
    stdio: 'inherit',
    env: { ...process.env, ...extra, WSGATE_FUZZ_SEED: seed, WSGATE_FUZZ_RUNS: runs, WSGATE_FUZZ_MS: ms },
  });
  console.log(`fuzz: ${name}: ${r.status === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed++;
}
console.log(
  failed === 0 ? `fuzz: all passed (seed ${seed})` : `fuzz: ${failed} variant(s) failed; replay with --seed ${seed} --runs ${runs}`,
);
process.exit(failed === 0 ? 0 : 1);

// The young-generation bound (src/lifecycle/young-generation.ts), in child processes of its own
// (V8 flags are per process): it does not grow while objects keep surviving, unless the
// operator sized the young generation on the command line.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

const MODULE = path.join(__dirname, '..', '..', 'src', 'lifecycle', 'young-generation.js');

// Objects that all survive, handed out over many loop turns (as tunnels open), then the size.
const PROGRAM = `
const v8 = require('node:v8');
if (process.argv[1] === 'bound') require(${JSON.stringify(MODULE)}).boundYoungGeneration();
const kept = [];
let n = 0;
(function more() {
  for (let i = 0; i < 20000; i++, n++) kept.push({ id: n, name: 'tunnel ' + n, counts: [n, n + 1] });
  if (n < 400000) return setImmediate(more);
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  process.stdout.write(String(young.space_size));
})();
`;

function youngBytes(mode: string, execArgv: string[] = []): number {
  return Number(
    execFileSync(process.execPath, [...execArgv, '-e', PROGRAM, mode], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }),
  );
}

const MB = 1024 * 1024;

test('the young generation keeps its first size while what it holds keeps surviving', () => {
  const unbound = youngBytes('plain');
  assert.ok(unbound > 8 * MB, `without the bound V8 grows it past 8 MB here (${unbound / MB} MB), or this test proves nothing`);
  assert.ok(youngBytes('bound') <= 2 * MB);
});

test('an operator who sized it with --max-semi-space-size keeps that size', () => {
  const sized = ['--max-semi-space-size=8'];
  const kept = youngBytes('bound', sized);
  assert.ok(kept > 8 * MB, `the young generation grew past its first size (${kept / MB} MB)`);
  assert.equal(kept, youngBytes('plain', sized), 'as far as without the bound');
});

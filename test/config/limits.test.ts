// Hostile or broken config files: every one ends in a FILE:LINE ConfigError (never a RangeError,
// a hang or gigabytes), within a generous time bound. Real files, FIFOs and devices.

import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULT_LIMITS, loadConfigFile, type LoadLimits } from '../../src/config/load';
import { lines, writeTree } from './helpers';

const BOUND_MS = 10_000;

/** Loads `main` of `dir`; it must fail with a ConfigError at `file`:`line` matching `message`, in bounded time. */
function expectLimit(
  dir: string,
  expected: { file?: string; line: number; message: RegExp },
  limits?: Partial<LoadLimits>,
  main = 'wsgate.conf',
): ConfigError {
  const started = Date.now();
  let caught: unknown;
  try {
    loadConfigFile(path.join(dir, main), { env: {}, limits });
  } catch (err) {
    caught = err;
  }
  const took = Date.now() - started;
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught instanceof Error ? caught.stack : String(caught)}`);
  const file = path.join(dir, expected.file ?? main);
  assert.equal(caught.message.slice(0, file.length + 1), `${file}:`, caught.message);
  assert.equal(caught.line, expected.line, caught.message);
  assert.match(caught.message, expected.message);
  assert.ok(took < BOUND_MS, `took ${took} ms`);
  return caught;
}

/** An Include chain: c0.conf includes c1.conf … down to c`levels`.conf, which holds a Listen. */
function chain(levels: number): string {
  const files: Record<string, string> = {};
  for (let i = 0; i < levels; i++) files[`c${i}.conf`] = lines(`Include c${i + 1}.conf`);
  files[`c${levels}.conf`] = lines('Listen 0');
  return writeTree(files);
}

test("Include nesting: 128 levels load (Apache's bound), the 129th is an error at the Include line", () => {
  const ok = chain(128);
  assert.equal(loadConfigFile(path.join(ok, 'c0.conf'), { env: {} }).files.length, 129);
  expectLimit(
    chain(129),
    { file: 'c128.conf', line: 1, message: /Include "c129\.conf": Include nesting deeper than 128 levels/ },
    undefined,
    'c0.conf',
  );
});

test('an Include chain 1,500 deep is a ConfigError, not a RangeError', () => {
  expectLimit(chain(1500), { file: 'c128.conf', line: 1, message: /nesting deeper than 128 levels/ }, undefined, 'c0.conf');
});

test('Define lines that keep doubling a value stop at the line length bound (1 MiB)', () => {
  const doubling = Array.from({ length: 24 }, () => 'Define A ${A}${A}');
  const dir = writeTree({ 'wsgate.conf': lines('Listen 0', 'Define A x', ...doubling) });
  // 2^20 characters plus "Define A " is past 1 MiB: the 20th doubling, line 22.
  expectLimit(dir, { line: 22, message: /line longer than 1 MiB once \$\{A\} is expanded/ });
  // Just under the bound is fine.
  const fits = writeTree({ 'wsgate.conf': lines('Listen 0', 'Define A x', ...doubling.slice(0, 19)) });
  assert.equal(loadConfigFile(path.join(fits, 'wsgate.conf'), { env: {} }).files.length, 1);
});

test('the whole config after ${VAR} expansion is bounded', () => {
  const many = Array.from({ length: 20 }, (_, i) => `Define B${i} \${A}`);
  const dir = writeTree({ 'wsgate.conf': lines('Listen 0', `Define A ${'y'.repeat(100)}`, ...many) });
  // 8 + 109 characters, then 110 per B line: the 9th B line (line 11) passes 1024.
  expectLimit(
    dir,
    { line: 11, message: /the config grows beyond 1 KiB of text once Includes and \$\{VAR\}s are expanded/ },
    { totalChars: 1024 },
  );
});

test('a logical line longer than the bound, with or without continuation lines', () => {
  const long = writeTree({ 'wsgate.conf': lines('Listen 0', `ProxyPass /a ws://h/${'x'.repeat(200)}`) });
  expectLimit(long, { line: 2, message: /line longer than 100 bytes/ }, { lineChars: 100 });
  const joined = writeTree({ 'wsgate.conf': lines('Listen 0', ...Array.from({ length: 30 }, () => 'ProxyPass \\'), 'x') });
  expectLimit(joined, { line: 2, message: /line longer than 100 bytes \(continuation lines included\)/ }, { lineChars: 100 });
});

test('file size: an Include or the main file larger than the bound is refused before it is read', () => {
  const dir = writeTree({ 'wsgate.conf': lines('Listen 0', 'Include big.conf'), 'big.conf': `#${'x'.repeat(2000)}\n` });
  expectLimit(
    dir,
    { line: 2, message: /Include "big\.conf": cannot read .*big\.conf: larger than 1 KiB \(2002 bytes\)/ },
    { fileBytes: 1024 },
  );
  expectLimit(
    dir,
    { file: 'big.conf', line: 0, message: /cannot read the config file: larger than 1 KiB/ },
    { fileBytes: 1024 },
    'big.conf',
  );
});

test('only regular files: /dev/zero, a FIFO (not even opened), a directory holding a FIFO; /dev/null reads as empty', () => {
  const dir = writeTree({
    'wsgate.conf': lines('Listen 0', 'Include /dev/zero'),
    'fifo.conf': lines('Listen 0', 'Include pipe'),
    'optional.conf': lines('Listen 0', 'IncludeOptional pipe'),
    'dir.conf': lines('Listen 0', 'Include conf.d'),
    'null.conf': lines('Listen 0', 'Include /dev/null', 'ProxyPass /a ws://h/'),
    'conf.d/a.conf': lines('ProxyPass /a ws://h/'),
  });
  execFileSync('mkfifo', [path.join(dir, 'pipe')]);
  execFileSync('mkfifo', [path.join(dir, 'conf.d', 'b.conf')]);
  expectLimit(dir, { line: 2, message: /Include "\/dev\/zero": cannot read \/dev\/zero: a character device, not a regular file/ });
  // Opening a FIFO for reading would block until a writer came: the load returning at all shows it was not opened.
  expectLimit(
    dir,
    { file: 'fifo.conf', line: 2, message: /Include "pipe": cannot read .*pipe: a FIFO \(named pipe\), not a regular file/ },
    undefined,
    'fifo.conf',
  );
  expectLimit(dir, { file: 'optional.conf', line: 2, message: /IncludeOptional "pipe": .*a FIFO/ }, undefined, 'optional.conf');
  expectLimit(
    dir,
    { file: 'dir.conf', line: 2, message: /Include "conf\.d": cannot read .*conf\.d\/b\.conf: a FIFO/ },
    undefined,
    'dir.conf',
  );
  expectLimit(dir, { file: 'pipe', line: 0, message: /cannot read the config file: a FIFO/ }, undefined, 'pipe');
  const config = loadConfigFile(path.join(dir, 'null.conf'), { env: {} });
  assert.equal(config.mainServer.routes.length, 1);
});

test('Include / ends in an error within the bound instead of walking the whole filesystem', () => {
  const dir = writeTree({ 'wsgate.conf': lines('Listen 0', 'Include /') });
  // What stops it depends on the machine (the entry budget, an unreadable directory, the first
  // file that is not a config); that it is an error at the Include line, in bounded time, does not.
  const err = expectLimit(dir, { line: 2, message: /./ });
  assert.ok(err.file === path.join(dir, 'wsgate.conf') || err.message.includes('Include "/"'), err.message);
});

test('directory entries and directory depth are bounded, for plain and wildcard Includes', () => {
  const files: Record<string, string> = {
    'wsgate.conf': lines('Listen 0', 'Include conf.d'),
    'glob.conf': lines('Listen 0', 'Include conf.d/*.conf'),
  };
  for (let i = 0; i < 20; i++) files[`conf.d/f${String(i).padStart(2, '0')}.conf`] = lines(`ProxyPass /p${i} ws://h/`);
  files['deep.conf'] = lines('Listen 0', 'Include d');
  files['d/1/2/3/4/5/x.conf'] = lines('ProxyPass /x ws://h/');
  const dir = writeTree(files);
  expectLimit(
    dir,
    { line: 2, message: /Include "conf\.d": more than 10 directory entries looked at by Include patterns/ },
    { dirEntries: 10 },
  );
  expectLimit(
    dir,
    { file: 'glob.conf', line: 2, message: /Include "conf\.d\/\*\.conf": more than 10 directory entries/ },
    { dirEntries: 10 },
    'glob.conf',
  );
  expectLimit(
    dir,
    { file: 'deep.conf', line: 2, message: /Include "d": .*d\/1\/2\/3 is more than 3 directories deep below the included one/ },
    { dirDepth: 3 },
    'deep.conf',
  );
  assert.equal(loadConfigFile(path.join(dir, 'deep.conf'), { env: {} }).mainServer.routes.length, 1);
  // A directory that links to itself ends too (the kernel's or wsgate's depth bound).
  fs.symlinkSync('.', path.join(dir, 'conf.d', 'self'));
  expectLimit(dir, { line: 2, message: /Include "conf\.d": / });
});

test('files read over one load are bounded: an Include fan-out ends in an error', () => {
  // Each level includes the next one 10 times: 10^4 reads of leaf.conf, 10^5 with one more level.
  const files: Record<string, string> = { 'wsgate.conf': lines('Listen 0', ...Array.from({ length: 10 }, () => 'Include l1.conf')) };
  for (let level = 1; level < 5; level++)
    files[`l${level}.conf`] = lines(...Array.from({ length: 10 }, () => `Include l${level + 1}.conf`));
  files['l5.conf'] = '';
  const dir = writeTree(files);
  // Reads, depth first: main, l1, l2, then 111 per l3 (l3, then 11 per l4): the 1001st is the
  // 9th l5 of the 10th l4 under the 9th l3, from line 9 of l4.conf.
  expectLimit(dir, { file: 'l4.conf', line: 9, message: /Include "l5\.conf": more than 1000 files read in one load/ }, { files: 1000 });
  // 169 bytes for the main file, 160 for each l1…l4: the budget runs out while l3.conf's 6th line reads l4.conf.
  expectLimit(
    dir,
    { file: 'l3.conf', line: 6, message: /Include "l4\.conf": more than 5000 bytes of config read in one load/ },
    { totalBytes: 5000 },
  );
  assert.equal(DEFAULT_LIMITS.files, 50_000);
});

test('deep section nesting, many arguments, an open quote, binary junk and invalid UTF-8: ConfigErrors or a load, never a crash', () => {
  const deep = 100_000;
  const nested = writeTree({
    'wsgate.conf': `Listen 0\n${'<IfModule x>\n'.repeat(deep)}${'</IfModule>\n'.repeat(deep)}ProxyPass /a ws://h/\n`,
    'open.conf': `Listen 0\n${'<IfModule x>\n'.repeat(deep)}`,
    'locations.conf': `Listen 0\n${'<Location /a>\n'.repeat(20_000)}${'</Location>\n'.repeat(20_000)}`,
    'args.conf': `Listen 0\nProxyPass /a ws://h/ ${Array.from({ length: 100_000 }, (_, i) => `k${i}=v`).join(' ')}\n`,
    'quote.conf': lines('Listen 0', 'ProxyPass "/a ws://h/'),
  });
  // "Listen 0", then NUL, bytes that are not UTF-8 (0xff 0xfe, a bad continuation, a cut sequence), DEL.
  fs.writeFileSync(
    path.join(nested, 'junk.conf'),
    Buffer.from([0x4c, 0x69, 0x73, 0x74, 0x65, 0x6e, 0x20, 0x30, 0x0a, 0x00, 0xff, 0xfe, 0xc3, 0x28, 0x7f, 0x0a, 0xe2, 0x82, 0x0a]),
  );
  const started = Date.now();
  assert.equal(loadConfigFile(path.join(nested, 'wsgate.conf'), { env: {} }).mainServer.routes.length, 1);
  assert.ok(Date.now() - started < BOUND_MS, `nested <IfModule> took ${Date.now() - started} ms`);
  expectLimit(nested, { file: 'open.conf', line: deep + 1, message: /<IfModule> is never closed/ }, undefined, 'open.conf');
  expectLimit(
    nested,
    { file: 'locations.conf', line: 3, message: /<Location> is not allowed inside <Location>/ },
    undefined,
    'locations.conf',
  );
  expectLimit(nested, { file: 'args.conf', line: 2, message: /ProxyPass/ }, undefined, 'args.conf');
  expectLimit(nested, { file: 'quote.conf', line: 2, message: /missing closing "/ }, undefined, 'quote.conf');
  expectLimit(nested, { file: 'junk.conf', line: 2, message: /unknown directive/ }, undefined, 'junk.conf');
});

test('certificate and key files named by SSL directives: only regular files, never a FIFO opened', () => {
  const dir = writeTree({
    'wsgate.conf': lines('Listen 127.0.0.1:0 https', 'SSLEngine on', 'SSLCertificateFile /dev/zero'),
    'ca.conf': lines('Listen 127.0.0.1:0', 'SSLProxyEngine on', 'SSLProxyCACertificateFile pipe', 'ProxyPass /s/ wss://h/'),
  });
  execFileSync('mkfifo', [path.join(dir, 'pipe')]);
  expectLimit(dir, { line: 3, message: /SSLCertificateFile: cannot read "\/dev\/zero": a character device, not a regular file/ });
  expectLimit(
    dir,
    { file: 'ca.conf', line: 3, message: /SSLProxyCACertificateFile: cannot read ".*pipe": a FIFO \(named pipe\)/ },
    undefined,
    'ca.conf',
  );
});

// Shared helpers for the config tests: real files in a fresh temp directory.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfigFile } from '../../src/config/load';
import type { Config } from '../../src/config/model';

/** Writes `files` (relative path → text) under a new temp dir and returns the dir. */
export function writeTree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-config-'));
  for (const [rel, text] of Object.entries(files)) {
    const full = path.join(dir, rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, text);
  }
  return dir;
}

/** Loads `main` (default `wsgate.conf`) from a tree; returns the config and the dir. */
export function load(files: Record<string, string>, main = 'wsgate.conf', env: NodeJS.ProcessEnv = {}): { config: Config; dir: string } {
  const dir = writeTree(files);
  return { config: loadConfigFile(path.join(dir, main), { env }), dir };
}

/** Loads one config text that must fail; checks the error's file, line and message. */
export function expectError(
  files: Record<string, string>,
  expected: { file?: string; line: number; message: RegExp },
  main = 'wsgate.conf',
  env: NodeJS.ProcessEnv = {},
): ConfigError {
  const dir = writeTree(files);
  const mainPath = path.join(dir, main);
  let caught: unknown;
  try {
    loadConfigFile(mainPath, { env });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  const file = path.join(dir, expected.file ?? main);
  assert.equal(caught.file, file);
  assert.equal(caught.line, expected.line);
  assert.ok(caught.message.startsWith(`${file}:${expected.line}: `), caught.message);
  assert.match(caught.message, expected.message);
  return caught;
}

/** Joins lines with "\n": line N of the config is argument N, which keeps expected line numbers obvious. */
export function lines(...l: string[]): string {
  return `${l.join('\n')}\n`;
}

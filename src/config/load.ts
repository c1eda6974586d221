// The config subsystem's entry points: lex → parse → validate → typed model.
//
//   loadConfigFile('/etc/wsgate/wsgate.conf')      // throws ConfigError "FILE:LINE: what is wrong"
//   loadConfigText(text, '/tmp/t/test.conf')       // the same, from a string (tests)
//
// Relative Include/IncludeOptional paths resolve against ServerRoot when one was set earlier in
// the config, else against the directory of the main config file (for loadConfigText: the
// directory of `fileName`). `${VAR}` looks at Define values first, then `opts.env`
// (default: process.env).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildConfig } from './build';
import { ConfigError } from './errors';
import type { Config } from './model';
import { parseConfig } from './parser';

export { ConfigError } from './errors';

export interface LoadOptions {
  /** Environment for `${VAR}` expansion after Define values. Default: `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

export function loadConfigText(text: string, fileName: string, opts: LoadOptions = {}): Config {
  const parsed = parseConfig(text, fileName, {
    env: opts.env ?? process.env,
    includeBase: path.dirname(path.resolve(fileName)),
  });
  return buildConfig(parsed, fileName);
}

export function loadConfigFile(file: string, opts: LoadOptions = {}): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, 0, `cannot read the config file: ${(err as Error).message}`);
  }
  return loadConfigText(text, file, opts);
}

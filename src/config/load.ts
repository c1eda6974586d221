// The config subsystem's entry points: lex → parse → validate → typed model.
//
//   loadConfigFile('/etc/wsgate/wsgate.conf')      // throws ConfigError "FILE:LINE: what is wrong"
//   loadConfigText(text, '/tmp/t/test.conf')       // the same, from a string (tests)
//
// Relative Include/IncludeOptional paths resolve against ServerRoot when one was set earlier in
// the config, else against the directory of the main config file (for loadConfigText: the
// directory of `fileName`). `${VAR}` looks at Define values first, then `opts.env`
// (default: process.env).

import * as path from 'node:path';
import { buildConfig } from './build';
import { ConfigError } from './errors';
import { FileReadError, readTextFile } from './files';
import { DEFAULT_LIMITS, LimitExceeded, LoadBudget, type LoadLimits } from './limits';
import type { Config } from './model';
import { parseConfig } from './parser';

export { ConfigError } from './errors';
export { DEFAULT_LIMITS, type LoadLimits } from './limits';

export interface LoadOptions {
  /** Environment for `${VAR}` expansion after Define values. Default: `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Bounds on the load (limits.ts); tests lower them. Default: DEFAULT_LIMITS. */
  readonly limits?: Partial<LoadLimits>;
}

function budgetFor(opts: LoadOptions): LoadBudget {
  return new LoadBudget(opts.limits === undefined ? DEFAULT_LIMITS : { ...DEFAULT_LIMITS, ...opts.limits });
}

function load(text: string, fileName: string, opts: LoadOptions, budget: LoadBudget): Config {
  const parsed = parseConfig(text, fileName, {
    env: opts.env ?? process.env,
    includeBase: path.dirname(path.resolve(fileName)),
    budget,
  });
  return buildConfig(parsed, fileName);
}

export function loadConfigText(text: string, fileName: string, opts: LoadOptions = {}): Config {
  return load(text, fileName, opts, budgetFor(opts));
}

export function loadConfigFile(file: string, opts: LoadOptions = {}): Config {
  const budget = budgetFor(opts);
  let text: string;
  try {
    text = readTextFile(file, budget.limits.fileBytes, budget);
  } catch (err) {
    if (!(err instanceof FileReadError || err instanceof LimitExceeded)) throw err;
    const reason = err instanceof FileReadError ? err.reason : err.message;
    throw new ConfigError(file, 0, `cannot read the config file: ${reason}`);
  }
  return load(text, file, opts, budget);
}

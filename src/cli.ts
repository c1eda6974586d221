#!/usr/bin/env node
// The wsgate command, httpd-like: `wsgate -f FILE` runs, `wsgate -t -f FILE` checks the config.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, loadConfigFile } from './config/load';
import type { Config } from './config/model';
import { Gateway } from './gateway';
import { createLogger, isLevel, type Level } from './observe/log';

const USAGE = `Usage: wsgate -f FILE [options]
       wsgate -t -f FILE

Runs a WebSocket / HTTP Upgrade reverse proxy configured with Apache mod_proxy directives.

Options:
  -f, --config FILE    the configuration file (Apache httpd syntax)
  -t, --check          check the configuration only: print "Syntax OK" or FILE:LINE: error
  -l, --log-level L    debug | info | warn | error (default: info)
  -v, --version        print the version
  -h, --help           print this help
`;

interface CliArgs {
  configFile?: string;
  check: boolean;
  level: Level;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function parseArgs(argv: string[]): CliArgs | string {
  const args: CliArgs = { check: false, level: 'info' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '-f':
      case '--config':
        if (i + 1 >= argv.length) return `${a} needs a file`;
        args.configFile = argv[++i];
        break;
      case '-t':
      case '--check':
        args.check = true;
        break;
      case '-l':
      case '--log-level': {
        const l = argv[++i];
        if (l === undefined || !isLevel(l)) return `${a} takes debug, info, warn or error`;
        args.level = l;
        break;
      }
      case '-v':
      case '--version':
        process.stdout.write(`wsgate ${version()}\n`);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        if (a.startsWith('--config=')) args.configFile = a.slice('--config='.length);
        else return `unknown option ${a}`;
    }
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    process.stderr.write(`wsgate: ${args}\n\n${USAGE}`);
    return 2;
  }
  if (args.configFile === undefined) {
    process.stderr.write(`wsgate: no configuration file given (-f FILE)\n\n${USAGE}`);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfigFile(args.configFile);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const log = createLogger({ level: args.level });
  for (const n of config.notices) log.info(`config: ${n}`);
  if (args.check) {
    process.stdout.write('Syntax OK\n');
    return 0;
  }

  const gateway = new Gateway(config, { log });
  try {
    await gateway.start();
  } catch (e) {
    log.error(String((e as Error).message));
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal, tunnels: gateway.tunnels.size });
      gateway.stop().then(
        () => resolve(0),
        (err: Error) => {
          log.error('error while stopping', { reason: err.message });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`wsgate: ${err.stack ?? err.message}\n`);
    process.exit(70);
  },
);

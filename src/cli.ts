#!/usr/bin/env node
// The wsgate command, httpd-like: `wsgate -f FILE` runs, `wsgate -t -f FILE` checks the config.

// First: SIGHUP and SIGUSR1 must be held before anything else loads (see signals.ts).
import { logHeldSignalsTo } from './signals';
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, loadConfigFile } from './config/load';
import type { Config } from './config/model';
import { isControlAction, signalRunning, type ControlAction } from './lifecycle/control';
import { claimPidFile, removePidFile } from './lifecycle/pidfile';
import { serve } from './lifecycle/run';
import { autoWorkers, runPrimary } from './lifecycle/workers';
import { createLogger, errorLogSink, isLevel, type Level } from './observe/log';

const USAGE = `Usage: wsgate -f FILE [options]
       wsgate -t -f FILE
       wsgate -k graceful|restart|graceful-stop|stop -f FILE

Runs a WebSocket / HTTP Upgrade reverse proxy configured with Apache mod_proxy directives.

Options:
  -f, --config FILE    the configuration file (Apache httpd syntax)
  -t, --check          check the configuration only: print "Syntax OK" or FILE:LINE: error
  -k ACTION            signal the wsgate running FILE (found through its PidFile), as apachectl:
                       graceful, restart: reload the configuration (SIGUSR1, SIGHUP);
                       graceful-stop, stop: let work under way finish, then exit (SIGWINCH, SIGTERM);
                       start: run, as without -k
  -l, --log-level L    debug | info | warn | error (default: the config's LogLevel, else info)
  -w, --workers N      run N worker processes sharing the Listen ports (default 1);
                       auto: one per core
  -v, --version        print the version
  -h, --help           print this help
`;

interface CliArgs {
  configFile?: string;
  check: boolean;
  control?: ControlAction;
  /** Given with -l: overrides the config's LogLevel. */
  level?: Level;
  workers: number;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function parseArgs(argv: string[]): CliArgs | string {
  const args: CliArgs = { check: false, workers: 1 };
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
      case '-k': {
        const k = argv[++i];
        if (k === 'start') break;
        if (k === undefined || !isControlAction(k)) return `${a} takes start, graceful, restart, graceful-stop or stop`;
        args.control = k;
        break;
      }
      case '-l':
      case '--log-level': {
        const l = argv[++i];
        if (l === undefined || !isLevel(l)) return `${a} takes debug, info, warn or error`;
        args.level = l;
        break;
      }
      case '-w':
      case '--workers': {
        const v = argv[++i];
        const n = v === 'auto' ? Math.min(autoWorkers(), 64) : Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) return `${a} takes a number from 1 to 64, or auto`;
        args.workers = n;
        break;
      }
      case '-v':
      case '--version':
        process.stdout.write(`wsgate ${version()}\n`);
        return process.exit(0);
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        return process.exit(0);
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
    // Not a mistake in the file but a bug in wsgate: say so in one line; the stack with -l debug.
    const what = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e);
    process.stderr.write(
      `${args.configFile}: internal error while reading the configuration (a wsgate bug; -l debug shows where): ${what}\n`,
    );
    if (args.level === 'debug' && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    return 70;
  }
  if (args.control !== undefined) return signalRunning(args.control, config, args.configFile, (line) => process.stderr.write(`${line}\n`));
  // -l on the command line wins over LogLevel (it is how one looks closer without editing the config).
  const level = args.level ?? config.logLevel ?? 'info';
  let sink: ((line: string) => void) | undefined;
  if (!args.check) {
    try {
      sink = errorLogSink(config.errorLog);
    } catch (e) {
      const where = config.errorLog?.kind === 'file' ? `${config.errorLog.source.file}:${config.errorLog.source.line}: ` : '';
      process.stderr.write(`${where}ErrorLog: cannot open the file: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const log = createLogger(sink === undefined ? { level } : { level, sink });
  logHeldSignalsTo(log);
  for (const n of config.notices) log.info(`config: ${n}`);
  if (args.check) {
    process.stdout.write('Syntax OK\n');
    return 0;
  }

  if (args.workers > 1 && cluster.isPrimary) {
    // The pid file names the primary, which `-k` signals and which passes signals on to its workers.
    const pidFile = config.process.pidFile;
    if (!claimPidFile(pidFile, log)) return 1;
    const code = await runPrimary({ workers: args.workers, configFile: args.configFile, log });
    if (pidFile !== undefined) removePidFile(pidFile);
    return code;
  }

  return serve(config, args.configFile, log);
}

/**
 * Log lines go to stderr. Once that is a terminal that hung up (EIO) or a pipe whose reader left
 * (EPIPE), the lines are lost; the proxy must go on serving, not die of an unhandled 'error'
 * (SIGHUP, which a hang-up also sends, is held: see signals.ts).
 */
function onStderrError(): void {
  // Nowhere left to report it.
}

process.stderr.on('error', onStderrError);

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`wsgate: ${err.stack ?? err.message}\n`);
    process.exit(70);
  },
);

// SIGHUP and SIGUSR1: Apache's restart and graceful restart (logrotate scripts send them). wsgate
// reloads its configuration on both (lifecycle/run.ts gives them that meaning once it serves).
//
// They are held from the moment this module loads, and the CLI imports it first, because left
// unhandled SIGHUP kills the process without a clean stop, and SIGUSR1 starts Node's inspector on
// 127.0.0.1:9229, through which any local user could run code as wsgate's user. A JavaScript
// listener for SIGUSR1 takes the signal over from the inspector for the life of the process (the
// listeners are never removed: removing the last one would restore the default action, which
// kills). Node 22.14+ also has `--disable-sigusr1`, which closes the window before any
// JavaScript runs; workers are started with it where the running Node knows it.

import { createLogger, type Logger } from './observe/log';

export const HELD_SIGNALS = ['SIGHUP', 'SIGUSR1'] as const;

const MEANING: Record<string, string> = {
  SIGHUP: 'restart',
  SIGUSR1: 'graceful restart',
};

let log: Logger = createLogger();
let handler: ((signal: NodeJS.Signals) => void) | undefined;

function onHeldSignal(signal: NodeJS.Signals): void {
  if (handler !== undefined) {
    handler(signal);
    return;
  }
  log.warn('signal ignored: no configuration is running yet', { signal, apache: MEANING[signal], pid: process.pid });
}

for (const signal of HELD_SIGNALS) process.on(signal, onHeldSignal);

/** Where the line about a held signal goes (the CLI's logger, once it has one). */
export function logHeldSignalsTo(logger: Logger): void {
  log = logger;
}

/**
 * What SIGHUP and SIGUSR1 do from now on: reload the config (a single process or a worker), or
 * check it and pass the signal on (the `-w N` primary); undefined: logged and ignored again.
 */
export function onHeldSignals(h: ((signal: NodeJS.Signals) => void) | undefined): void {
  handler = h;
}

/** Node options for worker processes that keep SIGUSR1 away from the inspector from their first instant. */
export function workerSignalFlags(): string[] {
  return process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [];
}

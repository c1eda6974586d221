// SIGHUP and SIGUSR1: Apache's restart and graceful restart (logrotate scripts send them).
// wsgate cannot reload yet, so it holds them: one log line, and the process carries on serving.
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
  log.warn('signal ignored: reloading the configuration is not supported yet', {
    signal,
    apache: MEANING[signal],
    pid: process.pid,
  });
}

for (const signal of HELD_SIGNALS) process.on(signal, onHeldSignal);

/** Where the line about a held signal goes (the CLI's logger, once it has one). */
export function logHeldSignalsTo(logger: Logger): void {
  log = logger;
}

/** What the held signals do from now on instead of the log line (the `-w N` primary forwards them). */
export function onHeldSignals(h: (signal: NodeJS.Signals) => void): void {
  handler = h;
}

/** Node options for worker processes that keep SIGUSR1 away from the inspector from their first instant. */
export function workerSignalFlags(): string[] {
  return process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [];
}

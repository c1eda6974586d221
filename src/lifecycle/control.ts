// `wsgate -k ACTION -f FILE`, as `apachectl -k`: find the running wsgate through the config's
// PidFile and send it the signal for ACTION. The config is loaded first (the caller does), so a
// graceful restart with a broken file is refused here with its FILE:LINE, before anything is sent.

import type { Config } from '../config/model';
import { processExists, readPid } from './pidfile';

/** Apache's signals: graceful and restart reload the config, graceful-stop and stop drain and exit. */
export const CONTROL_SIGNALS = {
  graceful: 'SIGUSR1',
  restart: 'SIGHUP',
  'graceful-stop': 'SIGWINCH',
  stop: 'SIGTERM',
} as const satisfies Record<string, NodeJS.Signals>;

export type ControlAction = keyof typeof CONTROL_SIGNALS;

export function isControlAction(s: string): s is ControlAction {
  return Object.hasOwn(CONTROL_SIGNALS, s);
}

/** Sends ACTION's signal to the wsgate of `config`'s PidFile: 0, or 1 with the reason in `fail`. */
export function signalRunning(action: ControlAction, config: Config, configFile: string, fail: (line: string) => void): number {
  const signal = CONTROL_SIGNALS[action];
  const what = `wsgate -k ${action}`;
  const file = config.process.pidFile;
  if (file === undefined) {
    fail(
      `${what}: ${configFile} has no PidFile line, so the running wsgate cannot be found; add one (e.g. PidFile /run/wsgate.pid: wsgate writes it when it starts), or send ${signal} to its pid`,
    );
    return 1;
  }
  const pid = readPid(file);
  if (pid === undefined) {
    fail(`${what}: no wsgate is running (PidFile ${file} does not exist)`);
    return 1;
  }
  if (Number.isNaN(pid) || pid <= 1) {
    fail(`${what}: PidFile ${file} holds no process id; remove it`);
    return 1;
  }
  if (!processExists(pid)) {
    fail(`${what}: no wsgate is running (PidFile ${file} names pid ${pid}, which has exited without removing it: a stale file)`);
    return 1;
  }
  try {
    process.kill(pid, signal);
  } catch (e) {
    fail(`${what}: cannot send ${signal} to pid ${pid} (PidFile ${file}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return 1;
  }
  return 0;
}

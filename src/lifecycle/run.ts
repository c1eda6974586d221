// One wsgate process serving a config until it is told to stop: the signals of Apache's
// lifecycle, the pid file, and the exit code.
//   SIGHUP, SIGUSR1   reload the config file (lifecycle/reload.ts)
//   SIGTERM, SIGWINCH stop gracefully: no new connections, work under way may finish for
//                     GracefulShutdownTimeout, then the rest is closed; exit 0 (SIGWINCH is
//                     ignored when wsgate runs on a terminal: there it is a window resize)
//   SIGINT            stop at once (an interactive Ctrl-C): WebSockets are sent 1001
//   SIGTERM or SIGINT during a graceful stop: stop at once

import cluster from 'node:cluster';
import { isatty } from 'node:tty';
import type { Config } from '../config/model';
import { Gateway } from '../gateway';
import type { Logger } from '../observe/log';
import { onHeldSignals } from '../signals';
import { claimPidFile, removePidFile, writePidFile } from './pidfile';
import { reloadFromFile } from './reload';
import { applySharedChange } from '../handlers/balancer-manager';
import { WorkerLink } from './worker-link';
import { workerReady, workerStart } from './workers';
import { boundYoungGeneration } from './young-generation';

/** Runs a gateway on `config` (read from `configFile`) until it stops; resolves with the exit code. */
export async function serve(config: Config, configFile: string, log: Logger): Promise<number> {
  // Written before the ports are bound, so that it is there once the `listening` lines are.
  // Under `-w N` the pid file names the primary, which `-k` signals; a worker never writes it.
  const ownsPidFile = !cluster.isWorker;
  let pidFile = ownsPidFile ? config.process.pidFile : undefined;
  if (!claimPidFile(pidFile, log)) return 1;
  boundYoungGeneration();
  // A `-w N` worker binds its plain ports itself (SO_REUSEPORT), and tells the primary once it listens.
  const worker = workerStart();
  const shared = worker?.binding;
  const gateway = new Gateway(config, { log, shared, statusNonce: worker?.nonce });
  if (worker !== undefined) {
    // The member changes made from the status page so far hold here too, from the first connection on.
    const now = Date.now();
    for (const change of worker.members) applySharedChange(gateway, change, now);
    gateway.workers = new WorkerLink(gateway);
  }
  try {
    await gateway.start();
  } catch (e) {
    log.error(String((e as Error).message));
    if (pidFile !== undefined) removePidFile(pidFile);
    return 1;
  }
  workerReady(gateway, shared);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals, graceMs: number): void => {
      if (stopping) {
        if (signal === 'SIGTERM' || signal === 'SIGINT') {
          log.info('stopping at once', { signal, tunnels: gateway.tunnels.size });
          void gateway.stop({ graceMs: 0 });
        }
        return;
      }
      stopping = true;
      onHeldSignals(undefined);
      log.info('stopping', { signal, tunnels: gateway.tunnels.size, grace_ms: graceMs });
      gateway.stop({ graceMs }).then(
        () => {
          if (pidFile !== undefined) removePidFile(pidFile);
          resolve(0);
        },
        (err: Error) => {
          log.error('error while stopping', { reason: err.message });
          if (pidFile !== undefined) removePidFile(pidFile);
          resolve(1);
        },
      );
    };
    const graceful = (signal: NodeJS.Signals): void => stop(signal, gateway.config.process.gracefulShutdownTimeoutMs);
    process.on('SIGTERM', graceful);
    // On a terminal SIGWINCH also means "the window changed size": resizing it must not stop wsgate.
    const onTerminal = isatty(0) || isatty(2);
    process.on('SIGWINCH', () => {
      if (onTerminal) log.info('SIGWINCH ignored: wsgate runs on a terminal, where it means a window resize; stop it with SIGTERM');
      else graceful('SIGWINCH');
    });
    process.on('SIGINT', () => stop('SIGINT', 0));
    onHeldSignals((signal) => {
      void reloadFromFile(gateway, configFile, log, signal).then((next) => {
        // A new PidFile line moves the file.
        if (next === undefined || !ownsPidFile || next.process.pidFile === pidFile || stopping) return;
        if (pidFile !== undefined) removePidFile(pidFile);
        pidFile = next.process.pidFile;
        if (pidFile === undefined) return;
        try {
          writePidFile(pidFile);
        } catch (e) {
          log.error((e as Error).message);
          pidFile = undefined;
        }
      });
    });
  });
}

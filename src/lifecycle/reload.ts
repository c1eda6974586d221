// Reloading from the config file (SIGHUP, SIGUSR1, `wsgate -k graceful|restart`): read it again;
// a file that does not load leaves the running config in force, unchanged, and its FILE:LINE in
// the log; one that loads is put in force by Gateway.reload. Log files are reopened either way. A plain function, so that each
// worker process of `-w N` can call it on its own gateway.

import { ConfigError, loadConfigFile } from '../config/load';
import type { Config } from '../config/model';
import type { Gateway } from '../gateway';
import type { Logger } from '../observe/log';
import { reopenAll } from '../observe/log-files';

const REFUSED = 'reload refused, the running configuration is kept';

/** Reads `file` and puts it in force on `gateway`; the new config, or undefined when it was refused (logged). */
export async function reloadFromFile(gateway: Gateway, file: string, log: Logger, cause: string): Promise<Config | undefined> {
  // Log files are opened again first, whatever the config file holds now: logrotate moves them
  // and sends SIGUSR1, and lines must not go on into the moved file because of a typo elsewhere.
  for (const failure of reopenAll()) log.error('log file not reopened, lines go on to the old one', { cause, reason: failure });
  let config: Config;
  try {
    config = loadConfigFile(file);
  } catch (e) {
    if (e instanceof ConfigError) log.error(`${REFUSED}: ${e.message}`, { cause });
    else log.error(`${REFUSED}: internal error while reading the configuration (a wsgate bug)`, { cause, reason: String(e) });
    return undefined;
  }
  for (const n of config.notices) log.info(`config: ${n}`);
  try {
    const r = await gateway.reload(config);
    log.info('configuration reloaded', {
      cause,
      file,
      listeners_kept: r.listeners.kept,
      listeners_added: r.listeners.added.map((b) => `${b.address}:${b.port}`).join(',') || undefined,
      listeners_removed: r.listeners.removed.map((b) => `${b.address}:${b.port}`).join(',') || undefined,
      tunnels_kept: r.tunnelsKept,
      tunnels_ending: r.tunnelsEnding,
      grace_ms: r.tunnelsEnding > 0 ? config.process.gracefulShutdownTimeoutMs : undefined,
      // Under `-w N` every worker reloads and says so: which one wrote the line.
      pid: process.pid,
    });
    return config;
  } catch (e) {
    log.error(`${REFUSED}: ${(e as Error).message}`, { cause });
    return undefined;
  }
}

// `wsgate -w N`: a primary process that runs N workers, each a whole gateway with every feature of
// a single process. The primary serves nothing: it starts the workers, restarts one that dies,
// and passes signals on.
//
// How the workers share a port: where the native front runs, each worker binds a listening socket
// of its own with SO_REUSEPORT (listeners/bind.ts) and the kernel spreads new connections over
// them (https ports too: the engine terminates TLS); no connection goes through the cluster
// module. Ports the front does not serve (no engine, or https with WSGATE_NATIVE_TLS=0) are the
// cluster module's: one socket bound by the primary that every worker accepts on (SCHED_NONE:
// the kernel wakes one of them; the primary never touches a connection).
//
// `Listen …:0` gets one port for all workers: the first worker starts alone, says which ports it
// got, and the others (and every replacement) are given them.
//
// /metrics and the status page show all the workers: the primary relays between them
// (primary-relay.ts, worker-link.ts), and gives every worker the status page's nonce and the
// member changes made so far.

import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { ConfigError, loadConfigFile } from '../config/load';
import type { Gateway } from '../gateway';
import { type SharedBinding, sharedPortKey } from '../listeners/bind';
import type { Logger } from '../observe/log';
import { onHeldSignals, workerSignalFlags } from '../signals';
import { PrimaryRelay } from './primary-relay';
import { isWorkerMessage, type SharedMemberChange } from './worker-messages';

/** A crashed worker's first restart waits this long; each crash in a row doubles it, up to RESTART_MAX_MS. */
export const RESTART_MIN_MS = 100;
export const RESTART_MAX_MS = 10_000;
/** A worker that served this long before it died was stable: its replacement waits RESTART_MIN_MS again. */
export const STABLE_MS = 10_000;

/** How the primary tells a worker how to bind (an environment variable: cluster.fork passes nothing else). */
const WORKER_ENV = 'WSGATE_WORKER';

interface WorkerSetup {
  /** sharedPortKey → port, for `Listen …:0`. */
  readonly ports: [string, number][];
  readonly exclusive: boolean;
  /** The status page's nonce, one for all workers. */
  readonly nonce: string;
  /** Member changes made from the status page so far, for the worker to make before it listens. */
  readonly members: SharedMemberChange[];
}

interface ReadyMessage {
  readonly wsgate: 'ready';
  readonly ports: [string, number][];
}

function isReady(m: unknown): m is ReadyMessage {
  return typeof m === 'object' && m !== null && (m as { wsgate?: unknown }).wsgate === 'ready';
}

/** `-w auto`: one worker per core this process may use. */
export function autoWorkers(): number {
  return os.availableParallelism();
}

/** What a worker is given by the primary. */
export interface WorkerStart {
  /** How its gateway binds plain-TCP ports. */
  readonly binding: SharedBinding;
  readonly nonce: string | undefined;
  readonly members: readonly SharedMemberChange[];
}

/** In a worker: what the primary gave it (undefined in any other process). */
export function workerStart(): WorkerStart | undefined {
  if (!cluster.isWorker) return undefined;
  const setup = JSON.parse(process.env[WORKER_ENV] ?? '{}') as Partial<WorkerSetup>;
  return {
    binding: { ports: new Map(setup.ports ?? []), exclusive: setup.exclusive ?? false },
    nonce: setup.nonce,
    members: setup.members ?? [],
  };
}

/** In a worker whose gateway listens: tells the primary so, with the ports it got for `Listen …:0`. */
export function workerReady(gateway: Gateway, binding: SharedBinding | undefined): void {
  if (!cluster.isWorker || binding === undefined) return;
  // Ports bound from now on (added by a reload) are bound by every worker at about the same time.
  binding.exclusive = false;
  const all = gateway.config.listen;
  const ports = gateway
    .addresses()
    .filter((b) => b.listen.port === 0)
    .map((b): [string, number] => [sharedPortKey(b.listen, all), b.port]);
  process.send?.({ wsgate: 'ready', ports } satisfies ReadyMessage);
}

export interface PrimaryOptions {
  readonly workers: number;
  /** Checked again before a reload signal is passed on. */
  readonly configFile: string;
  readonly log: Logger;
}

/** Runs the primary until every worker has stopped; resolves with the exit code (0: all stopped cleanly). */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...workerSignalFlags()] });
  return new Promise<number>((resolve) => new Primary(options, resolve).start());
}

/** One of the N places a worker runs in; a replacement takes its predecessor's slot. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** When the current worker said it listens (0: not yet). */
  readyAt: number;
  /** Whether a worker of this slot ever listened: if not, its death is a failure to start. */
  served: boolean;
  /** The wait before the next restart. */
  delayMs: number;
  restart: NodeJS.Timeout | undefined;
}

class Primary {
  private readonly slots: Slot[] = [];
  private ports: [string, number][] = [];
  private stopping = false;
  private failed = false;
  private readonly nonce = randomBytes(16).toString('hex');
  private readonly relay = new PrimaryRelay(
    () => this.listening(),
    () => this.live().length,
  );

  constructor(
    private readonly options: PrimaryOptions,
    private readonly done: (code: number) => void,
  ) {
    for (let index = 0; index < options.workers; index++) {
      this.slots.push({ index, worker: undefined, readyAt: 0, served: false, delayMs: RESTART_MIN_MS, restart: undefined });
    }
  }

  start(): void {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGWINCH'] as const) process.on(signal, () => this.stop(signal));
    onHeldSignals((signal) => this.reload(signal));
    // The first worker alone: it finds out whether the ports are free and picks those of `:0`.
    this.fork(this.slots[0]!, true);
  }

  private fork(slot: Slot, exclusive: boolean): void {
    slot.restart = undefined;
    slot.readyAt = 0;
    const setup: WorkerSetup = { ports: this.ports, exclusive, nonce: this.nonce, members: this.relay.memberChanges() };
    const w = cluster.fork({ [WORKER_ENV]: JSON.stringify(setup) });
    slot.worker = w;
    w.on('message', (m: unknown) => {
      if (isReady(m)) this.ready(slot, w, m);
      else if (isWorkerMessage(m)) this.relay.message(w, m);
    });
    w.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.exited(slot, w, code, signal));
  }

  private ready(slot: Slot, w: Worker, m: ReadyMessage): void {
    if (slot.worker !== w) return;
    slot.readyAt = Date.now();
    this.relay.listeningNow(w);
    const first = !slot.served && slot.index === 0;
    if (slot.served) this.options.log.info('worker restarted', { pid: w.process.pid, slot: slot.index });
    slot.served = true;
    if (!first || this.stopping) return;
    this.ports = m.ports;
    for (const s of this.slots.slice(1)) this.fork(s, false);
  }

  private exited(slot: Slot, w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker === w) slot.worker = undefined;
    this.relay.gone(w);
    const how = { pid: w.process.pid, code: code ?? signal ?? '' };
    if (this.stopping) {
      if (code !== 0) this.failed = true;
      this.finishIfDone();
      return;
    }
    if (!slot.served) {
      // A worker that could not even listen (port taken…) will not do better the next time.
      this.options.log.error('worker failed to start', how);
      this.failed = true;
      this.stop('worker failure');
      return;
    }
    // Its tunnels are gone with it; the other workers' are not touched.
    const ran = slot.readyAt === 0 ? 0 : Date.now() - slot.readyAt;
    if (ran >= STABLE_MS) slot.delayMs = RESTART_MIN_MS;
    const delay = slot.delayMs;
    slot.delayMs = Math.min(delay * 2, RESTART_MAX_MS);
    this.options.log.error('worker exited; starting another', { ...how, slot: slot.index, served_ms: ran, restart_in_ms: delay });
    slot.restart = setTimeout(() => this.fork(slot, false), delay);
  }

  /** SIGTERM, SIGWINCH, SIGINT: each worker is told and stops as it would alone; none is restarted. */
  private stop(why: NodeJS.Signals | 'worker failure'): void {
    const first = !this.stopping;
    this.stopping = true;
    for (const s of this.slots) {
      clearTimeout(s.restart);
      s.restart = undefined;
    }
    const live = this.live();
    if (first) this.options.log.info('stopping workers', { reason: why, workers: live.length });
    // A second signal goes on too (to a worker it means: stop now).
    const signal = why === 'worker failure' ? 'SIGTERM' : why;
    for (const w of live) w.process.kill(signal);
    this.finishIfDone();
  }

  /**
   * SIGHUP, SIGUSR1: passed on to every worker, which reloads, once the new config is known to be
   * valid; otherwise the workers are not told and keep the config they run.
   */
  private reload(signal: NodeJS.Signals): void {
    if (this.stopping) return;
    const log = this.options.log;
    try {
      loadConfigFile(this.options.configFile);
    } catch (e) {
      const what = e instanceof ConfigError ? e.message : `internal error while reading the configuration: ${(e as Error).message}`;
      log.error(what);
      log.warn('configuration not reloaded: the workers keep the one they run', { signal });
      return;
    }
    const live = this.live();
    log.info('passing the signal on to the workers', { signal, workers: live.length });
    for (const w of live) w.process.kill(signal);
  }

  /** The workers that said they listen. */
  private listening(): Worker[] {
    const out: Worker[] = [];
    for (const s of this.slots) if (s.worker !== undefined && s.readyAt > 0) out.push(s.worker);
    return out;
  }

  private live(): Worker[] {
    const out: Worker[] = [];
    for (const s of this.slots) if (s.worker !== undefined) out.push(s.worker);
    return out;
  }

  private finishIfDone(): void {
    if (this.live().length === 0) this.done(this.failed ? 1 : 0);
  }
}

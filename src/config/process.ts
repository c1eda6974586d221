// Process-wide directives that change what an operator or a client observes: where the pid file
// is (PidFile: `wsgate -k` finds the running process through it) and how long a stop or a reload
// lets tunnels and requests finish (GracefulShutdownTimeout). Server config only, as in Apache.

import * as path from 'node:path';
import type { DirectiveSpec } from './directives';
import type { Ctx } from './drafts';
import type { DirectiveNode } from './parser';
import type { Millis, ProcessSettings } from './model';
import { parseDuration } from './values';

/**
 * wsgate's GracefulShutdownTimeout when the config has none. Apache's default, 0, means "wait for
 * ever", which a service manager or an orchestrator cannot use (it kills the process after its own
 * limit, cutting every tunnel without a close frame); 30 s is Kubernetes' default grace period.
 */
export const DEFAULT_GRACEFUL_SHUTDOWN_MS: Millis = 30_000;

/** What the process directives leave in the build state (resolved when read). */
export interface ProcessDraft {
  pidFile?: string;
  gracefulShutdownTimeoutMs?: Millis;
}

export function processSettings(draft: ProcessDraft): ProcessSettings {
  return {
    gracefulShutdownTimeoutMs: draft.gracefulShutdownTimeoutMs ?? DEFAULT_GRACEFUL_SHUTDOWN_MS,
    ...(draft.pidFile !== undefined ? { pidFile: draft.pidFile } : {}),
  };
}

/** A relative PidFile resolves against ServerRoot (as in Apache), else the main config file's directory. */
function pidFile(node: DirectiveNode, ctx: Ctx): void {
  const base = ctx.state.serverRoot ?? path.dirname(path.resolve(ctx.state.main.source.file));
  ctx.state.process.pidFile = path.resolve(base, node.args[0] as string);
}

function gracefulShutdownTimeout(node: DirectiveNode, ctx: Ctx): void {
  ctx.state.process.gracefulShutdownTimeoutMs = parseDuration(node.args[0] as string, 'GracefulShutdownTimeout', node.source, true);
}

export function processSpecs(): DirectiveSpec[] {
  return [
    { name: 'PidFile', contexts: ['server'], minArgs: 1, maxArgs: 1, handle: pidFile },
    { name: 'GracefulShutdownTimeout', contexts: ['server'], minArgs: 1, maxArgs: 1, handle: gracefulShutdownTimeout },
  ];
}

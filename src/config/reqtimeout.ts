// mod_reqtimeout's RequestReadTimeout: how long a client may take to finish its TLS handshake, to
// send a request head and to send a request body. Each stage has an initial time; with MinRate,
// every byte received pushes the deadline back (1 s per MinRate bytes) up to the maximum, so a
// slow but steady client gets through while a trickle is cut. Syntax, defaults and messages
// follow Apache 2.4; one setting for the whole server (see the VirtualHost refusal below).

import { ConfigError } from './errors';
import type { DirectiveNode } from './parser';
import type { Ctx } from './drafts';
import type { ReadStage, RequestReadTimeouts } from './model';

/** Apache's defaults: `handshake=0 header=20-40,MinRate=500 body=20,MinRate=500`. */
export const DEFAULT_REQUEST_READ_TIMEOUTS: RequestReadTimeouts = {
  handshake: { timeoutMs: 0, maxTimeoutMs: 0, minRate: 0 },
  header: { timeoutMs: 20_000, maxTimeoutMs: 40_000, minRate: 500 },
  body: { timeoutMs: 20_000, maxTimeoutMs: 0, minRate: 500 },
};

const STAGES = ['handshake', 'header', 'body'] as const;

/** A whole number of seconds >= 0, as Apache's parser takes it. */
function seconds(text: string, what: string, node: DirectiveNode): number {
  if (!/^\d+$/.test(text)) {
    throw ConfigError.at(node.source, `RequestReadTimeout: ${what}: "${text}" is not a whole number of seconds >= 0`);
  }
  return Number(text);
}

/** One `stage=timeout[-maxtimeout][,MinRate=rate]` word. */
function parseStage(word: string, node: DirectiveNode): [(typeof STAGES)[number], ReadStage] {
  const eq = word.indexOf('=');
  if (eq <= 0)
    throw ConfigError.at(node.source, `RequestReadTimeout: "${word}" is not in the form key=value (handshake=, header= or body=)`);
  const key = word.slice(0, eq).toLowerCase() as (typeof STAGES)[number];
  if (!STAGES.includes(key)) {
    throw ConfigError.at(node.source, `RequestReadTimeout: unknown parameter "${word.slice(0, eq)}" (handshake, header or body)`);
  }
  const value = word.slice(eq + 1);
  const rateAt = value.toLowerCase().indexOf(',minrate=');
  let times = value;
  let minRate = 0;
  if (rateAt !== -1) {
    times = value.slice(0, rateAt);
    minRate = seconds(value.slice(rateAt + ',minrate='.length), `${word}: MinRate`, node);
    if (minRate === 0) throw ConfigError.at(node.source, `RequestReadTimeout: ${word}: the minimum data rate must be larger than 0`);
  } else if (value.includes('-')) {
    throw ConfigError.at(node.source, `RequestReadTimeout: ${word}: a timeout range needs MinRate (e.g. ${key}=20-40,MinRate=500)`);
  }
  const dash = times.indexOf('-');
  const timeout = seconds(dash === -1 ? times : times.slice(0, dash), word, node);
  const max = dash === -1 ? 0 : seconds(times.slice(dash + 1), word, node);
  if (max !== 0 && timeout >= max) {
    throw ConfigError.at(node.source, `RequestReadTimeout: ${word}: the maximum timeout must be larger than the initial one`);
  }
  return [key, { timeoutMs: timeout * 1000, maxTimeoutMs: max * 1000, minRate }];
}

/**
 * `RequestReadTimeout [handshake=…] [header=…] [body=…]`: each stage named replaces that stage
 * (Apache resets a stage before parsing it), the others keep their value.
 */
export function requestReadTimeout(node: DirectiveNode, ctx: Ctx): void {
  if (!ctx.server.isMain) {
    throw ConfigError.at(
      node.source,
      'RequestReadTimeout in <VirtualHost> is not supported: wsgate applies one setting to every connection; set it at the top level',
    );
  }
  const current = { ...(ctx.server.settings.requestReadTimeouts ?? DEFAULT_REQUEST_READ_TIMEOUTS) };
  for (const word of node.args) {
    const [key, stage] = parseStage(word, node);
    current[key] = stage;
  }
  ctx.server.settings.requestReadTimeouts = current;
}

/**
 * When a stage that started at `startedAt` ends, `bytes` having arrived since: the initial time,
 * plus 1 s per MinRate bytes, capped at the maximum. Infinity when the stage is off.
 */
export function stageDeadline(stage: ReadStage, startedAt: number, bytes: number): number {
  if (stage.timeoutMs === 0) return Infinity;
  let at = startedAt + stage.timeoutMs + (stage.minRate > 0 ? (bytes * 1000) / stage.minRate : 0);
  if (stage.maxTimeoutMs > 0) at = Math.min(at, startedAt + stage.maxTimeoutMs);
  return at;
}

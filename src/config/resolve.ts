// Host names written as <VirtualHost> addresses, resolved once per load as Apache does at startup:
// the system resolver (getaddrinfo: /etc/hosts, then DNS), every address of both families kept.
//
// Loading a config is synchronous (wsgate -t, the workers, the tests all call it that way) and
// Node offers getaddrinfo only asynchronously, so the names are looked up by one short-lived
// child Node process for the whole load, and only when some address is a name.

import { spawnSync } from 'node:child_process';
import * as net from 'node:net';

/** The addresses of a name, or why it has none (the resolver's error code, e.g. ENOTFOUND). */
export type Resolution = { readonly addresses: readonly string[] } | { readonly error: string };

/** Bound on the whole lookup: a resolver that hangs must not hang `wsgate -t`. */
export const RESOLVE_TIMEOUT_MS = 30_000;

// Reads a JSON list of names on stdin, writes {name: [addresses] | "ERRCODE"} on stdout.
const CHILD = `
const dns = require('node:dns');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const out = {};
  await Promise.all(JSON.parse(input).map((name) => dns.promises.lookup(name, { all: true, verbatim: true }).then(
    (list) => { out[name] = list.map((a) => a.address); },
    (err) => { out[name] = String(err.code || err.message); })));
  process.stdout.write(JSON.stringify(out));
});
`;

/** True for what Apache looks up: not `*`, `_default_` or an IP address. */
export function isHostName(host: string): boolean {
  return host !== '*' && host !== '_default_' && net.isIP(host) === 0;
}

export function resolveNames(names: readonly string[], timeoutMs = RESOLVE_TIMEOUT_MS): Map<string, Resolution> {
  const result = new Map<string, Resolution>();
  const unique = [...new Set(names)];
  if (unique.length === 0) return result;
  const child = spawnSync(process.execPath, ['-e', CHILD], {
    input: JSON.stringify(unique),
    encoding: 'utf8',
    timeout: timeoutMs,
    // The resolver reads the environment as Apache's would (RES_OPTIONS, LOCALDOMAIN…); Node's own options stay out.
    env: { ...process.env, NODE_OPTIONS: '' },
    maxBuffer: 1024 * 1024,
  });
  let parsed: Record<string, string[] | string> | undefined;
  if (child.status === 0) {
    try {
      parsed = JSON.parse(child.stdout) as Record<string, string[] | string>;
    } catch {
      parsed = undefined;
    }
  }
  const failure = child.error?.message.includes('ETIMEDOUT')
    ? `no answer from the resolver within ${timeoutMs / 1000} s`
    : `the resolver could not be run (${child.error?.message ?? (child.stderr.trim() || `exit ${child.status}`)})`;
  for (const name of unique) {
    const r = parsed?.[name];
    if (Array.isArray(r) && r.length > 0) result.set(name, { addresses: r.map((a) => a.toLowerCase()) });
    else result.set(name, { error: typeof r === 'string' ? r : parsed === undefined ? failure : 'no address' });
  }
  return result;
}

// Apache's access log format strings (mod_log_config's LogFormat), compiled once when the config
// is loaded into a list of small functions of one ended request; writing a line then costs one
// call per item and no parsing. An unknown `%` code is an error at its FILE:LINE, where Apache
// would log a literal or refuse to start.
//
// What wsgate prints where Apache and wsgate differ (docs/behaviour.md, Logs):
// - the values of Cookie, Authorization, Proxy-Authorization, Sec-WebSocket-Key (and Set-Cookie
//   in answers) are `[redacted]`: a log must never hold a secret;
// - a tunnel is logged once, when it ends, as a 101 whose %D/%T run to the tunnel's end and whose
//   %I/%O count the tunnel's bytes each way (%b/%B: the answer body, none for a 101).

import type { RequestRecord } from '../proxy/record';
import type { Tunnel } from '../tunnel/tunnel';

/** One ended request (or tunnel) as a format reads it. */
export interface LogEntry {
  readonly rec: RequestRecord;
  /** Set when the request became a tunnel, which has now ended. */
  readonly tunnel?: Tunnel;
  /** The canonical name of the server that took it (%v). */
  readonly serverName: string;
}

export type LogItem = (e: LogEntry) => string;

/**
 * A compiled format: the line for one entry, without its newline. `readsRequestHeaders`: it has a
 * `%{Name}i`, so a tunnel's record must keep the request's fields until the tunnel's line is
 * written (otherwise they are let go when the tunnel starts: an idle tunnel keeps less).
 */
export type CompiledFormat = ((e: LogEntry) => string) & { readonly readsRequestHeaders: boolean };

/** Why a format does not compile; the config reader adds FILE:LINE. */
export class LogFormatError extends Error {}

/** Apache's predefined nicknames (they are defined in its default httpd.conf; wsgate knows them without it). */
export const PREDEFINED_FORMATS: ReadonlyMap<string, string> = new Map([
  ['common', '%h %l %u %t "%r" %>s %b'],
  ['combined', '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'],
  ['vhost_combined', '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'],
  ['referer', '%{Referer}i -> %U'],
  ['agent', '%{User-agent}i'],
]);

/** Header names whose values never reach a log (lower case). */
const SECRET_HEADERS: ReadonlySet<string> = new Set(['cookie', 'authorization', 'proxy-authorization', 'sec-websocket-key', 'set-cookie']);
export const REDACTED = '[redacted]';

/** Whether a header's value is logged as `[redacted]`. */
export function isSecretHeader(name: string): boolean {
  return SECRET_HEADERS.has(name.toLowerCase());
}

/**
 * Apache's escaping of logged request data: `"` and `\` get a backslash, the usual control
 * characters their C escape, any other byte outside printable ASCII `\xhh` — so a client cannot
 * forge a line or a field.
 */
export function escapeLogItem(s: string): string {
  if (/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += s[i];
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0b) out += '\\v';
    else if (c < 0x100) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else
      out += encodeURI(s[i] as string)
        .replace(/%/g, '\\x')
        .toLowerCase();
  }
  return out;
}

/** The first value of header `name` in a field list, or undefined. */
export function fieldValue(fields: readonly string[], name: string): string | undefined {
  const want = name.toLowerCase();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if ((fields[i] as string).toLowerCase() === want) return fields[i + 1];
  }
  return undefined;
}

function headerItem(fields: (e: LogEntry) => readonly string[] | undefined, name: string): LogItem {
  if (isSecretHeader(name)) {
    return (e) => (fieldValue(fields(e) ?? [], name) === undefined ? '-' : REDACTED);
  }
  return (e) => {
    const v = fieldValue(fields(e) ?? [], name);
    return v === undefined ? '-' : escapeLogItem(v);
  };
}

/** When the request ended, epoch ms (a tunnel: when it closed). */
function endedAt(e: LogEntry): number {
  if (e.tunnel !== undefined && e.tunnel.endedAt > 0) return e.tunnel.endedAt;
  return e.rec.finishedAt > 0 ? e.rec.finishedAt : Date.now();
}

function durationMs(e: LogEntry): number {
  return Math.max(0, endedAt(e) - e.rec.headAt);
}

function statusOf(e: LogEntry): number {
  return e.tunnel !== undefined ? 101 : e.rec.status;
}

function port(listener: string): string {
  const i = listener.lastIndexOf(':');
  return i === -1 ? '-' : listener.slice(i + 1);
}

function hostOnly(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const i = host.indexOf(':');
  return i === -1 ? host : host.slice(0, i);
}

function httpVersion(rec: RequestRecord): string {
  return rec.protocol === 'h2' ? 'HTTP/2.0' : `HTTP/1.${rec.versionMinor}`;
}

function splitPath(target: string): [string, string] {
  const q = target.indexOf('?');
  return q === -1 ? [target, ''] : [target.slice(0, q), target.slice(q)];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function zone(d: Date): string {
  const off = -d.getTimezoneOffset();
  const a = Math.abs(off);
  return `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}${pad(a % 60)}`;
}

/** `[10/Oct/2000:13:55:36 -0700]`, local time as Apache writes it. */
function clf(ms: number): string {
  const d = new Date(ms);
  return `[${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zone(d)}]`;
}

/** The strftime conversions a `%{…}t` may use. */
const STRFTIME: Record<string, (d: Date) => string> = {
  a: (d) => DAYS[d.getDay()] as string,
  b: (d) => MONTHS[d.getMonth()] as string,
  h: (d) => MONTHS[d.getMonth()] as string,
  d: (d) => pad(d.getDate()),
  e: (d) => String(d.getDate()).padStart(2, ' '),
  m: (d) => pad(d.getMonth() + 1),
  Y: (d) => String(d.getFullYear()),
  y: (d) => pad(d.getFullYear() % 100),
  H: (d) => pad(d.getHours()),
  M: (d) => pad(d.getMinutes()),
  S: (d) => pad(d.getSeconds()),
  z: zone,
  s: (d) => String(Math.floor(d.getTime() / 1000)),
  F: (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
  T: (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`,
  '%': () => '%',
};

/** `%{format}t`: Apache's `begin:`/`end:` prefixes, `sec`/`msec`/`usec`(`_frac`), or a strftime format. */
function timeItem(arg: string): LogItem {
  let at: (e: LogEntry) => number = (e) => e.rec.headAt;
  let fmt = arg;
  if (fmt.startsWith('begin:')) fmt = fmt.slice(6);
  else if (fmt.startsWith('end:')) {
    fmt = fmt.slice(4);
    at = endedAt;
  }
  switch (fmt) {
    case 'sec':
      return (e) => String(Math.floor(at(e) / 1000));
    case 'msec':
      return (e) => String(at(e));
    case 'usec':
      return (e) => String(at(e) * 1000);
    case 'msec_frac':
      return (e) => pad(at(e) % 1000, 3);
    case 'usec_frac':
      return (e) => pad((at(e) % 1000) * 1000, 6);
  }
  if (fmt === '') return (e) => clf(at(e));
  const parts: ((d: Date) => string)[] = [];
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i] as string;
    if (c !== '%') {
      parts.push(() => c);
      continue;
    }
    const k = fmt[++i];
    const f = k === undefined ? undefined : STRFTIME[k];
    if (f === undefined)
      throw new LogFormatError(`%{${arg}}t: unknown time conversion "%${k ?? ''}" (known: ${Object.keys(STRFTIME).join(' ')})`);
    parts.push(f);
  }
  return (e) => {
    const d = new Date(at(e));
    let s = '';
    for (const p of parts) s += p(d);
    return s;
  };
}

function envItem(name: string): LogItem {
  return (e) => {
    const v = e.rec.vars?.env.get(name);
    return v === undefined || v === '' ? '-' : escapeLogItem(v);
  };
}

/** One `%` code (with its `{arg}`, if any) as a function; undefined when wsgate does not know it. */
function item(code: string, arg: string | undefined): LogItem | undefined {
  switch (code) {
    case 'h':
    case 'a':
      return (e) => e.rec.clientIp;
    case 'l':
      return () => '-';
    case 'u':
      return (e) => (e.rec.user === undefined ? '-' : escapeLogItem(e.rec.user));
    case 't':
      return arg === undefined ? (e) => clf(e.rec.headAt) : timeItem(arg);
    case 'r':
      return (e) => escapeLogItem(`${e.rec.method} ${e.rec.path} ${httpVersion(e.rec)}`);
    case 's':
      return (e) => {
        const s = statusOf(e);
        return s === 0 ? '-' : String(s);
      };
    case 'b':
      return (e) => (e.rec.bytesOut === 0 ? '-' : String(e.rec.bytesOut));
    case 'B':
      return (e) => String(e.rec.bytesOut);
    case 'O':
      return (e) => String(e.rec.bytesOut + (e.tunnel?.bytesDown ?? 0));
    case 'I':
      return (e) => String(e.tunnel?.bytesUp ?? 0);
    case 'D':
      return (e) => String(durationMs(e) * 1000);
    case 'T':
      switch (arg) {
        case undefined:
        case 's':
          return (e) => String(Math.floor(durationMs(e) / 1000));
        case 'ms':
          return (e) => String(durationMs(e));
        case 'us':
          return (e) => String(durationMs(e) * 1000);
        default:
          throw new LogFormatError(`%{${arg}}T: the unit is ms, us or s`);
      }
    case 'v':
      return (e) => escapeLogItem(e.serverName);
    case 'V':
      return (e) => escapeLogItem(e.rec.host === undefined ? e.serverName : hostOnly(e.rec.host));
    case 'p':
      switch (arg) {
        case undefined:
        case 'canonical':
        case 'local':
          return (e) => port(e.rec.listener);
        case 'remote':
          return (e) => (e.rec.clientPort === 0 ? '-' : String(e.rec.clientPort));
        default:
          throw new LogFormatError(`%{${arg}}p: the argument is canonical, local or remote`);
      }
    case 'P':
      return () => String(process.pid);
    case 'L':
      return (e) => String(e.rec.id);
    case 'U':
      return (e) => escapeLogItem(splitPath(e.rec.path)[0]);
    case 'q':
      return (e) => escapeLogItem(splitPath(e.rec.path)[1]);
    case 'm':
      return (e) => escapeLogItem(e.rec.method);
    case 'H':
      return (e) => httpVersion(e.rec);
    case 'i':
      if (arg === undefined) throw new LogFormatError('%i needs a header name: %{Name}i');
      return headerItem((e) => e.rec.headers, arg);
    case 'o':
      if (arg === undefined) throw new LogFormatError('%o needs a header name: %{Name}o');
      return headerItem((e) => e.rec.answerHeaders, arg);
    case 'e':
      if (arg === undefined) throw new LogFormatError('%e needs a variable name: %{VAR}e');
      return envItem(arg);
    case '%':
      return () => '%';
    default:
      return undefined;
  }
}

/** `%400,501{…}x` / `%!200{…}x`: the item only for (or not for) those statuses, `-` otherwise. */
function onlyFor(statuses: readonly number[], negate: boolean, inner: LogItem): LogItem {
  return (e) => (statuses.includes(statusOf(e)) !== negate ? inner(e) : '-');
}

const CODES = 'h a l u t r s b B O I D T v V p P L U q m H i o e %';

/** Compiles an Apache format string; throws LogFormatError naming the offending code. */
export function compileLogFormat(format: string): CompiledFormat {
  const items: LogItem[] = [];
  let readsRequestHeaders = false;
  let literal = '';
  const flush = (): void => {
    if (literal === '') return;
    const text = literal;
    items.push(() => text);
    literal = '';
  };
  for (let i = 0; i < format.length; i++) {
    const c = format[i] as string;
    if (c === '\\' && i + 1 < format.length) {
      // LogFormat strings take C escapes for the characters a config line cannot hold.
      const n = format[++i] as string;
      literal += n === 'n' ? '\n' : n === 't' ? '\t' : n;
      continue;
    }
    if (c !== '%') {
      literal += c;
      continue;
    }
    const start = i;
    i++;
    let negate = false;
    const statuses: number[] = [];
    let arg: string | undefined;
    // Modifiers, in Apache's order: a status list, `<`/`>`, then `{arg}`.
    for (;;) {
      const m = format[i];
      if (m === '!') {
        negate = true;
        i++;
      } else if (m !== undefined && /[0-9]/.test(m)) {
        const digits = /^[0-9]{3}(,[0-9]{3})*/.exec(format.slice(i));
        if (digits === null)
          throw new LogFormatError(`"${format.slice(start, i + 3)}": a status condition is three-digit statuses separated by commas`);
        for (const s of digits[0].split(',')) statuses.push(Number(s));
        i += digits[0].length;
      } else if (m === '<' || m === '>') {
        // Original and final status are the same request here: wsgate makes no internal redirects.
        i++;
      } else if (m === '{') {
        const end = format.indexOf('}', i);
        if (end === -1) throw new LogFormatError(`"${format.slice(start)}": "{" without its "}"`);
        arg = format.slice(i + 1, end);
        i = end + 1;
      } else break;
    }
    const code = format[i];
    if (code === undefined) throw new LogFormatError(`the format ends in "${format.slice(start)}": a % code is missing`);
    let it = item(code, arg);
    if (it === undefined) {
      throw new LogFormatError(
        `unknown log format code "%${format.slice(start + 1, i + 1)}" (wsgate knows: ${CODES}, with {arg} for i o e t T p)`,
      );
    }
    if (statuses.length > 0) it = onlyFor(statuses, negate, it);
    if (code === 'i') readsRequestHeaders = true;
    flush();
    items.push(it);
  }
  flush();
  const list = items;
  const compiled = (e: LogEntry): string => {
    let line = '';
    for (const f of list) line += f(e);
    return line;
  };
  return Object.assign(compiled, { readsRequestHeaders });
}

// mod_ssl's directives: TLS on the front (SSLEngine, SSLCertificateFile, …) and to backends
// (SSLProxyEngine, SSLProxyVerify, …). Pass 1 records them in each server's `TlsDraft`; pass 2
// (build.ts) resolves them against the main server's values and reads the certificate files,
// so a missing or unreadable file is a `FILE:LINE:` error before anything listens.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { ContextKind, Ctx } from './drafts';
import { ConfigError, type Notices } from './errors';
import { FileReadError, readTextFile } from './files';
import { DEFAULT_LIMITS } from './limits';
import type { BackendTls, FrontTls, ListenAddress, OcspStapling, SourceRef, TlsVersion, VirtualHost } from './model';
import { staplingFor } from './ocsp';
import type { DirectiveNode } from './parser';
import { parseOnOff } from './values';

/** A file named by a directive, resolved to an absolute path. */
export interface FileRef {
  readonly directive: string;
  readonly path: string;
  readonly source: SourceRef;
}

export interface TlsDraft {
  engine?: { readonly on: boolean; readonly source: SourceRef };
  certFile?: FileRef;
  keyFile?: FileRef;
  chainFile?: FileRef;
  protocol?: { readonly min: TlsVersion; readonly max: TlsVersion };
  ciphers?: { readonly list: string; readonly source: SourceRef };
  honorCipherOrder?: boolean;
  sessionTickets?: boolean;
  sessionTimeoutS?: number;
  /** SSLOpenSSLConfCmd values, applied over the directives above as mod_ssl applies them last. */
  conf?: ConfCmds;
  /** SSLUseStapling and its tuning (config/ocsp.ts); SSLStaplingCache is set on the main server only. */
  stapling?: { readonly on: boolean; readonly source: SourceRef };
  staplingCache?: SourceRef;
  staplingForceUrl?: { readonly url: string; readonly source: SourceRef };
  staplingTimeoutS?: number;
  staplingReturnErrors?: boolean;
  staplingFakeTryLater?: boolean;
  staplingCacheS?: number;
  staplingErrorCacheS?: number;
  staplingSkewS?: number;
  staplingMaxAgeS?: number;
  proxyEngine?: boolean;
  proxyVerify?: boolean;
  proxyCaFile?: FileRef;
  proxyCheckPeerName?: boolean;
  proxyCheckPeerExpire?: boolean;
  proxyMachineCertFile?: FileRef;
}

/** What `SSLOpenSSLConfCmd` lines set, merged per command (a later line for the same command wins). */
export interface ConfCmds {
  ecdhCurve?: string;
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
  cipherString?: string;
  ciphersuites?: string;
  sigalgs?: string;
  dhparamFile?: FileRef;
  serverPreference?: boolean;
  sessionTickets?: boolean;
}

/** The directive table's view of one TLS directive (the same shape as directives.ts's DirectiveSpec). */
export interface TlsDirectiveSpec {
  readonly name: string;
  /** Unset means honoured (directives.ts's DirectiveGroup). */
  readonly group?: 'honoured' | 'notice' | 'refused';
  readonly contexts: readonly ContextKind[] | 'any';
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly handle: (node: DirectiveNode, ctx: Ctx) => void;
}

const SERVER_VHOST: readonly ContextKind[] = ['server', 'vhost'];
const VERSIONS: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** Relative paths resolve as Include's: against ServerRoot if set, else the main config file's directory. */
function filePath(node: DirectiveNode, ctx: Ctx): FileRef {
  const raw = node.args[0] as string;
  const base = ctx.state.serverRoot ?? path.dirname(path.resolve(ctx.state.main.source.file));
  return { directive: node.name, path: path.resolve(base, raw), source: node.source };
}

function one<K extends keyof TlsDraft>(
  name: string,
  field: K,
  parse: (node: DirectiveNode, ctx: Ctx) => NonNullable<TlsDraft[K]>,
): TlsDirectiveSpec {
  return {
    name,
    contexts: SERVER_VHOST,
    minArgs: 1,
    maxArgs: 1,
    handle: (node, ctx) => {
      ctx.server.tls[field] = parse(node, ctx);
    },
  };
}

const onOff =
  (name: string) =>
  (node: DirectiveNode): boolean =>
    parseOnOff(node.args[0] as string, name, node.source);

/**
 * `SSLProtocol` as mod_ssl reads it: words applied left to right; `+X` adds, `-X` removes, a bare
 * word replaces the set. `all` is TLSv1 to TLSv1.3. The result must be a contiguous range (Node
 * takes a minimum and a maximum version).
 */
export function parseSslProtocol(args: readonly string[], where: SourceRef): { min: TlsVersion; max: TlsVersion } {
  const set = new Set<TlsVersion>();
  for (const word of args) {
    const sign = word[0] === '+' || word[0] === '-' ? word[0] : '';
    const name = (sign ? word.slice(1) : word).toLowerCase();
    let these: readonly TlsVersion[];
    if (name === 'all') these = VERSIONS;
    else {
      const v = VERSIONS.find((x) => x.toLowerCase() === name);
      if (v === undefined) {
        if (name === 'sslv3' || name === 'sslv2') {
          if (sign === '-') continue;
          throw ConfigError.at(
            where,
            `SSLProtocol: ${word.replace(/^[+-]/, '')} is not supported (insecure; Node.js offers TLSv1 to TLSv1.3)`,
          );
        }
        throw ConfigError.at(
          where,
          `SSLProtocol: unknown protocol "${word}" (expected all, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3, each optionally prefixed by + or -)`,
        );
      }
      these = [v];
    }
    if (sign === '') set.clear();
    for (const v of these) {
      if (sign === '-') set.delete(v);
      else set.add(v);
    }
  }
  const on = VERSIONS.map((v) => set.has(v));
  const lo = on.indexOf(true);
  const hi = on.lastIndexOf(true);
  if (lo < 0) throw ConfigError.at(where, `SSLProtocol "${args.join(' ')}" leaves no protocol enabled`);
  if (on.slice(lo, hi + 1).includes(false)) {
    throw ConfigError.at(
      where,
      `SSLProtocol "${args.join(' ')}" is not a contiguous range of versions (Node.js takes a minimum and a maximum)`,
    );
  }
  return { min: VERSIONS[lo] as TlsVersion, max: VERSIONS[hi] as TlsVersion };
}

export function tlsSpecs(): TlsDirectiveSpec[] {
  return [
    one('SSLEngine', 'engine', (node) => {
      const v = (node.args[0] as string).toLowerCase();
      if (v === 'optional')
        throw ConfigError.at(node.source, 'SSLEngine optional (RFC 2817 upgrade to TLS) is not supported: use On or Off');
      return { on: parseOnOff(node.args[0] as string, 'SSLEngine', node.source), source: node.source };
    }),
    one('SSLCertificateFile', 'certFile', filePath),
    one('SSLCertificateKeyFile', 'keyFile', filePath),
    one('SSLCertificateChainFile', 'chainFile', filePath),
    {
      name: 'SSLProtocol',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: Infinity,
      handle: (node, ctx) => {
        ctx.server.tls.protocol = parseSslProtocol(node.args, node.source);
      },
    },
    one('SSLCipherSuite', 'ciphers', (node) => {
      const v = node.args[0] as string;
      // mod_ssl's two-argument form names a protocol first (SSLCipherSuite TLSv1.3 …); not supported.
      if (!/^[A-Za-z0-9_:+!@=.,-]+$/.test(v)) throw ConfigError.at(node.source, `SSLCipherSuite: bad cipher list "${v}"`);
      try {
        tls.createSecureContext({ ciphers: v });
      } catch (err) {
        throw ConfigError.at(node.source, `SSLCipherSuite: OpenSSL accepts no cipher in "${v}" (${(err as Error).message})`);
      }
      return { list: v, source: node.source };
    }),
    one('SSLHonorCipherOrder', 'honorCipherOrder', onOff('SSLHonorCipherOrder')),
    one('SSLSessionTickets', 'sessionTickets', onOff('SSLSessionTickets')),
    one('SSLSessionCacheTimeout', 'sessionTimeoutS', (node) => {
      const v = node.args[0] as string;
      if (!/^\d{1,9}$/.test(v) || Number(v) === 0) {
        throw ConfigError.at(node.source, `SSLSessionCacheTimeout: "${v}" is not a number of seconds greater than 0`);
      }
      return Number(v);
    }),
    {
      // Node never compresses TLS records (OpenSSL's SSL_OP_NO_COMPRESSION), which is what Off asks for.
      name: 'SSLCompression',
      contexts: SERVER_VHOST,
      minArgs: 1,
      maxArgs: 1,
      handle: (node) => {
        if (parseOnOff(node.args[0] as string, 'SSLCompression', node.source)) {
          throw ConfigError.at(
            node.source,
            'SSLCompression on: TLS compression is not supported (it exposes secrets to CRIME); use SSLCompression off',
          );
        }
      },
    },
    one('SSLUseStapling', 'stapling', (node) => ({
      on: parseOnOff(node.args[0] as string, 'SSLUseStapling', node.source),
      source: node.source,
    })),
    {
      // Apache's shared-memory store for the answers; wsgate keeps them in memory (per worker), so only its presence matters.
      name: 'SSLStaplingCache',
      contexts: ['server'],
      minArgs: 1,
      maxArgs: 1,
      handle: (node, ctx) => {
        ctx.server.tls.staplingCache = node.source;
        ctx.state.notices.once(
          'ssl-stapling-cache',
          node.source,
          'SSLStaplingCache: wsgate keeps stapled OCSP answers in memory, in each worker; the store type, path and size are not used',
        );
      },
    },
    one('SSLStaplingForceURL', 'staplingForceUrl', (node) => ({ url: node.args[0] as string, source: node.source })),
    one('SSLStaplingResponderTimeout', 'staplingTimeoutS', seconds('SSLStaplingResponderTimeout', 1)),
    one('SSLStaplingReturnResponderErrors', 'staplingReturnErrors', onOff('SSLStaplingReturnResponderErrors')),
    one('SSLStaplingFakeTryLater', 'staplingFakeTryLater', onOff('SSLStaplingFakeTryLater')),
    one('SSLStaplingStandardCacheTimeout', 'staplingCacheS', seconds('SSLStaplingStandardCacheTimeout', 1)),
    one('SSLStaplingErrorCacheTimeout', 'staplingErrorCacheS', seconds('SSLStaplingErrorCacheTimeout', 1)),
    one('SSLStaplingResponseTimeSkew', 'staplingSkewS', seconds('SSLStaplingResponseTimeSkew', 0)),
    one('SSLStaplingResponseMaxAge', 'staplingMaxAgeS', seconds('SSLStaplingResponseMaxAge', -1)),
    { name: 'SSLOpenSSLConfCmd', contexts: SERVER_VHOST, minArgs: 2, maxArgs: 2, handle: openSslConfCmd },
    { name: 'SSLOptions', group: 'notice', contexts: 'any', minArgs: 1, maxArgs: Infinity, handle: sslOptions },
    one('SSLProxyEngine', 'proxyEngine', onOff('SSLProxyEngine')),
    one('SSLProxyVerify', 'proxyVerify', (node, ctx) => {
      const v = (node.args[0] as string).toLowerCase();
      if (v === 'none') return false;
      if (v === 'require') return true;
      if (v === 'optional' || v === 'optional_no_ca') {
        ctx.state.notices.add(
          node.source,
          `SSLProxyVerify ${node.args[0]}: treated as require (wsgate never talks to a backend it cannot verify unless verification is off)`,
        );
        return true;
      }
      throw ConfigError.at(node.source, `SSLProxyVerify must be none or require, got "${node.args[0]}"`);
    }),
    one('SSLProxyCACertificateFile', 'proxyCaFile', filePath),
    one('SSLProxyCheckPeerName', 'proxyCheckPeerName', onOff('SSLProxyCheckPeerName')),
    one('SSLProxyCheckPeerExpire', 'proxyCheckPeerExpire', onOff('SSLProxyCheckPeerExpire')),
    // Apache's older name for SSLProxyCheckPeerName, with the same effect here.
    one('SSLProxyCheckPeerCN', 'proxyCheckPeerName', onOff('SSLProxyCheckPeerCN')),
    one('SSLProxyMachineCertificateFile', 'proxyMachineCertFile', filePath),
  ];
}

/** A whole number of seconds, at least `min` (-1: SSLStaplingResponseMaxAge's "no limit"). */
const seconds =
  (name: string, min: number) =>
  (node: DirectiveNode): number => {
    const v = node.args[0] as string;
    const n = /^-?\d{1,9}$/.test(v) ? Number(v) : Number.NaN;
    if (!(n >= min)) throw ConfigError.at(node.source, `${name}: "${v}" is not a number of seconds (${min} or more)`);
    return n;
  };

const PROTOCOL_NAMES: Record<string, TlsVersion> = {
  tlsv1: 'TLSv1',
  'tlsv1.1': 'TLSv1.1',
  'tlsv1.2': 'TLSv1.2',
  'tlsv1.3': 'TLSv1.3',
};

/**
 * `SSLOpenSSLConfCmd command value`: the commands with a Node TLS option of the same meaning are
 * honoured; any other is refused by name, since OpenSSL would change the handshake in a way wsgate
 * cannot reproduce. Values are checked by building a context with them.
 */
function openSslConfCmd(node: DirectiveNode, ctx: Ctx): void {
  const [cmd, value] = node.args as [string, string];
  const where = node.source;
  const conf: ConfCmds = (ctx.server.tls.conf ??= {});
  const check = (opts: tls.SecureContextOptions): void => {
    try {
      tls.createSecureContext(opts);
    } catch (err) {
      throw ConfigError.at(where, `SSLOpenSSLConfCmd ${cmd} "${value}": OpenSSL refuses it (${(err as Error).message})`);
    }
  };
  switch (cmd.toLowerCase()) {
    case 'curves':
    case 'groups':
    case 'ecdhparameters': {
      const curve = value.toLowerCase() === 'automatic' ? 'auto' : value;
      check({ ecdhCurve: curve });
      conf.ecdhCurve = curve;
      return;
    }
    case 'minprotocol':
    case 'maxprotocol': {
      const v = PROTOCOL_NAMES[value.toLowerCase()];
      if (v === undefined) {
        throw ConfigError.at(where, `SSLOpenSSLConfCmd ${cmd} "${value}": expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3`);
      }
      if (cmd.toLowerCase() === 'minprotocol') conf.minVersion = v;
      else conf.maxVersion = v;
      return;
    }
    case 'cipherstring':
      check({ ciphers: value });
      conf.cipherString = value;
      return;
    case 'ciphersuites':
      if (!/^TLS_[A-Z0-9_]+(?::TLS_[A-Z0-9_]+)*$/.test(value)) {
        throw ConfigError.at(where, `SSLOpenSSLConfCmd Ciphersuites "${value}": expected TLSv1.3 suite names (TLS_…) joined by ":"`);
      }
      check({ ciphers: value, minVersion: 'TLSv1.3' });
      conf.ciphersuites = value;
      return;
    case 'signaturealgorithms':
      check({ sigalgs: value });
      conf.sigalgs = value;
      return;
    case 'dhparameters':
      conf.dhparamFile = filePath({ ...node, args: [value] }, ctx);
      return;
    case 'options':
      for (const word of value.split(',')) {
        const off = word.startsWith('-');
        const name = word.replace(/^[+-]/, '').toLowerCase();
        if (name === 'serverpreference') conf.serverPreference = !off;
        else if (name === 'sessionticket') conf.sessionTickets = !off;
        else if (name === 'compression' && off) continue;
        else {
          throw ConfigError.at(
            where,
            `SSLOpenSSLConfCmd Options "${word}" is not supported (ServerPreference, SessionTicket and -Compression are)`,
          );
        }
      }
      return;
    default:
      throw ConfigError.at(
        where,
        `SSLOpenSSLConfCmd ${cmd} is not supported: wsgate maps Curves, Groups, ECDHParameters, MinProtocol, MaxProtocol, ` +
          'CipherString, Ciphersuites, SignatureAlgorithms, DHParameters and Options onto Node.js TLS; remove the line or use ' +
          'SSLProtocol / SSLCipherSuite',
      );
  }
}

/**
 * `SSLOptions [+|-]opt…`, option by option: StrictRequire, OptRenegotiate and LegacyDNStringFormat
 * only change SSLRequire, client certificates in directories and DN strings, none of which wsgate
 * has (SSLRequire and SSLVerifyClient are refused); FakeBasicAuth decides who gets in from a client
 * certificate, which wsgate never asks for, so it is refused. StdEnvVars and ExportCertData put the
 * SSL_* variables in the request's environment, where `%{VAR}e` in Header/RequestHeader would read
 * them: inside <Directory>/<Files> (never entered by a proxied request, and the only place Debian's
 * default-ssl.conf uses them) they change nothing, elsewhere they are refused.
 */
function sslOptions(node: DirectiveNode, ctx: Ctx): void {
  for (const word of node.args) {
    const name = word.replace(/^[+-]/, '').toLowerCase();
    const adds = !word.startsWith('-');
    switch (name) {
      case 'strictrequire':
      case 'optrenegotiate':
      case 'legacydnstringformat':
        break;
      case 'fakebasicauth':
        if (adds) {
          throw ConfigError.at(
            node.source,
            'SSLOptions +FakeBasicAuth: client certificates are not supported, so there is no DN to log in with',
          );
        }
        break;
      case 'stdenvvars':
      case 'exportcertdata':
        if (adds) {
          throw ConfigError.at(
            node.source,
            `SSLOptions ${word}: SSL variables are not put in the request environment; read them as %{SSL_PROTOCOL}s ` +
              '(…s, not …e) in Header or RequestHeader',
          );
        }
        break;
      default:
        throw ConfigError.at(
          node.source,
          `SSLOptions: unknown option "${word}" (StdEnvVars, ExportCertData, FakeBasicAuth, StrictRequire, OptRenegotiate, LegacyDNStringFormat)`,
        );
    }
  }
  ctx.state.notices.once(
    'ignored:ssloptions',
    node.source,
    'SSLOptions is ignored: wsgate has no SSLRequire, client certificates or CGI, the only things these options change',
  );
}

/** Reads each file once per load (several servers may name the same one). */
export class FileCache {
  private readonly texts = new Map<string, string>();

  read(ref: FileRef): string {
    let text = this.texts.get(ref.path);
    if (text === undefined) {
      try {
        text = readTextFile(ref.path, DEFAULT_LIMITS.fileBytes);
      } catch (err) {
        if (!(err instanceof FileReadError)) throw err;
        throw ConfigError.at(ref.source, `${ref.directive}: cannot read "${ref.path}": ${err.reason}`);
      }
      this.texts.set(ref.path, text);
    }
    return text;
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_KEY = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

function certificates(ref: FileRef, text: string): string[] {
  const certs = text.match(PEM_CERT) ?? [];
  if (certs.length === 0) throw ConfigError.at(ref.source, `${ref.directive}: "${ref.path}" holds no PEM certificate`);
  for (const c of certs) {
    try {
      new X509Certificate(c);
    } catch (err) {
      throw ConfigError.at(ref.source, `${ref.directive}: "${ref.path}": bad certificate: ${(err as Error).message}`);
    }
  }
  return certs;
}

function privateKey(ref: FileRef, text: string): string {
  const m = PEM_KEY.exec(text);
  if (!m) throw ConfigError.at(ref.source, `${ref.directive}: "${ref.path}" holds no PEM private key`);
  if (m[0].includes('ENCRYPTED'))
    throw ConfigError.at(ref.source, `${ref.directive}: "${ref.path}": encrypted private keys are not supported (no passphrase dialog)`);
  try {
    createPrivateKey(m[0]);
  } catch (err) {
    throw ConfigError.at(ref.source, `${ref.directive}: "${ref.path}": bad private key: ${(err as Error).message}`);
  }
  return m[0];
}

function dhParameters(ref: FileRef, text: string): string {
  const m = /-----BEGIN DH PARAMETERS-----[\s\S]+?-----END DH PARAMETERS-----/.exec(text);
  if (!m) throw ConfigError.at(ref.source, `SSLOpenSSLConfCmd DHParameters: "${ref.path}" holds no PEM DH parameters`);
  try {
    tls.createSecureContext({ dhparam: m[0] });
  } catch (err) {
    throw ConfigError.at(ref.source, `SSLOpenSSLConfCmd DHParameters: "${ref.path}": ${(err as Error).message}`);
  }
  return m[0];
}

function checkPair(ref: FileRef, cert: string, key: string): void {
  const x = new X509Certificate(cert);
  if (!x.checkPrivateKey(createPrivateKey(key))) {
    throw ConfigError.at(ref.source, `${ref.directive}: the private key does not match the certificate in "${ref.path}"`);
  }
}

type Pick = <K extends keyof TlsDraft>(k: K) => TlsDraft[K];

function picker(own: TlsDraft, base: TlsDraft | undefined): Pick {
  return (k) => own[k] ?? base?.[k];
}

/** The front TLS settings of a server (its own values over the main server's), or undefined without `SSLEngine on`. */
export function resolveFrontTls(
  own: TlsDraft,
  base: TlsDraft | undefined,
  files: FileCache,
  serverSource: SourceRef,
  notices?: Notices,
): FrontTls | undefined {
  const pick = picker(own, base);
  const engine = pick('engine');
  if (engine === undefined || !engine.on) return undefined;
  const certFile = pick('certFile');
  if (certFile === undefined) {
    throw ConfigError.at(
      own.engine?.source ?? serverSource,
      'SSLEngine on needs SSLCertificateFile (and SSLCertificateKeyFile unless the key is in the same file)',
    );
  }
  const certText = files.read(certFile);
  const certs = certificates(certFile, certText);
  const keyFile = pick('keyFile');
  const key =
    keyFile === undefined
      ? privateKey({ ...certFile, directive: 'SSLCertificateFile (no SSLCertificateKeyFile)' }, certText)
      : privateKey(keyFile, files.read(keyFile));
  checkPair(keyFile ?? certFile, certs[0] as string, key);
  const chainFile = pick('chainFile');
  const chain = chainFile === undefined ? [] : certificates(chainFile, files.read(chainFile));
  const protocol = pick('protocol') ?? { min: 'TLSv1.2', max: 'TLSv1.3' };
  // SSLOpenSSLConfCmd lines of the main server, then the server's own, as mod_ssl applies them.
  const conf: ConfCmds = { ...base?.conf, ...own.conf };
  const minVersion = conf.minVersion ?? protocol.min;
  const maxVersion = conf.maxVersion ?? protocol.max;
  if (VERSIONS.indexOf(minVersion) > VERSIONS.indexOf(maxVersion)) {
    throw ConfigError.at(
      engine.source,
      `TLS settings of this server leave no protocol: minimum ${minVersion} is above maximum ${maxVersion}`,
    );
  }
  const tls12 = conf.cipherString ?? pick('ciphers')?.list;
  // Node takes the TLSv1.3 suites (TLS_…) and the older cipher list in one string.
  const older =
    tls12 ??
    tls.DEFAULT_CIPHERS.split(':')
      .filter((c) => !c.startsWith('TLS_'))
      .join(':');
  const ciphers = conf.ciphersuites !== undefined ? `${conf.ciphersuites}:${older}` : tls12;
  const stapling = resolveStapling(pick, [...certs, ...chain], notices);
  return {
    cert: [...certs, ...chain].join('\n') + '\n',
    key,
    minVersion,
    maxVersion,
    ...(ciphers !== undefined ? { ciphers } : {}),
    honorCipherOrder: conf.serverPreference ?? pick('honorCipherOrder') ?? false,
    sessionTickets: conf.sessionTickets ?? pick('sessionTickets') ?? true,
    sessionTimeoutS: pick('sessionTimeoutS') ?? 300,
    ...(conf.ecdhCurve !== undefined ? { ecdhCurve: conf.ecdhCurve } : {}),
    ...(conf.sigalgs !== undefined ? { sigalgs: conf.sigalgs } : {}),
    ...(conf.dhparamFile !== undefined ? { dhparam: dhParameters(conf.dhparamFile, files.read(conf.dhparamFile)) } : {}),
    ...(stapling !== undefined ? { stapling } : {}),
    source: engine.source,
  };
}

/**
 * `SSLUseStapling on`: mod_ssl refuses to start without an SSLStaplingCache, and serves a
 * certificate it cannot staple (no responder URL, issuer not in the files) without a staple,
 * logging why: a notice here.
 */
function resolveStapling(pick: Pick, pems: readonly string[], notices: Notices | undefined): OcspStapling | undefined {
  const on = pick('stapling');
  if (on === undefined || !on.on) return undefined;
  if (pick('staplingCache') === undefined) {
    throw ConfigError.at(
      on.source,
      'SSLUseStapling on needs SSLStaplingCache at server level (Apache does not start without one either): add ' +
        'SSLStaplingCache shmcb:/var/run/ocsp(128000) outside any <VirtualHost>',
    );
  }
  const forceUrl = pick('staplingForceUrl');
  const result = staplingFor(pems, {
    on: on.source,
    ...(forceUrl !== undefined ? { forceUrl } : {}),
    timeoutS: pick('staplingTimeoutS') ?? 10,
    returnErrors: pick('staplingReturnErrors') ?? true,
    fakeTryLater: pick('staplingFakeTryLater') ?? true,
    cacheS: pick('staplingCacheS') ?? 3600,
    errorCacheS: pick('staplingErrorCacheS') ?? 600,
    skewS: pick('staplingSkewS') ?? 300,
    maxAgeS: pick('staplingMaxAgeS') ?? -1,
  });
  if (typeof result === 'string') {
    notices?.add(on.source, `SSLUseStapling on: this server's certificate is served without an OCSP staple: ${result}`);
    return undefined;
  }
  return result;
}

/**
 * The backend TLS settings of a server, or undefined without `SSLProxyEngine on` (then a wss:// or
 * https:// route in it is an error, reported by build.ts at its ProxyPass line).
 */
export function resolveBackendTls(own: TlsDraft, base: TlsDraft | undefined, files: FileCache): BackendTls | undefined {
  const pick = picker(own, base);
  if (pick('proxyEngine') !== true) return undefined;
  const verify = pick('proxyVerify') ?? true;
  const checkPeerName = pick('proxyCheckPeerName') ?? true;
  const checkPeerExpire = pick('proxyCheckPeerExpire') ?? true;
  const caFile = pick('proxyCaFile');
  const ca = caFile === undefined ? undefined : certificates(caFile, files.read(caFile)).join('\n') + '\n';
  const machine = pick('proxyMachineCertFile');
  let client: { cert: string; key: string } | undefined;
  if (machine !== undefined) {
    const text = files.read(machine);
    const certs = certificates(machine, text);
    const key = privateKey(machine, text);
    checkPair(machine, certs[0] as string, key);
    client = { cert: certs.join('\n') + '\n', key };
  }
  const profile = [
    `verify=${verify ? 'require' : 'none'}`,
    `name=${checkPeerName ? 'on' : 'off'}`,
    `expire=${checkPeerExpire ? 'on' : 'off'}`,
    ...(caFile ? [`ca=${caFile.path}`] : []),
    ...(machine ? [`cert=${machine.path}`] : []),
  ].join(',');
  return {
    verify,
    checkPeerName,
    checkPeerExpire,
    ...(ca !== undefined ? { ca } : {}),
    ...(client !== undefined ? { clientCert: client.cert, clientKey: client.key } : {}),
    profile,
  };
}

/** The profile every wss:// backend gets unless told otherwise; origins with it keep the plain `https://host:port` key. */
export const DEFAULT_BACKEND_TLS_PROFILE = 'verify=require,name=on,expire=on';

function covers(vh: VirtualHost, listen: ListenAddress): boolean {
  return vh.addresses.some(
    (a) => (a.port === '*' || a.port === listen.port) && (a.host === '*' || listen.host === undefined || a.host === listen.host),
  );
}

/** The servers whose certificates an https Listen can serve: the vhosts on its port with `SSLEngine on`, in config order, then the main server. */
export function tlsServersFor(listen: ListenAddress, mainServer: VirtualHost, virtualHosts: readonly VirtualHost[]): VirtualHost[] {
  const list = virtualHosts.filter((vh) => vh.tls !== undefined && covers(vh, listen));
  if (mainServer.tls !== undefined) list.push(mainServer);
  return list;
}

/** A Listen line as read: `written` when its protocol argument was given (else it was inferred from the port). */
export interface ListenDraft extends ListenAddress {
  readonly written: boolean;
}

/**
 * Whether each Listen speaks TLS, decided as mod_ssl does: by `SSLEngine` of the servers that own
 * the port (the <VirtualHost>s whose addresses cover it, else the main server), not by the Listen
 * line's protocol word. A port whose owners disagree is an error naming both; a port written (or,
 * for 443, defaulted to) `https` with no owner speaking TLS is an error too, as serving plain HTTP
 * where TLS was asked for would be silently wrong.
 */
export function decideListenProtocols(
  listens: readonly ListenDraft[],
  mainServer: VirtualHost,
  virtualHosts: readonly VirtualHost[],
): ListenAddress[] {
  return listens.map((l): ListenAddress => {
    const covering = virtualHosts.filter((vh) => covers(vh, l));
    const owners = covering.length > 0 ? covering : [mainServer];
    const on = owners.find((vh) => vh.tls !== undefined);
    const off = owners.find((vh) => vh.tls === undefined);
    const port = `${l.host ?? '*'}:${l.port}`;
    if (on !== undefined && off !== undefined) {
      const onAt = `${on.tls!.source.file}:${on.tls!.source.line}`;
      throw ConfigError.at(
        off.source,
        `Listen ${port}: this server has no "SSLEngine on" but another server on the same port has (${onAt}); a port speaks TLS for all ` +
          `its virtual hosts or for none: add SSLEngine on and a certificate here, or put the two on different ports`,
      );
    }
    if (on !== undefined) return { ...(l.host !== undefined ? { host: l.host } : {}), port: l.port, protocol: 'https', source: l.source };
    if (l.protocol === 'https') {
      throw ConfigError.at(
        l.source,
        `Listen ${port} https: no server for this port has "SSLEngine on" with a certificate (SSLCertificateFile)` +
          (l.written ? '' : `; port ${l.port} defaults to https as in Apache: write "Listen ${l.port} http" to serve plain HTTP there`),
      );
    }
    return { ...(l.host !== undefined ? { host: l.host } : {}), port: l.port, protocol: 'http', source: l.source };
  });
}

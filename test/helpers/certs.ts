// Test certificates made by `openssl` in a temp dir: a CA, certificates it signs (with SANs), an
// expired one, one from an untrusted CA, and client certificates for mTLS. Make them once per
// test file with `makeCerts()`; every file is PEM, keys unencrypted.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export interface CertFiles {
  /** Certificate file (PEM). */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
  /** Certificate and key in one file (for SSLProxyMachineCertificateFile). */
  readonly both: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface Certs {
  readonly dir: string;
  /** The trusted test CA. */
  readonly ca: { readonly cert: string; readonly pem: string };
  /** Another CA nobody trusts. */
  readonly rogueCa: { readonly cert: string; readonly pem: string };
  /** Signed by the CA for `SANs`; see makeCerts for the names. */
  issue(name: string, sans: readonly string[], opts?: { expired?: boolean; rogue?: boolean; client?: boolean }): CertFiles;
}

function run(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newCa(dir: string, name: string): { cert: string; key: string; pem: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  run(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '30',
    '-subj',
    `/CN=wsgate ${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

export function makeCerts(): Certs {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-certs-'));
  const ca = newCa(dir, 'ca');
  const rogueCa = newCa(dir, 'rogue-ca');
  let serial = 1;
  const issue: Certs['issue'] = (name, sans, opts = {}) => {
    const key = path.join(dir, `${name}.key`);
    const csr = path.join(dir, `${name}.csr`);
    const cert = path.join(dir, `${name}.pem`);
    const ext = path.join(dir, `${name}.ext`);
    run(dir, [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/CN=${name}`,
    ]);
    const san = sans.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
    writeFileSync(
      ext,
      [
        ...(san ? [`subjectAltName=${san}`] : []),
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
      ].join('\n') + '\n',
    );
    const issuer = opts.rogue ? rogueCa : ca;
    if (opts.expired) {
      // `openssl ca` is the one that takes explicit dates: valid in 2020 only.
      const db = path.join(dir, `${name}.db`);
      writeFileSync(db, '');
      const cnf = path.join(dir, `${name}.cnf`);
      writeFileSync(
        cnf,
        [
          '[ca]',
          'default_ca=c',
          '[c]',
          `database=${db}`,
          `new_certs_dir=${dir}`,
          `certificate=${issuer.cert}`,
          `private_key=${issuer.key}`,
          'default_md=sha256',
          'policy=p',
          'unique_subject=no',
          `serial=${path.join(dir, `${name}.serial`)}`,
          '[p]',
          'commonName=supplied',
        ].join('\n') + '\n',
      );
      writeFileSync(path.join(dir, `${name}.serial`), `${(1000 + serial++).toString(16).padStart(4, '0')}\n`);
      run(dir, [
        'ca',
        '-batch',
        '-config',
        cnf,
        '-in',
        csr,
        '-out',
        cert,
        '-extfile',
        ext,
        '-startdate',
        '20200101000000Z',
        '-enddate',
        '20200201000000Z',
        '-notext',
      ]);
    } else {
      run(dir, [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        issuer.cert,
        '-CAkey',
        issuer.key,
        '-set_serial',
        String(serial++),
        '-days',
        '30',
        '-sha256',
        '-extfile',
        ext,
        '-out',
        cert,
      ]);
    }
    const certPem = readFileSync(cert, 'utf8');
    const keyPem = readFileSync(key, 'utf8');
    const both = path.join(dir, `${name}-both.pem`);
    writeFileSync(both, certPem + keyPem);
    return { cert, key, both, certPem, keyPem };
  };
  return { dir, ca: { cert: ca.cert, pem: ca.pem }, rogueCa: { cert: rogueCa.cert, pem: rogueCa.pem }, issue };
}

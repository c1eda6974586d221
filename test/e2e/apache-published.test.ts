// Lines as Apache apps and distributions publish them (issue 11): JupyterHub's <VirtualHost name:443>,
// Debian's ports.conf and ssl.conf, certbot's options-ssl-apache.conf, SSLOpenSSLConfCmd; checked on
// the configuration and, where they change the wire, with a real TLS client.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { before, describe, test } from 'node:test';
import { expectError, lines, load } from '../config/helpers';
import { makeCerts, type CertFiles, type Certs } from '../helpers/certs';
import { closeWs, echo, openWs, randomBytes, sha256, startEchoBackend, startGateway, type RunningGateway } from '../helpers/harness';

let certs: Certs;
let front: CertFiles;
let dhparam: string;

before(() => {
  certs = makeCerts();
  front = certs.issue('front', ['127.0.0.1', 'localhost']);
  dhparam = path.join(certs.dir, 'dhparam.pem');
  // RFC 7919's ffdhe2048 group: instant, where `openssl dhparam 2048` takes seconds.
  fs.writeFileSync(dhparam, execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048']));
});

/** certbot-apache's current-options-ssl-apache.conf, as published. */
const CERTBOT_OPTIONS = lines(
  '# This file contains important security parameters. If you modify this file',
  '# manually, Certbot will be unable to automatically provide future security',
  '# updates. Instead, Certbot will print and log an error message with a path to',
  '# the up-to-date file that you will need to refer to when manually updating',
  '# this file.',
  '',
  'SSLEngine on',
  '',
  '# Intermediate configuration, tweak to your needs',
  'SSLProtocol             all -SSLv2 -SSLv3 -TLSv1 -TLSv1.1',
  'SSLCipherSuite          ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384',
  'SSLHonorCipherOrder     off',
  'SSLSessionTickets       off',
  '',
  'SSLOptions +StrictRequire',
  '',
  '# Add vhost name to log entries:',
  'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\"" vhost_combined',
  'LogFormat "%v %h %l %u %t \\"%r\\" %>s %b" vhost_common',
);

async function withBackend(text: string, body: (g: RunningGateway) => Promise<void>, dir?: string): Promise<void> {
  const backend = await startEchoBackend('hub');
  let conf = text.replaceAll('BACKEND', String(backend.port));
  if (dir !== undefined) conf = conf.replaceAll('DIR', dir);
  const g = await startGateway(conf);
  try {
    await body(g);
  } finally {
    await g.stop();
    await backend.close();
  }
}

interface Handshake {
  protocol: string | null;
  cipher: string;
  curve: string | undefined;
  session: Buffer | undefined;
  reused: boolean;
}

/** One TLS connection that sends a request and reads the answer to the end (so TLSv1.3 tickets arrive). */
async function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<Handshake> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca.pem, ...opts });
  let session: Buffer | undefined;
  s.on('session', (b: Buffer) => {
    session = b;
  });
  await once(s, 'secureConnect');
  s.write('GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  s.resume();
  await once(s, 'end');
  const result = {
    protocol: s.getProtocol(),
    cipher: s.getCipher().standardName,
    curve: (s.getEphemeralKeyInfo() as { name?: string } | null)?.name,
    session,
    reused: s.isSessionReused(),
  };
  s.destroy();
  return result;
}

async function handshakeFails(port: number, opts: tls.ConnectionOptions): Promise<void> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca.pem, ...opts });
  const [err] = (await once(s, 'error').catch((e: unknown) => [e])) as [Error];
  assert.ok(err instanceof Error);
  s.destroy();
}

describe('<VirtualHost name:port> (JupyterHub)', () => {
  test("JupyterHub's published TLS vhost with a name that resolves serves requests and WebSockets", async () => {
    const text = lines(
      'Listen 127.0.0.1:0',
      'ProxyPass /x http://127.0.0.1:1/', // the main server: a request here would fail with 502/503
      '<VirtualHost localhost:0>',
      '',
      '  ServerName localhost',
      '',
      '  # configure SSL',
      '  SSLEngine on',
      `  SSLCertificateFile ${front.cert}`,
      `  SSLCertificateKeyFile ${front.key}`,
      '  SSLProtocol All -SSLv2 -SSLv3',
      `  SSLOpenSSLConfCmd DHParameters ${dhparam}`,
      '  SSLCipherSuite EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH',
      '',
      '  # Use RewriteEngine to handle websocket connection upgrades',
      '  RewriteEngine On',
      '  RewriteCond %{HTTP:Connection} Upgrade [NC]',
      '  RewriteCond %{HTTP:Upgrade} websocket [NC]',
      '  RewriteRule /(.*) ws://127.0.0.1:BACKEND/$1 [P,L]',
      '',
      '  <Location "/">',
      '    # preserve Host header to avoid cross-origin problems',
      '    ProxyPreserveHost on',
      '    # proxy to JupyterHub',
      '    ProxyPass         http://127.0.0.1:BACKEND/',
      '    ProxyPassReverse  http://127.0.0.1:BACKEND/',
      '  </Location>',
      '</VirtualHost>',
    );
    await withBackend(text, async (g) => {
      assert.ok(g.gateway.config.virtualHosts[0]!.addresses.some((a) => a.host === '127.0.0.1'));
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: g.port, path: '/x', servername: 'localhost', ca: certs.ca.pem }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (b += c));
            res.on('end', () => resolve(`${res.statusCode} ${b}`));
          })
          .on('error', reject);
      });
      assert.equal(body, '200 backend:hub GET /x');
      const ws = await openWs(`wss://localhost:${g.port}/user/a/api/kernels`, undefined, { ca: certs.ca.pem });
      const data = randomBytes(64 * 1024);
      assert.equal(sha256((await echo(ws, data)).data), sha256(data));
      await closeWs(ws);
      // DHParameters read into the context (the test certificate is ECDSA, so no DHE suite can be negotiated with it).
      assert.match(g.gateway.config.virtualHosts[0]!.tls?.dhparam ?? '', /^-----BEGIN DH PARAMETERS-----/);
    });
  });

  test('a name that does not resolve is a FILE:LINE error naming it', () => {
    expectError(
      { 'wsgate.conf': lines('Listen 0', '<VirtualHost nonexistent.invalid:443>', 'ServerName hub.example.org', '</VirtualHost>') },
      { line: 2, message: /<VirtualHost nonexistent\.invalid:443>: cannot resolve "nonexistent\.invalid" \(ENOTFOUND\).*\*:443/ },
    );
  });
});

describe('<IfModule> (Debian ports.conf), NameVirtualHost, undefined ${VAR}', () => {
  const portsConf = lines(
    '# If you just change the port or add more ports here, you will likely also',
    '# have to change the VirtualHost statement in',
    '# /etc/apache2/sites-enabled/000-default.conf',
    '',
    'Listen 80',
    '',
    '<IfModule ssl_module>',
    '\tListen 443',
    '</IfModule>',
    '',
    '<IfModule mod_gnutls.c>',
    '\tListen 443',
    '</IfModule>',
  );
  const defaultSsl = (): string =>
    lines(
      '<IfModule mod_ssl.c>',
      '\t<VirtualHost _default_:443>',
      '\t\tServerAdmin webmaster@localhost',
      '\t\tDocumentRoot /var/www/html',
      '\t\tErrorLog ${APACHE_LOG_DIR}/error.log',
      '\t\tCustomLog ${APACHE_LOG_DIR}/access.log combined',
      '\t\tSSLEngine on',
      `\t\tSSLCertificateFile\t${front.cert}`,
      `\t\tSSLCertificateKeyFile ${front.key}`,
      '\t\t<FilesMatch "\\.(?:cgi|shtml|phtml|php)$">',
      '\t\t\t\tSSLOptions +StdEnvVars',
      '\t\t</FilesMatch>',
      '\t\t<Directory /usr/lib/cgi-bin>',
      '\t\t\t\tSSLOptions +StdEnvVars',
      '\t\t</Directory>',
      '\t\tProxyPass / http://127.0.0.1:8000/',
      '\t</VirtualHost>',
      '</IfModule>',
    );
  /** Debian's mods-available/ssl.conf, its active lines. */
  const sslConf = lines(
    '<IfModule mod_ssl.c>',
    '\tSSLRandomSeed startup builtin',
    '\tSSLRandomSeed startup file:/dev/urandom 512',
    '\tSSLRandomSeed connect builtin',
    '\tSSLRandomSeed connect file:/dev/urandom 512',
    '\tAddType application/x-x509-ca-cert .crt',
    '\tAddType application/x-pkcs7-crl\t.crl',
    '\tSSLPassPhraseDialog  exec:/usr/share/apache2/ask-for-passphrase',
    '\tSSLSessionCache\t\tshmcb:${APACHE_RUN_DIR}/ssl_scache(512000)',
    '\tSSLSessionCacheTimeout  300',
    '\tSSLCipherSuite HIGH:!aNULL',
    '\tSSLProtocol all -SSLv3',
    '</IfModule>',
  );

  test("Debian's ports.conf, ssl.conf and default-ssl.conf load: ssl_module is loaded, mod_gnutls.c is not", () => {
    const { config } = load(
      {
        'apache2.conf': lines('Include mods-enabled/ssl.conf', 'Include ports.conf', 'Include sites-enabled/*.conf'),
        'mods-enabled/ssl.conf': sslConf,
        'ports.conf': portsConf,
        'sites-enabled/default-ssl.conf': defaultSsl(),
      },
      'apache2.conf',
      { APACHE_LOG_DIR: '/var/log/apache2', APACHE_RUN_DIR: '/var/run/apache2' },
    );
    assert.deepEqual(
      config.listen.map((l) => `${l.port} ${l.protocol}`),
      ['80 http', '443 https'],
    );
    assert.equal(config.virtualHosts[0]!.tls?.minVersion, 'TLSv1');
    assert.equal(config.virtualHosts[0]!.tls?.sessionTimeoutS, 300);
  });

  test('<IfModule !x>, and a module named by an earlier LoadModule counts as loaded (both spellings)', () => {
    const { config } = load({
      'wsgate.conf': lines(
        'Listen 0',
        '<IfModule !mod_gnutls.c>',
        'ProxyPass /a ws://h/',
        '</IfModule>',
        '<IfModule !proxy_wstunnel_module>',
        'ProxyPass /b ws://h/',
        '</IfModule>',
        '<IfModule mod_status.c>',
        'ProxyPass /c ws://h/',
        '</IfModule>',
        '<IfModule rewrite_module>',
        'ProxyPass /d ws://h/',
        '</IfModule>',
      ),
    });
    assert.deepEqual(
      config.mainServer.routes.map((r) => (r.match.kind === 'prefix' ? r.match.prefix : '')),
      ['/a', '/d'],
    );
    expectError(
      {
        'wsgate.conf': lines(
          'LoadModule gnutls_module /usr/lib/apache2/modules/mod_gnutls.so',
          'Listen 80',
          '<IfModule mod_gnutls.c>',
          '\tListen 80',
          '</IfModule>',
        ),
      },
      { line: 4, message: /port 80 is already listened on/ },
    );
  });

  test('NameVirtualHost is a notice; an undefined ${VAR} is a warning and the text is kept', () => {
    const { config, dir } = load({
      'wsgate.conf': lines(
        'Listen 0',
        'NameVirtualHost *:80',
        'ErrorLog ${APACHE_LOG_DIR}/error.log',
        'CustomLog ${APACHE_LOG_DIR}/access.log combined',
        'ProxyPass / ws://h/',
      ),
    });
    const notices = config.notices.map((n) => n.replace(`${dir}/`, ''));
    assert.ok(
      notices.includes(
        'wsgate.conf:2: NameVirtualHost is ignored: it has no effect since Apache 2.4 (every address is name-based; Apache warns too)',
      ),
    );
    assert.equal(notices.filter((n) => n.includes('Config variable ${APACHE_LOG_DIR} is not defined')).length, 1);
    assert.ok(notices.some((n) => n.startsWith('wsgate.conf:3: Config variable ${APACHE_LOG_DIR} is not defined')));
  });
});

describe('mod_ssl tuning', () => {
  const vhost = (inner: string): string =>
    lines(
      'Listen 127.0.0.1:0',
      '<VirtualHost *:0>',
      'ServerName localhost',
      `SSLCertificateFile ${front.cert}`,
      `SSLCertificateKeyFile ${front.key}`,
      inner,
      'ProxyPass / http://127.0.0.1:BACKEND/',
      '</VirtualHost>',
    );

  test("certbot's options-ssl-apache.conf as published: protocols, ciphers, no session resumption; HSTS on a TLS answer", async () => {
    const dir = fs.mkdtempSync(path.join(certs.dir, 'certbot-'));
    fs.writeFileSync(path.join(dir, 'options-ssl-apache.conf'), CERTBOT_OPTIONS);
    const text = vhost(
      lines('Include DIR/options-ssl-apache.conf', 'Header always set Strict-Transport-Security "max-age=31536000; includeSubDomains"'),
    );
    await withBackend(
      text,
      async (g) => {
        const first = await handshake(g.port, { maxVersion: 'TLSv1.2' });
        assert.equal(first.protocol, 'TLSv1.2');
        assert.match(first.cipher, /^TLS_ECDHE_ECDSA_WITH_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
        assert.ok(first.session !== undefined);
        // SSLSessionTickets off: the session offered back is not resumed (TLSv1.2 and TLSv1.3).
        assert.equal((await handshake(g.port, { maxVersion: 'TLSv1.2', session: first.session })).reused, false);
        const t13 = await handshake(g.port);
        assert.equal(t13.protocol, 'TLSv1.3');
        assert.equal((await handshake(g.port, { session: t13.session })).reused, false);
        await handshakeFails(g.port, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
        const hsts = await new Promise<string | undefined>((resolve, reject) => {
          https
            .get({ host: '127.0.0.1', port: g.port, path: '/', servername: 'localhost', ca: certs.ca.pem }, (res) => {
              res.resume();
              resolve(res.headers['strict-transport-security'] as string | undefined);
            })
            .on('error', reject);
        });
        assert.equal(hsts, 'max-age=31536000; includeSubDomains');
      },
      dir,
    );
  });

  test('without SSLSessionTickets off a session is resumed (the control for the test above)', async () => {
    await withBackend(vhost('SSLEngine on'), async (g) => {
      const t12 = await handshake(g.port, { maxVersion: 'TLSv1.2' });
      assert.equal((await handshake(g.port, { maxVersion: 'TLSv1.2', session: t12.session })).reused, true);
      const t13 = await handshake(g.port);
      assert.equal((await handshake(g.port, { session: t13.session })).reused, true);
    });
  });

  test('SSLOpenSSLConfCmd Curves, MinProtocol and Ciphersuites reach the handshake', async () => {
    const text = vhost(
      lines(
        'SSLEngine on',
        'SSLOpenSSLConfCmd Curves X25519',
        'SSLOpenSSLConfCmd MinProtocol TLSv1.3',
        'SSLOpenSSLConfCmd Ciphersuites TLS_CHACHA20_POLY1305_SHA256',
        'SSLCompression off',
        'SSLUseStapling off',
        'SSLStaplingResponderTimeout 5',
        'SSLStaplingReturnResponderErrors off',
      ),
    );
    await withBackend(text, async (g) => {
      const h = await handshake(g.port);
      assert.equal(h.protocol, 'TLSv1.3');
      assert.equal(h.curve, 'X25519');
      assert.equal(h.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
      await handshakeFails(g.port, { maxVersion: 'TLSv1.2' });
      await handshakeFails(g.port, { ecdhCurve: 'P-256' });
    });
  });

  test('what Node cannot do is a FILE:LINE error naming it', () => {
    const base = lines('Listen 0', 'ProxyPass / ws://h/');
    const cases: [string, RegExp][] = [
      ['SSLCompression on', /SSLCompression on: TLS compression is not supported/],
      ['SSLOpenSSLConfCmd ClientCAFile /x', /SSLOpenSSLConfCmd ClientCAFile is not supported/],
      ['SSLOpenSSLConfCmd Curves NoSuchCurve', /SSLOpenSSLConfCmd Curves "NoSuchCurve": OpenSSL refuses it/],
      ['SSLOpenSSLConfCmd Options -SessionTicket,PrioritizeChaCha', /Options "PrioritizeChaCha" is not supported/],
      ['SSLOptions +FakeBasicAuth', /SSLOptions \+FakeBasicAuth: client certificates are not supported/],
      ['SSLOptions +StdEnvVars', /SSLOptions \+StdEnvVars: SSL variables are not put in the request environment.*%\{SSL_PROTOCOL\}s/],
      ['SSLSessionCacheTimeout 0', /SSLSessionCacheTimeout: "0" is not a number of seconds/],
    ];
    for (const [line, message] of cases) expectError({ 'wsgate.conf': base + line + '\n' }, { line: 3, message });
  });

  test('SSLOpenSSLConfCmd Options and SSLSessionCacheTimeout set the context; notices for what changes nothing', () => {
    const { config, dir } = load({
      'wsgate.conf': lines(
        'Listen 0',
        'SSLEngine on',
        `SSLCertificateFile ${front.cert}`,
        `SSLCertificateKeyFile ${front.key}`,
        'SSLOpenSSLConfCmd Options -SessionTicket,ServerPreference,-Compression',
        'SSLSessionCacheTimeout 600',
        'SSLSessionCache shmcb:/var/run/ssl_scache(512000)',
        'ProxyPass / ws://h/',
      ),
    });
    const t = config.mainServer.tls!;
    assert.equal(t.sessionTickets, false);
    assert.equal(t.honorCipherOrder, true);
    assert.equal(t.sessionTimeoutS, 600);
    assert.ok(config.notices.map((n) => n.replace(`${dir}/`, '')).some((n) => n.startsWith('wsgate.conf:7: SSLSessionCache is ignored')));
  });
});

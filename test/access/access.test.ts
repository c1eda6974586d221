// Access control without sockets: directive parsing and its FILE:LINE errors, Apache's section
// merging, the Require logic, address forms, SetEnvIf, and every htpasswd format (files made by
// Apache's real `htpasswd`).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkAccess, type AccessRequest, type AccessResult } from '../../src/access/evaluate';
import { inNet, ipBytes, parseIpNet } from '../../src/access/ip';
import { checkPassword, passwordFormat, VerifyCache } from '../../src/access/passwords';
import type { Config } from '../../src/config/model';
import { expectError, lines, load, writeTree } from '../config/helpers';

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

function hash(flags: string[], password: string): string {
  return execFileSync('htpasswd', ['-nb', ...flags, 'u', password])
    .toString()
    .trim()
    .split(':')
    .slice(1)
    .join(':');
}

function ask(config: Config, p: string, opts: Partial<AccessRequest> & { auth?: string } = {}): AccessResult {
  const headers = [...(opts.headers ?? [])];
  if (opts.auth !== undefined) headers.push('Authorization', opts.auth);
  return checkAccess(config.mainServer.access!, {
    method: opts.method ?? 'GET',
    path: p,
    backendUrl: opts.backendUrl,
    clientIp: opts.clientIp ?? '127.0.0.1',
    localAddress: opts.localAddress ?? (() => '127.0.0.1'),
    protocol: 'HTTP/1.1',
    headers,
  });
}
const status = (r: AccessResult): number => (r.allowed ? 200 : r.status);

test('every htpasswd format Apache checks on Linux verifies the right password and refuses a wrong one', () => {
  const cases: [string[], string][] = [
    [['-B'], 'bcrypt'],
    [['-B', '-C', '6'], 'bcrypt'],
    [['-m'], 'apr1'],
    [['-s'], 'sha1'],
    [['-2'], 'sha256crypt'],
    [['-5'], 'sha512crypt'],
    [['-5', '-r', '1200'], 'sha512crypt'],
    [['-2', '-r', '7000'], 'sha256crypt'],
    [['-d'], 'descrypt'],
  ];
  for (const [flags, format] of cases) {
    for (const pw of ['s3cret', 'pässwörd with spaces', 'x'.repeat(40)]) {
      const h = hash(flags, pw);
      assert.equal(passwordFormat(h), format, `${flags.join(' ')}: ${h}`);
      assert.equal(checkPassword(pw, h, format as never), true, `${flags.join(' ')} right`);
      // DES crypt reads 8 bytes only, so its wrong password differs in the first one.
      assert.equal(checkPassword('!' + pw, h, format as never), false, `${flags.join(' ')} wrong`);
      if (format !== 'descrypt') assert.equal(checkPassword(pw + '!', h, format as never), false, `${flags.join(' ')} wrong`);
    }
  }
  // glibc's own $1$ MD5 crypt (openssl writes it) shares the algorithm with $apr1$.
  const md5 = execFileSync('openssl', ['passwd', '-1', '-salt', 'abcdefgh', 'hello']).toString().trim();
  assert.equal(passwordFormat(md5), 'md5crypt');
  assert.equal(checkPassword('hello', md5, 'md5crypt'), true);
  assert.equal(checkPassword('hellO', md5, 'md5crypt'), false);
});

test('plaintext (-p) entries, and DES-length ones with a salt crypt() rejects, are FILE:LINE errors at the AuthUserFile line naming the file line', () => {
  const msg = /line 2 \(user "u"\): not a hash Apache checks on Linux .*htpasswd -B/;
  const good = `ok:${hash(['-B'], 'a')}`;
  const des = hash(['-d'], 'secret');
  // The system crypt() fails ("*0") for a salt outside ./0-9A-Za-z, so such an entry never matches in Apache.
  assert.equal(execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', 'secret', '!' + des.slice(1)]).toString(), '*0');
  for (const entry of [hash(['-p'], 'secret'), '!' + des.slice(1), des.slice(0, 1) + ' ' + des.slice(2)]) {
    expectError(
      {
        'wsgate.conf': lines('Listen 8080', '<Location /a>', 'AuthType Basic', 'AuthUserFile pw', 'Require valid-user', '</Location>'),
        pw: `${good}\nu:${entry}\n`,
      },
      { line: 4, message: msg },
    );
  }
  expectError(
    { 'wsgate.conf': lines('Listen 8080', '<Location /a>', 'AuthUserFile nothere', '</Location>') },
    { line: 3, message: /AuthUserFile: cannot read .*nothere.*ENOENT/ },
  );
});

test('a DES crypt (-d) entry loads and decides Basic auth as crypt() does: 8 characters count, later ones do not', () => {
  const dir = writeTree({ pw: `alice:${hash(['-d'], 'longpassword')}\nbob:${hash(['-d'], 'b')}\n` });
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 8080',
      '<Location /a>',
      'AuthType Basic',
      'AuthName "r"',
      `AuthUserFile "${path.join(dir, 'pw')}"`,
      'Require valid-user',
      '</Location>',
    ),
  });
  assert.equal(status(ask(config, '/a/x', { auth: basic('alice', 'longpassword') })), 200);
  assert.equal(status(ask(config, '/a/x', { auth: basic('alice', 'longpass') })), 200, 'crypt() reads the first 8 characters');
  assert.equal(status(ask(config, '/a/x', { auth: basic('alice', 'longpasXword') })), 401);
  assert.equal(status(ask(config, '/a/x', { auth: basic('alice', 'longpas') })), 401);
  assert.equal(status(ask(config, '/a/x', { auth: basic('bob', 'b') })), 200);
  assert.equal(status(ask(config, '/a/x', { auth: basic('bob', 'B') })), 401);
  assert.equal(status(ask(config, '/a/x', { auth: basic('bob', '') })), 401);
});

test('the verification cache remembers successes only', () => {
  const c = new VerifyCache(2);
  const h = hash(['-B'], 'pw');
  assert.equal(c.check('u', 'bad', h, 'bcrypt'), false);
  assert.equal(c.size, 0);
  assert.equal(c.check('u', 'pw', h, 'bcrypt'), true);
  assert.equal(c.check('u', 'pw', h, 'bcrypt'), true);
  assert.equal(c.size, 1);
  assert.equal(c.check('v', 'pw', h, 'bcrypt'), true);
  assert.equal(c.check('w', 'pw', h, 'bcrypt'), true);
  assert.equal(c.size, 2);
});

test('IP forms: full, partial, CIDR, netmask, IPv6; bad ones and host names refused', () => {
  const t = (net: string, ip: string) => {
    const n = parseIpNet(net);
    assert.notEqual(typeof n, 'string', net);
    return inNet(n as never, ipBytes(ip));
  };
  assert.equal(t('10.1', '10.1.200.3'), true);
  assert.equal(t('10.1', '10.2.0.1'), false);
  assert.equal(t('192.168.0.0/16', '192.168.9.9'), true);
  assert.equal(t('192.168.0.0/255.255.255.0', '192.168.1.9'), false);
  assert.equal(t('192.168.0.0/255.255.255.0', '192.168.0.9'), true);
  assert.equal(t('127.0.0.1', '127.0.0.1'), true);
  assert.equal(t('2001:db8::/32', '2001:db8:1::5'), true);
  assert.equal(t('2001:db8::/32', '2001:db9::5'), false);
  assert.equal(t('::1', '::1'), true);
  assert.equal(t('10.0.0.0/8', '::1'), false);
  for (const bad of ['example.com', '10.0.0.300', '10.0.0.0/33', '10.1/8', '10.0.0.0/255.0.255.0', '2001:db8::/200'])
    assert.equal(typeof parseIpNet(bad), 'string', bad);
});

test('Require forms: ip, local, method, env (SetEnvIf, BrowserMatchNoCase), not inside RequireAll, RequireNone', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 8080',
      'SetEnvIf Request_URI "^/env/(.*)$" seen=$1',
      'BrowserMatchNoCase "^curl/" is_curl',
      '<Location /ip>',
      '  Require ip 10.1 192.168.0.0/16 2001:db8::/32',
      '</Location>',
      '<Location /local>',
      '  Require local',
      '</Location>',
      '<Location /method>',
      '  Require method GET HEAD',
      '</Location>',
      '<LocationMatch "^/env/">',
      '  Require env is_curl',
      '</LocationMatch>',
      '<Location /none>',
      '  <RequireAll>',
      '    Require all granted',
      '    <RequireNone>',
      '      Require ip 10.9',
      '      Require env is_curl',
      '    </RequireNone>',
      '  </RequireAll>',
      '</Location>',
    ),
  });
  assert.equal(status(ask(config, '/ip/x', { clientIp: '10.1.2.3' })), 200);
  assert.equal(status(ask(config, '/ip/x', { clientIp: '2001:db8::7' })), 200);
  assert.equal(status(ask(config, '/ip/x', { clientIp: '10.2.2.3' })), 403);
  assert.equal(status(ask(config, '/ipx', { clientIp: '10.2.2.3' })), 200, '<Location /ip> does not cover /ipx');
  assert.equal(status(ask(config, '/local', { clientIp: '127.5.0.1' })), 200);
  assert.equal(status(ask(config, '/local', { clientIp: '::1' })), 200);
  assert.equal(status(ask(config, '/local', { clientIp: '192.0.2.5', localAddress: () => '::ffff:192.0.2.5' })), 200);
  assert.equal(status(ask(config, '/local', { clientIp: '192.0.2.5', localAddress: () => '192.0.2.6' })), 403);
  assert.equal(status(ask(config, '/method', { method: 'HEAD' })), 200);
  assert.equal(status(ask(config, '/method', { method: 'POST' })), 403);
  const r = ask(config, '/env/abc', { headers: ['User-Agent', 'CURL/8.0'] });
  assert.equal(status(r), 200);
  assert.equal(r.allowed && r.env.get('seen'), 'abc', 'SetEnvIf $1 substitution');
  assert.equal(status(ask(config, '/env/abc', { headers: ['User-Agent', 'Mozilla'] })), 403);
  assert.equal(status(ask(config, '/none')), 200);
  assert.equal(status(ask(config, '/none', { clientIp: '10.9.1.1' })), 403);
  assert.equal(status(ask(config, '/none', { headers: ['user-agent', 'curl/1'] })), 403);
});

test('merging: a later <Location> with Require replaces; AuthMerging And combines; a section without Require inherits; <Proxy> applies by backend URL', () => {
  const dir = writeTree({ pw: `alice:${hash(['-m'], 'a')}\nbob:${hash(['-s'], 'b')}\n` });
  const pw = path.join(dir, 'pw');
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 8080',
      '<Proxy "ws://127.0.0.1:9000/">',
      '  Require ip 10.0.0.0/8',
      '</Proxy>',
      '<Location /app>',
      '  AuthType Basic',
      '  AuthName "app"',
      `  AuthUserFile "${pw}"`,
      '  Require valid-user',
      '</Location>',
      '<Location /app/public>',
      '  Require all granted',
      '</Location>',
      '<Location /app/and>',
      '  AuthMerging And',
      '  Require user bob',
      '</Location>',
      '<Location /app/inherit>',
      '  AuthName "other"',
      '</Location>',
    ),
  });
  assert.equal(status(ask(config, '/app/x')), 401);
  const r = ask(config, '/app/x');
  assert.equal(!r.allowed && r.realm, 'app');
  assert.equal(status(ask(config, '/app/x', { auth: basic('alice', 'a') })), 200);
  assert.equal(status(ask(config, '/app/public/x')), 200);
  assert.equal(status(ask(config, '/app/and', { auth: basic('alice', 'a') })), 401, 'valid-user AND user bob');
  assert.equal(status(ask(config, '/app/and', { auth: basic('bob', 'b') })), 200);
  const inherit = ask(config, '/app/inherit');
  assert.equal(!inherit.allowed && inherit.realm, 'other');
  assert.equal(status(ask(config, '/other', { backendUrl: 'ws://127.0.0.1:9000/x', clientIp: '127.0.0.1' })), 403);
  assert.equal(status(ask(config, '/other', { backendUrl: 'ws://127.0.0.1:9000/x', clientIp: '10.0.0.1' })), 200);
  // <Location> comes after <Proxy>: its Require replaces the <Proxy>'s.
  assert.equal(status(ask(config, '/app/public', { backendUrl: 'ws://127.0.0.1:9000/x', clientIp: '127.0.0.1' })), 200);
});

test('Order/Allow/Deny with env=, Satisfy Any and All combined with Require, AuthzSendForbiddenOnFailure', () => {
  const dir = writeTree({ pw: `alice:${hash(['-B'], 'a')}\n` });
  const pw = path.join(dir, 'pw');
  const auth = ['  AuthType Basic', '  AuthName "r"', `  AuthUserFile "${pw}"`];
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 8080',
      'SetEnvIfNoCase X-Key "^OPEN$" trusted',
      '<Location /ad>',
      '  Order Allow,Deny',
      '  Allow from env=trusted 192.0.2.0/24',
      '  Deny from 192.0.2.7',
      '</Location>',
      '<Location /any>',
      ...auth,
      '  Require valid-user',
      '  Order Deny,Allow',
      '  Deny from all',
      '  Allow from 10.0.0.0/8',
      '  Satisfy Any',
      '</Location>',
      '<Location /all>',
      ...auth,
      '  Require valid-user',
      '  Order Deny,Allow',
      '  Deny from all',
      '  Allow from 10.0.0.0/8',
      '</Location>',
      '<Location /forbid>',
      ...auth,
      '  Require user nobody',
      '  AuthzSendForbiddenOnFailure On',
      '</Location>',
    ),
  });
  assert.equal(status(ask(config, '/ad', { clientIp: '192.0.2.1' })), 200);
  assert.equal(status(ask(config, '/ad', { clientIp: '192.0.2.7' })), 403);
  assert.equal(status(ask(config, '/ad', { clientIp: '198.51.100.1' })), 403);
  assert.equal(status(ask(config, '/ad', { clientIp: '198.51.100.1', headers: ['x-key', 'open'] })), 200);
  assert.equal(status(ask(config, '/any', { clientIp: '10.1.1.1' })), 200, 'Satisfy Any: the address is enough');
  assert.equal(status(ask(config, '/any', { clientIp: '192.0.2.1' })), 401);
  assert.equal(status(ask(config, '/any', { clientIp: '192.0.2.1', auth: basic('alice', 'a') })), 200);
  assert.equal(
    status(ask(config, '/all', { clientIp: '192.0.2.1', auth: basic('alice', 'a') })),
    403,
    'Satisfy All: the address must pass too',
  );
  assert.equal(status(ask(config, '/all', { clientIp: '10.1.1.1' })), 401);
  assert.equal(status(ask(config, '/all', { clientIp: '10.1.1.1', auth: basic('alice', 'a') })), 200);
  assert.equal(status(ask(config, '/forbid', { auth: basic('alice', 'a') })), 403);
});

test('what Apache refuses or wsgate does not support is a FILE:LINE error', () => {
  const loc = (...body: string[]) => ({ 'wsgate.conf': lines('Listen 8080', '<Location /a>', ...body, '</Location>') });
  expectError(
    { 'wsgate.conf': lines('Listen 8080', 'Require all granted') },
    { line: 2, message: /Require is not allowed at the top level/ },
  );
  expectError(loc('Require not ip 10.1'), { line: 3, message: /negative Require directive has no effect in <RequireAny>/ });
  expectError(loc('<RequireAll>', 'Require not ip 10.1', '</RequireAll>'), {
    line: 3,
    message: /<RequireAll> contains only negative authorization directives/,
  });
  expectError(loc('<RequireAny>', '</RequireAny>'), { line: 3, message: /contains no authorization directives/ });
  expectError(loc('Require host example.com'), { line: 3, message: /DNS.*Require ip/ });
  expectError(loc('Require expr "%{REMOTE_ADDR} == \'1\'"'), { line: 3, message: /expressions are not supported/ });
  expectError(loc('Require ldap-group cn=x'), { line: 3, message: /LDAP is not supported/ });
  expectError(loc('Require all maybe'), { line: 3, message: /must be 'granted' or 'denied'/ });
  expectError(loc('Require ip 10.0.0.300'), { line: 3, message: /Require ip: .*not an IP address/ });
  expectError(loc('AuthType Digest'), { line: 3, message: /AuthType Digest is not supported/ });
  expectError(loc('AuthBasicProvider ldap'), { line: 3, message: /AuthBasicProvider ldap is not supported/ });
  expectError(loc('AuthMerging Maybe'), { line: 3, message: /Off \| And \| Or/ });
  // A host name is refused where the lookup would decide; under Deny,Allow with no Deny it decides nothing (below).
  expectError(loc('Order Allow,Deny', 'Allow from example.com'), { line: 4, message: /Allow from example\.com: host names.*DNS/ });
  expectError(loc('Allow from 10.0.0.1', 'Deny from bad.example'), { line: 4, message: /Deny from bad\.example: host names.*DNS/ });
  expectError(loc('Allow from localhost', 'Deny from 10.0.0.1'), { line: 3, message: /Allow from localhost: host names.*DNS/ });
  expectError(loc('Order deny, allow'), { line: 3, message: /Order takes 1 argument/ });
  expectError(loc('<Limit POST>', 'Require valid-user', '</Limit>'), { line: 3, message: /<Limit> is not supported.*Require method/ });
  expectError(loc('SetEnvIfExpr "true" x'), { line: 3, message: /expressions are not supported/ });
  expectError(loc('SetEnv proxy-nokeepalive 1'), { line: 3, message: /proxy-nokeepalive.*not implement/ });
  expectError(loc('OIDCProviderMetadataURL https://x'), { line: 3, message: /OpenID Connect/ });
  expectError(loc('AuthDBMUserFile /x'), { line: 3, message: /DBM/ });
});

test('run-time configuration faults answer 500 as Apache does (no AuthName, AuthType without Require), never 200', () => {
  const dir = writeTree({ pw: `alice:${hash(['-m'], 'a')}\n` });
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 8080',
      '<Location /noname>',
      '  AuthType Basic',
      `  AuthUserFile "${path.join(dir, 'pw')}"`,
      '  Require valid-user',
      '</Location>',
      '<Location /norequire>',
      '  AuthType Basic',
      '</Location>',
      '<Location /nobasic>',
      '  Require valid-user',
      '</Location>',
    ),
  });
  assert.equal(status(ask(config, '/noname')), 500);
  assert.equal(status(ask(config, '/norequire')), 500);
  assert.equal(status(ask(config, '/nobasic')), 500);
  assert.equal(status(ask(config, '/elsewhere')), 200);
});

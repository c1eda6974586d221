import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileLogFormat, escapeLogItem, LogFormatError } from '../../src/observe/log-format';
import { RequestRecord } from '../../src/proxy/record';
import { expectError, load, lines } from '../config/helpers';

function record(headers: string[], status = 200, bytes = 1234): RequestRecord {
  const rec = new RequestRecord(
    {
      clientIp: '192.0.2.7',
      clientPort: 51000,
      listen: { host: '127.0.0.1', port: 8080, protocol: 'http', source: { file: 'x', line: 1 } },
      tls: false,
      alpn: undefined,
      protocol: 'http/1.1',
    },
    { method: 'GET', target: '/a b?x=1', upgrade: undefined, headers, host: 'example.org:8080', versionMinor: 1 },
    Date.UTC(2024, 0, 2, 3, 4, 5),
    Date.UTC(2024, 0, 2, 3, 4, 5),
  );
  rec.bytesOut = bytes;
  rec.end({ kind: 'answered', status });
  rec.finishedAt = rec.headAt + 1500;
  return rec;
}

describe('Apache log formats', () => {
  test('combined: every field, escapes, secrets redacted', () => {
    const rec = record(['Host', 'example.org', 'Referer', 'http://r/"q"', 'User-Agent', 'ua\x01\n', 'Cookie', 'sid=SECRET1']);
    const line = compileLogFormat(
      '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{Cookie}i %D %T %v %V %p %{remote}p %U %q %m %H %%',
    )({
      rec,
      serverName: 'gw.example',
    });
    const m =
      /^192\.0\.2\.7 - - \[(\d\d\/Jan\/2024:\d\d:\d\d:05 [+-]\d{4})\] "GET \/a b\?x=1 HTTP\/1\.1" 200 1234 "http:\/\/r\/\\"q\\"" "ua\\x01\\n" \[redacted\] 1500000 1 gw\.example example\.org 8080 51000 \/a b \?x=1 GET HTTP\/1\.1 %$/.exec(
        line,
      );
    assert.ok(m, line);
    assert.ok(!line.includes('SECRET1'));
  });

  test('%b is - for no body, %{…}t strftime and msec, status conditions', () => {
    const rec = record([], 404, 0);
    assert.equal(compileLogFormat('%b %B')({ rec, serverName: 's' }), '- 0');
    assert.equal(compileLogFormat('%{%Y-%m-%d}t')({ rec, serverName: 's' }).length, 10);
    assert.equal(compileLogFormat('%{msec}t')({ rec, serverName: 's' }), String(rec.headAt));
    assert.equal(compileLogFormat('%404{Host}i|%!404m|%200,404m')({ rec, serverName: 's' }), '-|-|GET');
  });

  test('an unknown code is an error naming it', () => {
    assert.throws(
      () => compileLogFormat('%h %Z'),
      (e: unknown) => e instanceof LogFormatError && /"%Z"/.test(e.message),
    );
    assert.throws(() => compileLogFormat('%{Foo}'), LogFormatError);
    assert.throws(() => compileLogFormat('%{%Q}t'), LogFormatError);
  });

  test('escapeLogItem: quotes, backslashes, controls, non-ASCII', () => {
    assert.equal(escapeLogItem('a"b\\c\td\x7f\xe9'), 'a\\"b\\\\c\\td\\x7f\\xe9');
  });
});

describe('log directives', () => {
  test('unknown % code in LogFormat and CustomLog → FILE:LINE', () => {
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'ProxyPass / http://127.0.0.1:1/', 'LogFormat "%h %j" mine') },
      { line: 3, message: /LogFormat: unknown log format code "%j"/ },
    );
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'CustomLog /tmp/x.log "%h %{x}Q"') },
      { line: 2, message: /unknown log format code "%\{x\}Q"/ },
    );
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'CustomLog /tmp/x.log combind') },
      { line: 2, message: /no LogFormat has this nickname/ },
    );
  });

  test('piped logs and syslog are refused; tunnel is a reserved nickname', () => {
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'ErrorLog "|/usr/bin/rotatelogs /var/log/e 86400"') },
      { line: 2, message: /piped logs are not supported.*pipe stderr/ },
    );
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'CustomLog "|/bin/cat" combined') },
      { line: 2, message: /piped logs are not supported/ },
    );
    expectError({ 'wsgate.conf': lines('Listen 0', 'ErrorLog syslog:local1') }, { line: 2, message: /syslog is not supported/ });
    expectError({ 'wsgate.conf': lines('Listen 0', 'LogFormat "%h" tunnel') }, { line: 2, message: /reserved/ });
    expectError(
      { 'wsgate.conf': lines('Listen 0', 'CustomLog /tmp/x common expr=true') },
      { line: 2, message: /expr= conditions are not supported/ },
    );
  });

  test('LogLevel maps Apache levels and takes the most verbose of wsgate modules', () => {
    const lvl = (arg: string): string | undefined => load({ 'wsgate.conf': lines('Listen 0', `LogLevel ${arg}`) }).config.logLevel;
    assert.equal(lvl('crit'), 'error');
    assert.equal(lvl('notice'), 'info');
    assert.equal(lvl('trace5'), 'debug');
    assert.equal(lvl('warn proxy:debug'), 'debug');
    assert.equal(lvl('warn mod_proxy_wstunnel.c:info'), 'info');
    assert.equal(lvl('warn php7:trace8'), 'warn');
    expectError({ 'wsgate.conf': lines('Listen 0', 'LogLevel loud') }, { line: 2, message: /unknown level "loud"/ });
  });

  test('per virtual host: own CustomLog, else the main server’s; TransferLog takes the last unnamed LogFormat', () => {
    const { config, dir } = load({
      'wsgate.conf': lines(
        'Listen 0',
        'LogFormat "%h %m" short',
        'LogFormat "%m only"',
        'TransferLog main.log',
        'CustomLog tunnels.jsonl tunnel',
        '<VirtualHost *:0>',
        'ServerName a',
        'CustomLog a.log short env=!quiet',
        '</VirtualHost>',
        '<VirtualHost *:0>',
        'ServerName b',
        '</VirtualHost>',
      ),
    });
    assert.deepEqual(
      config.mainServer.logs?.map((l) => `${l.kind} ${l.file.replace(`${dir}/`, '')}`),
      ['access main.log', 'tunnel tunnels.jsonl'],
    );
    const a = config.virtualHosts[0]!.logs!;
    assert.equal(a.length, 1);
    assert.deepEqual(a[0]!.condition, { name: 'quiet', negate: true });
    assert.equal(config.virtualHosts[1]!.logs?.length, 2);
    const rec = record([]);
    const main = config.mainServer.logs![0]!;
    assert.equal(main.kind === 'access' ? main.format({ rec, serverName: 's' }) : '', 'GET only');
  });
});

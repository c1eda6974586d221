// One test per kind of mistake: each asserts the exact FILE:LINE and the gist of the message.

import { test } from 'node:test';
import { expectError, lines } from './helpers';

const L = 'Listen 0';

test('unknown directive', () => {
  expectError({ 'wsgate.conf': lines(L, '', 'Bogus 1 2') }, { line: 3, message: /unknown directive "Bogus"$/ });
});

test('unknown section', () => {
  expectError({ 'wsgate.conf': lines(L, '<If "true">', '</If>') }, { line: 2, message: /unknown directive "<If>"/ });
});

test('Listen inside <VirtualHost> is the wrong context', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<VirtualHost *:0>', '  Listen 81', '</VirtualHost>') },
    { line: 3, message: /Listen is not allowed inside <VirtualHost>; allowed in: server config/ },
  );
});

test('ProxyPass with one argument outside <Location>', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyPass ws://h/') },
    { line: 2, message: /ProxyPass with one argument is only valid inside <Location>/ },
  );
});

test('ProxyPassMatch inside <Location>', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<Location /a>', '  ProxyPassMatch ws://h/', '</Location>') },
    { line: 3, message: /ProxyPassMatch is not allowed inside <Location>/ },
  );
});

test('ProxyPass inside <LocationMatch>', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<LocationMatch ^/a>', '  ProxyPass ws://h/', '</LocationMatch>') },
    { line: 3, message: /ProxyPass is not allowed inside <LocationMatch>/ },
  );
});

test('ProxyPass with a path inside <Location>', () => {
  expectError({ 'wsgate.conf': lines(L, '<Location /a>', '  ProxyPass /a ws://h/', '</Location>') }, { line: 3, message: /takes no path/ });
});

test('two ProxyPass lines in one <Location>', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<Location /a>', '  ProxyPass ws://h/', '  ProxyPass ws://i/', '</Location>') },
    { line: 4, message: /only one ProxyPass per <Location>.*:3$/ },
  );
});

test('unclosed section is reported at its opening line', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<VirtualHost *:0>', '  ServerName a', '') },
    { line: 2, message: /<VirtualHost> is never closed/ },
  );
});

test('mismatched closing tag', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<VirtualHost *:0>', '  <Location /a>', '  </VirtualHost>', '</Location>') },
    { line: 4, message: /<\/VirtualHost> does not close <Location> \(opened at .*:3\)/ },
  );
});

test('closing tag without an opening one', () => {
  expectError({ 'wsgate.conf': lines(L, '</Location>') }, { line: 2, message: /<\/Location> without a matching <Location>/ });
});

test('section line without its ">"', () => {
  expectError({ 'wsgate.conf': lines(L, '<Location /a', '</Location>') }, { line: 2, message: /missing ">"/ });
});

test('<Location> inside <Location>', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<Location /a>', '<Location /b>', '</Location>', '</Location>') },
    { line: 3, message: /<Location> is not allowed inside <Location>/ },
  );
});

test('<VirtualHost> inside <VirtualHost>', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<VirtualHost *:0>', '<VirtualHost *:0>', '</VirtualHost>', '</VirtualHost>') },
    { line: 3, message: /<VirtualHost> is not allowed inside <VirtualHost>/ },
  );
});

test('ServerAlias in the main server', () => {
  expectError({ 'wsgate.conf': lines(L, 'ServerAlias a.example') }, { line: 2, message: /ServerAlias is not allowed at the top level/ });
});

test('ProxyPreserveHost inside <Proxy> (allowed in <Location>, as Apache)', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<Proxy ws://h/>', 'ProxyPreserveHost On', '</Proxy>') },
    { line: 3, message: /ProxyPreserveHost is not allowed inside <Proxy>/ },
  );
});

test('wrong number of arguments', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyTimeout 1 2') }, { line: 2, message: /ProxyTimeout takes 1 argument, got 2/ });
  expectError({ 'wsgate.conf': lines(L, 'Timeout') }, { line: 2, message: /Timeout takes 1 argument, got 0/ });
  expectError({ 'wsgate.conf': lines('Listen 1 http extra') }, { line: 1, message: /Listen takes 1 to 2 arguments, got 3/ });
  expectError({ 'wsgate.conf': lines(L, 'Define') }, { line: 2, message: /Define takes 1 or 2 arguments/ });
  expectError(
    { 'wsgate.conf': lines(L, '<VirtualHost>', '</VirtualHost>') },
    { line: 2, message: /<VirtualHost> takes at least 1 argument, got 0/ },
  );
  expectError({ 'wsgate.conf': lines(L, '<IfModule a b>', '</IfModule>') }, { line: 2, message: /<IfModule> takes 1 argument, got 2/ });
});

test('a config without Listen is reported at FILE:1', () => {
  expectError({ 'wsgate.conf': lines('', '', 'ProxyPass /a ws://h/') }, { line: 1, message: /no Listen directive/ });
});

test('duplicate Listen', () => {
  expectError({ 'wsgate.conf': lines('Listen 8080', 'Listen 8080') }, { line: 2, message: /port 8080 is already listened on \(.*:1\)/ });
  expectError({ 'wsgate.conf': lines('Listen 8080', 'Listen 127.0.0.1:8080') }, { line: 2, message: /already listened on/ });
});

test('Listen https without a certificate (test/e2e/tls.test.ts has the TLS errors)', () => {
  expectError({ 'wsgate.conf': lines('Listen 443 https') }, { line: 1, message: /no server for this port has "SSLEngine on"/ });
});

test('bad Listen address and protocol', () => {
  expectError({ 'wsgate.conf': lines('Listen ::1:80') }, { line: 1, message: /bad Listen address "::1:80"/ });
  expectError({ 'wsgate.conf': lines('Listen 70000') }, { line: 1, message: /bad port "70000"/ });
  expectError({ 'wsgate.conf': lines('Listen 80 ftp') }, { line: 1, message: /unsupported protocol "ftp"/ });
});

test('a mistake inside an included file is reported with that file and line', () => {
  expectError(
    {
      'wsgate.conf': lines(L, 'Include conf.d/*.conf'),
      'conf.d/a.conf': lines('# fine', 'ProxyTimeout 5'),
      'conf.d/b.conf': lines('', '# comment', 'ProxyTimeout five'),
    },
    { file: 'conf.d/b.conf', line: 3, message: /ProxyTimeout: "five" is not a duration/ },
  );
});

test('a section opened in an included file must close there', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'Include inc.conf', '</VirtualHost>'), 'inc.conf': lines('<VirtualHost *:0>') },
    { file: 'inc.conf', line: 1, message: /<VirtualHost> is never closed/ },
  );
});

test('a mistake on a continued line reports the first line of the directive', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyPass /a \\', '    ws://h/ \\', '    timeout=soon') },
    { line: 2, message: /timeout=: "soon" is not a duration/ },
  );
});

test('undefined ${VAR}', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://${NOPE}/') }, { line: 2, message: /\$\{VAR\} in it is not defined/ });
});

test('Include of a missing file', () => {
  expectError({ 'wsgate.conf': lines(L, 'Include missing.conf') }, { line: 2, message: /Include "missing.conf": .*does not exist/ });
  expectError({ 'wsgate.conf': lines(L, 'Include conf.d/*.conf') }, { line: 2, message: /Include "conf.d\/\*.conf"/ });
});

test('Include loops', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'Include a.conf'), 'a.conf': lines('', 'Include b.conf'), 'b.conf': lines('Include a.conf') },
    { file: 'b.conf', line: 1, message: /Include "a.conf" loops: .*a.conf is already being read/ },
  );
});

test('unknown ProxyPass key, and known Apache keys not supported', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ bogus=1') }, { line: 2, message: /unknown parameter "bogus"/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ acquire=5') }, { line: 2, message: /acquire= is not supported yet/ });
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ lbmethod=byrequests') },
    { line: 2, message: /lbmethod= is a balancer parameter/ },
  );
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ loadfactor=2') },
    { line: 2, message: /loadfactor= is only valid on a BalancerMember line/ },
  );
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ junk') }, { line: 2, message: /bad parameter "junk": expected key=value/ });
});

test('bad numbers and durations', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ max=-1') }, { line: 2, message: /max=: "-1" is not a whole number/ });
  expectError({ 'wsgate.conf': lines(L, 'Timeout -5') }, { line: 2, message: /Timeout: "-5" is not a duration/ });
  expectError({ 'wsgate.conf': lines(L, 'Timeout 0') }, { line: 2, message: /Timeout: must be greater than 0/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyWebsocketIdleTimeout 10m') }, { line: 2, message: /not a duration/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ retry=x') }, { line: 2, message: /retry=: "x" is not a duration/ });
});

test('bad or unsupported backend URLs', () => {
  const cases: Array<[string, RegExp]> = [
    ['ws//h/', /bad backend URL/],
    ['ftp://h/', /unsupported backend scheme "ftp"/],
    ['unix:/run/app.sock|http://localhost/', /Unix-domain socket backends/],
    ['fcgi://h:9000/', /FastCGI backends/],
    ['ajp://h:8009/', /AJP backends/],
    ['ws://h:0/', /bad port "0"/],
    ['ws://h:99999/', /bad port/],
    ['ws://us@h/', /user info/],
    ['ws:///x', /bad host ""/],
    ['ws://h/x?y=1', /query string is only supported in ProxyPassMatch/],
  ];
  for (const [url, message] of cases) {
    expectError({ 'wsgate.conf': lines(L, `ProxyPass /a ${url}`) }, { line: 2, message });
  }
});

test('backreference in the host of a ProxyPassMatch target', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPassMatch ^/(.*)$ ws://$1/') }, { line: 2, message: /only supported in the path/ });
});

test('bad regular expressions', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPassMatch ^/(a ws://h/') }, { line: 2, message: /bad regular expression/ });
  expectError({ 'wsgate.conf': lines(L, '<LocationMatch "(">', '</LocationMatch>') }, { line: 2, message: /bad regular expression/ });
});

test('bad upgrade= values', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ upgrade=') }, { line: 2, message: /upgrade= needs a protocol/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ upgrade=a;b') }, { line: 2, message: /"a;b" is not a valid protocol name/ });
});

test('bad On/Off', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPreserveHost yes') }, { line: 2, message: /ProxyPreserveHost must be On or Off, got "yes"/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ws://h/ keepalive=1') }, { line: 2, message: /keepalive= must be On or Off/ });
});

test('mod_rewrite beyond RewriteRule [P], and TLS directives, are refused with a clear reason', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'RewriteEngine On', 'RewriteRule ^/(.*) /local/$1 [L]') },
    { line: 3, message: /internal rewrites to a path are not supported/ },
  );
  expectError({ 'wsgate.conf': lines(L, 'RewriteMap m txt:/x') }, { line: 2, message: /rewrite maps are not supported/ });
  expectError({ 'wsgate.conf': lines(L, 'SSLEngine on') }, { line: 2, message: /SSLEngine on needs SSLCertificateFile/ });
  expectError({ 'wsgate.conf': lines(L, 'SSLUseStapling maybe') }, { line: 2, message: /SSLUseStapling must be On or Off, got "maybe"/ });
  expectError(
    { 'wsgate.conf': lines(L, 'SSLVerifyClient require') },
    { line: 2, message: /SSLVerifyClient: this mod_ssl directive is not supported/ },
  );
});

test('ProxyRequests On: forward proxy not supported', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyRequests On') }, { line: 2, message: /forward proxying is not supported/ });
});

test('unterminated quote', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass "/a ws://h/') }, { line: 2, message: /missing closing "/ });
});

test('ProxySet mistakes', () => {
  expectError(
    { 'wsgate.conf': lines(L, '<Proxy ws://h/*>', 'ProxySet ws://h/ timeout=1', '</Proxy>') },
    { line: 3, message: /only key=value/ },
  );
  expectError({ 'wsgate.conf': lines(L, 'ProxySet ws://h/') }, { line: 2, message: /at least one key=value/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxySet ws://h/ nocanon=1') }, { line: 2, message: /unknown parameter "nocanon"/ });
});

test('bad <VirtualHost> address, ServerName and Location path', () => {
  expectError({ 'wsgate.conf': lines(L, '<VirtualHost *:x>', '</VirtualHost>') }, { line: 2, message: /bad port "x"/ });
  expectError({ 'wsgate.conf': lines(L, '<VirtualHost ::1:80>', '</VirtualHost>') }, { line: 2, message: /in brackets/ });
  expectError({ 'wsgate.conf': lines(L, 'ServerName "a b"') }, { line: 2, message: /bad ServerName/ });
  expectError({ 'wsgate.conf': lines(L, '<Location a>', '</Location>') }, { line: 2, message: /must start with "\/"/ });
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass a ws://h/') }, { line: 2, message: /must start with "\/"/ });
});

test('parameters after "!"', () => {
  expectError({ 'wsgate.conf': lines(L, 'ProxyPass /a ! timeout=1') }, { line: 2, message: /takes no parameters/ });
});

test('LimitRequest*: bad values and contexts', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'LimitRequestLine 0') },
    { line: 2, message: /LimitRequestLine must be between 1 and 1048576 bytes, got 0/ },
  );
  expectError(
    { 'wsgate.conf': lines(L, 'LimitRequestFieldSize 8k') },
    { line: 2, message: /LimitRequestFieldSize: "8k" is not a whole number/ },
  );
  expectError({ 'wsgate.conf': lines(L, 'LimitRequestFields -1') }, { line: 2, message: /LimitRequestFields: "-1" is not a whole number/ });
  expectError(
    { 'wsgate.conf': lines(L, '<Location /up>', '  LimitRequestBody 100', '</Location>') },
    { line: 3, message: /LimitRequestBody inside <Location> is not supported \(no per-directory limits\)/ },
  );
  expectError(
    { 'wsgate.conf': lines(L, '<Location /up>', '  LimitRequestLine 100', '</Location>') },
    { line: 3, message: /LimitRequestLine is not allowed inside <Location>; allowed in: server config, <VirtualHost>/ },
  );
});

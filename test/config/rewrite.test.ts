// RewriteEngine / RewriteOptions / RewriteCond / RewriteRule and Header: what loads into the model,
// and one test per refused form, each at FILE:LINE.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectError, lines, load } from './helpers';

const L = 'Listen 0';
const POOL = ['<Proxy balancer://ws>', '  BalancerMember ws://127.0.0.1:1 route=a', '</Proxy>'];

test('RewriteRule [P] rules load with their conditions, targets and templates; RewriteEngine Off keeps none', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      ...POOL,
      'RewriteEngine On',
      'RewriteCond %{HTTP:Upgrade} =websocket [NC]',
      'RewriteCond %{REQUEST_URI} ^/chat [OR]',
      'RewriteCond %{QUERY_STRING} !room=(\\d+)',
      'RewriteRule /(.*) balancer://ws/$1 [P,L]',
      'RewriteRule ^/api/(.*) http://127.0.0.1:2/v1/$1?x=%1 [P,NC]',
      '<VirtualHost *:0>',
      '  RewriteEngine Off',
      '  RewriteRule ^/x ws://127.0.0.1:3/ [P]',
      '</VirtualHost>',
    ),
  });
  const rules = config.mainServer.rewrite!.rules;
  assert.equal(rules.length, 2);
  const [r1, r2] = rules;
  assert.deepEqual(
    r1!.conditions.map((c) => [c.test, c.pattern.kind, c.negate, c.nocase, c.or, c.source.line]),
    [
      ['%{HTTP:Upgrade}', 'equal', false, true, false, 6],
      ['%{REQUEST_URI}', 'regex', false, false, true, 7],
      ['%{QUERY_STRING}', 'regex', true, false, false, 8],
    ],
  );
  assert.equal(r1!.route!.balancer!.balancer.name, 'ws');
  assert.equal(r1!.pathTemplate, '/$1');
  assert.equal(r1!.source.line, 9);
  assert.equal(r2!.conditions.length, 0, 'conditions belong to the next rule only');
  assert.equal(r2!.route!.backend!.url, 'http://127.0.0.1:2');
  assert.equal(r2!.pathTemplate, '/v1/$1');
  assert.equal(r2!.queryTemplate, 'x=%1');
  assert.ok(r2!.pattern.flags.includes('i'), '[NC] makes the pattern case-insensitive');
  assert.equal(config.virtualHosts[0]!.rewrite, undefined, 'RewriteEngine Off: no rules');
});

test('a <VirtualHost> inherits RewriteEngine but not the rules, unless RewriteOptions Inherit / InheritBefore', () => {
  const conf = (option: string): string =>
    lines(
      L,
      'RewriteEngine On',
      'RewriteRule ^/main ws://127.0.0.1:1/ [P]',
      '<VirtualHost *:0>',
      option,
      '  RewriteRule ^/own ws://127.0.0.1:2/ [P]',
      '</VirtualHost>',
    );
  const sources = (option: string): string[] =>
    load({ 'wsgate.conf': conf(option) }).config.virtualHosts[0]!.rewrite!.rules.map((r) => r.pattern.source);
  assert.deepEqual(sources(''), ['^\\/own']);
  assert.deepEqual(sources('RewriteOptions Inherit'), ['^\\/own', '^\\/main']);
  assert.deepEqual(sources('RewriteOptions InheritBefore'), ['^\\/main', '^\\/own']);
});

test('a RewriteCond with no RewriteRule after it gets a notice', () => {
  const { config } = load({ 'wsgate.conf': lines(L, 'RewriteEngine On', 'RewriteCond %{HTTP_HOST} ^a') });
  assert.ok(
    config.notices.some((n) => /:3: RewriteCond is not followed by a RewriteRule/.test(n)),
    config.notices.join(' | '),
  );
});

test('mod_rewrite forms outside the proxying subset are refused at file:line', () => {
  const cases: Array<[string[], number, RegExp]> = [
    [['RewriteRule ^/(.*) /local/$1 [L]'], 2, /internal rewrites to a path are not supported/],
    [['RewriteRule ^/(.*) /local/$1'], 2, /internal rewrites to a path are not supported/],
    [['RewriteRule ^/(.*) ws://h/$1 [P,CO=a:b]'], 2, /flag \[CO=A:B\] is not supported/],
    [['RewriteRule ^/(.*) http://h/$1'], 2, /is a URL: add \[R\]/],
    [['RewriteRule ^/(.*) http://h/$1 [R=404]'], 2, /\[R=404\] is not supported/],
    [['RewriteRule ^/(.*) http://h/$1 [R,P]'], 2, /exclude one another/],
    [['RewriteRule ^/(.*) ws://h/$1 P,L'], 2, /flags must be written \[FLAG,…\]/],
    [['RewriteRule ^/(.*) /x [P]'], 2, /substitution must be a URL/],
    [['RewriteRule ^/(.*) ftp://h/$1 [P]'], 2, /unsupported scheme "ftp"/],
    [
      ['RewriteRule ^/(\\w+)/(.*) ws://$1/$2 [P]'],
      2,
      /only supported after host:port \(in the path and query\), not in the scheme or host/,
    ],
    [['RewriteRule ^/(.*) ws://h/%{REMOTE_ADDR} [P]'], 2, /%\{REMOTE_ADDR\} is not supported/],
    [['RewriteRule ^/(.*) ws://h/%{HTTP_HOST [P]'], 2, /unterminated %\{/],
    [['RewriteRule ^/(( ws://h/ [P]'], 2, /bad regular expression/],
    [['RewriteCond %{HTTP_HOST} ^a [NV]'], 2, /flag \[NV\] is not supported \(only \[NC\] and \[OR\]\)/],
    [['RewriteCond %{REQUEST_FILENAME} !-f'], 2, /%\{REQUEST_FILENAME\} is not supported/],
    [['RewriteCond %{REQUEST_URI} -d'], 2, /CondPattern "-d" is not supported/],
    [['RewriteCond %{REQUEST_URI} >b'], 2, /CondPattern ">b" is not supported/],
    [['RewriteCond %{ENV:X} =1'], 2, /%\{ENV:X\} is not supported/],
    [['RewriteCond %{HTTP_HOST} ^(a'], 2, /bad regular expression/],
    [['RewriteMap m txt:/x'], 2, /rewrite maps are not supported/],
    [['RewriteBase /'], 2, /per-directory rewriting is not supported/],
    [['RewriteOptions MergeBase'], 2, /RewriteOptions MergeBase is not supported/],
    [['RewriteEngine maybe'], 2, /RewriteEngine/],
    [
      ['<Location /a/>', '  RewriteOptions Inherit', '</Location>'],
      3,
      /RewriteOptions is only supported at the top level or in a <VirtualHost>/,
    ],
    [['<LocationMatch ^/a>', '  RewriteRule ^x y [R]', '</LocationMatch>'], 3, /relative substitution has no base/],
    [['<Proxy ws://h/>', '  RewriteEngine On', '</Proxy>'], 3, /RewriteEngine is not supported inside <Proxy>/],
    [['RewriteEngine On', 'RewriteRule ^/(.*) balancer://nope/$1 [P]'], 3, /no balancer "balancer:\/\/nope" is defined/],
    [['RewriteEngine On', 'RewriteRule ^/(.*) wss://h/$1 [P]'], 3, /needs "SSLProxyEngine on"/],
  ];
  for (const [body, line, message] of cases) expectError({ 'wsgate.conf': lines(L, ...body) }, { line, message });
});

test('Header rules load in order (main server first in a <VirtualHost>)', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      'Header add Set-Cookie "SERVERID=sticky.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED',
      'Header always set X-Frame-Options DENY',
      '<VirtualHost *:0>',
      '  Header unset Server env=!KEEP',
      '</VirtualHost>',
    ),
  });
  const main = config.mainServer.headerRules!;
  assert.deepEqual(
    main.map((r) => [r.always, r.action, r.name, r.condition]),
    [
      [false, 'add', 'Set-Cookie', { env: 'BALANCER_ROUTE_CHANGED', negate: false }],
      [true, 'set', 'X-Frame-Options', undefined],
    ],
  );
  assert.deepEqual(main[0]!.value, [
    { kind: 'text', text: 'SERVERID=sticky.' },
    { kind: 'env', name: 'BALANCER_WORKER_ROUTE' },
    { kind: 'text', text: '; path=/' },
  ]);
  const vh = config.virtualHosts[0]!.headerRules!;
  assert.deepEqual(
    vh.map((r) => r.action),
    ['add', 'set', 'unset'],
  );
  assert.deepEqual(vh[2]!.condition, { env: 'KEEP', negate: true });
});

test('Header and RequestHeader forms outside the supported subset are refused at file:line', () => {
  const cases: Array<[string[], number, RegExp]> = [
    [['Header echo ^X-'], 2, /Header echo is not supported/],
    [['Header note X n'], 2, /Header note is not supported/],
    [['Header frob X y'], 2, /unknown action "frob"/],
    [['Header set X'], 2, /Header set X needs a value/],
    [['Header edit X a'], 2, /Header edit X needs a regular expression and a replacement/],
    [['Header edit X "(" b'], 2, /bad regular expression/],
    [['Header set "Bad Name" y'], 2, /bad header name/],
    [['Header set X "%{FOO}s"'], 2, /%\{FOO\}s is not a TLS variable wsgate knows/],
    [['Header set X "%q"'], 2, /format %q is not supported/],
    [['Header set X "%{FOO}x"'], 2, /%\{FOO\}x is not supported/],
    [['Header set X "%{FOO"'], 2, /unterminated %\{/],
    [['Header set X y early'], 2, /"early" is not supported/],
    [['Header set X y "expr=%{REQUEST_STATUS} == 200"'], 2, /expr= conditions are not supported/],
    [['Header set X expr=%{REQUEST_URI}'], 2, /expr= value "%\{REQUEST_URI\}": only a string with %\{VAR\} is supported/],
    [['Header set X "expr=%{tolower:%{HTTP_HOST}}"'], 2, /expr= value .*only a string with %\{VAR\}/],
    [['Header set X y env=A extra'], 2, /too many arguments/],
    [['<Proxy "http://h/">', '  Header set X y', '</Proxy>'], 3, /Header inside <Proxy> is not supported/],
    [['RequestHeader set X y early'], 2, /RequestHeader: "early" is not supported/],
    [['RequestHeader always set X y'], 2, /RequestHeader: unknown action "always"/],
    [['RequestHeader echo ^X'], 2, /RequestHeader echo is not supported/],
    [['RequestHeader note X y'], 2, /RequestHeader note is not supported/],
    [['RequestHeader set Host h'], 2, /RequestHeader set Host: wsgate writes Host itself/],
    [['RequestHeader set Sec-WebSocket-Key abc'], 2, /wsgate writes Sec-WebSocket-Key itself/],
    [['RequestHeader unset Connection'], 2, /wsgate writes Connection itself/],
    [['RequestHeader set Content-Length 3'], 2, /wsgate writes Content-Length itself/],
    [['RequestHeader set X "%{SSL_SERVER_S_DN}s"'], 2, /not a TLS variable wsgate knows/],
    [['RequestHeader set X y "expr=true"'], 2, /expr= conditions are not supported/],
    [['<Proxy "http://h/">', '  RequestHeader set X y', '</Proxy>'], 3, /RequestHeader inside <Proxy> is not supported/],
  ];
  for (const [body, line, message] of cases) expectError({ 'wsgate.conf': lines(L, ...body) }, { line, message });
});

// Configs that load: a realistic Apache-style config, every ProxyPass key, the timeout chain,
// upgrade=, ProxySet, route order, virtual hosts, quoting, comments and continuation.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load';
import { DEFAULT_REQUEST_READ_TIMEOUTS } from '../../src/config/reqtimeout';
import type { Backend, Config, Route, VirtualHost } from '../../src/config/model';
import { expectError, lines, load, writeTree } from './helpers';

function backendOf(route: Route | undefined): Backend {
  assert.ok(route, 'route exists');
  assert.ok(route.backend, 'route has a backend');
  return route.backend;
}

function describe(routes: readonly Route[]): string[] {
  return routes.map((r) => {
    const m = r.match.kind === 'prefix' ? r.match.prefix : `~${r.match.pattern}`;
    return `${r.fromLocation ? 'L ' : ''}${m} ${r.exclude ? '!' : r.backend?.url}`;
  });
}

function vhost(config: Config, i: number): VirtualHost {
  const v = config.virtualHosts[i];
  assert.ok(v, `virtual host ${i}`);
  return v;
}

const REALISTIC_MAIN = lines(
  '# Apache-style config for wsgate',
  'ServerRoot "etc"',
  'Define APP_PORT 9000',
  'Define ENABLE_STATUS',
  'LoadModule proxy_module modules/mod_proxy.so',
  'LoadModule proxy_http_module modules/mod_proxy_http.so',
  'LoadModule proxy_wstunnel_module modules/mod_proxy_wstunnel.so',
  'ServerAdmin admin@example.com',
  'ErrorLog ${APACHE_LOG_DIR}/error.log',
  'LogLevel warn',
  'Listen 0',
  'Listen 127.0.0.1:0',
  'Timeout 30',
  '<IfModule mod_proxy.c>',
  '    ProxyRequests Off',
  '    ProxyTimeout 20',
  '    ProxyPass /health !',
  '    ProxyPass /ws/ ws://127.0.0.1:${APP_PORT}/ws/',
  '</IfModule>',
  '<IfModule !mod_proxy.c>',
  '    Bogus never read',
  '</IfModule>',
  '<Directory />',
  '    Options FollowSymLinks',
  '    AllowOverride None',
  '    Require all denied',
  '</Directory>',
  '<IfDefine ENABLE_STATUS>',
  '    <Location /status/>',
  '        ProxyPass http://127.0.0.1:9100/',
  '    </Location>',
  '</IfDefine>',
  '<IfDefine !ENABLE_STATUS>',
  '    ProxyPass /nostatus http://h/',
  '</IfDefine>',
  'IncludeOptional conf.d/*.conf',
  'IncludeOptional missing/*.conf',
);

const CHAT = lines(
  '<VirtualHost *:0>',
  '    ServerName chat.example.com',
  '    ServerAlias www.chat.example.com *.Chat.example.com',
  '    ProxyPreserveHost On',
  '    ProxyWebsocketIdleTimeout 300',
  '    <Location "/socket.io/">',
  '        ProxyPass "ws://127.0.0.1:3000/socket.io/" upgrade=websocket',
  '        Require all granted',
  '    </Location>',
  '    ProxyPass / http://127.0.0.1:3000/',
  '    ErrorLog /var/log/chat.err',
  '    CustomLog /var/log/chat.log combined',
  '</VirtualHost>',
);

const API = lines(
  '<VirtualHost 127.0.0.1:0 [::1]:0>',
  '    ServerName https://API.example.com:443',
  '    Timeout 10',
  '    ProxyPassMatch "^/v(\\d+)/stream$" "wss://api-backend:8443/stream/v$1" timeout=5',
  '    ProxyAddHeaders Off',
  '    SSLProxyEngine on',
  '</VirtualHost>',
);

test('a realistic Apache config loads into the expected model', () => {
  const { config, dir } = load(
    {
      'wsgate.conf': REALISTIC_MAIN,
      'etc/conf.d/10-chat.conf': CHAT,
      'etc/conf.d/20-api.conf': API,
      'etc/conf.d/README': 'not a config file\n',
    },
    'wsgate.conf',
    { APACHE_LOG_DIR: '/var/log/apache2' },
  );
  const main = path.join(dir, 'wsgate.conf');
  const chatFile = path.join(dir, 'etc/conf.d/10-chat.conf');
  assert.deepEqual(config.files, [main, chatFile, path.join(dir, 'etc/conf.d/20-api.conf')]);
  assert.deepEqual(
    config.listen.map((l) => [l.host, l.port, l.protocol, l.source.line]),
    [
      [undefined, 0, 'http', 11],
      ['127.0.0.1', 0, 'http', 12],
    ],
  );

  // Main server: its <Location> routes first, then server-level ones.
  const ms = config.mainServer;
  assert.deepEqual(ms.addresses, []);
  assert.equal(ms.serverName, undefined);
  assert.deepEqual(describe(ms.routes), ['L /status/ http://127.0.0.1:9100/', '/health !', '/ws/ ws://127.0.0.1:9000/ws/']);
  assert.deepEqual(ms.settings, {
    timeoutMs: 30_000,
    proxyTimeoutMs: 20_000,
    preserveHost: false,
    addHeaders: true,
    websocketIdleTimeoutMs: 0,
    websocketStrict: false,
    websocketPingIntervalMs: 0,
    websocketDrainRate: 0,
    websocketFallbackToProxyHttp: true,
    websocketAsync: false,
    websocketAsyncDelayMs: 0,
    protocols: ['http/1.1'],
    protocolsHonorOrder: true,
    h2WebSockets: false,
    h2MaxSessionStreams: 100,
    traceEnable: 'on',
    limitRequestLine: 8190,
    limitRequestFieldSize: 8190,
    limitRequestFields: 100,
    limitRequestBody: 1073741824,
    requestReadTimeouts: DEFAULT_REQUEST_READ_TIMEOUTS,
    websocketMaxTunnels: 0,
    websocketMaxTunnelsPerClient: 0,
    websocketRate: 0,
  });
  const ws = backendOf(ms.routes[2]);
  assert.deepEqual(ws.source, { file: main, line: 18 });
  assert.equal(ws.responseTimeoutMs, 20_000);
  assert.deepEqual(ws.upgrade, { kind: 'tokens', tokens: ['websocket'] });

  // chat vhost: main Locations, own Locations, main server-level routes, own server-level.
  const chat = vhost(config, 0);
  assert.deepEqual(chat.addresses, [{ host: '*', port: 0 }]);
  assert.equal(chat.serverName, 'chat.example.com');
  assert.deepEqual(chat.serverAliases, ['www.chat.example.com', '*.chat.example.com']);
  assert.deepEqual(chat.source, { file: chatFile, line: 1 });
  assert.deepEqual(describe(chat.routes), [
    'L /status/ http://127.0.0.1:9100/',
    'L /socket.io/ ws://127.0.0.1:3000/socket.io/',
    '/health !',
    '/ws/ ws://127.0.0.1:9000/ws/',
    '/ http://127.0.0.1:3000/',
  ]);
  assert.equal(chat.settings.preserveHost, true);
  assert.equal(chat.settings.websocketIdleTimeoutMs, 300_000);
  assert.equal(chat.settings.timeoutMs, 30_000);
  assert.equal(chat.settings.proxyTimeoutMs, 20_000);
  assert.deepEqual(backendOf(chat.routes[1]).source, { file: chatFile, line: 7 });

  // api vhost
  const api = vhost(config, 1);
  assert.deepEqual(api.addresses, [
    { host: '127.0.0.1', port: 0 },
    { host: '::1', port: 0 },
  ]);
  assert.equal(api.serverName, 'api.example.com');
  assert.equal(api.settings.timeoutMs, 10_000);
  assert.equal(api.settings.proxyTimeoutMs, 20_000, 'an explicit main-server ProxyTimeout beats the vhost Timeout');
  assert.equal(api.settings.addHeaders, false);
  const stream = api.routes[3];
  assert.ok(stream && stream.match.kind === 'regex');
  assert.equal(stream.match.pattern, '^/v(\\d+)/stream$');
  assert.ok(stream.match.regex.test('/v2/stream'));
  assert.equal(stream.regexTarget, 'wss://api-backend:8443/stream/v$1');
  const sb = backendOf(stream);
  assert.equal(sb.scheme, 'wss');
  assert.equal(sb.path, '/stream/v$1');
  assert.deepEqual(sb.origin, {
    tls: true,
    host: 'api-backend',
    port: 8443,
    hostHeader: 'api-backend:8443',
    key: 'https://api-backend:8443',
    tlsClient: { verify: true, checkPeerName: true, checkPeerExpire: true, profile: 'verify=require,name=on,expire=on' },
  });
  assert.equal(sb.responseTimeoutMs, 5_000);
  assert.equal(sb.connectTimeoutMs, 5_000);

  // Origins: shared and listed once, in order of first use.
  assert.deepEqual(
    config.origins.map((o) => o.key),
    ['http://127.0.0.1:9100', 'http://127.0.0.1:9000', 'http://127.0.0.1:3000', 'https://api-backend:8443'],
  );
  assert.equal(backendOf(ms.routes[2]).origin, backendOf(chat.routes[3]).origin);

  // One notice per ignored directive name, however often it appears.
  const ignoredNotices = config.notices.filter((n) => / is ignored: /.test(n));
  assert.deepEqual(
    ignoredNotices.map((n) => n.replace(`${dir}/`, '')),
    [
      'wsgate.conf:5: LoadModule is ignored: wsgate has its modules built in',
      "wsgate.conf:8: ServerAdmin is ignored: it only appears in Apache's own error pages; wsgate's carry no signature",
      "etc/conf.d/10-chat.conf:11: ErrorLog in <VirtualHost> is ignored: wsgate writes one error log, the main server's (its lines name the virtual host)",
    ],
  );
  // The logs are real: the main server's ErrorLog and LogLevel, the chat server's CustomLog (relative to ServerRoot).
  assert.equal(config.logLevel, 'warn');
  assert.equal(config.errorLog?.kind, 'file');
  assert.deepEqual(
    chat.logs?.map((l) => `${l.kind} ${l.file}`),
    ['access /var/log/chat.log'],
  );
  assert.equal(ms.logs, undefined);
  assert.ok(
    config.notices.some(
      (n) =>
        n ===
        `${main}:23: <Directory> sections are skipped: they apply to files Apache serves itself, and proxied requests never enter them`,
    ),
  );
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.mainServer.routes) && Object.isFrozen(ws.origin));
});

test('every ProxyPass key', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyPass /k ws://h:81/x/ timeout=7 connectiontimeout=300ms upgrade=websocket,MQTT keepalive=On retry=0 max=25 nocanon',
      'ProxyPass /d ws://h:81/x/',
      'ProxyPass /r ws://h:81/x/ retry=2500ms KeepAlive=off TIMEOUT=1.5',
    ),
  });
  const k = backendOf(config.mainServer.routes[0]);
  assert.equal(k.url, 'ws://h:81/x/');
  assert.equal(k.responseTimeoutMs, 7_000);
  assert.equal(k.connectTimeoutMs, 300);
  assert.deepEqual(k.upgrade, { kind: 'tokens', tokens: ['websocket', 'mqtt'] });
  assert.equal(k.keepalive, true);
  assert.equal(k.retryMs, 0);
  assert.equal(k.max, 25);
  assert.equal(k.nocanon, true);
  const d = backendOf(config.mainServer.routes[1]);
  assert.equal(d.keepalive, false);
  assert.equal(d.retryMs, 60_000);
  assert.equal(d.max, 0);
  assert.equal(d.nocanon, false);
  assert.equal(k.origin, d.origin, 'same origin object; each ProxyPass keeps its own params');
  const r = backendOf(config.mainServer.routes[2]);
  assert.equal(r.retryMs, 2_500);
  assert.equal(r.keepalive, false);
  assert.equal(r.responseTimeoutMs, 1_500);
});

test('timeouts: connectiontimeout → timeout → ProxyTimeout → Timeout → 60 s', () => {
  const routes = (text: string): Backend[] => load({ 'wsgate.conf': text }).config.mainServer.routes.map(backendOf);
  const pp = [
    'ProxyPass /a ws://h/',
    'ProxyPass /b ws://h/ timeout=5',
    'ProxyPass /c ws://h/ connectiontimeout=1',
    'ProxyPass /d ws://h/ connectiontimeout=250ms timeout=3',
  ];
  const timeouts = (bs: Backend[]) => bs.map((b) => [b.connectTimeoutMs, b.responseTimeoutMs]);
  assert.deepEqual(timeouts(routes(lines('Listen 0', ...pp))), [
    [60_000, 60_000],
    [5_000, 5_000],
    [1_000, 60_000],
    [250, 3_000],
  ]);
  assert.deepEqual(timeouts(routes(lines('Listen 0', 'Timeout 10', ...pp))), [
    [10_000, 10_000],
    [5_000, 5_000],
    [1_000, 10_000],
    [250, 3_000],
  ]);
  assert.deepEqual(timeouts(routes(lines('Listen 0', 'Timeout 10', 'ProxyTimeout 20', ...pp))), [
    [20_000, 20_000],
    [5_000, 5_000],
    [1_000, 20_000],
    [250, 3_000],
  ]);
  // A main-server Timeout written after the ProxyPass still applies (settings are resolved last).
  assert.deepEqual(timeouts(routes(lines('Listen 0', ...pp, 'Timeout 2'))), [
    [2_000, 2_000],
    [5_000, 5_000],
    [1_000, 2_000],
    [250, 3_000],
  ]);
});

test('timeouts of inherited routes follow the virtual host that uses them', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'Timeout 10',
      'ProxyPass /a ws://h/',
      '<VirtualHost *:0>',
      '  Timeout 40',
      '</VirtualHost>',
      '<VirtualHost *:0>',
      '  ProxyTimeout 50',
      '</VirtualHost>',
    ),
  });
  assert.equal(backendOf(config.mainServer.routes[0]).responseTimeoutMs, 10_000);
  assert.equal(backendOf(vhost(config, 0).routes[0]).responseTimeoutMs, 40_000);
  assert.equal(backendOf(vhost(config, 1).routes[0]).connectTimeoutMs, 50_000);
  assert.equal(vhost(config, 1).settings.timeoutMs, 10_000);
});

test('durations take an ms suffix everywhere', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'Timeout 1500ms',
      'ProxyTimeout 2s',
      'ProxyWebsocketIdleTimeout 250ms',
      'ProxyWebsocketAsync On',
      'ProxyWebsocketAsyncDelay 20MS',
      'ProxyWebsocketFallbackToProxyHttp Off',
    ),
  });
  assert.deepEqual(config.mainServer.settings, {
    timeoutMs: 1_500,
    proxyTimeoutMs: 2_000,
    preserveHost: false,
    addHeaders: true,
    websocketIdleTimeoutMs: 250,
    websocketStrict: false,
    websocketPingIntervalMs: 0,
    websocketDrainRate: 0,
    websocketFallbackToProxyHttp: false,
    websocketAsync: true,
    websocketAsyncDelayMs: 20,
    protocols: ['http/1.1'],
    protocolsHonorOrder: true,
    h2WebSockets: false,
    h2MaxSessionStreams: 100,
    traceEnable: 'on',
    limitRequestLine: 8190,
    limitRequestFieldSize: 8190,
    limitRequestFields: 100,
    limitRequestBody: 1073741824,
    requestReadTimeouts: DEFAULT_REQUEST_READ_TIMEOUTS,
    websocketMaxTunnels: 0,
    websocketMaxTunnelsPerClient: 0,
    websocketRate: 0,
  });
});

test('upgrade= parsing', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyPass /1 ws://h/',
      'ProxyPass /2 http://h/',
      'ProxyPass /3 http://h/ upgrade=WebSocket',
      'ProxyPass /4 http://h/ "upgrade=a, B,a"',
      'ProxyPass /5 ws://h/ upgrade=any',
      'ProxyPass /6 ws://h/ upgrade=*',
      'ProxyPass /7 ws://h/ upgrade=NoNe',
      'ProxyPass /8 wss://h/ upgrade=h2c',
      'ProxyPass /9 https://h/',
      'SSLProxyEngine on',
    ),
  });
  assert.deepEqual(
    config.mainServer.routes.map((r) => backendOf(r).upgrade),
    [
      { kind: 'tokens', tokens: ['websocket'] },
      { kind: 'tokens', tokens: [] },
      { kind: 'tokens', tokens: ['websocket'] },
      { kind: 'tokens', tokens: ['a', 'b'] },
      { kind: 'any' },
      { kind: 'any' },
      { kind: 'none' },
      { kind: 'tokens', tokens: ['h2c'] },
      { kind: 'tokens', tokens: [] },
    ],
  );
  const testing = config.notices.filter((n) => n.includes('for testing only'));
  assert.deepEqual(
    testing.map((n) => n.split(': ')[0]?.split(':').pop()),
    ['6', '7', '8'],
  );
});

test('quoted arguments, escapes, comments and continuation', () => {
  const { config } = load({
    'wsgate.conf': lines(
      '   # an indented comment',
      'Listen 0',
      'ProxyPassMatch "^/a b/(.*)$" \'ws://h/x/$1\'',
      'ProxyPass "/q\\"uote" ws://h/',
      "ProxyPass '/it\\'s' ws://h/",
      'ProxyPass /a#b ws://h/',
      '# a comment with a continuation \\',
      'Bogus swallowed by the comment',
      'ProxyPass /c \\',
      '    ws://h/c/ \\',
      '    timeout=3',
      'ProxyPass /re\\.x ws://h/ \t max=3',
      '',
    ),
  });
  const routes = config.mainServer.routes;
  assert.deepEqual(describe(routes), [
    '~^/a b/(.*)$ ws://h/x/$1',
    '/q"uote ws://h/',
    "/it's ws://h/",
    '/a#b ws://h/',
    '/c ws://h/c/',
    '/re\\.x ws://h/',
  ]);
  assert.deepEqual(routes[4]?.source.line, 9);
  assert.equal(backendOf(routes[4]).responseTimeoutMs, 3_000);
  assert.equal(backendOf(routes[5]).max, 3);
});

test('Define, ${VAR} from Define then the environment, IfDefine, UnDefine', () => {
  const { config } = load(
    {
      'wsgate.conf': lines(
        'Define PORT 9001',
        'Listen ${PORT}',
        'ProxyPass /a ws://${BACKEND}:${PORT}/',
        '<IfDefine ON>',
        '  ProxyPass /never ws://h/',
        '</IfDefine>',
        'Define ON',
        '<IfDefine ON>',
        '  ProxyPass /on ws://h/',
        '  <IfDefine !OFF>',
        '    ProxyPass /nested ws://h/',
        '  </IfDefine>',
        '</IfDefine>',
        'UnDefine ON',
        '<IfDefine !ON>',
        '  ProxyPass /undefined ws://h/',
        '</IfDefine>',
        '<IfDefine OFF>',
        '  ProxyPass /x ws://${NOT_DEFINED_BUT_SKIPPED}/',
        '</IfDefine>',
      ),
    },
    'wsgate.conf',
    { BACKEND: 'back.internal', PORT: '1' },
  );
  assert.equal(config.listen[0]?.port, 9001);
  assert.deepEqual(describe(config.mainServer.routes), [
    '/a ws://back.internal:9001/',
    '/on ws://h/',
    '/nested ws://h/',
    '/undefined ws://h/',
  ]);
});

test('<Location>, <LocationMatch>, <Location ~>, ProxyPass ~, exclusions and (?i)', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyPass /x/private !',
      'ProxyPass ~ ^/re/(.*)$ ws://h/$1',
      '<LocationMatch "^/lm/(\\w+)$">',
      '  ProxyPassMatch ws://h/m/$1',
      '</LocationMatch>',
      '<Location ~ "^/tilde">',
      '  ProxyPassMatch ws://h/t',
      '</Location>',
      '<Location /ex>',
      '  ProxyPass !',
      '</Location>',
      'ProxyPassMatch (?i)^/CI ws://h/ci',
      'ProxyPassMatch ^/q/(.*) ws://h/q?x=$1',
    ),
  });
  const routes = config.mainServer.routes;
  assert.deepEqual(describe(routes), [
    'L ~^/lm/(\\w+)$ ws://h/m/$1',
    'L ~^/tilde ws://h/t',
    'L /ex !',
    '/x/private !',
    '~^/re/(.*)$ ws://h/$1',
    '~(?i)^/CI ws://h/ci',
    '~^/q/(.*) ws://h/q?x=$1',
  ]);
  assert.equal(routes[1]?.regexTarget, 'ws://h/t');
  assert.equal(routes[2]?.backend, undefined);
  assert.equal(routes[3]?.regexTarget, undefined);
  assert.equal(routes[4]?.regexTarget, 'ws://h/$1');
  const ci = routes[5];
  assert.ok(ci && ci.match.kind === 'regex' && ci.match.regex.test('/ci/x'));
  assert.equal(backendOf(routes[6]).path, '/q');
});

test('a URL without a path: pathWasEmpty, and a notice when the local path ends in "/"', () => {
  const { config, dir } = load({
    'wsgate.conf': lines('Listen 0', 'ProxyPass /a3/ ws://h:1', 'ProxyPass /a4 ws://h:1', 'ProxyPass /a1/ ws://h:1/'),
  });
  const [a3, a4, a1] = config.mainServer.routes.map(backendOf);
  assert.equal(a3?.pathWasEmpty, true);
  assert.equal(a3?.path, '/');
  assert.equal(a4?.pathWasEmpty, true);
  assert.equal(a1?.pathWasEmpty, false);
  assert.deepEqual(
    config.notices.map((n) => n.replace(`${dir}/`, '')),
    [
      'wsgate.conf:2: ProxyPass "/a3/" "ws://h:1": the URL has no path while the local path ends in "/"; Apache maps /a3/rest to ws://h:1rest (glued onto the host); write "ws://h:1/" if you meant a path',
    ],
  );
});

test('backend URLs: default ports, IPv6, host header', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyPass /1 ws://H.Example/',
      'ProxyPass /2 wss://h.example/',
      'ProxyPass /3 http://[::1]:8080/',
      'ProxyPass /4 HTTPS://[::1]:443/p',
      'ProxyPass /5 ws://h.example:80/',
      'SSLProxyEngine on',
    ),
  });
  const o = config.mainServer.routes.map((r) => backendOf(r).origin);
  assert.deepEqual(
    o.map((x) => [x.key, x.host, x.port, x.tls, x.hostHeader]),
    [
      ['http://h.example:80', 'h.example', 80, false, 'h.example'],
      ['https://h.example:443', 'h.example', 443, true, 'h.example'],
      ['http://[::1]:8080', '::1', 8080, false, '[::1]:8080'],
      ['https://[::1]:443', '::1', 443, true, '[::1]'],
      ['http://h.example:80', 'h.example', 80, false, 'h.example'],
    ],
  );
  assert.equal(o[0], o[4]);
  assert.equal(config.origins.length, 4);
  assert.equal(backendOf(config.mainServer.routes[3]).scheme, 'https');
});

test('ProxySet at server level and inside <Proxy wildcard>; ProxyPass keys win', () => {
  const { config, dir } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyTimeout 9',
      'ProxySet ws://h/ timeout=4 max=5',
      '<Proxy "ws://h/*">',
      '  ProxySet keepalive=On max=6',
      '  Require all granted',
      '  Order allow,deny',
      '  Allow from all',
      '</Proxy>',
      '<Proxy http://*>',
      '  ProxySet upgrade=websocket',
      '</Proxy>',
      'ProxyPass /a ws://h/a/',
      'ProxyPass /b ws://h/b/ max=1',
      'ProxyPass /c http://other/',
      'ProxyPass /d ws://x/',
      'ProxySet ws://nomatch/ timeout=1',
      '<ProxyMatch ^ws://x/>',
      '  ProxySet retry=5',
      '</ProxyMatch>',
    ),
  });
  const [a, b, c, d] = config.mainServer.routes.map(backendOf);
  assert.deepEqual([a?.responseTimeoutMs, a?.max, a?.keepalive], [4_000, 6, true]);
  assert.deepEqual([b?.responseTimeoutMs, b?.max, b?.keepalive], [4_000, 1, true]);
  assert.deepEqual(c?.upgrade, { kind: 'tokens', tokens: ['websocket'] });
  assert.deepEqual([d?.responseTimeoutMs, d?.max, d?.keepalive, d?.retryMs], [9_000, 0, false, 5_000]);
  assert.ok(config.notices.includes(`${path.join(dir, 'wsgate.conf')}:17: ProxySet for "ws://nomatch/" matches no ProxyPass backend`));
});

test('ProxySet inside a <VirtualHost> applies to that host only', () => {
  const { config } = load({
    'wsgate.conf': lines('Listen 0', 'ProxyPass /a ws://h/', '<VirtualHost *:0>', '  ProxySet ws://h/ max=3', '</VirtualHost>'),
  });
  assert.equal(backendOf(config.mainServer.routes[0]).max, 0);
  assert.equal(backendOf(vhost(config, 0).routes[0]).max, 3);
});

test('ProxyPassInherit Off', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyPass /main ws://h/',
      '<Location /loc>',
      '  ProxyPass ws://h/loc',
      '</Location>',
      '<VirtualHost *:0>',
      '  ProxyPassInherit Off',
      '  ProxyPass /own ws://h/',
      '</VirtualHost>',
      '<VirtualHost *:0>',
      '</VirtualHost>',
    ),
  });
  assert.deepEqual(describe(vhost(config, 0).routes), ['L /loc ws://h/loc', '/own ws://h/']);
  assert.deepEqual(describe(vhost(config, 1).routes), ['L /loc ws://h/loc', '/main ws://h/']);
});

test('<VirtualHost> addresses, and a notice for a port no Listen covers', () => {
  const { config, dir } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'Listen [::1]:8081',
      '<VirtualHost _default_:* 10.0.0.1 [::1]:8081 LocalHost:0 *>',
      '</VirtualHost>',
      '<VirtualHost *:8080>',
      '</VirtualHost>',
    ),
  });
  // A name stands for every address it resolves to (localhost: 127.0.0.1, and ::1 where /etc/hosts says so).
  const addrs = vhost(config, 0).addresses;
  assert.deepEqual(addrs.slice(0, 3), [
    { host: '*', port: '*' },
    { host: '10.0.0.1', port: '*' },
    { host: '::1', port: 8081 },
  ]);
  assert.deepEqual(addrs[addrs.length - 1], { host: '*', port: '*' });
  const named = addrs.slice(3, -1);
  assert.ok(named.some((a) => a.host === '127.0.0.1'));
  assert.ok(
    named.every((a) => (a.host === '127.0.0.1' || a.host === '::1') && a.port === 0),
    JSON.stringify(named),
  );
  assert.deepEqual(config.listen[1]?.host, '::1');
  assert.deepEqual(
    config.notices.map((n) => n.replace(`${dir}/`, '')),
    ['wsgate.conf:5: <VirtualHost> port 8080 matches no Listen directive: nothing will reach this address'],
  );
});

test('notices: skipped sections, once per name (ProxyVia and ProxyPassReverse* are honoured: no notice); <IfVersion> is evaluated', () => {
  const { config, dir } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyVia Off',
      '<IfVersion >= 2.4>',
      'ProxyPassReverse / http://h/',
      '</IfVersion>',
      'ProxyPassReverse /b http://h/',
      'ProxyPassReverseCookiePath / /x',
      '<Files "*.php">',
      '  php_value anything',
      '</Files>',
      '<IfVersion < 2.4>',
      '  Whatever',
      '</IfVersion>',
      '<IfVersion !~ ^2\\.4>',
      '  Whatever',
      '</IfVersion>',
      'LoadModule a b',
      'LoadModule c d',
    ),
  });
  assert.deepEqual(
    config.notices.map((n) => n.replace(`${dir}/`, '')),
    [
      'wsgate.conf:8: <Files> sections are skipped: they apply to files Apache serves itself, and proxied requests never enter them',
      'wsgate.conf:17: LoadModule is ignored: wsgate has its modules built in',
    ],
  );
  expectError(
    { 'wsgate.conf': lines('Listen 0', '<IfVersion >= 2.4>', 'Whatever', '</IfVersion>') },
    { line: 3, message: /unknown directive "Whatever"/ },
  );
  expectError({ 'wsgate.conf': lines('Listen 0', '<IfVersion >= two>', '</IfVersion>') }, { line: 2, message: /bad version "two"/ });
});

test('directive and section names are case-insensitive', () => {
  const { config } = load({
    'wsgate.conf': lines('LISTEN 0', '<virtualhost *:0>', '  proxypass /a WS://h/', '  SERVERNAME A.example', '</VIRTUALHOST>'),
  });
  assert.equal(vhost(config, 0).serverName, 'a.example');
  assert.equal(backendOf(vhost(config, 0).routes[0]).scheme, 'ws');
});

test('loadConfigText resolves Includes against the directory of fileName', () => {
  const dir = writeTree({ 'inc/x.conf': lines('ProxyPass /x ws://h/') });
  const config = loadConfigText(lines('Listen 0', 'Include inc/x.conf'), path.join(dir, 'virtual.conf'), { env: {} });
  assert.deepEqual(config.files, [path.join(dir, 'virtual.conf'), path.join(dir, 'inc/x.conf')]);
  assert.deepEqual(describe(config.mainServer.routes), ['/x ws://h/']);
});

test('LimitRequest*: a <VirtualHost> inherits the main server values it does not set', () => {
  const { config } = load({
    'wsgate.conf': 'Listen 0\nLimitRequestLine 4094\nLimitRequestBody 0\n<VirtualHost *:0>\n  LimitRequestFields 20\n</VirtualHost>\n',
  });
  const s = config.virtualHosts[0].settings;
  assert.deepEqual([s.limitRequestLine, s.limitRequestFieldSize, s.limitRequestFields, s.limitRequestBody], [4094, 8190, 20, 0]);
  const m = config.mainServer.settings;
  assert.deepEqual([m.limitRequestLine, m.limitRequestFieldSize, m.limitRequestFields, m.limitRequestBody], [4094, 8190, 100, 0]);
});

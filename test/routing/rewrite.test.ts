// RewriteRule [P] per request (src/routing/rewrite.ts): conditions with =text, regex and !, [NC],
// [OR] chains, $N and %N back-references, the query, and precedence over ProxyPass.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VirtualHost } from '../../src/config/model';
import { routeRequest, type RouteResult } from '../../src/routing/router';
import { lines, load } from '../config/helpers';

function server(...body: string[]): VirtualHost {
  return load({ 'wsgate.conf': lines('Listen 0', ...body) }).config.mainServer;
}

function go(vh: VirtualHost, target: string, headers: string[] = [], method = 'GET'): RouteResult {
  const i = headers.findIndex((h, n) => n % 2 === 0 && h.toLowerCase() === 'upgrade');
  return routeRequest(vh, { method, target, headers, ...(i >= 0 ? { upgrade: headers[i + 1]! } : {}) });
}

/** Where a decision sends the request: `backend-url path mode` or `balancer://name path mode`, or the local status. */
function where(r: RouteResult): string {
  if (r.kind === 'local') return String(r.status);
  if (r.kind === 'redirect') return `${r.status} ${r.location ?? ''}`;
  if (r.kind === 'handler') return `handler ${r.handler}`;
  const to = r.kind === 'proxy' ? r.route.backend!.url : r.balancer.url;
  return `${to} ${r.path} ${r.mode} line${r.route.source.line}`;
}

const SOCKET_IO = [
  '<Proxy "balancer://nodes_polling">',
  '  BalancerMember "http://127.0.0.1:1" route=app01',
  '</Proxy>',
  '<Proxy "balancer://nodes_ws">',
  '  BalancerMember "ws://127.0.0.1:1" route=app01',
  '</Proxy>',
  'RewriteEngine On',
  'RewriteCond %{HTTP:Upgrade} =websocket [NC]',
  'RewriteRule /(.*) balancer://nodes_ws/$1 [P,L]',
  'RewriteCond %{HTTP:Upgrade} !=websocket [NC]',
  'RewriteRule /(.*) balancer://nodes_polling/$1 [P,L]',
];

test("Socket.IO's rules: upgrades (any case) to nodes_ws, the rest to nodes_polling, path and query kept", () => {
  const vh = server(...SOCKET_IO);
  assert.equal(
    where(go(vh, '/socket.io/?EIO=4&transport=websocket&sid=x', ['Upgrade', 'websocket'])),
    'balancer://nodes_ws /socket.io/?EIO=4&transport=websocket&sid=x upgrade line10',
  );
  assert.equal(where(go(vh, '/socket.io/?EIO=4', ['Upgrade', 'WebSocket'])), 'balancer://nodes_ws /socket.io/?EIO=4 upgrade line10');
  assert.equal(
    where(go(vh, '/socket.io/?EIO=4&transport=polling')),
    'balancer://nodes_polling /socket.io/?EIO=4&transport=polling http line12',
  );
  // Another Upgrade: not =websocket, so the second rule (whose http member does not take it).
  assert.equal(where(go(vh, '/a%20b', ['Upgrade', 'h2c'])), 'balancer://nodes_polling /a%20b http line12');
});

test('=text is exact (and case-sensitive without [NC]); a regex finds a match anywhere; ! negates', () => {
  const vh = server(
    'RewriteEngine On',
    'RewriteCond %{HTTP_HOST} =chat.example',
    'RewriteRule ^/ ws://127.0.0.1:1/exact [P]',
    'RewriteCond %{HTTP_USER_AGENT} bot',
    'RewriteRule ^/ ws://127.0.0.1:1/regex [P]',
    'RewriteCond %{REQUEST_METHOD} !^GET$',
    'RewriteRule ^/ ws://127.0.0.1:1/notget [P]',
  );
  assert.match(where(go(vh, '/', ['Host', 'chat.example'])), /\/exact /);
  assert.equal(where(go(vh, '/', ['Host', 'Chat.example'])), '404', '=text compares case-sensitively');
  assert.match(where(go(vh, '/', ['User-Agent', 'a robot/1'])), /\/regex /);
  assert.match(where(go(vh, '/', [], 'POST')), /\/notget /);
  assert.equal(where(go(vh, '/')), '404', 'no rule applies and there is no ProxyPass');
});

test('[NC] on =text and on a regex; [NC] on the rule pattern', () => {
  const vh = server(
    'RewriteEngine On',
    'RewriteCond %{HTTP:X-Mode} =LIVE [NC]',
    'RewriteRule ^/a ws://127.0.0.1:1/live [P]',
    'RewriteCond %{HTTP:X-Mode} ^te.t$ [NC]',
    'RewriteRule ^/a ws://127.0.0.1:1/test [P]',
    'RewriteRule ^/CASE ws://127.0.0.1:1/case [P,NC]',
  );
  assert.match(where(go(vh, '/a', ['x-mode', 'live'])), /\/live /);
  assert.match(where(go(vh, '/a', ['X-Mode', 'TEST'])), /\/test /);
  assert.match(where(go(vh, '/case')), /\/case /);
});

test('[OR] chains: any of the chain, and the conditions after it must all hold', () => {
  const vh = server(
    'RewriteEngine On',
    'RewriteCond %{HTTP:X-A} =1 [OR]',
    'RewriteCond %{HTTP:X-B} =1 [OR]',
    'RewriteCond %{HTTP:X-C} =1',
    'RewriteCond %{QUERY_STRING} go',
    'RewriteRule ^/ ws://127.0.0.1:1/or [P]',
  );
  assert.match(where(go(vh, '/?go', ['X-A', '1'])), /\/or\?go /);
  assert.match(where(go(vh, '/?go', ['X-B', '1'])), /\/or\?go /);
  assert.match(where(go(vh, '/?go', ['X-C', '1'])), /\/or\?go /);
  assert.equal(where(go(vh, '/?go', ['X-D', '1'])), '404', 'none of the chain holds');
  assert.equal(where(go(vh, '/?stop', ['X-A', '1'])), '404', 'the condition after the chain fails');
  // Apache's quirk, kept: a failing [OR] on the last condition does not fail the rule.
  const trailing = server('RewriteEngine On', 'RewriteCond %{HTTP:X-A} =1 [OR]', 'RewriteRule ^/ ws://127.0.0.1:1/t [P]');
  assert.match(where(go(trailing, '/')), /\/t /);
});

test('back-references: $N from the rule, %N from the last matched condition, in path and query', () => {
  const vh = server(
    'RewriteEngine On',
    'RewriteCond %{HTTP_HOST} ^(\\w+)\\.rooms\\.example$',
    'RewriteCond %{QUERY_STRING} (^|&)id=(\\d+)',
    'RewriteRule ^/r/(\\w+)/(.*)$ ws://127.0.0.1:1/$2/$1?user=%2 [P]',
    'RewriteCond %{HTTP_HOST} ^(\\w+)\\.example$',
    'RewriteRule ^/h/(.*) ws://127.0.0.1:1/%1/$1 [P]',
  );
  assert.equal(
    where(go(vh, '/r/lobby/x y?id=42&z=1', ['Host', 'blue.rooms.example'], 'GET')),
    'ws://127.0.0.1:1 /x%20y/lobby?user=42 http line5',
  );
  assert.equal(where(go(vh, '/h/p?q=1', ['Host', 'green.example'], 'GET')), 'ws://127.0.0.1:1 /green/p?q=1 http line7');
});

test('a negated rule pattern, an empty query in the substitution, and rules before ProxyPass', () => {
  const vh = server(
    'ProxyPass /ws/ ws://127.0.0.1:2/',
    'RewriteEngine On',
    'RewriteRule !^/ws/ http://127.0.0.1:1/other? [P]',
    'RewriteCond %{HTTP:Upgrade} =websocket',
    'RewriteRule ^/ws/(.*) ws://127.0.0.1:3/$1 [P]',
  );
  assert.equal(where(go(vh, '/x?drop=1')), 'http://127.0.0.1:1 /other http line4');
  assert.equal(where(go(vh, '/ws/a', ['Upgrade', 'websocket'])), 'ws://127.0.0.1:3 /a upgrade line6', 'the rule wins over ProxyPass');
  assert.equal(where(go(vh, '/ws/a')), 'ws://127.0.0.1:2/ /a http line2', 'no rule applies: ProxyPass decides');
});

test('a ws:// rule target for a plain request: HTTP with ProxyWebsocketFallbackToProxyHttp On, 404 with Off', () => {
  const rules = ['RewriteEngine On', 'RewriteRule ^/(.*) ws://127.0.0.1:1/$1 [P]'];
  assert.equal(where(go(server(...rules), '/p')), 'ws://127.0.0.1:1 /p http line3');
  assert.equal(where(go(server('ProxyWebsocketFallbackToProxyHttp Off', ...rules), '/p')), '404');
});

test('<Location> rules see a proxied request as proxy:URL, decoded, without the query (ProxyPass, balancer, server [P])', () => {
  const vh = server(
    '<Proxy "balancer://pool">',
    '  BalancerMember "http://127.0.0.1:1"',
    '</Proxy>',
    'ProxyPass /b/ balancer://pool/in/',
    'ProxyPass /d/ http://127.0.0.1:2/deep/',
    'RewriteEngine On',
    'RewriteRule ^/srv/(.*) http://127.0.0.1:3/s/$1 [P]',
    '<Location />',
    '  RewriteEngine On',
    '  RewriteRule ^proxy:balancer://pool/in/(.*)$ http://127.0.0.1:4/from-balancer/$1 [P]',
    '  RewriteRule "^proxy:http://127\\.0\\.0\\.1:2/deep/a b$" http://127.0.0.1:4/decoded [P]',
    '  RewriteRule ^proxy:http://127\\.0\\.0\\.1:3/s/x$ http://127.0.0.1:4/after-server-rule [P]',
    '  RewriteRule ^/?nothing - [F]',
    '</Location>',
  );
  assert.equal(where(go(vh, '/b/x?q=1')), 'http://127.0.0.1:4 /from-balancer/x?q=1 http line11');
  assert.equal(where(go(vh, '/d/a%20b?q=1')), 'http://127.0.0.1:4 /decoded?q=1 http line12');
  assert.equal(where(go(vh, '/srv/x')), 'http://127.0.0.1:4 /after-server-rule http line13');
  // Not proxied by any rule: the path below the section, "nothing".
  assert.equal(where(go(vh, '/nothing')), '403');
});

// The WebSocket abuse-limit directives: values read into the model, and FILE:LINE errors for
// values that could never do what they say.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectError, lines, load } from './helpers';

test('defaults: no limit, any Origin', () => {
  const { config } = load({ 'wsgate.conf': lines('Listen 0', 'ProxyPass / ws://h/') });
  const s = config.mainServer.settings;
  assert.deepEqual([s.websocketMaxTunnels, s.websocketMaxTunnelsPerClient, s.websocketRate], [0, 0, 0]);
  assert.equal(s.websocketAllowedOrigins, undefined);
  assert.equal(config.mainServer.routes[0]!.maxTunnels, undefined);
});

test("values are read; a <VirtualHost> inherits the caps and has its own Origin list; maxtunnels= is the route's", () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyWebsocketMaxTunnels 100',
      'ProxyWebsocketMaxTunnelsPerClient 10',
      'ProxyWebsocketRate 5',
      'ProxyWebsocketAllowedOrigins https://App.example null',
      '<Location /chat/>',
      '  ProxyWebsocketAllowedOrigins *',
      '</Location>',
      'ProxyPass /a/ ws://h/ maxtunnels=3 timeout=5',
      '<VirtualHost *:*>',
      '  ProxyWebsocketAllowedOrigins http://b.example:8080',
      '  ProxyPass /b/ ws://h/',
      '</VirtualHost>',
    ),
  });
  const s = config.mainServer.settings;
  assert.deepEqual([s.websocketMaxTunnels, s.websocketMaxTunnelsPerClient, s.websocketRate], [100, 10, 5]);
  assert.deepEqual(s.websocketAllowedOrigins, ['https://app.example', 'null']);
  assert.deepEqual(
    config.mainServer.sectionOrigins?.map((o) => o.origins),
    [['*']],
  );
  const route = config.mainServer.routes.find((r) => r.backend?.path === '/')!;
  assert.equal(route.maxTunnels, 3);
  assert.equal(route.backend!.responseTimeoutMs, 5000, 'the other keys still go to the worker');
  const vh = config.virtualHosts[0]!;
  assert.equal(vh.settings.websocketMaxTunnels, 100);
  assert.deepEqual(vh.settings.websocketAllowedOrigins, ['http://b.example:8080']);
});

test('errors at FILE:LINE', () => {
  const cases: [string, RegExp][] = [
    ['ProxyWebsocketMaxTunnels -1', /ProxyWebsocketMaxTunnels: "-1" is not a whole number/],
    ['ProxyWebsocketRate fast', /ProxyWebsocketRate: "fast" is not a whole number/],
    ['ProxyWebsocketAllowedOrigins app.example', /"app.example" is not an origin/],
    ['ProxyWebsocketAllowedOrigins https://app.example/path', /is not an origin/],
    ['ProxyWebsocketAllowedOrigins * https://a.example', /"\*" allows every Origin and stands alone/],
    ['ProxyPass /x ws://h/ maxtunnels=many', /maxtunnels=: "many" is not a whole number/],
    ['ProxySet ws://h/ maxtunnels=3', /maxtunnels/],
  ];
  for (const [line, message] of cases) expectError({ 'wsgate.conf': lines('Listen 0', line, 'ProxyPass / ws://h/') }, { line: 2, message });
  // The caps are the gateway's: not per <VirtualHost>.
  expectError(
    { 'wsgate.conf': lines('Listen 0', '<VirtualHost *:*>', 'ProxyWebsocketMaxTunnels 3', '</VirtualHost>') },
    { line: 3, message: /ProxyWebsocketMaxTunnels/ },
  );
});

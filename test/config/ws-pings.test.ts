// ProxyWebsocketPingInterval (server, <VirtualHost>, and the ProxyPass key wspinginterval=) and
// ProxyWebsocketDrainRate (top level): values read into the model, FILE:LINE errors otherwise.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectError, lines, load } from './helpers';

test('defaults: no pings, drain all at once', () => {
  const { config } = load({ 'wsgate.conf': lines('Listen 0', 'ProxyPass / ws://h/') });
  const s = config.mainServer.settings;
  assert.equal(s.websocketPingIntervalMs, 0);
  assert.equal(s.websocketDrainRate, 0);
  assert.equal(config.mainServer.routes[0]!.pingIntervalMs, undefined);
});

test('values: a <VirtualHost> inherits or overrides the interval; wspinginterval= is the route’s own', () => {
  const { config } = load({
    'wsgate.conf': lines(
      'Listen 0',
      'ProxyWebsocketPingInterval 30',
      'ProxyWebsocketDrainRate 100',
      'ProxyPass /a/ ws://h/ wspinginterval=500ms timeout=5',
      'ProxyPass /b/ ws://h/ wspinginterval=0',
      '<VirtualHost *:*>',
      '  ProxyWebsocketPingInterval 250ms',
      '  ProxyPass /c/ ws://h/',
      '</VirtualHost>',
      '<VirtualHost *:*>',
      '  ProxyPass /d/ ws://h/',
      '</VirtualHost>',
    ),
  });
  const s = config.mainServer.settings;
  assert.equal(s.websocketPingIntervalMs, 30_000);
  assert.equal(s.websocketDrainRate, 100);
  const a = config.mainServer.routes.find((r) => r.match.kind === 'prefix' && r.match.prefix === '/a/')!;
  assert.equal(a.pingIntervalMs, 500);
  assert.equal(a.backend!.responseTimeoutMs, 5000, 'the other keys still go to the worker');
  const b = config.mainServer.routes.find((r) => r.match.kind === 'prefix' && r.match.prefix === '/b/')!;
  assert.equal(b.pingIntervalMs, 0);
  assert.equal(config.virtualHosts[0]!.settings.websocketPingIntervalMs, 250);
  assert.equal(config.virtualHosts[1]!.settings.websocketPingIntervalMs, 30_000);
});

test('errors at FILE:LINE', () => {
  const cases: [string, RegExp][] = [
    ['ProxyWebsocketPingInterval often', /ProxyWebsocketPingInterval: "often" is not a duration/],
    ['ProxyWebsocketDrainRate -5', /ProxyWebsocketDrainRate: "-5" is not a whole number/],
    ['ProxyPass /x ws://h/ wspinginterval=soon', /wspinginterval=: "soon" is not a duration/],
    ['ProxySet ws://h/ wspinginterval=3', /wspinginterval/],
  ];
  for (const [line, message] of cases) expectError({ 'wsgate.conf': lines('Listen 0', line, 'ProxyPass / ws://h/') }, { line: 2, message });
  expectError(
    { 'wsgate.conf': lines('Listen 0', '<VirtualHost *:*>', 'ProxyWebsocketDrainRate 10', '</VirtualHost>') },
    { line: 3, message: /ProxyWebsocketDrainRate/ },
  );
});

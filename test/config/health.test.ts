// BalancerMember health-check keys (mod_proxy_hcheck; research/apache-httpd.md §5.6): the model
// they load into, and their errors at file:line.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectError, lines, load } from './helpers';

const L = 'Listen 0';

test('hc* keys load into the member model with Apache defaults', () => {
  const { config } = load({
    'wsgate.conf': lines(
      L,
      '<Proxy balancer://pool>',
      '  BalancerMember ws://127.0.0.1:9001/app/ hcmethod=get11 hcinterval=250ms hcpasses=3 hcfails=2 hcuri=/health',
      '  BalancerMember ws://127.0.0.1:9002 hcmethod=TCP',
      '  BalancerMember ws://127.0.0.1:9003 hcmethod=None hcinterval=5',
      '  BalancerMember ws://127.0.0.1:9004',
      '</Proxy>',
      'ProxyPass / balancer://pool/',
    ),
  });
  const members = config.mainServer.routes[0]?.balancer?.balancer.members ?? [];
  assert.deepEqual(members[0]?.health, { method: 'GET11', intervalMs: 250, passes: 3, fails: 2, uri: '/health' });
  assert.deepEqual(members[1]?.health, { method: 'TCP', intervalMs: 30_000, passes: 1, fails: 1, uri: '' });
  assert.equal(members[2]?.health, undefined);
  assert.equal(members[3]?.health, undefined);
});

const member = (params: string): Record<string, string> => ({
  'wsgate.conf': lines(
    L,
    '<Proxy balancer://pool>',
    `  BalancerMember ws://127.0.0.1:9001 ${params}`,
    '</Proxy>',
    'ProxyPass / balancer://pool/',
  ),
});

test('bad hc* values are errors at their line', () => {
  expectError(member('hcmethod=PING'), {
    line: 3,
    message: /hcmethod=PING: unknown method \(TCP, GET, HEAD, OPTIONS, GET11, HEAD11, OPTIONS11, WS\)/,
  });
  expectError(member('hcmethod=GET hcinterval=soon'), { line: 3, message: /hcinterval=: "soon" is not a duration/ });
  expectError(member('hcmethod=GET hcinterval=0'), { line: 3, message: /hcinterval=: must be greater than 0/ });
  expectError(member('hcmethod=GET hcfails=0'), { line: 3, message: /hcfails= must be at least 1/ });
  expectError(member('hcmethod=GET hcpasses=x'), { line: 3, message: /hcpasses=: "x" is not a whole number/ });
  expectError(member('hcmethod=GET hcexpr=ok'), { line: 3, message: /hcexpr= is not supported/ });
  expectError(member('hctemplate=t'), { line: 3, message: /hctemplate= is not supported/ });
});

test('ProxyHCExpr, ProxyHCTemplate and ProxyHCTPsize are refused at their line', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[234]/}') },
    { line: 2, message: /health-check expressions are not supported/ },
  );
  expectError(
    { 'wsgate.conf': lines(L, '', 'ProxyHCTemplate t hcmethod=GET') },
    { line: 3, message: /health-check templates are not supported/ },
  );
  expectError({ 'wsgate.conf': lines(L, 'ProxyHCTPsize 4') }, { line: 2, message: /not supported: wsgate needs no thread pool/ });
});

test('hc* keys on a plain ProxyPass say they belong on a BalancerMember', () => {
  expectError(
    { 'wsgate.conf': lines(L, 'ProxyPass / ws://127.0.0.1:9001/ hcmethod=GET') },
    { line: 2, message: /hcmethod= is only valid on a BalancerMember line/ },
  );
});

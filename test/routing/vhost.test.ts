import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectVirtualHost, wildcardMatch } from '../../src/routing/vhost';
import { config, listen, vhost } from './fixture';

describe('selectVirtualHost', () => {
  const main = vhost([], { serverName: 'main.example' });
  const a = vhost([], { addresses: ['*:80'], serverName: 'a.example' });
  const b = vhost([], { addresses: ['*:80'], serverName: 'B.Example:80', aliases: ['*.b.example', '?.c.example'] });
  const noName = vhost([], { addresses: ['*:80'] });
  const alt = vhost([], { addresses: ['*:8080'], serverName: 'alt.example' });
  const ipFirst = vhost([], { addresses: ['10.0.0.5:80'], serverName: 'ip.example' });
  const ipSecond = vhost([], { addresses: ['10.0.0.5:80'], serverName: 'a.example' });
  const ipAnyPort = vhost([], { addresses: ['10.0.0.5:*'], serverName: 'ipany.example' });
  const v6 = vhost([], { addresses: ['[::1]:80'], serverName: '[::1]' });
  const cfg = config(main, [a, b, noName, alt, ipFirst, ipSecond, ipAnyPort, v6]);
  const pick = (host: string | undefined, port = 80, local = '127.0.0.1') => selectVirtualHost(cfg, listen(port), local, host);

  test('by ServerName, case-insensitive, port in Host ignored', () => {
    assert.equal(pick('a.example'), a);
    assert.equal(pick('A.EXAMPLE:80'), a);
    assert.equal(pick('a.example:8080'), a);
  });
  test('ServerName written with a port still matches', () => {
    assert.equal(pick('b.example'), b);
  });
  test('a trailing dot in Host is ignored', () => {
    assert.equal(pick('a.example.'), a);
    assert.equal(pick('b.example.:80'), b);
  });
  test('ServerAlias wildcards: * spans dots, ? one char', () => {
    assert.equal(pick('www.b.example'), b);
    assert.equal(pick('x.y.b.example:80'), b);
    assert.equal(pick('q.c.example'), b);
    assert.equal(pick('qq.c.example'), a);
  });
  test('no name matches → the first vhost for the address', () => {
    assert.equal(pick('unknown.example'), a);
    assert.equal(pick(''), a);
  });
  test('no Host header → the first vhost for the address', () => {
    assert.equal(pick(undefined), a);
  });
  test('a wildcard-address vhost without ServerName takes the main server name', () => {
    assert.equal(pick('main.example'), noName);
  });
  test('the port selects the list', () => {
    assert.equal(pick('a.example', 8080), alt);
    assert.equal(pick(undefined, 8080), alt);
  });
  test('no vhost for the address → the main server', () => {
    assert.equal(pick('a.example', 9090), main);
  });
  test('an exact IP:port list beats *:port, and only it is searched', () => {
    assert.equal(pick('ip.example', 80, '10.0.0.5'), ipFirst);
    assert.equal(pick('a.example', 80, '10.0.0.5'), ipSecond);
    assert.equal(pick('b.example', 80, '10.0.0.5'), ipFirst);
  });
  test('IP with port * beats *:port, loses to IP:port', () => {
    assert.equal(pick('b.example', 8080, '10.0.0.5'), ipAnyPort);
    assert.equal(pick(undefined, 9090, '10.0.0.5'), ipAnyPort);
  });
  test('IPv4-mapped local addresses compare as IPv4', () => {
    assert.equal(pick('whatever', 80, '::ffff:10.0.0.5'), ipFirst);
  });
  test('IPv6: bracketed <VirtualHost> address and Host', () => {
    assert.equal(pick('[::1]:80', 80, '::1'), v6);
    assert.equal(pick(undefined, 80, '::1'), v6);
  });
  test('*:* catches any port, after an exact port', () => {
    const any = vhost([], { addresses: ['*:*'], serverName: 'any.example' });
    const port80 = vhost([], { addresses: ['_default_:80'], serverName: 'p80.example' });
    const c = config(main, [any, port80]);
    assert.equal(selectVirtualHost(c, listen(9090), '127.0.0.1', 'p80.example'), any);
    assert.equal(selectVirtualHost(c, listen(80), '127.0.0.1', 'any.example'), port80);
  });
  test('a vhost with several addresses is in each list', () => {
    const multi = vhost([], { addresses: ['10.0.0.7:80', '*:81'], serverName: 'm.example' });
    const c = config(main, [multi]);
    assert.equal(selectVirtualHost(c, listen(80), '10.0.0.7', undefined), multi);
    assert.equal(selectVirtualHost(c, listen(81), '127.0.0.1', undefined), multi);
    assert.equal(selectVirtualHost(c, listen(80), '127.0.0.1', 'm.example'), main);
  });
  test('no virtual hosts at all → main', () => {
    assert.equal(selectVirtualHost(config(main, []), listen(80), '127.0.0.1', 'x'), main);
  });
});

describe('wildcardMatch', () => {
  test('Apache ap_strcasecmp_match semantics on lower-case input', () => {
    assert.equal(wildcardMatch('*', ''), true);
    assert.equal(wildcardMatch('*.example', '.example'), true);
    assert.equal(wildcardMatch('a*b*c', 'aXbYbZc'), true);
    assert.equal(wildcardMatch('a*b*c', 'aXbYbZ'), false);
    assert.equal(wildcardMatch('a?c', 'abc'), true);
    assert.equal(wildcardMatch('a?c', 'ac'), false);
    assert.equal(wildcardMatch('abc', 'abcd'), false);
    assert.equal(wildcardMatch('**x', 'yx'), true);
  });
});

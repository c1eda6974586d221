// Include / IncludeOptional: glob rules, order, directories, ServerRoot, repeated files.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { fnmatchRegExp } from '../../src/config/glob';
import { lines, load } from './helpers';

function prefixes(config: ReturnType<typeof load>['config']): string[] {
  return config.mainServer.routes.map((r) => (r.match.kind === 'prefix' ? r.match.prefix : r.match.pattern));
}

test('Include with * reads files in byte order, skipping dot files', () => {
  const { config, dir } = load({
    'wsgate.conf': lines('Listen 0', 'Include conf.d/*.conf', 'ProxyPass /last ws://h/'),
    'conf.d/b.conf': lines('ProxyPass /b ws://h/'),
    'conf.d/a.conf': lines('ProxyPass /a ws://h/'),
    'conf.d/10-x.conf': lines('ProxyPass /10 ws://h/'),
    'conf.d/Z.conf': lines('ProxyPass /Z ws://h/'),
    'conf.d/.hidden.conf': lines('Bogus'),
    'conf.d/notes.txt': lines('Bogus'),
  });
  assert.deepEqual(prefixes(config), ['/10', '/Z', '/a', '/b', '/last']);
  assert.deepEqual(
    config.files.map((f) => path.relative(dir, f)),
    ['wsgate.conf', 'conf.d/10-x.conf', 'conf.d/Z.conf', 'conf.d/a.conf', 'conf.d/b.conf'],
  );
});

test('wildcards in directory components, ? and [..]', () => {
  const { config } = load({
    'wsgate.conf': lines('Listen 0', 'Include sites/*/vhost.conf', 'Include extra/[ab]?.conf', 'Include extra/[!ab]?.conf'),
    'sites/two/vhost.conf': lines('ProxyPass /two ws://h/'),
    'sites/one/vhost.conf': lines('ProxyPass /one ws://h/'),
    'sites/one.conf': lines('Bogus (a file, not a directory)'),
    'sites/three/other.conf': lines('Bogus'),
    'extra/a1.conf': lines('ProxyPass /a1 ws://h/'),
    'extra/b2.conf': lines('ProxyPass /b2 ws://h/'),
    'extra/c3.conf': lines('ProxyPass /c3 ws://h/'),
    'extra/abc.conf': lines('Bogus'),
  });
  assert.deepEqual(prefixes(config), ['/one', '/two', '/a1', '/b2', '/c3']);
});

test('Include of a directory reads every file in it, recursively, sorted', () => {
  const { config } = load({
    'wsgate.conf': lines('Listen 0', 'Include conf'),
    'conf/b.conf': lines('ProxyPass /b ws://h/'),
    'conf/a/z.conf': lines('ProxyPass /a-z ws://h/'),
    'conf/a.conf': lines('ProxyPass /a ws://h/'),
  });
  assert.deepEqual(prefixes(config), ['/a-z', '/a', '/b']); // "a" sorts before "a.conf"
});

test('IncludeOptional of missing files is silent', () => {
  const { config } = load({
    'wsgate.conf': lines('Listen 0', 'IncludeOptional none/*.conf', 'IncludeOptional missing.conf', 'IncludeOptional */x/*.conf'),
  });
  assert.equal(config.files.length, 1);
});

test('relative Include paths follow ServerRoot once it is set', () => {
  const { config, dir } = load({
    'wsgate.conf': lines('Listen 0', 'Include before.conf', 'ServerRoot sub', 'Include after.conf'),
    'before.conf': lines('ProxyPass /before ws://h/'),
    'sub/after.conf': lines('ProxyPass /after ws://h/'),
    'after.conf': lines('Bogus'),
  });
  assert.deepEqual(prefixes(config), ['/before', '/after']);
  assert.equal(config.files[2], path.join(dir, 'sub/after.conf'));
});

test('absolute Include paths, includes inside <VirtualHost>, and a file included twice', () => {
  const { config, dir } = load({
    'wsgate.conf': lines('Listen 0', 'Include common.conf', '<VirtualHost *:0>', '  Include common.conf', '</VirtualHost>'),
    'common.conf': lines('ProxyPass /common ws://h/'),
  });
  assert.deepEqual(prefixes(config), ['/common']);
  assert.deepEqual(
    config.virtualHosts[0]?.routes.map((r) => r.source.file),
    [path.join(dir, 'common.conf'), path.join(dir, 'common.conf')],
  );
  assert.deepEqual(
    config.files.map((f) => path.relative(dir, f)),
    ['wsgate.conf', 'common.conf'],
  );
  const abs = load({ 'wsgate.conf': lines('Listen 0', `Include ${path.join(dir, 'common.conf')}`) });
  assert.deepEqual(prefixes(abs.config), ['/common']);
});

test('Define in an included file is visible afterwards', () => {
  const { config } = load({
    'wsgate.conf': lines('Include defs.conf', 'Listen ${PORT}'),
    'defs.conf': lines('Define PORT 0'),
  });
  assert.equal(config.listen[0]?.port, 0);
});

test('fnmatch patterns', () => {
  const m = (p: string, s: string) => fnmatchRegExp(p).test(s);
  assert.ok(m('*.conf', 'a.conf'));
  assert.ok(!m('*.conf', 'a.conf.bak'));
  assert.ok(!m('*', 'a/b'));
  assert.ok(m('?.c', 'x.c'));
  assert.ok(m('[a-c]x', 'bx'));
  assert.ok(!m('[!a-c]x', 'bx'));
  assert.ok(m('[^a-c]x', 'dx'));
  assert.ok(m('a\\*', 'a*'));
  assert.ok(!m('a\\*', 'ab'));
  assert.ok(m('a.(b)+', 'a.(b)+'));
  assert.ok(fnmatchRegExp('ws://h/*', { slashes: true }).test('ws://h/a/b'));
});

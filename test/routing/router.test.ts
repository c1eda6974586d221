import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertLocal, assertProxy, go, pass, passMatch, vhost } from './fixture';

const WS = 'websocket';

describe('§2.2 ws:// and http:// rules for the same path', () => {
  const vh = vhost([pass('/', 'ws://b:9080/'), pass('/', 'http://b:9080/')]);
  test('an upgrade request takes the ws:// rule', () => {
    const r = assertProxy(go(vh, '/chat', WS), '/chat', 'upgrade');
    assert.equal(r.route, vh.routes[0]);
    assert.equal(r.upgradeValue, 'websocket');
  });
  test('a plain request skips the ws:// rule and takes the http:// one', () => {
    const r = assertProxy(go(vh, '/page?x=1'), '/page?x=1', 'http');
    assert.equal(r.route, vh.routes[1]);
    assert.equal(r.upgradeValue, undefined);
  });
  test('the same with fallback Off', () => {
    const off = vhost(vh.routes.slice(), { fallback: false });
    assert.equal(assertProxy(go(off, '/page'), '/page', 'http').route, off.routes[1]);
  });
});

describe('§2.3 a request the ws:// rule does not accept, no later rule', () => {
  const routes = [pass('/ws/', 'ws://b/')];
  test('fallback On: plain HTTP to the ws:// backend', () => {
    const vh = vhost(routes);
    const r = assertProxy(go(vh, '/ws/x?y'), '/x?y', 'http');
    assert.equal(r.backend, routes[0].backend);
    assert.equal(r.upgradeValue, undefined);
  });
  test('fallback Off: 404', () => {
    assertLocal(go(vhost(routes, { fallback: false }), '/ws/x'), 404);
  });
  test('Upgrade: foo, websocket (the client list is not tokenised): fallback HTTP', () => {
    assertProxy(go(vhost(routes), '/ws/x', 'foo, websocket'), '/x', 'http');
    assertLocal(go(vhost(routes, { fallback: false }), '/ws/x', 'foo, websocket'), 404);
  });
  test('Upgrade: h2c: fallback HTTP', () => {
    assertProxy(go(vhost(routes), '/ws/x', 'h2c'), '/x', 'http');
  });
  test('wss:// behaves as ws://', () => {
    assertProxy(go(vhost([pass('/s/', 'wss://b/')]), '/s/x'), '/x', 'http');
    assertLocal(go(vhost([pass('/s/', 'wss://b/')], { fallback: false }), '/s/x'), 404);
    assertProxy(go(vhost([pass('/s/', 'wss://b/')]), '/s/x', WS), '/x', 'upgrade');
  });
  test('the fallback is the first skipped ws:// rule', () => {
    const vh = vhost([pass('/a/', 'ws://first/'), pass('/a/b/', 'ws://second/')]);
    const r = assertProxy(go(vh, '/a/b/c'), '/b/c', 'http');
    assert.equal(r.route, vh.routes[0]);
  });
  test('a later ws:// rule that accepts wins over the skipped one', () => {
    const vh = vhost([pass('/a/', 'ws://foo/', { upgrade: 'foo' }), pass('/a/', 'ws://ws/')]);
    assert.equal(assertProxy(go(vh, '/a/x', WS), '/x', 'upgrade').route, vh.routes[1]);
    assert.equal(assertProxy(go(vh, '/a/x', 'FOO'), '/x', 'upgrade').route, vh.routes[0]);
  });
  test('a later ! rule that matches stops the search: 404, no fallback', () => {
    const vh = vhost([pass('/a/', 'ws://b/'), pass('/a/', '!')]);
    assertLocal(go(vh, '/a/x'), 404);
  });
});

describe('§2.4 an upgrade request on an http:// rule', () => {
  test('without upgrade=: proxied as plain HTTP (the caller strips Upgrade)', () => {
    const vh = vhost([pass('/h/', 'http://b/')]);
    const r = assertProxy(go(vh, '/h/x', WS), '/x', 'http');
    assert.equal(r.upgradeValue, undefined);
  });
  test('upgrade=websocket: tunnelled', () => {
    const vh = vhost([pass('/h/', 'http://b/', { upgrade: 'websocket' })]);
    assert.equal(assertProxy(go(vh, '/h/x', WS), '/x', 'upgrade').upgradeValue, 'websocket');
    assertProxy(go(vh, '/h/x'), '/x', 'http');
  });
  test('https:// with upgrade=websocket', () => {
    const vh = vhost([pass('/h/', 'https://b/', { upgrade: 'websocket' })]);
    assertProxy(go(vh, '/h/x', WS), '/x', 'upgrade');
    assertProxy(go(vh, '/h/x', 'h2c'), '/x', 'http');
  });
  test('the method is not restricted', () => {
    const vh = vhost([pass('/h/', 'http://b/', { upgrade: 'websocket' })]);
    assertProxy(go(vh, '/h/x', WS, 'POST'), '/x', 'upgrade');
    assertProxy(go(vhost([pass('/ws/', 'ws://b/')]), '/ws/x', WS, 'PUT'), '/x', 'upgrade');
  });
});

describe('§2.5/§2.6 upgrade= values', () => {
  const on = (upgrade: string, scheme = 'http') => vhost([pass('/', `${scheme}://b/`, { upgrade })]);
  const value = (r: ReturnType<typeof go>) =>
    r.kind === 'proxy' && r.mode === 'upgrade'
      ? r.upgradeValue
      : `${r.kind}:${r.kind === 'local' || r.kind === 'redirect' ? r.status : r.kind === 'handler' ? r.handler : r.mode}`;

  test('default ws://: WebSocket in any case, forwarded with the client spelling', () => {
    const vh = vhost([pass('/', 'ws://b/')]);
    assert.equal(value(go(vh, '/', 'WEBSOCKET')), 'WEBSOCKET');
    assert.equal(value(go(vh, '/', 'WebSocket')), 'WebSocket');
    assert.equal(value(go(vh, '/', 'foo, websocket')), 'proxy:http');
    assert.equal(value(go(vh, '/')), 'proxy:http');
  });
  test('upgrade=websocket', () => {
    const vh = on('websocket');
    assert.equal(value(go(vh, '/', 'WEBSOCKET')), 'WEBSOCKET');
    assert.equal(value(go(vh, '/', 'foo, websocket')), 'proxy:http');
    assert.equal(value(go(vh, '/')), 'proxy:http');
  });
  test('custom upgrade=foo', () => {
    const vh = on('foo');
    assert.equal(value(go(vh, '/', 'FOO')), 'FOO');
    assert.equal(value(go(vh, '/', 'websocket')), 'proxy:http');
    assert.equal(value(go(vh, '/')), 'proxy:http');
  });
  test('list upgrade=websocket,foo', () => {
    const vh = on('websocket,foo');
    assert.equal(value(go(vh, '/', 'foo')), 'foo');
    assert.equal(value(go(vh, '/', 'WEBSOCKET')), 'WEBSOCKET');
    assert.equal(value(go(vh, '/', 'foo, websocket')), 'proxy:http');
    assert.equal(value(go(vh, '/', 'bar')), 'proxy:http');
    assert.equal(value(go(vh, '/')), 'proxy:http');
  });
  test('upgrade=ANY: whatever the client asks, verbatim; nothing asked: no upgrade', () => {
    const vh = on('ANY');
    assert.equal(value(go(vh, '/', 'h2c')), 'h2c');
    assert.equal(value(go(vh, '/', 'foo, websocket')), 'foo, websocket');
    assert.equal(value(go(vh, '/', 'WEBSOCKET')), 'WEBSOCKET');
    assert.equal(value(go(vh, '/')), 'proxy:http');
    // On a ws:// rule, no Upgrade means the rule is skipped (fallback HTTP, or 404 when Off).
    assert.equal(value(go(on('ANY', 'ws'), '/')), 'proxy:http');
    assert.equal(value(go(vhost([pass('/', 'ws://b/', { upgrade: 'ANY' })], { fallback: false }), '/')), 'local:404');
  });
  test('upgrade=NONE: always a WebSocket upgrade (documented behaviour)', () => {
    for (const scheme of ['ws', 'http']) {
      const vh = on('NONE', scheme);
      assert.equal(value(go(vh, '/')), 'websocket');
      assert.equal(value(go(vh, '/', 'WEBSOCKET')), 'WEBSOCKET');
      assert.equal(value(go(vh, '/', 'foo')), 'websocket');
      assert.equal(value(go(vh, '/', 'foo, websocket')), 'websocket');
    }
  });
});

describe('exclusions', () => {
  const vh = vhost([pass('/ex/private', '!'), pass('/ex/', 'ws://b/')]);
  test('/ex/private/x → 404', () => assertLocal(go(vh, '/ex/private/x', WS), 404));
  test('/ex/private → 404', () => assertLocal(go(vh, '/ex/private', WS), 404));
  test('/ex/privateX → proxied', () => {
    assertProxy(go(vh, '/ex/privateX', WS), '/privateX', 'upgrade');
  });
  test('ProxyPassMatch ! excludes too', () => {
    const m = vhost([passMatch('\\.png$', '!'), pass('/', 'http://b/')]);
    assertLocal(go(m, '/img/a.png'), 404);
    assertProxy(go(m, '/img/a.jpg'), '/img/a.jpg');
  });
  test('an exclusion after the general rule is dead (first match wins)', () => {
    const late = vhost([pass('/ex/', 'ws://b/'), pass('/ex/private', '!')]);
    assertProxy(go(late, '/ex/private/x', WS), '/private/x');
  });
});

describe('rule order', () => {
  test('first match wins among server rules', () => {
    const vh = vhost([pass('/a/', 'http://x/'), pass('/a/b/', 'http://y/')]);
    const r = assertProxy(go(vh, '/a/b/c'), '/b/c');
    assert.equal(r.route, vh.routes[0]);
  });
  test('<Location> rules before server rules', () => {
    const vh = vhost([pass('/app/', 'http://loc/in/', { location: true }), pass('/', 'http://srv/')]);
    const r = assertProxy(go(vh, '/app/x'), '/in/x');
    assert.equal(r.route, vh.routes[0]);
    assert.equal(assertProxy(go(vh, '/other'), '/other').route, vh.routes[1]);
  });
  test('of several matching <Location>s, the last one (Apache merges them in order)', () => {
    const vh = vhost([
      pass('/app/', 'http://general/', { location: true }),
      pass('/app/ws', 'ws://specific/', { location: true }),
      pass('/', 'http://srv/'),
    ]);
    assert.equal(assertProxy(go(vh, '/app/ws', WS), '/', 'upgrade').route, vh.routes[1]);
    assert.equal(assertProxy(go(vh, '/app/page'), '/page').route, vh.routes[0]);
  });
  test('a skipped <Location> ws:// rule goes on to the server rules, not to another <Location>', () => {
    const vh = vhost([
      pass('/app/', 'http://general/', { location: true }),
      pass('/app/ws', 'ws://specific/', { location: true }),
      pass('/app/', 'http://srv/'),
    ]);
    assert.equal(assertProxy(go(vh, '/app/ws'), '/ws', 'http').route, vh.routes[2]);
    // With no server rule, the skipped <Location> rule is the fallback.
    const only = vhost(vh.routes.slice(0, 2));
    assert.equal(assertProxy(go(only, '/app/ws'), '/', 'http').route, only.routes[1]);
  });
  test('<LocationMatch> rules are matched as regexes', () => {
    const vh = vhost([passMatch('^/lm/(.*)$', 'ws://b/x/$1', { location: true }), pass('/', 'http://srv/')]);
    assertProxy(go(vh, '/lm/a?q', WS), '/x/a?q', 'upgrade');
  });
  test('no rule matches → 404', () => {
    assertLocal(go(vhost([pass('/a/', 'ws://b/')]), '/b/', WS), 404);
    assertLocal(go(vhost([]), '/'), 404);
  });
});

describe('query strings', () => {
  const vh = vhost([pass('/q/', 'ws://b/base/')]);
  test('kept verbatim (not decoded, not re-encoded)', () => {
    assertProxy(go(vh, '/q/x?a=%41&b=c+d&&e=%zz&f=/?g', WS), '/base/x?a=%41&b=c+d&&e=%zz&f=/?g');
  });
  test('an empty query keeps its ?', () => {
    assertProxy(go(vh, '/q/x?', WS), '/base/x?');
  });
  test('a fragment is dropped', () => {
    assertProxy(go(vh, '/q/x?a=1#frag', WS), '/base/x?a=1');
  });
  test('a query with a control char → 403', () => {
    assertLocal(go(vh, '/q/x?a=\x01', WS), 403);
  });
});

describe('request-target forms and normalisation', () => {
  const vh = vhost([pass('/a1/', 'ws://h/'), pass('/a2', 'ws://h/two/'), pass('/', 'http://root/')]);
  test('absolute-form: the path and query are used', () => {
    assertProxy(go(vh, 'http://front.example/a1/x?q=1', WS), '/x?q=1');
    assertProxy(go(vh, 'HTTP://front.example:8080/a1/y', WS), '/y');
    assertProxy(go(vh, 'https://[::1]:8443/a2/z', WS), '/two//z');
    assertProxy(go(vh, 'ws://h/a1/w', WS), '/w');
  });
  test('absolute-form without a path means /', () => {
    assertProxy(go(vh, 'http://front.example'), '/', 'http');
    assertProxy(go(vh, 'http://front.example?x=1'), '/?x=1', 'http');
  });
  test('origin-form must start with / → 400', () => {
    assertLocal(go(vh, 'a1/x'), 400);
    assertLocal(go(vh, '?x'), 400);
    assertLocal(go(vh, ''), 400);
    assertLocal(go(vh, 'http:x'), 400);
    assertLocal(go(vh, 'example.com:443', undefined, 'CONNECT'), 400);
  });
  test('* only with OPTIONS, and never proxied', () => {
    assertLocal(go(vh, '*', undefined, 'OPTIONS'), 404);
    assertLocal(go(vh, '*'), 400);
  });
  test('bad %-escapes → 400', () => {
    assertLocal(go(vh, '/a1/%zz'), 400);
    assertLocal(go(vh, '/a1/%2'), 400);
    assertLocal(go(vh, '/a1/x%'), 400);
  });
  test('%2F and %00 → 404', () => {
    assertLocal(go(vh, '/a1/a%2Fb'), 404);
    assertLocal(go(vh, '/a1/a%00b'), 404);
    // 400 checks come first, as in Apache (normalise, then unescape).
    assertLocal(go(vh, '/a1/a%2Fb%zz'), 400);
    assertLocal(go(vh, '/a%2F/../..'), 400);
  });
  test('.. above the root → 400', () => {
    assertLocal(go(vh, '/..'), 400);
    assertLocal(go(vh, '/a1/../../x'), 400);
    assertLocal(go(vh, '/%2e%2e/x'), 400);
  });
  test('. and .. segments are resolved before matching', () => {
    assertProxy(go(vh, '/a1/./x', WS), '/x');
    assertProxy(go(vh, '/a1/x/%2e%2e/y', WS), '/y');
    assertProxy(go(vh, '/a1/x/.%2E/y', WS), '/y');
    assertProxy(go(vh, '/a1/x/..', WS), '/');
    assertProxy(go(vh, '/a1/x/.', WS), '/x/');
    assertProxy(go(vh, '/a1/x/...', WS), '/x/...');
    assertProxy(go(vh, '/x/../a1/y', WS), '/y');
  });
  test('slash runs are merged (MergeSlashes On)', () => {
    assertProxy(go(vh, '//a1//x///y', WS), '/x/y');
    assertProxy(go(vh, '/a1/x//', WS), '/x/');
  });
  test('a rule prefix with // matches single slashes (alias_match)', () => {
    const d = vhost([pass('/p//q/', 'ws://h/')]);
    assertProxy(go(d, '/p/q/x', WS), '/x');
  });
  test('matching uses the decoded path', () => {
    const d = vhost([pass('/a b/', 'ws://h/'), passMatch('^/c d/(.*)', 'ws://h/r/$1')]);
    assertProxy(go(d, '/a%20b/x%20y', WS), '/x%20y');
    assertProxy(go(d, '/c%20d/e%20f', WS), '/r/e%20f');
  });
  test('canon encodes what the decoding exposed, keeps sub-delims', () => {
    assertProxy(
      go(vh, "/a1/%3Fq%23f%25x%22%3C%3E%5B%5D%5E%60%7B%7C%7D%5C:@&=+$,;!*'()~", WS),
      "/%3Fq%23f%25x%22%3C%3E%5B%5D%5E%60%7B%7C%7D%5C:@&=+$,;!*'()~",
    );
    assertProxy(go(vh, '/a1/%C3%A9t%C3%A9', WS), '/%C3%A9t%C3%A9');
  });
  test('canon also encodes the configured path (Apache turns % in the URL into %25)', () => {
    assertProxy(go(vhost([pass('/p/', 'ws://h/a%20b/')]), '/p/x', WS), '/a%2520b/x');
  });
});

describe('nocanon', () => {
  const vh = vhost([pass('/nc/', 'ws://h/base/', { nocanon: true })]);
  test('raw path remainder and query forwarded verbatim (no decoding, no dot removal)', () => {
    assertProxy(go(vh, '/nc/a%20b/./c%3bd?x=%zz', WS), '/base/a%20b/./c%3bd?x=%zz');
  });
  test('the core still refuses %2f: 404', () => {
    assertLocal(go(vh, '/nc/a%2fb', WS), 404);
  });
  test('a control char or space in the raw path or query → 403', () => {
    assertLocal(go(vh, '/nc/a\x01b', WS), 403);
    assertLocal(go(vh, '/nc/a b', WS), 403);
    assertLocal(go(vh, '/nc/a?b=\x7f', WS), 403);
  });
  test('ignored when the raw URI matches the prefix differently (Apache AH01136)', () => {
    assertProxy(go(vh, '/nc//a%41', WS), '/base/aA');
  });
  test('absolute-form: the raw path of the target is used', () => {
    assertProxy(go(vh, 'http://front/nc/a%41?q=%41', WS), '/base/a%41?q=%41');
  });
  test('ProxyPassMatch with nocanon substitutes from the raw URI (query included)', () => {
    const m = vhost([passMatch('^/ncm/(.*)$', 'ws://h/$1', { nocanon: true })]);
    assertProxy(go(m, '/ncm/a%41?q=1', WS), '/a%41?q=1');
  });
});

describe('ProxyPassMatch', () => {
  test('$N substituted from the decoded path, then re-encoded; query appended', () => {
    const vh = vhost([passMatch('^/r/([^/]*)/(.*)$', 'ws://h/base/$2/$1')]);
    const r = assertProxy(go(vh, '/r/a%20b/c?q=1', WS), '/base/c/a%20b?q=1');
    assert.equal(r.backend.url, 'ws://h/base/c/a b');
  });
  test('$0, unmatched groups and \\$ escapes', () => {
    const vh = vhost([passMatch('^/z(/x)?(/y)?', 'ws://h/p$2-$0\\$1')]);
    assertProxy(go(vh, '/z/y', WS), '/p/y-/z/y$1');
  });
  test('without $N on a URL with no path: the URI is appended', () => {
    assertProxy(go(vhost([passMatch('^/m3/', 'ws://h:1')]), '/m3/x?y', WS), '/m3/x?y');
  });
  test('a substitution that leaves no / after the authority → 500', () => {
    assertLocal(go(vhost([passMatch('^/(.*)$', 'ws://h:1$1')]), '/x', WS), 500);
  });
});

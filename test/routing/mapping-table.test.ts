// research/apache-httpd.md §2.8, row by row: what Apache 2.4.71 sent to the backend.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertLocal, assertProxy, go, pass, passMatch, vhost } from './fixture';

const WS = 'websocket';

describe('§2.8 URL path mapping', () => {
  const a1 = vhost([pass('/a1/', 'ws://h:21081/')]);
  test('ProxyPass "/a1/" "ws://h:21081/": /a1/x/y?q=1&r=2 → GET /x/y?q=1&r=2', () => {
    assertProxy(go(a1, '/a1/x/y?q=1&r=2', WS), '/x/y?q=1&r=2', 'upgrade');
  });
  test('same: /a1 → not matched → 404', () => {
    assertLocal(go(a1, '/a1', WS), 404);
  });
  test('same: /a1/ → GET /', () => {
    assertProxy(go(a1, '/a1/', WS), '/');
  });

  const a2 = vhost([pass('/a2', 'ws://h:21082/')]);
  test('ProxyPass "/a2" "ws://h:21082/": /a2 → GET /', () => {
    assertProxy(go(a2, '/a2', WS), '/');
  });
  test('same: /a2/x and /a2//x → GET //x', () => {
    assertProxy(go(a2, '/a2/x', WS), '//x');
    assertProxy(go(a2, '/a2//x', WS), '//x');
  });
  test('same: /a2x → not matched (segment boundary)', () => {
    assertLocal(go(a2, '/a2x', WS), 404);
  });

  test('ProxyPass "/a3/" "ws://h:21083": /a3/x → ws://h:21083x → 500', () => {
    const vh = vhost([pass('/a3/', 'ws://h:21083')]);
    assertLocal(go(vh, '/a3/x', WS), 500);
    // Nothing after the prefix, or a rest that starts with '/', still makes a valid URL.
    assertProxy(go(vh, '/a3/', WS), '/');
    assertProxy(go(vhost([pass('/a3', 'ws://h:21083')]), '/a3/x', WS), '/x');
  });

  test('ProxyPass "/a4" "ws://h:21084/base": /a4/x → GET /base/x, /a4 → GET /base', () => {
    const vh = vhost([pass('/a4', 'ws://h:21084/base')]);
    assertProxy(go(vh, '/a4/x', WS), '/base/x');
    assertProxy(go(vh, '/a4', WS), '/base');
  });

  test('default canon: /a1/a%20b, /a1/a%41b, /a1/%7Euser, /a1/a;p=1 → /a%20b, /aAb, /~user, /a;p=1', () => {
    assertProxy(go(a1, '/a1/a%20b', WS), '/a%20b');
    assertProxy(go(a1, '/a1/a%41b', WS), '/aAb');
    assertProxy(go(a1, '/a1/%7Euser', WS), '/~user');
    assertProxy(go(a1, '/a1/a;p=1', WS), '/a;p=1');
  });

  test('default (AllowEncodedSlashes Off): /a1/a%2fb → 404 from the core', () => {
    assertLocal(go(a1, '/a1/a%2fb', WS), 404);
    assertLocal(go(a1, '/a1/a%2Fb', WS), 404);
  });

  test('nocanon: /nc/a%41b;p=1?x=%41 → verbatim /a%41b;p=1?x=%41', () => {
    const vh = vhost([pass('/nc/', 'ws://h/', { nocanon: true })]);
    assertProxy(go(vh, '/nc/a%41b;p=1?x=%41', WS), '/a%41b;p=1?x=%41');
  });

  const myApp = vhost([passMatch('^/(myApp/ws)$', 'ws://h/$1')]);
  test('ProxyPassMatch "^/(myApp/ws)$" "ws://h/$1": /myApp/ws?x=1 → GET /myApp/ws?x=1 (query kept)', () => {
    const r = assertProxy(go(myApp, '/myApp/ws?x=1', WS), '/myApp/ws?x=1');
    // $1 substituted into a new Backend that shares the origin.
    const configured = myApp.routes[0].backend!;
    assert.notEqual(r.backend, configured);
    assert.equal(r.backend.url, 'ws://h/myApp/ws');
    assert.equal(r.backend.path, '/myApp/ws');
    assert.equal(r.backend.origin, configured.origin);
  });
  test('same: /myApp/ws/more → no match → 404', () => {
    assertLocal(go(myApp, '/myApp/ws/more', WS), 404);
  });

  test('ProxyPassMatch "^/m2/" "ws://h/" (no $1): /m2/x?y=1 → GET //m2/x?y=1 (full URI appended)', () => {
    const vh = vhost([passMatch('^/m2/', 'ws://h/')]);
    const r = assertProxy(go(vh, '/m2/x?y=1', WS), '//m2/x?y=1');
    assert.equal(r.backend, vh.routes[0].backend);
  });

  test('/a1/../a2/x: normalised by the core first → matches /a2', () => {
    const vh = vhost([pass('/a1/', 'ws://h:21081/'), pass('/a2', 'ws://h:21082/')]);
    const r = assertProxy(go(vh, '/a1/../a2/x', WS), '//x');
    assert.equal(r.route, vh.routes[1]);
  });

  test('<Location "/loc/"> ProxyPass "ws://h/inner/": /loc/z?k=v → GET /inner/z?k=v', () => {
    const vh = vhost([pass('/loc/', 'ws://h/inner/', { location: true })]);
    assertProxy(go(vh, '/loc/z?k=v', WS), '/inner/z?k=v');
  });
});

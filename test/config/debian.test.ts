// A config laid out like Debian's /etc/apache2 (apache2.conf, ports.conf, mods-enabled,
// conf-enabled, sites-enabled) loads, given the variables apache2ctl would export.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { lines, load } from './helpers';

const ENV = {
  APACHE_RUN_USER: 'www-data',
  APACHE_RUN_GROUP: 'www-data',
  APACHE_PID_FILE: '/var/run/apache2/apache2.pid',
  APACHE_RUN_DIR: '/var/run/apache2',
  APACHE_LOCK_DIR: '/var/lock/apache2',
  APACHE_LOG_DIR: '/var/log/apache2',
};

test('a Debian-style apache2.conf tree loads', () => {
  const { config, dir } = load(
    {
      'apache2.conf': lines(
        '# This is the main Apache server configuration file.',
        'DefaultRuntimeDir ${APACHE_RUN_DIR}',
        'PidFile ${APACHE_PID_FILE}',
        'Timeout 300',
        'KeepAlive On',
        'MaxKeepAliveRequests 100',
        'KeepAliveTimeout 5',
        'User ${APACHE_RUN_USER}',
        'Group ${APACHE_RUN_GROUP}',
        'HostnameLookups Off',
        'ErrorLog ${APACHE_LOG_DIR}/error.log',
        'LogLevel warn',
        'IncludeOptional mods-enabled/*.load',
        'IncludeOptional mods-enabled/*.conf',
        'Include ports.conf',
        '<Directory />',
        '\tOptions FollowSymLinks',
        '\tAllowOverride None',
        '\tRequire all denied',
        '</Directory>',
        'AccessFileName .htaccess',
        '<FilesMatch "^\\.ht">',
        '\tRequire all denied',
        '</FilesMatch>',
        'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" vhost_combined',
        'LogFormat "%h %l %u %t \\"%r\\" %>s %O" common',
        'IncludeOptional conf-enabled/*.conf',
        'IncludeOptional sites-enabled/*.conf',
      ),
      'ports.conf': lines('Listen 0', '', '<IfModule ssl_module>', '\t# Listen 443', '</IfModule>'),
      'mods-enabled/proxy.load': lines('LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so'),
      'mods-enabled/proxy_wstunnel.load': lines(
        '# Depends: proxy',
        'LoadModule proxy_wstunnel_module /usr/lib/apache2/modules/mod_proxy_wstunnel.so',
      ),
      'mods-enabled/mime.conf': lines(
        '<IfModule mod_mime.c>',
        'TypesConfig /etc/mime.types',
        'AddType application/x-compress .Z',
        'AddLanguage da .dk',
        'AddCharset us-ascii\t.ascii .us-ascii',
        '</IfModule>',
      ),
      'mods-enabled/status.conf': lines(
        '<IfModule mod_status.c>',
        '\t<Location /server-status>',
        '\t\tSetHandler server-status',
        '\t\tRequire local',
        '\t</Location>',
        '\tExtendedStatus On',
        '\t<IfModule mod_proxy.c>',
        '\t\tProxyStatus On',
        '\t</IfModule>',
        '</IfModule>',
      ),
      'mods-enabled/mpm_event.conf': lines(
        '<IfModule mpm_event_module>',
        '\tStartServers\t\t\t 2',
        '\tMinSpareThreads\t\t 25',
        '\tMaxSpareThreads\t\t 75',
        '\tThreadLimit\t\t\t 64',
        '\tThreadsPerChild\t\t 25',
        '\tMaxRequestWorkers\t  150',
        '\tMaxConnectionsPerChild   0',
        '</IfModule>',
      ),
      'conf-enabled/security.conf': lines('ServerTokens OS', 'ServerSignature On', 'TraceEnable Off'),
      'sites-enabled/000-default.conf': lines(
        '<VirtualHost *:0>',
        '\tServerAdmin webmaster@localhost',
        '\tDocumentRoot /var/www/html',
        '\tErrorLog ${APACHE_LOG_DIR}/error.log',
        '\tCustomLog ${APACHE_LOG_DIR}/access.log combined',
        '\tProxyPreserveHost On',
        '\tProxyPass /ws/ ws://127.0.0.1:8080/ws/ upgrade=websocket',
        '\tProxyPassReverse /ws/ ws://127.0.0.1:8080/ws/',
        '\tProxyPass / http://127.0.0.1:8080/',
        '</VirtualHost>',
      ),
    },
    'apache2.conf',
    ENV,
  );
  assert.deepEqual(
    config.files.map((f) => path.relative(dir, f)),
    [
      'apache2.conf',
      'mods-enabled/proxy.load',
      'mods-enabled/proxy_wstunnel.load',
      'mods-enabled/mime.conf',
      'mods-enabled/mpm_event.conf',
      'mods-enabled/status.conf',
      'ports.conf',
      'conf-enabled/security.conf',
      'sites-enabled/000-default.conf',
    ],
  );
  assert.equal(config.listen.length, 1);
  assert.equal(config.mainServer.settings.timeoutMs, 300_000);
  const site = config.virtualHosts[0];
  assert.ok(site);
  assert.equal(site.settings.preserveHost, true);
  assert.equal(site.settings.timeoutMs, 300_000);
  assert.deepEqual(
    site.routes.map((r) => `${r.match.kind === 'prefix' ? r.match.prefix : ''} ${r.exclude ? '!' : r.backend?.url}`),
    // As in Apache, a SetHandler <Location> does not stop ProxyPass /: it is just ignored.
    ['/ws/ ws://127.0.0.1:8080/ws/', '/ http://127.0.0.1:8080/'],
  );
  // Every notice is about something ignored or not implemented; each name once.
  const names = config.notices.map((n) => /: (<?\w+>?)/.exec(n.slice(dir.length))?.[1]);
  assert.equal(new Set(names).size, names.length, config.notices.join('\n'));
});

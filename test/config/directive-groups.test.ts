// Every directive and section name wsgate knows has a group decided on purpose (honour or refuse):
// `honoured` as Apache does, `notice` (changes nothing a client or backend can observe), or
// `refused` (a FILE:LINE error saying what to do instead). A new name fails this test until its
// line is added here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { directiveGroups } from '../../src/config/directives';
import { expectError, lines, load } from './helpers';

type Expected = 'honoured' | 'notice' | 'refused';

const EXPECTED: ReadonlyArray<readonly [string, Expected]> = [
  ['Define', 'honoured'],
  ['UnDefine', 'honoured'],
  ['Include', 'honoured'],
  ['IncludeOptional', 'honoured'],
  ['Listen', 'honoured'],
  ['ServerName', 'honoured'],
  ['ServerAlias', 'honoured'],
  ['ServerRoot', 'honoured'],
  ['Timeout', 'honoured'],
  ['ProxyTimeout', 'honoured'],
  ['ProxyPreserveHost', 'honoured'],
  ['ProxyAddHeaders', 'honoured'],
  ['ProxyWebsocketIdleTimeout', 'honoured'],
  ['ProxyWebsocketStrict', 'honoured'],
  ['ProxyWebsocketPingInterval', 'honoured'],
  ['ProxyWebsocketDrainRate', 'honoured'],
  ['ProxyWebsocketFallbackToProxyHttp', 'honoured'],
  ['ProxyWebsocketAsync', 'honoured'],
  ['ProxyWebsocketAsyncDelay', 'honoured'],
  // wsgate's own abuse limits (Apache has none): config/websocket-limits.ts.
  ['ProxyWebsocketMaxTunnels', 'honoured'],
  ['ProxyWebsocketMaxTunnelsPerClient', 'honoured'],
  ['ProxyWebsocketRate', 'honoured'],
  ['ProxyWebsocketAllowedOrigins', 'honoured'],
  ['ProxyPassInherit', 'honoured'],
  ['TraceEnable', 'honoured'],
  ['ProxyRequests', 'honoured'],
  ['ProxyVia', 'honoured'],
  ['ProxyPassReverse', 'honoured'],
  ['ProxyPassReverseCookieDomain', 'honoured'],
  ['ProxyPassReverseCookiePath', 'honoured'],
  ['Redirect', 'honoured'],
  ['RedirectMatch', 'honoured'],
  ['RedirectPermanent', 'honoured'],
  ['RedirectTemp', 'honoured'],
  ['ProxyPass', 'honoured'],
  ['ProxyPassMatch', 'honoured'],
  ['ProxySet', 'honoured'],
  ['BalancerMember', 'honoured'],
  ['RewriteEngine', 'honoured'],
  ['RewriteOptions', 'honoured'],
  ['RewriteCond', 'honoured'],
  ['RewriteRule', 'honoured'],
  ['RewriteMap', 'refused'],
  ['RewriteBase', 'refused'],
  ['Header', 'honoured'],
  ['RequestHeader', 'honoured'],
  ['ProxyHCExpr', 'refused'],
  ['ProxyHCTemplate', 'refused'],
  ['ProxyHCTPsize', 'refused'],
  ['SSLEngine', 'honoured'],
  ['SSLCertificateFile', 'honoured'],
  ['SSLCertificateKeyFile', 'honoured'],
  ['SSLCertificateChainFile', 'honoured'],
  ['SSLProtocol', 'honoured'],
  ['SSLCipherSuite', 'honoured'],
  ['SSLHonorCipherOrder', 'honoured'],
  ['SSLProxyEngine', 'honoured'],
  ['SSLProxyVerify', 'honoured'],
  ['SSLProxyCACertificateFile', 'honoured'],
  ['SSLProxyCheckPeerName', 'honoured'],
  ['SSLProxyCheckPeerExpire', 'honoured'],
  ['SSLProxyCheckPeerCN', 'honoured'],
  ['SSLProxyMachineCertificateFile', 'honoured'],
  // mod_ssl tuning from certbot's options-ssl-apache.conf, Debian's ssl.conf and app guides.
  ['SSLSessionTickets', 'honoured'], // off: SSL_OP_NO_TICKET
  ['SSLSessionCacheTimeout', 'honoured'], // Node's sessionTimeout
  ['SSLCompression', 'honoured'], // off is what Node does; on refused
  ['SSLUseStapling', 'honoured'], // OCSP stapling from the responder in the certificate (listeners/ocsp.ts)
  ['SSLOpenSSLConfCmd', 'honoured'], // commands with a Node option; others refused by name
  ['SSLOptions', 'notice'], // nothing observable; +FakeBasicAuth and +StdEnvVars/+ExportCertData outside <Directory> refused
  ['SSLSessionCache', 'notice'], // sizes Apache's session-ID cache only
  ['SSLRandomSeed', 'notice'],
  ['SSLPassPhraseDialog', 'notice'], // encrypted keys are refused anyway
  ['SSLStaplingCache', 'honoured'], // required with SSLUseStapling on (answers kept in memory)
  ['SSLStaplingResponderTimeout', 'honoured'],
  ['SSLStaplingReturnResponderErrors', 'honoured'],
  ['SSLStaplingStandardCacheTimeout', 'honoured'],
  ['SSLStaplingErrorCacheTimeout', 'honoured'],
  ['SSLStaplingFakeTryLater', 'honoured'],
  ['SSLStaplingResponseTimeSkew', 'honoured'],
  ['SSLStaplingResponseMaxAge', 'honoured'],
  ['SSLStaplingForceURL', 'honoured'],
  ['SSLCryptoDevice', 'honoured'], // builtin only
  ['NameVirtualHost', 'notice'], // no effect since 2.4
  ['Protocols', 'honoured'],
  ['ProtocolsHonorOrder', 'honoured'],
  ['H2WebSockets', 'honoured'],
  ['H2Direct', 'notice'],
  ['H2Upgrade', 'notice'],
  ['H2CopyFiles', 'notice'],
  ['H2EarlyHints', 'notice'],
  ['H2MaxDataFrameLen', 'notice'],
  ['H2MaxSessionStreams', 'honoured'],
  ['H2MaxWorkerIdleSeconds', 'notice'],
  ['H2MaxWorkers', 'notice'],
  ['H2MinWorkers', 'notice'],
  ['H2ModernTLSOnly', 'notice'],
  ['H2OutputBuffering', 'notice'],
  ['H2Padding', 'notice'],
  ['H2Push', 'notice'],
  ['H2PushDiarySize', 'notice'],
  ['H2PushPriority', 'notice'],
  ['H2PushResource', 'notice'],
  ['H2SerializeHeaders', 'notice'],
  ['H2StreamMaxMemSize', 'notice'],
  ['H2StreamTimeout', 'notice'],
  ['H2TLSCoolDownSecs', 'notice'],
  ['H2TLSWarmUpSize', 'notice'],
  ['H2WindowSize', 'notice'],
  ['ServerAdmin', 'notice'],
  ['User', 'notice'],
  ['Group', 'notice'],
  ['PidFile', 'honoured'],
  ['DefaultRuntimeDir', 'notice'],
  ['Mutex', 'notice'],
  ['ScoreBoardFile', 'notice'],
  ['CoreDumpDirectory', 'notice'],
  ['StartServers', 'notice'],
  ['MinSpareServers', 'notice'],
  ['MaxSpareServers', 'notice'],
  ['MinSpareThreads', 'notice'],
  ['MaxSpareThreads', 'notice'],
  ['ThreadsPerChild', 'notice'],
  ['MaxRequestWorkers', 'notice'],
  ['MaxClients', 'notice'],
  ['MaxConnectionsPerChild', 'notice'],
  ['MaxRequestsPerChild', 'notice'],
  ['ThreadLimit', 'notice'],
  ['ServerLimit', 'notice'],
  ['ThreadStackSize', 'notice'],
  ['AsyncRequestWorkerFactor', 'notice'],
  ['ListenBacklog', 'notice'],
  ['GracefulShutdownTimeout', 'honoured'],
  ['AcceptFilter', 'notice'],
  ['EnableSendfile', 'notice'],
  ['EnableMMAP', 'notice'],
  ['HostnameLookups', 'notice'],
  ['UseCanonicalName', 'honoured'],
  ['ServerTokens', 'notice'],
  ['ServerSignature', 'notice'],
  ['KeepAlive', 'honoured'],
  ['KeepAliveTimeout', 'notice'],
  ['MaxKeepAliveRequests', 'notice'],
  ['AllowEncodedSlashes', 'honoured'],
  ['LimitRequestBody', 'honoured'],
  ['LimitRequestFields', 'honoured'],
  ['LimitRequestFieldSize', 'honoured'],
  ['LimitRequestLine', 'honoured'],
  ['RequestReadTimeout', 'honoured'],
  ['FileETag', 'notice'],
  ['ContentDigest', 'notice'],
  ['AcceptPathInfo', 'notice'],
  ['LoadModule', 'notice'],
  ['LoadFile', 'notice'],
  ['ErrorLog', 'honoured'],
  ['ErrorLogFormat', 'notice'],
  ['CustomLog', 'honoured'],
  ['LogLevel', 'honoured'],
  ['LogFormat', 'honoured'],
  ['TransferLog', 'honoured'],
  ['DocumentRoot', 'honoured'], // static files where a path is not proxied (static-files.ts)
  ['DirectoryIndex', 'honoured'],
  ['DirectorySlash', 'honoured'],
  ['Options', 'honoured'], // FollowSymLinks, -Indexes, None; +Indexes/+ExecCGI/… refused
  ['AllowOverride', 'notice'],
  ['AllowOverrideList', 'notice'],
  ['AccessFileName', 'notice'],
  ['AddType', 'notice'],
  ['AddDefaultCharset', 'honoured'],
  ['AddCharset', 'notice'],
  ['AddEncoding', 'notice'],
  ['AddLanguage', 'notice'],
  ['AddHandler', 'notice'],
  ['AddOutputFilter', 'notice'],
  ['AddInputFilter', 'notice'],
  ['AddOutputFilterByType', 'refused'],
  ['SetOutputFilter', 'refused'],
  ['SetInputFilter', 'refused'],
  ['DefaultType', 'notice'],
  ['TypesConfig', 'notice'],
  ['MIMEMagicFile', 'notice'],
  ['LanguagePriority', 'notice'],
  ['ForceLanguagePriority', 'notice'],
  ['IndexOptions', 'notice'],
  ['IndexIgnore', 'notice'],
  ['IndexOrderDefault', 'notice'],
  ['AddIcon', 'notice'],
  ['AddIconByType', 'notice'],
  ['AddIconByEncoding', 'notice'],
  ['AddAlt', 'notice'],
  ['AddAltByType', 'notice'],
  ['AddAltByEncoding', 'notice'],
  ['AddDescription', 'notice'],
  ['DefaultIcon', 'notice'],
  ['ReadmeName', 'notice'],
  ['HeaderName', 'notice'],
  ['RemoveHandler', 'notice'],
  ['RemoveType', 'notice'],
  ['SetHandler', 'notice'],
  ['ErrorDocument', 'refused'],
  ['Alias', 'honoured'],
  ['AliasMatch', 'honoured'],
  ['ScriptAlias', 'refused'],
  ['ScriptAliasMatch', 'refused'],
  ['Require', 'honoured'],
  ['Order', 'honoured'],
  ['Allow', 'honoured'],
  ['Deny', 'honoured'],
  ['Satisfy', 'honoured'],
  ['AuthType', 'honoured'],
  ['AuthName', 'honoured'],
  ['AuthUserFile', 'honoured'],
  ['AuthGroupFile', 'honoured'],
  ['AuthBasicProvider', 'honoured'],
  ['SetEnv', 'honoured'],
  ['UnsetEnv', 'honoured'],
  ['SetEnvIf', 'honoured'],
  ['SetEnvIfNoCase', 'honoured'],
  ['BrowserMatch', 'honoured'],
  ['BrowserMatchNoCase', 'honoured'],
  ['AuthMerging', 'honoured'],
  ['AuthzSendForbiddenOnFailure', 'honoured'],
  ['SetEnvIfExpr', 'refused'],
  ['AuthDigestProvider', 'refused'],
  ['AuthDBMUserFile', 'refused'],
  ['AuthDBMGroupFile', 'refused'],
  ['AuthzDBMType', 'refused'],
  ['AuthDBMType', 'refused'],
  ['AuthBasicFake', 'refused'],
  ['AuthBasicUseDigestAlgorithm', 'refused'],
  ['AuthBasicAuthoritative', 'refused'],
  ['AuthzUserAuthoritative', 'refused'],
  ['AuthzGroupFileAuthoritative', 'refused'],
  ['AuthzProviderAlias', 'refused'],
  ['AuthnProviderAlias', 'refused'],
  ['AuthFormProvider', 'refused'],
  ['AuthLDAPURL', 'refused'],
  ['AuthLDAPBindDN', 'refused'],
  ['AuthLDAPBindPassword', 'refused'],
  ['OIDCProviderMetadataURL', 'refused'],
  ['OIDCRedirectURI', 'refused'],
  ['OIDCClientID', 'refused'],
  ['OIDCClientSecret', 'refused'],
  ['OIDCCryptoPassphrase', 'refused'],
  ['PassEnv', 'refused'],
  ['ExtendedStatus', 'notice'],
  ['ExpiresActive', 'honoured'],
  ['ExpiresDefault', 'notice'],
  ['ExpiresByType', 'notice'],
  ['DeflateCompressionLevel', 'notice'],
  ['ProxyStatus', 'notice'],
  ['ProxyIOBufferSize', 'notice'],
  ['ProxyReceiveBufferSize', 'notice'],
  ['<IfModule>', 'honoured'],
  ['<IfDefine>', 'honoured'],
  ['<IfVersion>', 'honoured'],
  ['<Directory>', 'honoured'], // read where files are served, else skipped with a notice
  ['<DirectoryMatch>', 'honoured'],
  ['<Files>', 'notice'],
  ['<FilesMatch>', 'notice'],
  ['<VirtualHost>', 'honoured'],
  ['<Limit>', 'refused'],
  ['<LimitExcept>', 'refused'],
  ['<RequireAll>', 'honoured'],
  ['<RequireAny>', 'honoured'],
  ['<RequireNone>', 'honoured'],
  ['<Location>', 'honoured'],
  ['<LocationMatch>', 'honoured'],
  ['<Proxy>', 'honoured'],
  ['<ProxyMatch>', 'honoured'],
];

test('every known name has the group decided for it, and no name is left undecided', () => {
  const actual = directiveGroups();
  const expected = new Map(EXPECTED);
  assert.equal(expected.size, EXPECTED.length, 'a name is listed twice');
  const missing = [...actual.keys()].filter((n) => !expected.has(n));
  assert.deepEqual(missing, [], `names without a decision in this table: ${missing.join(', ')}`);
  const gone = [...expected.keys()].filter((n) => !actual.has(n));
  assert.deepEqual(gone, [], `names listed here that wsgate no longer knows: ${gone.join(', ')}`);
  for (const [name, group] of expected) assert.equal(actual.get(name), group, name);
});

test('a noticed name loads with one notice; a refused one is a FILE:LINE error', () => {
  for (const [name, group] of EXPECTED) {
    if (name.startsWith('<') || (group !== 'notice' && group !== 'refused')) continue;
    // SetHandler is noticed only where every path is proxied.
    const proxied = name === 'SetHandler' ? 'ProxyPass / ws://h/' : '';
    // A value the directive takes where `x` is not one (Apache refuses those too).
    const value = name === 'SSLOptions' ? '+StrictRequire' : 'x';
    const text = lines('Listen 0', `${name} ${value}`, proxied);
    if (group === 'notice') {
      const { config } = load({ 'wsgate.conf': text });
      assert.equal(
        config.notices.filter((n) => n.includes(`: ${name} is ignored: `) || n.includes(`: ${name} is not implemented: `)).length,
        1,
        name,
      );
    } else {
      expectError({ 'wsgate.conf': text }, { line: 2, message: new RegExp(`^.*:2: ${name}`) });
    }
  }
});

test('refused sections are FILE:LINE errors; noticed ones are skipped with a notice', () => {
  for (const [name, group] of EXPECTED) {
    if (!name.startsWith('<')) continue;
    const bare = name.slice(1, -1);
    const text = lines('Listen 0', `<${bare} /x>`, `</${bare}>`);
    if (group === 'refused') expectError({ 'wsgate.conf': text }, { line: 2, message: new RegExp(`<${bare}>`) });
    else if (group === 'notice')
      assert.ok(
        load({ 'wsgate.conf': text }).config.notices.some((n) => n.includes(`<${bare}> sections are skipped`)),
        name,
      );
  }
});

test('SetHandler for a handler wsgate does not run is an error where a path would be served locally; DocumentRoot serves files there', () => {
  for (const proxies of [['ProxyPass /ws/ ws://h/'], ['ProxyPass /static !', 'ProxyPass / ws://h/']]) {
    const { config } = load({ 'wsgate.conf': lines('Listen 0', 'DocumentRoot /var/www/html', ...proxies) });
    assert.equal(config.mainServer.files?.documentRoot, '/var/www/html');
  }
  expectError(
    {
      'wsgate.conf': lines(
        'Listen 0',
        '<VirtualHost *:0>',
        '<Location /server-info>',
        'SetHandler server-info',
        '</Location>',
        'ProxyPass /ws/ ws://h/',
        '</VirtualHost>',
      ),
    },
    { line: 4, message: /SetHandler: wsgate runs no such handler \(it runs: health, metrics, status, server-status, balancer-manager\)/ },
  );
  expectError(
    { 'wsgate.conf': lines('Listen 0', 'SetHandler "proxy:fcgi://127.0.0.1:9000"', 'ProxyPass / ws://h/') },
    { line: 2, message: /proxy the path with ProxyPass/ },
  );
  // Debian's default-ssl.conf shape: DocumentRoot in a vhost that proxies everything.
  const { config } = load({
    'wsgate.conf': lines('Listen 0', '<VirtualHost *:0>', 'DocumentRoot /var/www/html', 'ProxyPass / ws://h/', '</VirtualHost>'),
  });
  assert.ok(config.notices.some((n) => /DocumentRoot is ignored: every path it could apply to is proxied/.test(n)));
  assert.equal(config.virtualHosts[0]!.files, undefined);
});

test('value-dependent names: the value that is wsgate behaviour is honoured, others refused', () => {
  for (const [name, ok, bad] of [
    ['KeepAlive', 'On', 'Off'],
    ['AllowEncodedSlashes', 'Off', 'NoDecode'],
    ['AddDefaultCharset', 'Off', 'UTF-8'],
    ['ExpiresActive', 'Off', 'On'],
  ] as const) {
    assert.deepEqual(load({ 'wsgate.conf': lines('Listen 0', `${name} ${ok}`) }).config.notices, [], name);
    expectError({ 'wsgate.conf': lines('Listen 0', `${name} ${bad}`) }, { line: 2, message: new RegExp(`${name} ${bad}`) });
  }
});

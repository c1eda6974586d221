// The directive-table entries of access control, SetEnvIf and SetEnv (handlers in access.ts).

import type { ContextKind } from './drafts';
import type { DirectiveSpec, SectionSpec } from './directives';
import { ConfigError } from './errors';
import { refused } from './groups';
import * as a from './access';

const DIR: readonly ContextKind[] = ['location', 'locationmatch', 'proxy', 'directory'];
const ALL: readonly ContextKind[] = ['server', 'vhost', 'location', 'locationmatch', 'proxy', 'directory'];

function spec(
  name: string,
  contexts: readonly ContextKind[],
  minArgs: number,
  maxArgs: number,
  handle: DirectiveSpec['handle'],
): DirectiveSpec {
  return { name, contexts, minArgs, maxArgs, handle };
}

export function accessSpecs(): DirectiveSpec[] {
  return [
    spec('Require', DIR, 1, Infinity, a.requireDirective),
    spec('AuthMerging', DIR, 1, 1, a.authMerging),
    spec('AuthzSendForbiddenOnFailure', DIR, 1, 1, a.authzSendForbiddenOnFailure),
    spec('Order', DIR, 1, 1, a.orderDirective),
    spec('Allow', DIR, 2, Infinity, a.allowDeny),
    spec('Deny', DIR, 2, Infinity, a.allowDeny),
    spec('Satisfy', DIR, 1, 1, a.satisfy),
    spec('AuthType', DIR, 1, 1, a.authType),
    spec('AuthName', DIR, 1, 1, a.authName),
    spec('AuthBasicProvider', DIR, 1, Infinity, a.authBasicProvider),
    spec('AuthUserFile', DIR, 1, 1, a.authUserFile),
    spec('AuthGroupFile', DIR, 1, 1, a.authGroupFile),
    spec('SetEnvIf', ALL, 3, Infinity, a.setEnvIf),
    spec('SetEnvIfNoCase', ALL, 3, Infinity, a.setEnvIf),
    spec('BrowserMatch', ALL, 2, Infinity, a.setEnvIf),
    spec('BrowserMatchNoCase', ALL, 2, Infinity, a.setEnvIf),
    spec('SetEnv', ALL, 1, 2, a.setEnv),
    spec('UnsetEnv', ALL, 1, Infinity, a.unsetEnv),
    refused('SetEnvIfExpr', 'expressions are not supported: use SetEnvIf with an attribute and a regular expression'),
    refused('AuthDigestProvider', 'AuthType Digest is not supported: use AuthType Basic with AuthUserFile'),
    refused('AuthDBMUserFile', 'DBM password files are not supported: use AuthUserFile (htpasswd)'),
    refused('AuthDBMGroupFile', 'DBM group files are not supported: use AuthGroupFile'),
    refused('AuthzDBMType', 'DBM files are not supported: use AuthUserFile/AuthGroupFile'),
    refused('AuthDBMType', 'DBM files are not supported: use AuthUserFile/AuthGroupFile'),
    refused('AuthBasicFake', 'not supported (wsgate does not rewrite Authorization headers)'),
    refused('AuthBasicUseDigestAlgorithm', 'not supported'),
    refused('AuthBasicAuthoritative', 'not supported: with the file provider alone an unknown user is refused (as On)'),
    refused('AuthzUserAuthoritative', 'an Apache 2.2 directive: remove it'),
    refused('AuthzGroupFileAuthoritative', 'an Apache 2.2 directive: remove it'),
    refused('AuthzProviderAlias', 'provider aliases are not supported'),
    refused('AuthnProviderAlias', 'provider aliases are not supported'),
    refused('AuthFormProvider', 'form authentication is not supported: use AuthType Basic'),
    refused('AuthLDAPURL', 'LDAP is not supported: use AuthUserFile/AuthGroupFile'),
    refused('AuthLDAPBindDN', 'LDAP is not supported: use AuthUserFile/AuthGroupFile'),
    refused('AuthLDAPBindPassword', 'LDAP is not supported: use AuthUserFile/AuthGroupFile'),
    refused(
      'OIDCProviderMetadataURL',
      'OpenID Connect (mod_auth_openidc) is not supported: put an authenticating proxy in front, or use AuthType Basic',
    ),
    refused(
      'OIDCRedirectURI',
      'OpenID Connect (mod_auth_openidc) is not supported: put an authenticating proxy in front, or use AuthType Basic',
    ),
    refused(
      'OIDCClientID',
      'OpenID Connect (mod_auth_openidc) is not supported: put an authenticating proxy in front, or use AuthType Basic',
    ),
    refused(
      'OIDCClientSecret',
      'OpenID Connect (mod_auth_openidc) is not supported: put an authenticating proxy in front, or use AuthType Basic',
    ),
    refused(
      'OIDCCryptoPassphrase',
      'OpenID Connect (mod_auth_openidc) is not supported: put an authenticating proxy in front, or use AuthType Basic',
    ),
  ];
}

export function accessSections(): SectionSpec[] {
  const require = (name: string, kind: 'all' | 'any' | 'none'): SectionSpec => ({
    name,
    contexts: DIR,
    minArgs: 0,
    maxArgs: 0,
    open: (node, ctx, walk) => a.openRequireSection(node, ctx, walk, kind),
  });
  const limit = (name: string): SectionSpec => ({
    name,
    group: 'refused',
    contexts: 'any',
    minArgs: 0,
    maxArgs: Infinity,
    open: (node) => {
      throw ConfigError.at(
        node.source,
        `<${name}> is not supported: limit by method with "Require method …" inside <RequireAll>/<RequireAny> (e.g. <RequireAny> Require method GET HEAD; Require valid-user </RequireAny>)`,
      );
    },
  });
  return [require('RequireAll', 'all'), require('RequireAny', 'any'), require('RequireNone', 'none'), limit('Limit'), limit('LimitExcept')];
}

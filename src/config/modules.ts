// The Apache modules wsgate implements, for <IfModule>. Apache takes `<IfModule name>` when the
// module is loaded, named either by its identifier (`ssl_module`) or by the source file it was
// built from (`mod_ssl.c`), compared exactly. A module counts as loaded here when wsgate does its
// work (all of it, or the part a reverse proxy uses with the rest refused at its line), or when a
// `LoadModule` line earlier in the config names it: a config that loads a module expects its
// sections to be read, and a directive wsgate does not know in there is then an error at its line.

/** Identifiers of the modules built into wsgate; each also answers to `mod_<name>.c`. */
export const BUILT_IN_MODULES: readonly string[] = [
  'core_module', // core.c (checked below)
  'http_module', // http_core.c
  'so_module', // mod_so.c: LoadModule is accepted
  'proxy_module',
  'proxy_http_module',
  'proxy_wstunnel_module',
  'proxy_balancer_module',
  'proxy_hcheck_module',
  'lbmethod_byrequests_module',
  'lbmethod_bytraffic_module',
  'lbmethod_bybusyness_module',
  'ssl_module',
  'http2_module',
  'headers_module',
  'rewrite_module',
  'alias_module', // Redirect*; Alias and ScriptAlias are refused at their line
  'authz_core_module',
  'authz_host_module',
  'authz_user_module',
  'authz_groupfile_module',
  'authn_core_module',
  'authn_file_module',
  'auth_basic_module',
  'access_compat_module',
  'setenvif_module',
  'env_module',
  'reqtimeout_module',
  'version_module',
];

/** The spellings `<IfModule>` accepts for a module identifier: `x_module` and `mod_x.c`. */
export function moduleSpellings(identifier: string): string[] {
  if (identifier === 'core_module') return [identifier, 'core.c'];
  if (identifier === 'http_module') return [identifier, 'http_core.c'];
  const m = /^(.+)_module$/.exec(identifier);
  return m === null ? [identifier] : [identifier, `mod_${m[1]}.c`];
}

/** The names `<IfModule>` takes as loaded before any LoadModule line. */
export function builtInModuleNames(): Set<string> {
  return new Set(BUILT_IN_MODULES.flatMap(moduleSpellings));
}

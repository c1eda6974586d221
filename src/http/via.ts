// ProxyVia: the element this proxy adds to `Via` (RFC 9110 §7.6.3), on the request to the backend
// and on the answer to the client, as mod_proxy_http writes it: the client's protocol version,
// the server's name (its ServerName, not the request's Host, as Apache does even with
// UseCanonicalName Off), `:port` unless it is the scheme's default, and with `Full` a comment
// naming the software.

import { hostname } from 'node:os';
import type { VirtualHost } from '../config/model';
import { frontHostPort } from './front-url';
import type { RequestHead } from './head';

/** The Via element for this request, or undefined when ProxyVia is Off or Block. */
export function viaElement(vhost: VirtualHost, req: RequestHead, secure: boolean, h2: boolean): string | undefined {
  const mode = vhost.settings.via;
  if (mode !== 'on' && mode !== 'full') return undefined;
  const name = vhost.frontName?.serverName ?? hostname().toLowerCase();
  const port = frontHostPort(vhost.frontName, req.host, secure).port;
  const portText = port === (secure ? 443 : 80) ? '' : `:${port}`;
  const version = h2 ? '2.0' : `1.${req.versionMinor}`;
  return `${version} ${name}${portText}${mode === 'full' ? ' (wsgate)' : ''}`;
}

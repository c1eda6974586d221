// mod_alias's redirects: Redirect, RedirectMatch, RedirectPermanent, RedirectTemp. Read as
// mod_alias reads them (an optional status word or number first; the one-URL form inside a
// <Location>); routing/redirect.ts answers them.

import type { Ctx, LocationDraft } from './drafts';
import { ConfigError } from './errors';
import type { RedirectRule, Redirects, RedirectSection } from './model';
import type { DirectiveNode } from './parser';
import { parseRegex } from './values';

export interface RedirectDraft {
  readonly rule: RedirectRule;
  /** The section it was written in (undefined: server level). */
  readonly section?: LocationDraft;
  /** The one-URL (or status-only) form of a section. */
  readonly whole: boolean;
}

const STATUS_WORDS: Record<string, number> = { permanent: 301, temp: 302, seeother: 303, gone: 410 };

const isRedirectStatus = (n: number): boolean => n >= 300 && n <= 399;

/** `Redirect`, `RedirectMatch` (regex), `RedirectPermanent`/`RedirectTemp` (fixed status, two arguments). */
export function redirectDirective(regex: boolean, fixed?: number) {
  return (node: DirectiveNode, ctx: Ctx): void => {
    const where = node.source;
    const [arg1, arg2, arg3] = node.args as [string, string | undefined, string | undefined];
    let status = fixed ?? 302;
    // 1: a redirect status was given; -1: another status (gone, 4xx, 5xx); 0: arg1 is not a status.
    let grok = 0;
    {
      const word = STATUS_WORDS[arg1.toLowerCase()];
      if (word !== undefined) {
        status = word;
        grok = word === 410 ? -1 : 1;
      } else if (/^\d/.test(arg1)) {
        status = parseInt(arg1, 10);
        if (!/^\d+$/.test(arg1) || status < 100 || status > 599) throw ConfigError.at(where, `${node.name}: bad status "${arg1}"`);
        grok = isRedirectStatus(status) ? 1 : -1;
      }
    }
    if (arg3 !== undefined && grok === 0) {
      throw ConfigError.at(
        where,
        `${node.name}: invalid first argument (of three): a status (permanent, temp, seeother, gone or a number) was expected`,
      );
    }
    const section = ctx.location;
    if (
      section !== undefined &&
      ((grok > 0 && arg2 !== undefined && arg3 === undefined) || (grok === 0 && arg2 === undefined) || (grok < 0 && arg2 === undefined))
    ) {
      // The one-URL form of a section: every request in it is redirected there.
      const url = grok === 0 ? arg1 : grok > 0 ? arg2 : undefined;
      if (url?.includes('%{')) {
        throw ConfigError.at(
          where,
          `${node.name}: an expression target (%{…}) is not supported; write the URL out, or use RewriteRule … [R]`,
        );
      }
      if (url !== undefined && !/^[A-Za-z0-9+.-]+:/.test(url) && !url.startsWith('/')) {
        throw ConfigError.at(where, `${node.name}: "${url}" is not a URL or an absolute path`);
      }
      const rule: RedirectRule = { match: { kind: 'all' }, status, ...(url !== undefined ? { url } : {}), source: where };
      ctx.server.redirects.push({ rule, section, whole: true });
      return;
    }
    let fake = arg2;
    let url = arg3;
    if (arg3 === undefined && grok === 0) {
      fake = arg1;
      url = arg2;
    }
    if (fake === undefined) throw ConfigError.at(where, `${node.name}: the URL-path to redirect is missing`);
    if (isRedirectStatus(status)) {
      if (url === undefined) throw ConfigError.at(where, `${node.name}: the URL to redirect to is missing`);
      if (!regex && !/^[A-Za-z0-9+.-]+:/.test(url) && !url.startsWith('/')) {
        throw ConfigError.at(where, `${node.name}: "${url}" is not a URL or an absolute path`);
      }
    } else if (url !== undefined) {
      throw ConfigError.at(where, `${node.name}: a URL is not valid with status ${status}`);
    }
    const match: RedirectRule['match'] = regex
      ? { kind: 'regex', regex: parseRegex(fake, node.name, where) }
      : { kind: 'prefix', prefix: fake };
    if (!regex && !fake.startsWith('/')) throw ConfigError.at(where, `${node.name}: the URL-path "${fake}" must start with "/"`);
    const rule: RedirectRule = { match, status, ...(url !== undefined ? { url } : {}), source: where };
    ctx.server.redirects.push({ rule, ...(section !== undefined ? { section } : {}), whole: false });
  };
}

export interface RedirectServer {
  readonly redirects: readonly RedirectDraft[];
}

/** A server's redirects: server-level lines (its own, then the main server's), and the sections (main server's first). */
export function assembleRedirects(own: RedirectServer, main: RedirectServer | undefined): Redirects | undefined {
  const drafts = [...(main?.redirects ?? []), ...own.redirects];
  if (drafts.length === 0) return undefined;
  const server = [...own.redirects, ...(main?.redirects ?? [])].filter((d) => d.section === undefined).map((d) => d.rule);
  const bySection = new Map<LocationDraft, { section: LocationDraft; whole?: RedirectRule; rules: RedirectRule[] }>();
  for (const d of drafts) {
    if (d.section === undefined) continue;
    let s = bySection.get(d.section);
    if (s === undefined) {
      s = { section: d.section, rules: [] };
      bySection.set(d.section, s);
    }
    // A later one-URL line in the same section replaces an earlier one.
    if (d.whole) s.whole = d.rule;
    else s.rules.push(d.rule);
  }
  const sections: RedirectSection[] = [...bySection.values()].map((s) => ({
    section: s.section.match,
    ...(s.whole !== undefined ? { whole: s.whole } : {}),
    rules: s.rules,
  }));
  return { server, sections };
}

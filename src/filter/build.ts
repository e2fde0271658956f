/*
 * filter/build.ts — the filters a configuration declares, as a FilterOpener
 * for the SMTP server: a listener's `filter NAME` opens that filter (a
 * chain opens its members in order) for each session.
 */
import type { Config } from '../config/model.js';
import type { FilterDecl } from '../config/filter-options.js';
import { FilterChain } from './chain.js';
import type { FilterLog, FilterOpener, FilterSession } from './filter.js';
import { MilterSession } from './milter/session.js';

/** What kinds other than milter and chain need (filter processes, built-in filters): given by the daemon. */
export interface FilterKinds {
  readonly proc?: (decl: Extract<FilterDecl, { kind: 'proc' }>, hostname: string) => FilterSession;
  readonly builtin?: (decl: Extract<FilterDecl, { kind: 'builtin' }>) => FilterSession;
}

export function filterOpener(config: Pick<Config, 'filters'>, log: FilterLog, kinds: FilterKinds = {}): FilterOpener | undefined {
  const filters = config.filters;
  if (filters === undefined || filters.size === 0) return undefined;
  const make = (name: string, hostname: string): FilterSession => {
    const d = filters.get(name);
    if (d === undefined) throw new Error(`no filter named ${name}`);
    switch (d.kind) {
      case 'milter':
        return new MilterSession(d, hostname, log);
      case 'chain':
        return new FilterChain(d.members.map((m) => make(m, hostname)));
      case 'proc':
        if (!kinds.proc) throw new Error(`filter ${name}: filter processes are not available here`);
        return kinds.proc(d, hostname);
      case 'builtin':
        if (!kinds.builtin) throw new Error(`filter ${name}: built-in filters are not available here`);
        return kinds.builtin(d);
    }
  };
  return {
    open(name, hostname) {
      return name === undefined ? undefined : make(name, hostname);
    },
  };
}

/*
 * policy/obtuse/dns.ts — the DNS questions of NS= and RBL. patterns,
 * answered by a node:dns Resolver (pass dns/resolver.ts's `raw` so the
 * configured servers and timeout apply).
 *
 * NXDOMAIN and "no data" are answers; every other error (timeout,
 * SERVFAIL, refused) is thrown so the rule check becomes a 451.
 */
import type { Resolver } from 'node:dns/promises';
import type { ObtuseDns } from './match.js';

const NO_NAME = new Set(['ENOTFOUND']);
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND']);

function code(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
}

/** ObtuseDns over a node:dns/promises Resolver. */
export function obtuseDns(r: Pick<Resolver, 'resolveNs' | 'resolveMx' | 'resolve4' | 'resolve6'>): ObtuseDns {
  return {
    async servers(name) {
      const [ns, mx] = await Promise.allSettled([r.resolveNs(name), r.resolveMx(name)]);
      const out: string[] = [];
      let missing = 0;
      for (const res of [ns, mx]) {
        if (res.status === 'fulfilled') {
          for (const x of res.value) out.push(typeof x === 'string' ? x : x.exchange);
        } else if (NO_NAME.has(code(res.reason))) {
          missing++;
        } else if (code(res.reason) !== 'ENODATA') {
          throw res.reason;
        }
      }
      return missing === 2 ? null : out;
    },
    async addresses(name) {
      const [a, aaaa] = await Promise.allSettled([r.resolve4(name), r.resolve6(name)]);
      const out: string[] = [];
      for (const res of [a, aaaa]) {
        if (res.status === 'fulfilled') out.push(...res.value);
        else if (!NO_DATA.has(code(res.reason))) throw res.reason;
      }
      return out;
    },
  };
}

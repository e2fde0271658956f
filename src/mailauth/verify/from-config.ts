/*
 * mailauth/verify/from-config.ts — the inbound verifier a configuration
 * asks for (`mailauth verify …`), or none.
 */
import type { Config } from '../../config/model.js';
import type { Resolver } from '../../dns/resolver.js';
import type { LocalNames } from '../../rules/localnames.js';
import { cachingResolver } from '../dns.js';
import type { MailAuthResolver } from '../lib.js';
import { DEFAULT_HOLD_LIMIT, InboundVerifier } from './verifier.js';
import { VerifyPool } from './verify-pool.js';

export function inboundVerifier(config: Config, resolver: Resolver, local: Pick<LocalNames, 'isLocalAddress'>): InboundVerifier | undefined {
  const opts = config.mailauth?.verify;
  if (opts === undefined) return undefined;
  // DKIM, ARC and DMARC in worker threads (verify-pool.ts; small messages on the event loop on a 1–2 core machine); SPF, which is DNS and little CPU, on the event loop.
  const dns = cachingResolver(resolver.lookups);
  const pool = poolFor(config, dns);
  return new InboundVerifier(opts, dns, config.hostname, (ip) => local.isLocalAddress(ip), DEFAULT_HOLD_LIMIT, (bits, ip) => pool.engine(bits, ip));
}

/** One pool for the process while the resolver settings stay the same (a reload makes a new verifier, not new workers). */
let shared: { readonly key: string; readonly pool: VerifyPool } | undefined;

function poolFor(config: Config, dns: MailAuthResolver): VerifyPool {
  const key = JSON.stringify(config.resolver);
  if (shared?.key !== key) shared = { key, pool: new VerifyPool(config.resolver, dns) };
  return shared.pool;
}

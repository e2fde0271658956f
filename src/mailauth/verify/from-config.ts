/*
 * mailauth/verify/from-config.ts — the inbound verifier a configuration
 * asks for (`mailauth verify …`), or none.
 */
import type { Config } from '../../config/model.js';
import type { Resolver } from '../../dns/resolver.js';
import type { LocalNames } from '../../rules/localnames.js';
import { cachingResolver } from '../dns.js';
import { InboundVerifier } from './verifier.js';

export function inboundVerifier(config: Config, resolver: Resolver, local: Pick<LocalNames, 'isLocalAddress'>): InboundVerifier | undefined {
  const opts = config.mailauth?.verify;
  if (opts === undefined) return undefined;
  return new InboundVerifier(opts, cachingResolver(resolver.raw), config.hostname, (ip) => local.isLocalAddress(ip));
}

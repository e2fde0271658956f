/*
 * policy/zmailer/limits.ts — what a ZmailerConf means for the connection:
 * its limits and tarpit (policy/limits). The smtpd.conf `smtp` options it
 * overrides are merged into the configuration by config/zmailer/merge.ts.
 */
import { type ConnectionLimits, LIMIT_DEFAULTS, type TarpitSettings } from '../../config/limits.js';
import type { ZmailerConf } from '../../config/zmailer/params.js';

/** Connection limits with ZMailer's semantics: 450 replies, silent drops beyond 4× and +100. */
export function zmailerConnectionLimits(conf: ZmailerConf, exempt?: (ip: string) => boolean): ConnectionLimits {
  return {
    maxPerClient: conf.maxSameIpSource,
    maxTotal: conf.maxParallelConnections,
    silentDropFactor: LIMIT_DEFAULTS.silentDropFactor,
    silentDropExtra: LIMIT_DEFAULTS.silentDropExtra,
    refusalCode: 450,
    ...(exempt ? { exempt } : {}),
  };
}

export function zmailerTarpit(conf: ZmailerConf): TarpitSettings {
  return conf.tarpit;
}

/*
 * policy/zmailer/limits.ts — what a ZmailerConf means for the rest of
 * Postern: the connection limits and tarpit (policy/limits), and the
 * smtpd.conf `smtp` options it overrides.
 */
import { type ConnectionLimits, LIMIT_DEFAULTS, type TarpitSettings } from '../../config/limits.js';
import type { ZmailerConf, ZmailerExtension } from './params.js';

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

/** The `smtp` options (config/model.ts SmtpOptions) a ZMailer file sets; the lead merges them. */
export interface ZmailerSmtpOverrides {
  /** Bytes; 0 = no limit (SmtpOptions.maxMessageSize takes 0 as "none" only if the integrator says so). */
  readonly maxMessageSize: number;
  readonly maxRcpt: number;
  readonly maxUnknownCommands: number;
  readonly vrfy: boolean;
  readonly expn: boolean;
  readonly help: readonly string[];
  /** Names as in SmtpOptions.disabledExtensions. */
  readonly disabledExtensions: ReadonlySet<string>;
  /** Refuse EHLO (HELO only). */
  readonly ehlo: boolean;
  readonly multilineReplies: boolean;
  /** Free spool space below which MAIL is refused, bytes. */
  readonly minFreeSpace: number;
  readonly allowSourceRoute: boolean;
}

export function zmailerSmtpOverrides(conf: ZmailerConf): ZmailerSmtpOverrides {
  const names: Record<ZmailerExtension, string> = {
    '8BITMIME': '8BITMIME',
    CHUNKING: 'CHUNKING',
    DSN: 'DSN',
    ENHANCEDSTATUSCODES: 'ENHANCEDSTATUSCODES',
    ETRN: 'ETRN',
    PIPELINING: 'PIPELINING',
  };
  return {
    maxMessageSize: conf.maxSize,
    maxRcpt: conf.rcptLimitCount,
    maxUnknownCommands: conf.maxUnknownCommands,
    vrfy: conf.vrfy,
    expn: conf.expn,
    help: conf.help,
    disabledExtensions: new Set([...conf.disabledExtensions].map((e) => names[e])),
    ehlo: conf.ehlo,
    multilineReplies: conf.multilineReplies,
    minFreeSpace: conf.minAvailSpaceKb * 1024,
    allowSourceRoute: conf.allowSourceRoute,
  };
}

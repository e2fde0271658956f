/*
 * config/zmailer/merge.ts — the smtpd.conf `smtp` options smtpserver.conf's
 * PARAMs set.
 */
import type { ZmailerConf, ZmailerExtension } from './params.js';

/** The `smtp` options (config/model.ts SmtpOptions) a ZMailer file sets. */
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

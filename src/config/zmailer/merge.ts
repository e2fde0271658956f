/*
 * config/zmailer/merge.ts — what smtpserver.conf's PARAMs change in the
 * configuration, merged in once when the configuration is loaded
 * (config/policy-files.ts).
 *
 * Only the PARAMs the file gives override smtpd.conf, so smtpd.conf keeps
 * the rest: maxsize, RcptLimitCount, max-unknown-commands, VRFYcmd /
 * no-vrfycmd, EXPNcmd / no-expncmd, help, the No<EXTENSION> PARAMs (added
 * to smtpd.conf's disabled extensions), the AUTH PARAMs (smtpd.conf's
 * `smtp auth-*` options), min-availspace (`queue min-free-space`) and
 * smtp-auth (AUTH offered on listeners that have none). docs/policy.md
 * ("How the files are wired in") lists each PARAM's effect.
 */
import { FrozenSet } from '../freeze.js';
import type { Config, SmtpOptions } from '../model.js';
import { normalizeParamName, type ZmailerConf, type ZmailerExtension } from './params.js';

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

/**
 * The configuration with the PARAMs the file gives (not yet frozen: the
 * caller freezes the whole). `maxsize 0` (ZMailer: no limit) keeps
 * smtpd.conf's max-message-size: Postern always has a limit. Extensions
 * turned off in either file stay off.
 */
export function mergeZmailer(config: Config, conf: ZmailerConf): Config {
  const given = new Set(conf.given.map((g) => normalizeParamName(g.name)));
  const has = (...names: string[]): boolean => names.some((n) => given.has(normalizeParamName(n)));
  const o = zmailerSmtpOverrides(conf);
  const smtp: SmtpOptions = {
    ...config.smtp,
    ...(has('maxsize') && o.maxMessageSize > 0 ? { maxMessageSize: o.maxMessageSize } : {}),
    ...(has('RcptLimitCount') ? { maxRcpt: o.maxRcpt } : {}),
    ...(has('max-unknown-commands') ? { maxUnknownCommands: o.maxUnknownCommands } : {}),
    ...(has('VRFYcmd', 'no-vrfycmd') ? { vrfy: o.vrfy } : {}),
    ...(has('EXPNcmd', 'no-expncmd') ? { expn: o.expn } : {}),
    ...(o.help.length > 0 ? { help: o.help } : {}),
    disabledExtensions: new FrozenSet([...config.smtp.disabledExtensions, ...o.disabledExtensions]),
    // AUTH PARAMs map onto smtpd.conf's `smtp auth-*` options.
    ...(has('AUTH-LOGIN-also-without-TLS') ? { authWithoutTls: conf.auth.loginWithoutTls } : {}),
    ...(conf.auth.pipe !== undefined ? { authPipe: conf.auth.pipe } : {}),
    ...(conf.auth.failRate !== undefined ? { authFailRate: conf.auth.failRate } : {}),
    ...(conf.auth.usernamePrompt !== undefined ? { authUsernamePrompt: conf.auth.usernamePrompt } : {}),
    ...(conf.auth.passwordPrompt !== undefined ? { authPasswordPrompt: conf.auth.passwordPrompt } : {}),
  };
  const queue = has('min-availspace') ? { ...config.queue, minFreeSpace: o.minFreeSpace } : config.queue;
  // PARAM smtp-auth offers AUTH on every listener that has none (but port 25 with no-smtp-auth-on-25).
  const listeners = conf.auth.enabled
    ? config.listeners.map((l) => (l.auth === 'none' && !(conf.auth.noAuthOnPort25 && l.port === 25) ? { ...l, auth: 'optional' as const } : l))
    : config.listeners;
  return { ...config, listeners, smtp, queue };
}

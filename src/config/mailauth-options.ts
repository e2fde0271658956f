/*
 * config/mailauth-options.ts — what `mailauth …` in smtpd.conf asks for
 * (parsed by config/parse-mailauth.ts, used by src/mailauth/).
 */

/** What to do with a message whose DMARC check fails under a published p=quarantine. */
export type QuarantineAction = 'tag' | 'hold';

export interface MailAuthVerifyOptions {
  /** The authserv-id of Authentication-Results (RFC 8601 §2.5); default: the server's hostname. */
  readonly authservId?: string;
  /** Refuse SPF "fail" (-all) at MAIL FROM with 550 5.7.23 (temperror: 451 4.7.24). */
  readonly spfReject: boolean;
  /** Refuse, at end of data, a message failing DMARC whose domain publishes p=reject (550 5.7.1). */
  readonly dmarcReject: boolean;
  /** A message failing DMARC under p=quarantine: only tagged (Authentication-Results), or held in the queue. */
  readonly quarantine: QuarantineAction;
  /** RSA keys shorter than this fail DKIM (RFC 8301: 1024). */
  readonly minKeyBits: number;
}

export interface MailAuthSignOptions {
  /** Table of sender domain → "selector:keyfile[, selector:keyfile …]". */
  readonly keys: string;
}

/** `mailauth seal`: ARC-seal (RFC 8617) relayed mail Postern verified, with one key. */
export interface MailAuthSealOptions {
  readonly domain: string;
  readonly selector: string;
  readonly keyFile: string;
}

export interface MailAuthOptions {
  readonly verify?: MailAuthVerifyOptions;
  readonly sign?: MailAuthSignOptions;
  readonly seal?: MailAuthSealOptions;
}

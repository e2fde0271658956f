/*
 * config/parse-mailauth.ts — Postern's `mailauth` statement: checking
 * received mail (SPF, DKIM, DMARC, ARC) and DKIM-signing mail that leaves.
 *
 *   mailauth verify [authserv-id NAME] [spf-reject] [dmarc-reject]
 *                   [quarantine tag|hold] [min-key-bits N]
 *   mailauth sign <keys>
 *   mailauth seal domain DOMAIN selector SELECTOR key "FILE"
 *
 * `verify` checks every message received over SMTP from a client that is
 * neither authenticated nor `local` and writes one Authentication-Results
 * header; the options turn results into refusals (spf-reject at MAIL,
 * dmarc-reject at end of data) or a hold (quarantine hold). `sign` signs
 * mail that relay actions send, with the keys the table gives for the
 * From: domain. `seal` adds an ARC set (RFC 8617) to relayed mail that
 * carries this server's Authentication-Results (mail it verified, such as
 * mail forwarded by an alias). docs/mail-authentication.md describes them.
 */
import type { Cursor } from './cursor.js';
import type { MailAuthVerifyOptions, QuarantineAction } from './mailauth-options.js';
import { checkHostname, parseCount } from './values.js';

export function parseMailAuth(c: Cursor): void {
  const kw = c.next();
  if (c.acceptWord('sign')) {
    const keys = c.tableRef({ what: 'the DKIM signing keys (domain → selector:keyfile)' });
    c.end('mailauth sign');
    c.set('mailauthSign', { keys: keys.name }, kw.pos, '"mailauth sign"');
    return;
  }
  if (c.acceptWord('seal')) {
    c.expectWord('domain', '"mailauth seal" (mailauth seal domain DOMAIN selector SELECTOR key "FILE")');
    const domain = c.value('a domain after "domain"');
    const badDomain = checkHostname(domain.text);
    if (badDomain !== undefined) c.error(domain.pos, badDomain);
    c.expectWord('selector', '"mailauth seal domain DOMAIN"');
    const selector = c.value('a selector after "selector"');
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(selector.text)) c.error(selector.pos, `invalid selector "${selector.text}"`);
    c.expectWord('key', '"mailauth seal … selector SELECTOR"');
    const key = c.value('a key file after "key"');
    c.end('mailauth seal');
    c.set('mailauthSeal', { domain: domain.text.toLowerCase(), selector: selector.text, keyFile: c.path(key.text) }, kw.pos, '"mailauth seal"');
    return;
  }
  c.expectWord('verify', '"mailauth" (mailauth verify [options], mailauth sign <table>, or mailauth seal …)');
  let authservId: string | undefined;
  let spfReject = false;
  let dmarcReject = false;
  let quarantine: QuarantineAction = 'tag';
  let minKeyBits = 1024;
  while (!c.atEnd()) {
    if (c.acceptWord('spf-reject')) spfReject = true;
    else if (c.acceptWord('dmarc-reject')) dmarcReject = true;
    else if (c.acceptWord('authserv-id')) {
      const v = c.value('a name after "authserv-id"');
      const bad = checkHostname(v.text);
      if (bad !== undefined) c.error(v.pos, bad);
      authservId = v.text.toLowerCase();
    } else if (c.acceptWord('quarantine')) {
      const v = c.value('"tag" or "hold" after "quarantine"');
      if (v.text === 'tag' || v.text === 'hold') quarantine = v.text;
      else c.error(v.pos, `expected "tag" or "hold" after "quarantine", found "${v.text}"`);
    } else if (c.acceptWord('min-key-bits')) {
      const v = c.value('a number of bits after "min-key-bits"');
      const n = parseCount(v.text, 'min-key-bits', 512);
      if (n.ok) minKeyBits = n.value;
      else c.error(v.pos, n.error);
    } else {
      const t = c.next();
      c.fail(t.pos, `unknown "mailauth verify" option "${t.text}" (spf-reject, dmarc-reject, quarantine tag|hold, authserv-id NAME, min-key-bits N)`);
    }
  }
  c.end('mailauth verify');
  const opts: MailAuthVerifyOptions = { spfReject, dmarcReject, quarantine, minKeyBits, ...(authservId !== undefined ? { authservId } : {}) };
  c.set('mailauthVerify', opts, kw.pos, '"mailauth verify"');
}

/*
 * config/parse-mta.ts — the `mta` statements: outbound transport security
 * (docs/transport-security.md; the engine is transport-security/).
 *
 *   mta tls-policy <TABLE>                          per-destination TLS policy table
 *   mta mta-sts [cache "DIR"]                       MTA-STS (RFC 8461) on
 *   mta dane resolver "IP[:PORT]" [trusted]         DANE (RFC 7672) through this validating resolver
 *   mta tls-report from ADDRESS [organization "NAME"] [contact "TEXT"]
 *                                                   TLS-RPT (RFC 8460) daily reports
 *
 * Each may be given once. `dane resolver` without `trusted` is accepted
 * with a warning: the AD bit of an untrusted resolver is never believed,
 * so no TLSA record will ever be usable.
 */
import type { Cursor } from './cursor.js';
import { where } from './cursor.js';
import type { TransportSecurityConfig } from './model.js';
import type { TransportDraft } from './transport-options.js';
import { checkResolver } from './values.js';

const SUB = ['tls-policy', 'mta-sts', 'dane', 'tls-report'];

export function parseMta(c: Cursor, d: TransportDraft): void {
  c.next();
  const sub = c.next();
  if (sub.kind !== 'word' || !SUB.includes(sub.text)) c.unknown(sub, SUB, '"mta" option');
  const first = d.seen[sub.text];
  if (first !== undefined) c.error(sub.pos, `"mta ${sub.text}" is already given at ${where(first, sub.pos)}`);
  d.seen[sub.text] = sub.pos;
  switch (sub.text) {
    case 'tls-policy': {
      d.policyTable = c.tableRef({ what: '"mta tls-policy"' }).name;
      c.end('mta');
      return;
    }
    case 'mta-sts': {
      let cacheDir: string | undefined;
      if (c.acceptWord('cache')) cacheDir = c.path(c.value('a folder after "mta mta-sts cache"').text);
      c.end('mta');
      d.mtaSts = cacheDir !== undefined ? { cacheDir } : {};
      return;
    }
    case 'dane': {
      c.expectWord('resolver', '"mta dane"');
      const v = c.value('a DNS server ("IP" or "IP:PORT") after "mta dane resolver"');
      const bad = checkResolver(v.text);
      if (bad !== undefined) c.error(v.pos, bad);
      const trusted = c.acceptWord('trusted') !== undefined;
      c.end('mta');
      if (!trusted && bad === undefined) c.warning(v.pos, `the DNSSEC answers of resolver ${v.text} are not trusted (add "trusted" if it validates and the path to it is safe): DANE will never apply`);
      d.dane = { resolver: v.text, trusted };
      return;
    }
    default: {
      c.expectWord('from', '"mta tls-report"');
      const from = c.value('the sender address of the reports after "from"');
      if (!/^[^@\s]+@[^@\s]+$/.test(from.text)) c.error(from.pos, `invalid address "${from.text}" after "mta tls-report from"`);
      let organization: string | undefined;
      let contact: string | undefined;
      while (!c.atEnd()) {
        const t = c.next();
        if (t.kind === 'word' && t.text === 'organization') organization = c.value('a name after "organization"').text;
        else if (t.kind === 'word' && t.text === 'contact') contact = c.value('a contact after "contact"').text;
        else c.unknown(t, ['organization', 'contact'], '"mta tls-report" option');
      }
      c.end('mta');
      d.tlsReport = { from: from.text, ...(organization !== undefined ? { organization } : {}), ...(contact !== undefined ? { contact } : {}) };
    }
  }
}

export function buildTransport(d: TransportDraft): TransportSecurityConfig | undefined {
  const { seen: _seen, ...rest } = d;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

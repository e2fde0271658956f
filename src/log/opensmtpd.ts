/*
 * log/opensmtpd.ts — `log format opensmtpd`: the lines tools written for
 * OpenSMTPD parse (seed 002, OpenSMTPD's early log format):
 *
 *   MSGID: from=<user@our_domain.org>, size=471, nrcpts=1, proto=ESMTP, relay=localhost [IPv6:::1]
 *   EVPID: to=<someguy@somedomain.org>, delay=0, stat=Sent
 *
 * A message accepted (SMTP or sendmail) and a delivery's result are
 * written this way; every other line keeps Postern's `subsystem event k=v`
 * form. delay is in whole seconds; stat is `Sent` for a delivery, else
 * `Deferred: …` or `Bounced: …` with the reason (Postern's choice: the
 * early OpenSMTPD wrote only its error text there).
 */
/** The fields of an event (maillog.ts's LogFields; not imported, to keep the two files out of a cycle). */
type LogFields = Readonly<Record<string, string | number | boolean | undefined | null>>;

/** The OpenSMTPD line for an event, or undefined to keep Postern's. */
export function opensmtpdLine(subsystem: string, event: string, f: LogFields): string | undefined {
  if (event === 'message' && (subsystem === 'smtp' || subsystem === 'local')) {
    const relay = subsystem === 'local' ? 'localhost' : relayText(f['host'], f['address']);
    return `${f['msgid']}: from=${f['from']}, size=${f['size']}, nrcpts=${f['nrcpt']}, proto=${f['proto'] ?? 'LOCAL'}, relay=${relay}`;
  }
  const m = /^delivery (ok|tempfail|permfail)$/.exec(event);
  if (m && (subsystem === 'mda' || subsystem === 'mta')) {
    const stat = m[1] === 'ok' ? 'Sent' : `${m[1] === 'tempfail' ? 'Deferred' : 'Bounced'}: ${f['stat'] ?? ''}`;
    return `${f['evpid']}: to=${f['to']}, delay=${seconds(String(f['delay'] ?? '0s'))}, stat=${stat}`;
  }
  return undefined;
}

/** `host [address]`, with OpenSMTPD's `IPv6:` in front of an IPv6 address. */
function relayText(host: unknown, address: unknown): string {
  const a = typeof address === 'string' ? address : '';
  const shown = a.includes(':') ? `IPv6:${a}` : a;
  const h = typeof host === 'string' && host !== '' ? host : 'unknown';
  return a === '' ? h : `${h} [${shown}]`;
}

/** "2h5m45s" (time/duration.ts's form) → 7545. */
export function seconds(d: string): number {
  const units: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
  let n = 0;
  for (const [, v, u] of d.matchAll(/(\d+(?:\.\d+)?)(ms|[wdhms])/g)) n += u === 'ms' ? 0 : Number(v) * (units[u as string] ?? 0);
  return Math.floor(n);
}

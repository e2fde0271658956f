/*
 * transport-security/tlsrpt-report.ts — the TLS-RPT aggregate report
 * (RFC 8460): the `_smtp._tls.DOMAIN` TXT record (§3), the JSON report of
 * one day for one policy domain (§4, the schema of §4.4), its file name
 * (§5.1) and the mail that carries it (§5.3). Pure.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { PolicyCounts } from './tlsrpt-store.js';

/** The rua URIs of the one "v=TLSRPTv1" record, or why there are none. */
export function parseTlsRptRecord(txts: readonly (readonly string[])[]): { readonly rua: readonly string[] } | { readonly none: string } {
  const records = txts.map((c) => c.join('')).filter((t) => /^v=TLSRPTv1(;|\s|$)/.test(t));
  if (records.length === 0) return { none: 'no v=TLSRPTv1 record' };
  if (records.length > 1) return { none: 'more than one v=TLSRPTv1 record' };
  const rua: string[] = [];
  for (const f of (records[0] as string).split(';').slice(1)) {
    const eq = f.indexOf('=');
    if (eq < 0) continue;
    if (f.slice(0, eq).trim() !== 'rua') continue;
    for (const u of f.slice(eq + 1).split(',')) {
      const uri = u.trim();
      if (/^mailto:[^@\s]+@[^@\s]+$/i.test(uri) || /^https:\/\/\S+$/i.test(uri)) rua.push(uri);
    }
  }
  if (rua.length === 0) return { none: 'the v=TLSRPTv1 record has no usable rua (mailto: or https:)' };
  return { rua };
}

export interface ReportMeta {
  readonly organization: string;
  readonly contact: string;
  /** The reporting host (TLS-Report-Submitter; the file name's "receiver" part is ours, §5.1). */
  readonly submitter: string;
  readonly day: string;
  readonly reportId?: string;
}

/** The JSON report (§4.4) of one day's counts for one policy domain. */
export function buildReport(domain: string, counts: readonly PolicyCounts[], m: ReportMeta): Record<string, unknown> {
  return {
    'organization-name': m.organization,
    'date-range': { 'start-datetime': `${m.day}T00:00:00Z`, 'end-datetime': `${m.day}T23:59:59Z` },
    'contact-info': m.contact,
    'report-id': m.reportId ?? `${m.day}T00:00:00Z_${domain}_${randomBytes(6).toString('hex')}`,
    policies: counts.map((c) => ({
      policy: {
        'policy-type': c.policy.type,
        ...(c.policy.strings.length > 0 ? { 'policy-string': [...c.policy.strings] } : {}),
        'policy-domain': domain,
        ...(c.policy.mxHost.length > 0 ? { 'mx-host': [...c.policy.mxHost] } : {}),
      },
      summary: { 'total-successful-session-count': c.success, 'total-failure-session-count': c.failure },
      ...(c.failures.length > 0
        ? {
            'failure-details': c.failures.map((f) => ({
              'result-type': f.resultType,
              ...(f.sendingIp !== undefined ? { 'sending-mta-ip': f.sendingIp } : {}),
              ...(f.receivingMx !== undefined ? { 'receiving-mx-hostname': f.receivingMx } : {}),
              ...(f.receivingIp !== undefined ? { 'receiving-ip': f.receivingIp } : {}),
              'failed-session-count': f.count,
              ...(f.additional !== undefined ? { 'additional-information': f.additional } : {}),
            })),
          }
        : {}),
    })),
  };
}

/** §5.1: receiver!policy-domain!begin!end!unique-id.json.gz (times in seconds since the epoch). */
export function reportFileName(submitter: string, domain: string, day: string, unique: string): string {
  const begin = Date.parse(`${day}T00:00:00Z`) / 1000;
  return `${submitter}!${domain}!${begin}!${begin + 86_399}!${unique}.json.gz`;
}

export function gzipReport(report: Record<string, unknown>): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/** §5.3: the report as mail: multipart/report; report-type="tlsrpt", the gzipped JSON attached as application/tlsrpt+gzip. */
export function reportMail(o: { from: string; to: string; domain: string; submitter: string; reportId: string; fileName: string; gz: Buffer; messageId: string; date: Date }): Buffer {
  const boundary = `tlsrpt-${randomBytes(8).toString('hex')}`;
  const b64 = o.gz.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  const lines = [
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Date: ${o.date.toUTCString().replace('GMT', '+0000')}`,
    `Subject: Report Domain: ${o.domain} Submitter: ${o.submitter} Report-ID: <${o.reportId}>`,
    `Message-ID: <${o.messageId}>`,
    `TLS-Report-Domain: ${o.domain}`,
    `TLS-Report-Submitter: ${o.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report from ${o.submitter} for ${o.domain}.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${o.fileName}"`,
    '',
    b64.replace(/\r\n$/, ''),
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'ascii');
}

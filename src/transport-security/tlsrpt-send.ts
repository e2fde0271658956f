/*
 * transport-security/tlsrpt-send.ts — send each finished day's TLS-RPT
 * reports (RFC 8460 §5): for every policy domain with counts, look up its
 * `_smtp._tls` TXT record and deliver the gzipped report to each rua:
 * mailto: as mail through Postern's own queue (the `mail` function the
 * daemon gives, which enters by the front door), https: as a POST of
 * application/tlsrpt+gzip (§5.4; any 2xx is success). A domain without a
 * record is forgotten; a failure to send is tried again at the next run,
 * and a day older than three days is given up. One log line per domain.
 */
import https from 'node:https';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { TxtDns } from './mta-sts.js';
import { buildReport, gzipReport, parseTlsRptRecord, reportFileName, reportMail } from './tlsrpt-report.js';
import { dayOf, type TlsRptStore } from './tlsrpt-store.js';

export interface ReporterOptions {
  /** This node's counts, or a cluster's merged (tlsrpt-pg.ts). */
  readonly store: Pick<TlsRptStore, 'finishedDays' | 'day' | 'forget'>;
  readonly dns: TxtDns;
  readonly organization: string;
  readonly contact: string;
  readonly submitter: string;
  readonly from: string;
  /** Queue a mail (bytes) from `from` to one address; rejects when it could not be queued. */
  readonly mail: (to: string, bytes: Buffer) => Promise<void>;
  readonly log: (line: string) => void;
  readonly httpsCa?: readonly (string | Buffer)[];
  /** Addresses of an https: rua's host through Postern's resolver (else the system's). */
  readonly resolve?: (host: string) => Promise<string[]>;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

export async function sendReports(o: ReporterOptions): Promise<void> {
  const now = o.now ?? Date.now;
  const oldest = dayOf(now() - 3 * 86_400_000);
  for (const day of o.store.finishedDays()) {
    for (const [domain, counts] of o.store.day(day)) {
      if (day < oldest) {
        o.log(`tls-report domain=${domain} day=${day} result=dropped reason="not sent within three days"`);
        o.store.forget(day, domain);
        continue;
      }
      let txt: string[][];
      try {
        txt = await o.dns.resolveTxt(`_smtp._tls.${domain}`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (code === 'ENOTFOUND' || code === 'ENODATA') {
          o.store.forget(day, domain);
          continue;
        }
        o.log(`tls-report domain=${domain} day=${day} result=deferred reason="_smtp._tls lookup failed: ${code}"`);
        continue;
      }
      const rec = parseTlsRptRecord(txt);
      if ('none' in rec) {
        o.log(`tls-report domain=${domain} day=${day} result=skipped reason="${rec.none}"`);
        o.store.forget(day, domain);
        continue;
      }
      const unique = randomBytes(6).toString('hex');
      const reportId = `${day}T00:00:00Z_${domain}_${unique}@${o.submitter}`;
      const report = buildReport(domain, counts, { organization: o.organization, contact: o.contact, submitter: o.submitter, day, reportId });
      const gz = gzipReport(report);
      const fileName = reportFileName(o.submitter, domain, day, unique);
      let failed = 0;
      for (const uri of rec.rua) {
        try {
          if (uri.toLowerCase().startsWith('mailto:')) {
            const to = decodeURIComponent(uri.slice(7).split('?')[0] as string);
            const bytes = reportMail({ from: o.from, to, domain, submitter: o.submitter, reportId, fileName, gz, messageId: `${unique}.${day}@${o.submitter}`, date: new Date(now()) });
            await o.mail(to, bytes);
          } else await post(uri, gz, o.timeoutMs ?? 30_000, o.httpsCa, o.resolve);
          o.log(`tls-report domain=${domain} day=${day} rua="${uri}" result=sent report-id="${reportId}"`);
        } catch (e) {
          failed++;
          o.log(`tls-report domain=${domain} day=${day} rua="${uri}" result=failed reason="${(e as Error).message.replace(/"/g, "'")}"`);
        }
      }
      if (failed < rec.rua.length) o.store.forget(day, domain);
    }
  }
}

type LookupCb = (err: Error | null, address: string | { address: string; family: number }[], family?: number) => void;

function post(uri: string, body: Buffer, timeoutMs: number, ca?: readonly (string | Buffer)[], resolveHost?: (host: string) => Promise<string[]>): Promise<void> {
  // The host is looked up through Postern's resolver when it has one; the certificate is checked against the URL's name.
  const lookup =
    resolveHost === undefined
      ? undefined
      : (host: string, opts: { all?: boolean }, cb: LookupCb): void => {
          resolveHost(host).then(
            (a) => {
              const first = a[0];
              if (first === undefined) return cb(Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' }), '');
              if (opts.all === true) cb(null, [{ address: first, family: 4 }]);
              else cb(null, first, 4);
            },
            (e: Error) => cb(e, ''),
          );
        };
  return new Promise((resolve, reject) => {
    const req = https.request(uri, {
      ...(lookup !== undefined ? { lookup: lookup as never } : {}),
      method: 'POST',
      headers: { 'content-type': 'application/tlsrpt+gzip', 'content-length': body.length },
      ...(ca !== undefined ? { ca: [...tls.rootCertificates, ...ca] } : {}),
      agent: false,
      timeout: timeoutMs,
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve();
      else reject(new Error(`HTTP ${res.statusCode ?? '?'}`));
    });
    req.end(body);
  });
}

/*
 * daemon/transport-security.ts — builds the relay agent's TLS policy
 * engine (transport-security/engine.ts) from the `mta …` statements, and
 * runs the daily TLS-RPT reports: every hour, finished days are sent
 * (transport-security/tlsrpt-send.ts); mailto: reports enter the queue by
 * the front door like every report Postern writes (bounce/enqueue.ts).
 *
 * Files, in the queue folder: mta-sts/ (the MTA-STS policy cache, unless
 * `mta mta-sts cache "DIR"`), tlsrpt.json (the day's TLS-RPT counts).
 * A change to the `mta` statements makes a new one at reload
 * (daemon/outbound-security.ts); the policy table's contents follow
 * `smtpctl reload` like every table.
 */
import { join } from 'node:path';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import type { TableRegistry } from '../table/table.js';
import { TransportSecurity } from '../transport-security/engine.js';
import { StsResolver, type TxtDns } from '../transport-security/mta-sts.js';
import { DEFAULT_FETCH } from '../transport-security/mta-sts-fetch.js';
import { FileStsCache, type StsCache } from '../transport-security/sts-cache.js';
import { DnssecClient, parseServer } from '../transport-security/dnssec-client.js';
import { TlsRptStore } from '../transport-security/tlsrpt-store.js';
import { sendReports } from '../transport-security/tlsrpt-send.js';
import { clusterReports } from '../transport-security/tlsrpt-pg.js';
import type { Pool } from 'pg';

export interface TransportWiring {
  readonly engine?: TransportSecurity;
  /** Start the hourly TLS-RPT run; `mail` queues one report. */
  startReports(mail: (to: string, bytes: Buffer) => Promise<void>): void;
  stop(): void;
}

/** A cluster's shared state (docs/cluster.md): the MTA-STS cache, and where TLS-RPT counts meet (tlsrpt-pg.ts). */
export interface SharedTransportState {
  readonly sts: StsCache;
  readonly pool: Pool;
  readonly node: string;
}

/** `shared`: a cluster's; default: files under the queue. */
export function transportSecurity(config: Config, tables: TableRegistry, log: MailLog, dns: TxtDns & { resolve4(name: string): Promise<string[]> }, shared?: SharedTransportState): TransportWiring {
  const ts = config.transportSecurity;
  if (ts === undefined) return { startReports: () => undefined, stop: () => undefined };
  const name = ts.policyTable;
  const store = ts.tlsReport !== undefined ? new TlsRptStore(join(config.queue.path, 'tlsrpt.json')) : undefined;
  const engine = new TransportSecurity({
    log,
    ...(name !== undefined ? { table: (key: string) => tables.lookup(name, key) } : {}),
    ...(ts.mtaSts !== undefined ? { sts: new StsResolver(dns, shared?.sts ?? new FileStsCache(ts.mtaSts.cacheDir ?? join(config.queue.path, 'mta-sts')), { ...DEFAULT_FETCH, resolve: (h) => dns.resolve4(h) }) } : {}),
    ...(ts.dane?.trusted === true ? { dane: new DnssecClient(parseServer(ts.dane.resolver), config.resolver.timeoutMs) } : {}),
    ...(store !== undefined ? { report: store } : {}),
  });
  let timer: NodeJS.Timeout | undefined;
  return {
    engine,
    startReports(mail) {
      const r = ts.tlsReport;
      if (store === undefined || r === undefined) return;
      const send = (from: Parameters<typeof sendReports>[0]['store']): Promise<void> =>
        sendReports({
          store: from,
          dns,
          organization: r.organization ?? config.hostname,
          contact: r.contact ?? r.from,
          submitter: config.hostname,
          from: r.from,
          mail,
          log: (line) => log.info(line),
          resolve: (h) => dns.resolve4(h),
        });
      // A cluster sends one report per day and domain for all its nodes; a single node its own.
      const run = (): void =>
        void (shared ? clusterReports({ pool: shared.pool, node: shared.node, local: store, log: (l) => log.warn(l) }, send) : send(store)).catch((e: Error) => log.warn(`tls-report: ${e.message}`));
      timer = setInterval(run, 3600_000);
      timer.unref();
      run();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      store?.flush();
    },
  };
}

/*
 * daemon/outbound-security.ts — what the relay agent signs and secures
 * mail with: the DKIM signer and ARC sealer (`mailauth sign|seal`,
 * mailauth/sign/) and the TLS policy engine with its TLS-RPT reports (`mta
 * …` statements, daemon/transport-security.ts). Both are built from the
 * configuration at start, and again at a reload when their statements
 * changed: the relay agent then gets the new ones (mta/agent.ts
 * setConfig), the old signing workers are stopped and the old report
 * timer stopped (its day's counts flushed to the file the new one reads).
 * When the statements did not change, the running ones are kept (the
 * MTA-STS cache in memory, the workers); tables named by them follow a
 * reload anyway, as every table does.
 */
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import type { TableRegistry } from '../table/table.js';
import { outboundSigner } from '../mailauth/sign/from-config.js';
import type { OutboundSigner } from '../mailauth/sign/signer.js';
import type { TransportSecurity } from '../transport-security/engine.js';
import type { TxtDns } from '../transport-security/mta-sts.js';
import { transportSecurity, type SharedTransportState, type TransportWiring } from './transport-security.js';

type ReportMail = (to: string, bytes: Buffer) => Promise<void>;

export interface SecurityParts {
  readonly signer: OutboundSigner | undefined;
  readonly transport: TransportSecurity | undefined;
}

export class OutboundSecurity {
  private signer: OutboundSigner | undefined;
  private wiring: TransportWiring;
  private signKey: string;
  private transportKey: string;
  private mail: ReportMail | undefined;

  constructor(
    config: Config,
    private readonly tables: TableRegistry,
    private readonly log: MailLog,
    private readonly dns: TxtDns & { resolve4(name: string): Promise<string[]> },
    /** The cluster's shared MTA-STS cache and TLS-RPT counts (queue postgresql), kept across rebuilds. */
    private readonly shared?: SharedTransportState,
  ) {
    this.signKey = signKeyOf(config);
    this.transportKey = transportKeyOf(config);
    this.signer = outboundSigner(config, tables);
    this.wiring = transportSecurity(config, tables, log, dns, shared);
  }

  parts(): SecurityParts {
    return { signer: this.signer, transport: this.wiring.engine };
  }

  /** Start the TLS-RPT reports (once the scheduler runs); a rebuilt engine starts its own with the same mailer. */
  startReports(mail: ReportMail): void {
    this.mail = mail;
    this.wiring.startReports(mail);
  }

  /** A reloaded configuration: rebuild what changed; returns what changed, for the log (empty: nothing). */
  reload(config: Config): string[] {
    const changed: string[] = [];
    const signKey = signKeyOf(config);
    if (signKey !== this.signKey) {
      const old = this.signer;
      this.signer = outboundSigner(config, this.tables);
      this.signKey = signKey;
      void old?.close().catch(() => undefined);
      changed.push(this.signer ? 'mailauth sign/seal' : 'mailauth sign/seal removed');
    }
    const transportKey = transportKeyOf(config);
    if (transportKey !== this.transportKey) {
      this.wiring.stop();
      this.wiring = transportSecurity(config, this.tables, this.log, this.dns, this.shared);
      this.transportKey = transportKey;
      if (this.mail !== undefined) this.wiring.startReports(this.mail);
      changed.push(this.wiring.engine ? 'mta statements' : 'mta statements removed');
    }
    return changed;
  }

  stop(): void {
    this.wiring.stop();
    void this.signer?.close().catch(() => undefined);
  }
}

function signKeyOf(config: Config): string {
  const m = config.mailauth;
  // The seal's authserv-id comes from `mailauth verify` or the hostname.
  return JSON.stringify({ sign: m?.sign, seal: m?.seal, id: m?.seal ? (m.verify?.authservId ?? config.hostname) : undefined });
}

function transportKeyOf(config: Config): string {
  // The engine also reads the queue path (caches) and the resolver's timeout.
  return JSON.stringify({ ts: config.transportSecurity, queue: config.queue.path, timeout: config.resolver.timeoutMs });
}

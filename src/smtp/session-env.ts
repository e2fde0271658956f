/*
 * smtp/session-env.ts — what a session is given: its environment (the
 * services it calls, each narrowed to the methods the session uses), the
 * peer it talks to, and the TLS facts the connection learns. Plain
 * interfaces, so tests can hand a Session fakes (test/helpers/fake-session-env.ts).
 */
import type { Config, Listener } from '../config/model.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { FailRate } from '../auth/failrate.js';
import type { TableRegistry } from '../table/table.js';
import type { MailLog } from '../log/maillog.js';
import type { FrontDoor } from '../queue/enqueue.js';
import type { Policy } from '../policy/policy.js';
import type { Stats } from '../stats.js';
import type { SessionRuntime } from '../policy/runtime.js';
import type { SchedulerSeam } from '../queue/seam.js';

export interface SessionEnv {
  readonly config: Config;
  readonly log: Pick<MailLog, 'event' | 'error' | 'warn' | 'tracing' | 'trace'>;
  /** The one way into the queue (queue/enqueue.ts): DATA and BDAT open a message there. */
  readonly queue: Pick<FrontDoor, 'open'>;
  readonly policy: Pick<Policy, 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'commit'>;
  readonly stats: Pick<Stats, 'inc'> & Partial<Pick<Stats, 'probe'>>;
  readonly scheduler: SchedulerSeam;
  /** Free bytes in the spool (cached by the caller). */
  readonly freeSpace: () => Promise<number>;
  readonly now: () => number;
  readonly tables: Pick<TableRegistry, 'lookup'>;
  readonly auth: {
    readonly authenticator: Pick<Authenticator, 'check' | 'cramAvailable' | 'cramSecret'>;
    readonly failrate: Pick<FailRate, 'allowed' | 'fail'>;
  };
  readonly runtime?: SessionRuntime;
}

export interface PeerInfo {
  readonly address: string;
  readonly port: number;
  readonly fromSocket: boolean;
  /** "addr:port" of the listener. */
  readonly listener: string;
  /** Our port (hdr220's %p). */
  readonly localPort?: number;
  readonly hostname: string;
  readonly tag?: string;
  readonly noDsn: boolean;
  /** The listener's configuration (TLS and AUTH modes, senders table). */
  readonly config: Listener;
  /** The client's ident (RFC 1413) user, when a lookup was started at accept (smtpserver -a). */
  readonly ident?: Promise<string | undefined>;
  /** The user the whoson server says has the client's address, when asked at accept (smtpserver -w). */
  readonly whoson?: Promise<string | undefined>;
}

export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  /** Subject of a client certificate, when one was presented. */
  readonly peer?: string;
  /** Whether that certificate verified against the listener's CA (asked for, not required: tls-ask-cert). */
  readonly peerVerified?: boolean;
}

/** What the DATA decoder says about a message's content at its end. */
export interface DataEndInfo {
  readonly size: number;
  readonly overflow: boolean;
  readonly bareCr: boolean;
  readonly bareLf: boolean;
  readonly nul: boolean;
}

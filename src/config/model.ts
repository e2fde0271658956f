/*
 * config/model.ts — the typed, frozen configuration Postern runs on.
 *
 * Both smtpd.conf dialects (OpenSMTPD 4.6–5.2 "accept/reject … deliver to"
 * and OpenSMTPD 6.4+ "action/match") are parsed into this one model by
 * config/build.ts. Every element keeps the position it came from so that
 * later checks (and runtime errors) can name FILE:LINE:COL.
 *
 * Statements implemented by later subsystems (TLS, AUTH, relaying, policy
 * files) are carried here already, validated, so the parser never needs to
 * change shape when their runtime arrives.
 */
import type { FilterDecl } from './filter-options.js';
import type { MailAuthOptions } from './mailauth-options.js';
import type { AntispamSettings } from './antispam.js';

export interface Position {
  readonly file: string;
  readonly line: number; // 1-based
  readonly col: number; // 1-based
}

export interface Diagnostic {
  readonly pos: Position;
  readonly message: string;
  readonly severity: 'error' | 'warning';
}

export type Dialect = 'legacy' | 'modern';

/* ---------------------------------------------------------------- tables */

/**
 * A table (modern `table NAME …`, legacy `map NAME { source … }`, or an
 * anonymous table synthesised for a literal such as `for domain "x.org"` or
 * `from 10.0.0.0/8`). Anonymous tables get names starting with "<".
 */
export type TableDecl =
  | { readonly name: string; readonly pos: Position; readonly kind: 'file'; readonly path: string }
  | { readonly name: string; readonly pos: Position; readonly kind: 'db'; readonly path: string }
  | { readonly name: string; readonly pos: Position; readonly kind: 'list'; readonly values: readonly string[] }
  | {
      readonly name: string;
      readonly pos: Position;
      readonly kind: 'map';
      readonly entries: ReadonlyMap<string, string>;
    };

/* ------------------------------------------------------------------- pki */

export interface Pki {
  readonly name: string;
  readonly pos: Position;
  readonly cert?: string;
  readonly key?: string;
  readonly dhe?: string;
}

/** A CA certificate (`ca NAME cert "FILE"`) used to verify client certificates. */
export interface CaCert {
  readonly name: string;
  readonly pos: Position;
  readonly cert: string;
  /** A folder of CA certificates (ZMailer's tls-CApath): every PEM file in it is trusted too. */
  readonly dir?: string;
}

/* ------------------------------------------------------------- listeners */

export type ListenerTls = 'none' | 'starttls' | 'require' | 'smtps';

export interface Listener {
  readonly pos: Position;
  /**
   * An interface name ("lo", "lo0", "eth0"), "localhost", "any"/"all", or an IPv4/IPv6 address;
   * "socket" for `listen on socket` (the local enqueue socket; its port is 0).
   */
  readonly on: string;
  readonly family?: 'inet4' | 'inet6';
  readonly port: number;
  readonly tls: ListenerTls;
  /** `tls-require verify` / `smtps verify`: require a valid client certificate (checked against `ca`). */
  readonly tlsVerify?: boolean;
  /** Ask for a client certificate without requiring one (ZMailer's tls-ask-cert): verified against `ca`, shown, never refused. */
  readonly tlsAskCert?: boolean;
  /** The longest client certificate chain accepted as verified (ZMailer's tls-ccert-vd): intermediates between it and the CA. */
  readonly tlsVerifyDepth?: number;
  /** What the mail log says of each handshake (ZMailer's tlsloglevel): 0 the basics, 1 the client certificate, 2 also the SNI name. */
  readonly tlsLogLevel?: number;
  /** pki / certificate name; defaults to the listener's address or hostname. */
  readonly pki?: string;
  readonly ca?: string;
  /** 'required' = `auth`, 'optional' = `auth-optional`, legacy `enable auth` = 'required'. */
  readonly auth: 'none' | 'optional' | 'required';
  /** Credentials table for auth (`auth <table>`); undefined = system passwords. */
  readonly authTable?: string;
  readonly hostname?: string;
  readonly hostnamesTable?: string;
  readonly tag?: string;
  readonly senders?: { readonly table: string; readonly masquerade: boolean };
  readonly maskSrc: boolean;
  readonly noDsn: boolean;
  readonly smtputf8: boolean;
  readonly proxyV2: boolean;
  /** `filter NAME`: the filter or chain its sessions go through (config/parse-filter.ts). */
  readonly filter?: string;
}

/* --------------------------------------------------------------- actions */

export type RelayScheme = 'smtp' | 'smtp+tls' | 'smtp+notls' | 'smtps' | 'lmtp';

export interface RelayHost {
  readonly scheme: RelayScheme;
  /** Credentials label (`smtp+tls://label@host`) looked up in the auth table. */
  readonly label?: string;
  readonly host: string;
  readonly port?: number;
}

export interface RelayOptions {
  /** Undefined: route by MX. */
  readonly host?: RelayHost;
  readonly backup: boolean;
  readonly backupMx?: string;
  /** 'opportunistic' (default: STARTTLS if offered), 'required' (verify), 'smtps', 'none'. */
  readonly tls: 'none' | 'opportunistic' | 'required' | 'smtps';
  readonly tlsNoVerify: boolean;
  /** Credentials table name (modern `auth <table>`, legacy `auth "map"` or `enable auth` ⇒ "secrets"). */
  readonly authTable?: string;
  /** `auth <T> auth-over-plaintext`: credentials may be sent to a host that offers no TLS (default never). */
  readonly authOverPlaintext?: boolean;
  readonly helo?: string;
  readonly heloSrc?: string;
  readonly src?: string;
  readonly mailFrom?: string;
  readonly pki?: string;
  /** `ca NAME`: verify the relay's certificate against this CA (a `ca NAME cert "FILE"` statement) instead of the system's. */
  readonly ca?: string;
  readonly srs: boolean;
}

export type ActionKind = 'mbox' | 'maildir' | 'mda' | 'lmtp' | 'relay' | 'expand-only' | 'forward-only';

export interface Action {
  readonly name: string;
  readonly pos: Position;
  readonly kind: ActionKind;
  /** maildir path (may contain %{…} format specifiers and ~). */
  readonly maildirPath?: string;
  readonly junk: boolean;
  /** mda command line (run without a shell where possible; see delivery/mda). */
  readonly command?: string;
  /** lmtp destination: "host:port" or "/path/to/socket". */
  readonly lmtpDestination?: string;
  readonly lmtpRcptTo?: string;
  readonly relay?: RelayOptions;
  readonly alias?: string;
  readonly virtual?: string;
  readonly userbase?: string;
  readonly user?: string;
  readonly wrapper?: string;
  /** Queue lifetime for envelopes routed to this action, in seconds. */
  readonly ttl?: number;
}

/* ----------------------------------------------------------------- rules */

export type Condition = { readonly negate: boolean; readonly pos: Position } & (
  | { readonly kind: 'from-any' }
  | { readonly kind: 'from-local' }
  | { readonly kind: 'from-socket' }
  | { readonly kind: 'from-src'; readonly table: string }
  | { readonly kind: 'from-rdns'; readonly table?: string }
  | { readonly kind: 'from-auth'; readonly table?: string }
  | { readonly kind: 'from-mail-from'; readonly table: string }
  | { readonly kind: 'for-any' }
  | { readonly kind: 'for-local' }
  | { readonly kind: 'for-domain'; readonly table: string }
  /** Legacy `for virtual M`: recipient domain appears in virtual map M. */
  | { readonly kind: 'for-virtual'; readonly table: string }
  | { readonly kind: 'for-rcpt-to'; readonly table: string }
  | { readonly kind: 'auth'; readonly table?: string }
  | { readonly kind: 'helo'; readonly table: string }
  | { readonly kind: 'mail-from'; readonly table: string }
  | { readonly kind: 'rcpt-to'; readonly table: string }
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'tls' }
);

export interface MatchRule {
  readonly pos: Position;
  readonly dialect: Dialect;
  readonly decision: 'accept' | 'reject';
  /** Action name for accept rules (legacy rules get a synthesised action). */
  readonly action?: string;
  readonly conditions: readonly Condition[];
}

/* ---------------------------------------------------- server-wide options */

export interface SmtpOptions {
  /** Maximum message size in bytes (`size`, `smtp max-message-size`). Default 35 MB. */
  readonly maxMessageSize: number;
  /** Recipients per transaction (`smtp limit max-rcpt`). Default 1000. */
  readonly maxRcpt: number;
  /** Transactions per session (`smtp limit max-mails`). Default 100. */
  readonly maxMails: number;
  /** Unknown commands before 421 (`smtp limit max-unknown-commands`). Default 10. */
  readonly maxUnknownCommands: number;
  /** NOOP, RSET, VRFY, HELP and unknown commands before 421, counted again after each accepted message (`smtp limit max-junk-commands`; 0 = no limit). Default 100. */
  readonly maxJunkCommands: number;
  /** Command timeout in ms (`smtp timeout command`). Default 300 s. */
  readonly commandTimeoutMs: number;
  /** Data timeout in ms (`smtp timeout data`). Default 300 s. */
  readonly dataTimeoutMs: number;
  /** The STARTTLS / smtps handshake, ms (`smtp timeout tls-handshake`). Default 60 s. */
  readonly tlsHandshakeTimeoutMs: number;
  /** A whole session, ms (`smtp timeout session`). Default 1 hour. */
  readonly sessionLifetimeMs: number;
  /** One transaction, MAIL to its final reply, ms (`smtp timeout transaction`). Default 30 minutes. */
  readonly transactionLifetimeMs: number;
  /** More Received: headers than this ⇒ 554 5.4.6 (`smtp max-received`). Default 100. */
  readonly maxReceivedHeaders: number;
  /** Bare CR / bare LF inside DATA: 'normalize' (store CRLF) or 'reject' (550 5.5.2). */
  readonly bareNewline: 'normalize' | 'reject';
  /** A client that talks before the greeting or pipelines without EHLO: 'reject' (550 5.7.1, close) or 'allow'. */
  readonly earlyTalker: 'reject' | 'allow';
  /** Wait this long before the greeting to catch early talkers (ms). Default 0 (only what is already buffered). */
  readonly greetingDelayMs: number;
  readonly vrfy: boolean;
  readonly expn: boolean;
  /** HELP text lines. */
  readonly help: readonly string[];
  /** Greeting text after the hostname (default "ESMTP Postern"). */
  readonly banner?: string;
  /** Extensions turned off (PIPELINING, CHUNKING, DSN, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, ETRN, SIZE). */
  readonly disabledExtensions: ReadonlySet<string>;
  readonly ciphers?: string;
  readonly tlsMinVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Offer and accept AUTH without TLS (`smtp auth-without-tls`, ZMailer's AUTH-LOGIN-also-without-TLS). */
  readonly authWithoutTls: boolean;
  /** Failed AUTH attempts per client address per hour before refusing more (`smtp auth-failrate N`). */
  readonly authFailRate: number;
  /** Delay before answering a failed AUTH (`smtp auth-fail-delay D`). */
  readonly authFailDelayMs: number;
  /** External authenticator (`smtp auth-pipe "PATH"`, ZMailer's SMTP-auth-pipe): user as argument, password on stdin. */
  readonly authPipe?: string;
  /** AUTH LOGIN prompts (`smtp auth-username-prompt`, `smtp auth-password-prompt`). */
  readonly authUsernamePrompt: string;
  readonly authPasswordPrompt: string;
  /** Abuse limits (`smtp limit max-connections|max-connections-per-address|soft-errors|hard-errors N`,
   *  `smtp min-data-rate N`, `smtp noto-delay D`, `smtp deny-delay D`); undefined ⇒ the defaults of
   *  policy/limits/defaults.ts, or a ZMailer file's PARAMs. */
  readonly maxConnections?: number;
  readonly maxConnectionsPerAddress?: number;
  readonly softErrorLimit?: number;
  readonly hardErrorLimit?: number;
  readonly minDataRate?: number;
  readonly notoDelayMs?: number;
  readonly denyDelayMs?: number;
  /** Refuse new sessions (421 4.3.2) while the 1-minute load average is above this (`smtp max-load-average N`, ZMailer's -L). */
  readonly maxLoadAverage?: number;
}

export interface QueueOptions {
  /** Spool root (`queue path "DIR"`). */
  readonly path: string;
  /** Queue lifetime (`expire`, `queue ttl`) in seconds. Default 4 days. */
  readonly ttl: number;
  /** Legacy `queue interval`: the scheduler's scan period in seconds. */
  readonly interval?: number;
  /** Refuse MAIL with 452 4.3.1 below this many free bytes in the spool (`queue min-free-space`). */
  readonly minFreeSpace: number;
  /** Group commit window in ms: directory fsyncs of messages committed within it are shared. */
  readonly groupCommitMs: number;
  /** Messages, and recipients, the scheduler holds in memory at most (`queue active-limit`); more wait in the spool. Default 20,000. */
  readonly activeLimit: number;
  /** `queue postgresql "URL"` (with `queue node`, `queue lease`): the queue is shared with other nodes in PostgreSQL (docs/cluster.md). */
  readonly postgresql?: { readonly url: string; readonly node?: string; readonly leaseMs: number };
}

export interface BounceOptions {
  /** `bounce warn-interval` delays in seconds. Default [4 h]. */
  readonly warnIntervals: readonly number[];
}

export interface Paths {
  /** Control socket (`control socket "PATH"`). Default QUEUE/smtpd.sock. */
  readonly controlSocket: string;
  /** Pid file (`pidfile "PATH"`). Default QUEUE/smtpd.pid. */
  readonly pidFile: string;
  /** mbox folder (`mbox path "DIR"`). Default /var/mail. */
  readonly mboxDir: string;
  /** Mail log file (`log file "PATH"`); undefined ⇒ standard error. */
  readonly logFile?: string;
  /** `log syslog …`: the system log through the socket (default /dev/log). */
  readonly syslog?: SyslogTarget;
  /** `log format opensmtpd`: message and delivery lines as OpenSMTPD writes them. */
  readonly logFormat?: 'postern' | 'opensmtpd';
}

export interface SyslogTarget {
  /** A facility name (config/parse-log.ts SYSLOG_FACILITIES); default mail. */
  readonly facility: string;
  /** The program name in each line; default smtpd. */
  readonly tag: string;
  /** The syslog socket; undefined ⇒ /dev/log. */
  readonly socket?: string;
}

export interface ResolverOptions {
  /** DNS servers ("ip" or "ip:port"); empty ⇒ the system's. */
  readonly servers: readonly string[];
  readonly timeoutMs: number;
}

export interface ForwardOptions {
  /** Read ~/.forward at all. */
  readonly read: boolean;
  /** Allow "|command" destinations in it (run as the user). */
  readonly commands: boolean;
  /** Allow "/file" destinations in it (written as the user). */
  readonly files: boolean;
}

export interface Config {
  readonly file: string;
  readonly dialect: Dialect | 'mixed' | 'empty';
  readonly hostname: string;
  readonly macros: ReadonlyMap<string, string>;
  readonly listeners: readonly Listener[];
  readonly tables: ReadonlyMap<string, TableDecl>;
  readonly pki: ReadonlyMap<string, Pki>;
  /** `ca NAME cert "FILE"` declarations (referenced by `listen … ca NAME`). */
  readonly ca?: ReadonlyMap<string, CaCert>;
  readonly actions: ReadonlyMap<string, Action>;
  readonly rules: readonly MatchRule[];
  readonly smtp: SmtpOptions;
  readonly queue: QueueOptions;
  readonly bounce: BounceOptions;
  readonly paths: Paths;
  readonly resolver: ResolverOptions;
  /** Policy files (later issues): Obtuse rules file, ZMailer smtpserver.conf. */
  readonly rulesFile?: { readonly path: string; readonly pos: Position };
  readonly smtpserverConf?: { readonly path: string; readonly pos: Position };
  /** ~/.forward (`forward …`); undefined ⇒ read, no commands or files (config/parse-forward.ts). */
  readonly forward?: ForwardOptions;
  /** Mail authentication (`mailauth verify|sign …`, config/parse-mailauth.ts); absent: none. */
  readonly mailauth?: MailAuthOptions;
  /** `privsep user NAME`: who the SMTP side runs as when smtpd starts as root (default _postern; config/parse-privsep.ts). */
  readonly privsepUser?: string;
  /** The HTTP listener (metrics, API, dashboard); absent: none (config/http-options.ts). */
  readonly http?: HttpOptions;
  /** `filter NAME …` statements (config/parse-filter.ts): milters, filter processes, built-in filters, chains. */
  readonly filters?: ReadonlyMap<string, FilterDecl>;
  /** The checks at the door: DNS lists, HELO/sender checks, greylisting, rate limits, header checks (config/antispam.ts). */
  readonly antispam?: AntispamSettings;
  /** `mta tls-policy|mta-sts|dane|tls-report` (config/parse-mta.ts); absent: none of them. */
  readonly transportSecurity?: TransportSecurityConfig;
  /** Non-fatal findings (e.g. open relay). */
  readonly warnings: readonly Diagnostic[];
}

/* ------------------------------------------ the HTTP listener (config/parse-http.ts) */

/** read-only: /metrics, the dashboard and every GET; admin: also the changes (POST). */
export type HttpRole = 'admin' | 'read-only';

export interface HttpToken {
  readonly name: string;
  /** A file holding the secret (its first line); read at start and at reload. */
  readonly file: string;
  readonly role: HttpRole;
  readonly pos: Position;
}

export interface HttpOptions {
  readonly address: string;
  readonly port: number;
  /** The pki whose certificate and key serve HTTPS; required beyond loopback. */
  readonly pki?: string;
  readonly tokens: readonly HttpToken[];
  readonly maxConnections: number;
  readonly pos: Position;
}

/* ------------------------- outbound transport security (config/parse-mta.ts) */

export interface TransportSecurityConfig {
  /** `mta tls-policy <TABLE>`: per-destination TLS policies. */
  readonly policyTable?: string;
  /** `mta mta-sts [cache "DIR"]`: MTA-STS on; the cache folder (default: QUEUE/mta-sts). */
  readonly mtaSts?: { readonly cacheDir?: string };
  /** `mta dane resolver "IP[:PORT]" [trusted]`: the DNSSEC-validating resolver; its AD bit is believed only when trusted. */
  readonly dane?: { readonly resolver: string; readonly trusted: boolean };
  /** `mta tls-report from ADDR [organization "NAME"] [contact "TEXT"]`: send TLS-RPT daily reports. */
  readonly tlsReport?: { readonly from: string; readonly organization?: string; readonly contact?: string };
}

/*
 * config/defaults.ts — the value of every option nobody configured, and the
 * built-in configuration `npm start` runs when no -f is given.
 *
 * DEFAULT_CONFIG_TEXT is also shipped as etc/smtpd.conf.default (a test
 * keeps the two identical). It needs no root: the spool and the mailboxes
 * live under the working directory, and it listens on 127.0.0.1:2525.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/* listeners */
export const DEFAULT_PORT = 25;
export const DEFAULT_SMTPS_PORT = 465;

/* smtp */
export const DEFAULT_MAX_MESSAGE_SIZE = 35 * 1024 * 1024;
export const DEFAULT_MAX_RCPT = 1000;
export const DEFAULT_MAX_MAILS = 100;
export const DEFAULT_MAX_UNKNOWN_COMMANDS = 10;
/** NOOP, RSET, VRFY, HELP and unknown commands before 421 (Postfix's smtpd_junk_command_limit). */
export const DEFAULT_MAX_JUNK_COMMANDS = 100;
export const DEFAULT_COMMAND_TIMEOUT_MS = 300_000;
export const DEFAULT_DATA_TIMEOUT_MS = 300_000;
/**
 * The STARTTLS / smtps handshake (`smtp timeout tls-handshake`). Postfix's
 * smtpd_starttls_timeout is 300 s (less under stress); a handshake is two or
 * three round trips and a few milliseconds of CPU, so one still unfinished
 * after a minute is a client that left or never meant to finish. 60 s leaves
 * room for a slow link and a large client certificate chain.
 */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 60_000;
/**
 * A whole session, connect to close (`smtp timeout session`). Postfix and Exim
 * have none (a slow client is bounded only per command); one hour is far
 * above any honest session (100 messages at `smtp limit max-mails` at about
 * 30 s each) and stops a client that holds a slot with a NOOP a second.
 */
export const DEFAULT_SESSION_LIFETIME_MS = 3_600_000;
/**
 * One transaction, MAIL to its final reply (`smtp timeout transaction`).
 * 30 minutes carries a 35 MB message at 20 KB/s; a client slower than that
 * on average is cut off even though it keeps the minimum data rate.
 */
export const DEFAULT_TRANSACTION_LIFETIME_MS = 1_800_000;
export const DEFAULT_MAX_RECEIVED_HEADERS = 100;
export const DEFAULT_BARE_NEWLINE: 'normalize' | 'reject' = 'normalize';
export const DEFAULT_EARLY_TALKER: 'reject' | 'allow' = 'reject';
export const DEFAULT_GREETING_DELAY_MS = 0;
export const DEFAULT_VRFY = false;
export const DEFAULT_EXPN = false;
/** Failed AUTH attempts allowed per client address per hour (ZMailer's auth-failrate). */
export const DEFAULT_AUTH_FAILRATE = 20;
/** Delay before a 535 reply to a failed AUTH. */
export const DEFAULT_AUTH_FAIL_DELAY_MS = 1000;
export const DEFAULT_AUTH_USERNAME_PROMPT = 'Username:';
export const DEFAULT_AUTH_PASSWORD_PROMPT = 'Password:';
/** Extensions `smtp disable` may name. */
export const SMTP_EXTENSIONS: readonly string[] = ['PIPELINING', 'CHUNKING', 'DSN', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'ETRN', 'SIZE'];

/* queue */
export const DEFAULT_QUEUE_PATH = '/var/spool/postern';
export const DEFAULT_QUEUE_TTL_S = 4 * 86_400;
export const DEFAULT_MIN_FREE_SPACE = 64 * 1024 * 1024;
export const DEFAULT_GROUP_COMMIT_MS = 0;
/** Messages the scheduler holds in memory (Postfix's qmgr_message_active_limit). */
export const DEFAULT_ACTIVE_LIMIT = 20_000;
export const DEFAULT_BOUNCE_WARN_INTERVALS_S: readonly number[] = [4 * 3600];

/* paths (control socket and pid file default to files inside the queue folder) */
export const DEFAULT_CONTROL_SOCKET_NAME = 'smtpd.sock';
export const DEFAULT_PIDFILE_NAME = 'smtpd.pid';
export const DEFAULT_MBOX_DIR = '/var/mail';

/* resolver */
export const DEFAULT_RESOLVER_TIMEOUT_MS = 5000;

export const DEFAULT_CONFIG_TEXT = `# Postern built-in configuration: used when smtpd runs without -f.
# It needs no root: the spool and the mailboxes live under the working
# directory, and the server listens on an unprivileged loopback port.
# The host name is this machine's (see "hostname" in docs/configuration.md).

queue path "var/spool"
mbox path "var/mail"

listen on 127.0.0.1 port 2525

action "local" mbox
action "relay" relay

match from local for local action "local"
match from local for any action "relay"
`;

/**
 * This machine's name, fully qualified when possible: os.hostname() if it
 * has a dot, else the first dotted alias of that name in /etc/hosts, else
 * the short name.
 */
export function defaultHostname(): string {
  const short = hostname();
  if (short.includes('.')) return short;
  try {
    const hosts = readFileSync('/etc/hosts', 'utf8');
    for (const raw of hosts.split('\n')) {
      const names = (raw.split('#')[0] ?? '').trim().split(/\s+/).slice(1);
      if (!names.includes(short)) continue;
      const fqdn = names.find((n) => n.startsWith(`${short}.`));
      if (fqdn !== undefined) return fqdn;
    }
  } catch {
    // No /etc/hosts: the short name will do.
  }
  return short;
}
